package xks

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/keyhold/keyhold/loadgen"
)

// The load generator can run in a process of its own, as AWS KMS does
// (package loadgen): the benchmark starts this test binary again with
// XKS_LOADGEN naming a file that describes the run; the child runs
// TestXKSLoadGenerator.

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
	Rate   float64       `json:"rate"`
	Ops    int64         `json:"ops"`
	Errors int64         `json:"errors"`
	CPU    time.Duration `json:"cpu"` // the child's, in the measured loop
}

func TestXKSLoadGenerator(t *testing.T) {
	var spec loadgenSpec
	loadgen.Spec(t, "XKS_LOADGEN", &spec)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(spec.CAPEM)) {
		t.Fatal("no CA certificate in the spec")
	}
	lt := &loadTarget{base: spec.Base, akid: spec.AKID, secret: spec.Secret, client: newLoadClient(pool, spec.Workers)}
	// Warm the connections up, as the in-process generator's are.
	closedLoop(t, lt, 200*time.Millisecond, spec.Workers, spec.Target, spec.Body)
	var rate float64
	var ops, errs int64
	cpu := loadgen.Measured(func() { rate, ops, errs = closedLoop(t, lt, spec.Duration, spec.Workers, spec.Target, spec.Body) })
	loadgen.Print(t, loadgenResult{Rate: rate, Ops: ops, Errors: errs, CPU: cpu})
}

// closedLoopProcess runs closedLoop in a child process against e's proxy.
// With the rate it returns the CPU time per operation (µs) of this process,
// the server, and of the child, both over the child's measured loop.
func closedLoopProcess(tb testing.TB, e *testEnv, lt *loadTarget, dur time.Duration, workers int, target string, body []byte) (loadgen.Sample, int64) {
	tb.Helper()
	spec := loadgenSpec{Base: lt.base, AKID: lt.akid, Secret: lt.secret, CAPEM: e.caPEM, Target: target, Body: body, Workers: workers, Duration: dur}
	var r loadgenResult
	cpu := loadgen.Run(tb, "TestXKSLoadGenerator", "XKS_LOADGEN", spec, &r)
	s := loadgen.Sample{Rate: r.Rate}
	if r.Ops > 0 {
		s.ServerCPU = float64(cpu.Microseconds()) / float64(r.Ops)
		s.ClientCPU = float64(r.CPU.Microseconds()) / float64(r.Ops)
	}
	return s, r.Errors
}
