package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// operator runs keyhold command lines as an operator types them: through
// sh, with the test binary on PATH as "keyhold", so the seed workflow's
// lines run verbatim (the shell strips the quotes of type="rsa-2048").
type operator struct {
	t   *testing.T
	bin string // the keyhold symlink
	env []string
}

func newOperator(t *testing.T, addr, token string) *operator {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "keyhold")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYHOLD_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "KEYHOLD_TEST_MAIN=1", "KEYHOLD_ADDR="+addr)
	if token != "" {
		env = append(env, "KEYHOLD_TOKEN="+token)
	}
	return &operator{t: t, bin: bin, env: env}
}

// sh runs one shell line.
func (o *operator) sh(line string) (string, string, int) {
	return o.exec("sh", "-c", line)
}

// argv runs keyhold with exactly these arguments, no shell.
func (o *operator) argv(args ...string) (string, string, int) {
	return o.exec(o.bin, args...)
}

func (o *operator) exec(name string, args ...string) (string, string, int) {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env = o.env
	var out, errw bytes.Buffer
	c.Stdout, c.Stderr = &out, &errw
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errw.String(), 0
	case errors.As(err, &ee):
		return out.String(), errw.String(), ee.ExitCode()
	}
	o.t.Fatalf("%s %v: %v", name, args, err)
	return "", "", -1
}

// must runs a shell line that must succeed and print want (a regexp).
func (o *operator) must(line, want string) string {
	o.t.Helper()
	out, errw, code := o.sh(line)
	if code != 0 {
		o.t.Fatalf("%s: exit %d\nstdout %s\nstderr %s", line, code, out, errw)
	}
	if !regexp.MustCompile(want).MatchString(out) {
		o.t.Fatalf("%s: output\n%s\ndoes not match %q", line, out, want)
	}
	return out
}

// mustFail runs a shell line that must exit 1 and print want on stderr.
func (o *operator) mustFail(line string, want ...string) {
	o.t.Helper()
	out, errw, code := o.sh(line)
	if code != exitError {
		o.t.Fatalf("%s: exit %d, want %d\nstdout %s\nstderr %s", line, code, exitError, out, errw)
	}
	for _, w := range want {
		if !strings.Contains(errw, w) {
			o.t.Fatalf("%s: stderr\n%s\nlacks %q", line, errw, w)
		}
	}
}

