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
	"time"
)

// marker starts the line that carries the child's result.
const marker = "LOADGEN-RESULT "

// markEnv tells the child that fd 3 is the pipe Measured writes its marks to.
const markEnv = "LOADGEN_MARKS"

// Run starts this test binary again to run only the test named test, with
// the environment variable env naming a file that holds spec as JSON, and
// decodes the child's result (what it gave Print) into result. It returns
// the CPU time this process used while the child ran its measured part
// (Measured), or over the child's whole run if the child marked none.
func Run(tb testing.TB, test, env string, spec, result any) time.Duration {
	tb.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "loadgen.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	marks, markw, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	defer marks.Close()
	cmd := exec.Command(os.Args[0], "-test.run", "^"+test+"$", "-test.count", "1")
	cmd.Env = append(os.Environ(), env+"="+path, markEnv+"=1")
	cmd.ExtraFiles = []*os.File{markw}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The CPU time is sampled when each mark arrives; the marks are read
	// by a goroutine of their own, so nothing else delays the samples.
	cpu := make(chan time.Duration, 1)
	go func() {
		var at []time.Duration
		b := make([]byte, 1)
		for len(at) < 2 {
			if _, err := marks.Read(b); err != nil {
				break
			}
			at = append(at, CPUTime())
		}
		if len(at) == 2 {
			cpu <- at[1] - at[0]
		}
		close(cpu)
	}()
	start := CPUTime()
	err = cmd.Start()
	markw.Close()
	if err == nil {
		err = cmd.Wait()
	}
	whole := CPUTime() - start
	if err != nil {
		tb.Fatalf("load generator: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	measured, ok := <-cpu
	if !ok {
		measured = whole
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, marker); ok {
			if err := json.Unmarshal([]byte(rest), result); err != nil {
				tb.Fatal(err)
			}
			return measured
		}
	}
	tb.Fatalf("load generator printed no result:\n%s%s", stdout.String(), stderr.String())
	return 0
}

// Measured runs, in the child, the part of the load that is measured,
// marking its start and end for Run, and returns the child's own CPU time
// in it.
func Measured(fn func()) time.Duration {
	var marks *os.File
	if os.Getenv(markEnv) != "" {
		marks = os.NewFile(3, "loadgen-marks")
		defer marks.Close()
	}
	mark := func() {
		if marks != nil {
			marks.Write([]byte{1})
		}
	}
	mark()
	start := CPUTime()
	fn()
	cpu := CPUTime() - start
	mark()
	return cpu
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
