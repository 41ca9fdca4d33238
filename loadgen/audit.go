package loadgen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyhold/keyhold/audit"
)

// AuditOverhead runs CompareOnOff with a file audit device of br as the
// feature, over counts (what a count counts is named by clients, the rate
// by unit), three rounds. It checks the trail the load left, prints the
// table under title and reports the peaks and overheads as metrics.
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
	res, err := CompareOnOff(counts, 3, set, measure)
	if err != nil {
		b.Fatal(err)
	}
	if rep, err := audit.Verify([]string{logPath}); err != nil || rep.Problem != nil {
		b.Fatalf("trail after the load: %+v %v", rep, err)
	}
	fmt.Printf("\n%s with a file audit device off and on (median of 3 rounds):\n", title)
	res.Print(os.Stdout, clients, unit)
	off, on, _, _ := res.Peak()
	b.ReportMetric(off.Rate, "audit-off-"+unit)
	b.ReportMetric(on.Rate, "audit-on-"+unit)
	b.ReportMetric(res.Overhead(), "overhead-%")
	b.ReportMetric(res.CPUOverhead(), "server-cpu-overhead-%")
	b.ReportMetric(0, "ns/op")
}
