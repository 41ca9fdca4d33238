package loadgen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/keyhold/keyhold/audit"
)

// AuditOverhead runs CompareOnOff with a file audit device of br as the
// feature, over counts (what a count counts is named by clients, the rate
// by unit), in AUDIT_ROUNDS rounds (5 unless set). It checks the trail the
// load left, prints the table under title and reports the peaks and
// overheads as metrics.
func AuditOverhead(b *testing.B, br *audit.Broker, counts []int, measure func(count int) (Sample, error), title, clients, unit string) {
	b.Helper()
	logPath := filepath.Join(b.TempDir(), "audit.log")
	ctx := context.Background()
	set := func(on bool) error {
		if on {
			return br.Enable(ctx, audit.Device{Path: "file", Type: "file", FilePath: logPath})
		}
		return br.Disable(ctx, "file")
	}
	rounds := 5
	if v := os.Getenv("AUDIT_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("AUDIT_ROUNDS=%q: want a positive number of rounds", v)
		}
		rounds = n
	}
	res, err := CompareOnOff(counts, rounds, set, measure)
	if err != nil {
		b.Fatal(err)
	}
	if rep, err := audit.Verify([]string{logPath}); err != nil || rep.Problem != nil {
		b.Fatalf("trail after the load: %+v %v", rep, err)
	}
	fmt.Printf("\n%s with a file audit device off and on (median of %d rounds):\n", title, rounds)
	res.Print(os.Stdout, clients, unit)
	off, on, _, _ := res.Peak()
	b.ReportMetric(off.Rate, "audit-off-"+unit)
	b.ReportMetric(on.Rate, "audit-on-"+unit)
	b.ReportMetric(res.Overhead(), "overhead-%")
	b.ReportMetric(res.CPUOverhead(), "server-cpu-overhead-%")
	b.ReportMetric(0, "ns/op")
}