// The key part of DESIGN.md's seed workflow, verbatim with keyhold in place
// of vault, against a running dev appliance.
func TestSeedWorkflowKeys(t *testing.T) {
	addr, root, _, _ := devServer(t, t.TempDir())
	op := newOperator(t, addr, root)

	op.must(`keyhold status`, `HSM Token Label\s+keyhold-dev\n`)
	op.must(`keyhold secrets enable keymgmt`, `^Success! Enabled the keymgmt secrets engine at: keymgmt/\n$`)
	op.must(`keyhold write -f keymgmt/key/example-key type="rsa-2048"`, `(?m)^type\s+rsa-2048$`)
	op.must(`keyhold write -f keymgmt/key/example-key/rotate`, `(?m)^latest_version\s+2$`)
	op.must(`keyhold write keymgmt/key/example-key min_enabled_version=2`, `(?m)^min_enabled_version\s+2$`)
	op.must(`keyhold read keymgmt/key/example-key`, `(?m)^Key\s+Value\n---\s+-----\ndeletion_allowed\s+false\nlatest_version\s+2\nmin_enabled_version\s+2\nname\s+example-key\ntype\s+rsa-2048\nversions\s+map\[1:map\[`)

	out := op.must(`keyhold read -format=json keymgmt/key/example-key`, `"data"`)
	var r struct {
		Data struct {
			Type              string `json:"type"`
			LatestVersion     int    `json:"latest_version"`
			MinEnabledVersion int    `json:"min_enabled_version"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("read -format=json: %v\n%s", err, out)
	}
	if r.Data.Type != "rsa-2048" || r.Data.LatestVersion != 2 || r.Data.MinEnabledVersion != 2 {
		t.Fatalf("read -format=json: %+v", r.Data)
	}
	op.must(`keyhold read -field=latest_version keymgmt/key/example-key`, `^2\n$`)

	op.must(`keyhold list keymgmt/key`, `^Keys\n----\nexample-key\n$`)
	op.must(`keyhold secrets list`, `(?m)^keymgmt/\s+keymgmt\s+keymgmt_\w+\s+n/a$`)

	// Deletion needs deletion_allowed, and the server says so.
	op.mustFail(`keyhold delete keymgmt/key/example-key`, "Error deleting keymgmt/key/example-key: Code: 400.", "set deletion_allowed=true first")
	op.must(`keyhold write keymgmt/key/example-key deletion_allowed=true`, `(?m)^deletion_allowed\s+true$`)
	op.must(`keyhold delete keymgmt/key/example-key`, `^Success! Data deleted \(if it existed\) at: keymgmt/key/example-key\n$`)
	op.mustFail(`keyhold read keymgmt/key/example-key`,
		"Error reading keymgmt/key/example-key: Code: 404. Errors:\n\n* no key named \"example-key\"")

	op.must(`keyhold secrets disable keymgmt`, `^Success! Disabled the secrets engine \(if it existed\) at: keymgmt/\n$`)
}

func TestCLIErrors(t *testing.T) {
	addr, root, _, _ := devServer(t, t.TempDir())
	op := newOperator(t, addr, root)
	op.must(`keyhold secrets enable keymgmt`, `Success!`)

	t.Run("fail no token", func(t *testing.T) {
		anon := newOperator(t, addr, "")
		anon.mustFail(`keyhold write -f keymgmt/key/k type=rsa-2048`, "Error writing keymgmt/key/k: Code: 403.", "permission denied")
		anon.mustFail(`keyhold list keymgmt/key`, "permission denied")
		anon.must(`keyhold status`, `Initialized\s+true`) // health needs no token
	})
	t.Run("fail wrong token", func(t *testing.T) {
		newOperator(t, addr, "not-a-token").mustFail(`keyhold read keymgmt/key/k`, "Code: 403.", "permission denied")
	})
	t.Run("fail unknown key type", func(t *testing.T) {
		op.mustFail(`keyhold write -f keymgmt/key/k type=dsa-1024`, `Code: 400. Errors:`, `* unknown key type "dsa-1024": use one of`)
	})
	t.Run("fail quotes a shell would have stripped", func(t *testing.T) {
		// type="rsa-2048" as one argv element keeps its quotes: the CLI does
		// not second-guess the shell, and the server refuses the type.
		_, errw, code := op.argv("write", "-f", "keymgmt/key/k", `type="rsa-2048"`)
		if code != exitError || !strings.Contains(errw, `unknown key type "\"rsa-2048\""`) {
			t.Fatalf("exit %d, stderr %s", code, errw)
		}
	})
	t.Run("fail write without data", func(t *testing.T) {
		_, errw, code := op.sh(`keyhold write keymgmt/key/k`)
		if code != exitUsage || !strings.Contains(errw, "must supply data or use -force") {
			t.Fatalf("exit %d, stderr %s", code, errw)
		}
	})
	t.Run("fail unknown mount type", func(t *testing.T) {
		op.mustFail(`keyhold secrets enable kv`, `Error enabling kv at kv/: Code: 400.`, `unknown mount type "kv"`)
	})
	t.Run("fail server down", func(t *testing.T) {
		down := newOperator(t, "http://"+freePort(t), root)
		down.mustFail(`keyhold read keymgmt/key/k`, "Error reading keymgmt/key/k: cannot reach Keyhold at http://127.0.0.1:", "connection refused")
		_, errw, code := down.sh(`keyhold status`)
		if code != exitError || !strings.Contains(errw, "connection refused") {
			t.Fatalf("status of a server that is down: exit %d, stderr %s", code, errw)
		}
	})
}
