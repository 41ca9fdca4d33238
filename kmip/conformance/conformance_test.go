package conformance_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/kmip"
	"github.com/keyhold/keyhold/kmip/conformance"
	"github.com/keyhold/keyhold/kmip/kmiptest"
)

// Every file must pass. The four RNG Seed files describe four server
// policies for the same request (the whole seed used, 16 bytes of it,
// none, or the operation refused), so each runs under a role set up for
// its policy (Role.RNGSeedMaxBytes; a role without rng_seed); every other
// file runs under a role that may do everything.
var roleOf = map[string]string{
	"CS-RNG-O-2-14": "seed16",
	"CS-RNG-O-3-14": "seed0",
	"CS-RNG-O-4-14": "noseed",
}

// testcases is the folder of the OASIS 1.4 test cases: KMIP_TESTCASES, or
// the shared folder beside the repository.
func testcases(t *testing.T) string {
	if d := os.Getenv("KMIP_TESTCASES"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared", "kmip-testcases", "v1.4")
}

// TestConformance replays every test case file over mutual TLS, prints one
// line per file and a total, and fails if a file fails. With
// KMIP_CONFORMANCE_REPORT set, the lines are also written to that file.
func TestConformance(t *testing.T) {
	dir := testcases(t)
	var files []string
	for _, sub := range []string{"mandatory", "optional"} {
		m, err := filepath.Glob(filepath.Join(dir, sub, "*.xml"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatalf("no test case files under %s (set KMIP_TESTCASES)", dir)
	}
	sort.Slice(files, func(i, j int) bool { return filepath.Base(files[i]) < filepath.Base(files[j]) })

	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "conformance", "all", "all")
	zero, sixteen := 0, 16
	for role, max := range map[string]*int{"seed16": &sixteen, "seed0": &zero} {
		if _, err := e.Manager.PutRole(t.Context(), e.Mount, "conformance", role, kmip.RoleInput{Ops: map[string]bool{"all": true}, RNGSeedMaxBytes: max}); err != nil {
			t.Fatal(err)
		}
	}
	var ops []string
	for _, op := range kmip.OperationNames() {
		if op != "rng_seed" {
			ops = append(ops, op)
		}
	}
	e.Role(t, "conformance", "noseed", ops...)
	dialers := map[string]func(context.Context) (net.Conn, error){}
	for _, role := range []string{"all", "seed16", "seed0", "noseed"} {
		cert, _ := e.Credential(t, "conformance", role)
		cfg := e.TLSConfig(cert)
		dialers[role] = func(ctx context.Context) (net.Conn, error) {
			d := tls.Dialer{Config: cfg}
			return d.DialContext(ctx, "tcp", e.Addr)
		}
	}

	var lines []string
	passed, failed := 0, 0
	for _, f := range files {
		c, err := conformance.Load(f)
		var r conformance.Result
		if err != nil {
			r = conformance.Result{Name: strings.TrimSuffix(filepath.Base(f), ".xml"), Failure: "load: " + err.Error()}
		} else {
			role := roleOf[c.Name]
			if role == "" {
				role = "all"
			}
			r = conformance.Run(t.Context(), dialers[role], c)
		}
		if r.Passed {
			passed++
		} else {
			failed++
			t.Errorf("test case failed: %s", r)
		}
		lines = append(lines, r.String())
	}
	lines = append(lines, fmt.Sprintf("%d passed, %d failed", passed, failed))
	report := strings.Join(lines, "\n") + "\n"
	t.Log("\n" + report)
	if p := os.Getenv("KMIP_CONFORMANCE_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
