package kmip_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"

	"github.com/keyhold/keyhold/kmip/kmiptest"
	"github.com/keyhold/keyhold/loadgen"
)

// The load generator can run in a process of its own, as a KMIP client on
// another host does (package loadgen): unless KMIP_LOAD_SEPARATE=0 the
// audit benchmark starts this test binary again with KMIP_LOADGEN naming a file
// that describes the run; the child runs TestKMIPLoadGenerator.

type loadgenSpec struct {
	Addr        string        `json:"addr"`
	CertFile    string        `json:"cert_file"`
	KeyFile     string        `json:"key_file"`
	CAFile      string        `json:"ca_file"`
	Requests    [][]byte      `json:"requests"`
	Connections int           `json:"connections"`
	Duration    time.Duration `json:"duration"`
}

type loadgenResult struct {
	Ops     int             `json:"ops"`
	Errs    int             `json:"errs"`
	Elapsed time.Duration   `json:"elapsed"`
	Lat     []time.Duration `json:"lat"`
	CPU     time.Duration   `json:"cpu"` // the child's, in the measured loop
}

func TestKMIPLoadGenerator(t *testing.T) {
	var spec loadgenSpec
	loadgen.Spec(t, "KMIP_LOADGEN", &spec)
	cert, err := tls.LoadX509KeyPair(spec.CertFile, spec.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(spec.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in the spec's CA file")
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	var conns []*kmiptest.Client
	for range spec.Connections {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", spec.Addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, &kmiptest.Client{Conn: c})
	}
	// Warm the connections up, as the in-process generator's are.
	closedLoop(conns, 200*time.Millisecond, spec.Requests)
	var r loadResult
	cpu := loadgen.Measured(func() { r = closedLoop(conns, spec.Duration, spec.Requests) })
	loadgen.Print(t, loadgenResult{Ops: r.ops, Errs: r.errs, Elapsed: r.elapsed, Lat: r.lat, CPU: cpu})
}

// separateLoad is a Keyhold target's credential in files, for a child
// process.
type separateLoad struct {
	addr                      string
	certFile, keyFile, caFile string
}

func newSeparateLoad(tb testing.TB, e *kmiptest.Env) *separateLoad {
	certFile, keyFile, caFile, _ := e.WriteCredential(tb, "load", "all")
	return &separateLoad{addr: e.Addr, certFile: certFile, keyFile: keyFile, caFile: caFile}
}

// closedLoop runs the closed loop in a child process over conns new
// connections. It also returns the CPU time per operation (µs) of this
// process, the server, and of the child, both over the child's measured
// loop.
func (s *separateLoad) closedLoop(tb testing.TB, conns int, d time.Duration, reqs [][]byte) (loadResult, loadgen.Sample) {
	tb.Helper()
	spec := loadgenSpec{Addr: s.addr, CertFile: s.certFile, KeyFile: s.keyFile, CAFile: s.caFile, Requests: reqs, Connections: conns, Duration: d}
	var r loadgenResult
	cpu := loadgen.Run(tb, "TestKMIPLoadGenerator", "KMIP_LOADGEN", spec, &r)
	lr := loadResult{ops: r.Ops, errs: r.Errs, elapsed: r.Elapsed, lat: r.Lat}
	sample := loadgen.Sample{Rate: lr.rate()}
	if r.Ops > 0 {
		sample.ServerCPU = float64(cpu.Microseconds()) / float64(r.Ops)
		sample.ClientCPU = float64(r.CPU.Microseconds()) / float64(r.Ops)
	}
	return lr, sample
}
