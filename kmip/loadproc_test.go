package kmip_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/kmip/kmiptest"
)

// The load generator can run in a process of its own, as a KMIP client on
// another host does: then its goroutines and TLS client work do not share
// the server's Go scheduler (they still share the machine's cores). With
// KMIP_LOAD_SEPARATE=1 the audit benchmark starts this test binary again
// with KMIP_LOADGEN set to a file describing the run; the child runs
// TestKMIPLoadGenerator and prints its result.

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
}

const loadgenMarker = "KMIP-LOADGEN-RESULT "

func TestKMIPLoadGenerator(t *testing.T) {
	path := os.Getenv("KMIP_LOADGEN")
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
	r := closedLoop(conns, spec.Duration, spec.Requests)
	out, err := json.Marshal(loadgenResult{Ops: r.ops, Errs: r.errs, Elapsed: r.elapsed, Lat: r.lat})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%s\n", loadgenMarker, out)
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
// connections.
func (s *separateLoad) closedLoop(tb testing.TB, conns int, d time.Duration, reqs [][]byte) loadResult {
	tb.Helper()
	spec := loadgenSpec{Addr: s.addr, CertFile: s.certFile, KeyFile: s.keyFile, CAFile: s.caFile, Requests: reqs, Connections: conns, Duration: d}
	raw, err := json.Marshal(spec)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "loadgen.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKMIPLoadGenerator$", "-test.count", "1")
	cmd.Env = append(os.Environ(), "KMIP_LOADGEN="+path)
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
			return loadResult{ops: r.Ops, errs: r.Errs, elapsed: r.Elapsed, lat: r.Lat}
		}
	}
	tb.Fatalf("load generator printed no result:\n%s%s", stdout.String(), stderr.String())
	return loadResult{}
}
