package xks

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The load generator can run in a process of its own, as AWS KMS does: then
// its goroutines and TLS client work do not share the server's Go scheduler
// (they still share the machine's cores). The benchmark starts this test
// binary again with XKS_LOADGEN set to a file describing the run; the child
// runs TestXKSLoadGenerator and prints its result.

type loadgenSpec struct {
	Base     string        `json:"base"`
	AKID     string        `json:"akid"`
	Secret   string        `json:"secret"`
	CAPEM    string        `json:"ca_pem"`
	Target   string        `json:"target"`
	Body     []byte        `json:"body"`
	Workers  int           `json:"workers"`
	Duration time.Duration `json:"duration"`
}

type loadgenResult struct {
	Rate   float64 `json:"rate"`
	Errors int64   `json:"errors"`
}

const loadgenMarker = "XKS-LOADGEN-RESULT "

func TestXKSLoadGenerator(t *testing.T) {
	path := os.Getenv("XKS_LOADGEN")
	if path == "" {
		t.Skip("runs only as the benchmark's separate load generator")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec loadgenSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(spec.CAPEM)) {
		t.Fatal("no CA certificate in the spec")
	}
	lt := &loadTarget{base: spec.Base, akid: spec.AKID, secret: spec.Secret, client: newLoadClient(pool, spec.Workers)}
	// Warm the connections up, as the in-process generator's are.
	closedLoop(t, lt, 200*time.Millisecond, spec.Workers, spec.Target, spec.Body)
	rate, errs := closedLoop(t, lt, spec.Duration, spec.Workers, spec.Target, spec.Body)
	out, _ := json.Marshal(loadgenResult{Rate: rate, Errors: errs})
	fmt.Printf("%s%s\n", loadgenMarker, out)
}

// closedLoopProcess runs closedLoop in a child process against e's proxy.
func closedLoopProcess(tb testing.TB, e *testEnv, lt *loadTarget, dur time.Duration, workers int, target string, body []byte) (float64, int64) {
	tb.Helper()
	spec := loadgenSpec{Base: lt.base, AKID: lt.akid, Secret: lt.secret, CAPEM: e.caPEM, Target: target, Body: body, Workers: workers, Duration: dur}
	raw, _ := json.Marshal(spec)
	path := filepath.Join(tb.TempDir(), "loadgen.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestXKSLoadGenerator$", "-test.count", "1")
	cmd.Env = append(os.Environ(), "XKS_LOADGEN="+path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("load generator: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, loadgenMarker); ok {
			var r loadgenResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				tb.Fatal(err)
			}
			return r.Rate, r.Errors
		}
	}
	tb.Fatalf("load generator printed no result:\n%s%s", stdout.String(), stderr.String())
	return 0, 0
}
