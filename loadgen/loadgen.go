// Package loadgen runs a benchmark's load generator in a process of its
// own, as remote clients are: the running test binary is started again to
// run one test, which reads what to do from a file and prints its result
// on a marked line. Then the generator's goroutines and TLS work do not
// share the server's Go scheduler (they still share the machine's cores).
package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// marker starts the line that carries the child's result.
const marker = "LOADGEN-RESULT "

// Run starts this test binary again to run only the test named test, with
// the environment variable env naming a file that holds spec as JSON, and
// decodes the child's result (what it gave Print) into result.
func Run(tb testing.TB, test, env string, spec, result any) {
	tb.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "loadgen.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^"+test+"$", "-test.count", "1")
	cmd.Env = append(os.Environ(), env+"="+path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("load generator: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, marker); ok {
			if err := json.Unmarshal([]byte(rest), result); err != nil {
				tb.Fatal(err)
			}
			return
		}
	}
	tb.Fatalf("load generator printed no result:\n%s%s", stdout.String(), stderr.String())
}

// Spec reads, in the child, the spec that Run wrote. It skips the test
// when env is not set: the test then runs only as a child.
func Spec(t *testing.T, env string, spec any) {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		t.Skip("runs only as a benchmark's separate load generator")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, spec); err != nil {
		t.Fatal(err)
	}
}

// Print hands the child's result to Run.
func Print(t *testing.T, result any) {
	t.Helper()
	out, err := json.Marshal(result)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%s\n", marker, out)
}
