package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the keyhold binary: with KEYHOLD_TEST_MAIN=1 it
// runs main, so tests drive the real command line as a separate process.
func TestMain(m *testing.M) {
	if os.Getenv("KEYHOLD_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func keyholdCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "KEYHOLD_TEST_MAIN=1")
	return cmd
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// devServer starts `keyhold server -dev` as a process and returns its address,
// root token and the process.
func devServer(t *testing.T, dir string, extra ...string) (string, string, *exec.Cmd, *strings.Builder) {
	t.Helper()
	addr := freePort(t)
	args := append([]string{"server", "-dev", "-dev-dir", dir, "-dev-listen-address", addr}, extra...)
	cmd := keyholdCmd(context.Background(), args...)
	tok, logs := startDev(t, cmd, regexp.MustCompile(`Root Token:\s+(\S+)`))
	return "http://" + addr, tok, cmd, logs
}

// startDev starts a dev server and returns what re's group matches in its
// banner, once printed, and its logs.
func startDev(t *testing.T, cmd *exec.Cmd, re *regexp.Regexp) (string, *strings.Builder) {
	t.Helper()
	stdout, _ := cmd.StdoutPipe()
	logs := &strings.Builder{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case m := <-found:
		return m, logs
	case <-time.After(60 * time.Second):
		t.Fatalf("dev server did not start; logs:\n%s", logs.String())
	}
	return "", nil
}

func TestServerDevStartsAndStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	addr, root, cmd, logs := devServer(t, dir, "-dev-root-token-id", "root-for-test")
	if root != "root-for-test" {
		t.Fatalf("printed root token %q", root)
	}
	resp, err := http.Get(addr + "/v1/sys/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"token_label":"keyhold-dev"`) {
		t.Fatalf("health %d %s", resp.StatusCode, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit 20 s after SIGTERM")
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Fatalf("logs lack the shutdown:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "root-for-test") {
		t.Fatal("the root token is in the logs")
	}
}

func TestServerFlagErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"fail no mode", []string{"server"}, "exactly one of -dev and -config"},
		{"fail both modes", []string{"server", "-dev", "-config", "x.hcl"}, "exactly one of -dev and -config"},
		{"fail missing config", []string{"server", "-config", "/nonexistent/keyhold.hcl"}, "no such file"},
		{"fail unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"fail unknown log level", []string{"server", "-dev", "-dev-dir", "/nonexistent/dev", "-log-level=verbose"}, `-log-level "verbose" is not one of`},
		// Refused before the folder gets a token and a store.
		{"fail bad dev listen address", []string{"server", "-dev", "-dev-dir", "DEVDIR", "-dev-listen-address", "bogus"}, `-dev-listen-address "bogus" is not HOST:PORT`},
		{"fail bad dev root token", []string{"server", "-dev", "-dev-dir", "DEVDIR", "-dev-root-token-id", " it's "}, "visible ASCII"},
		{"fail dev flags with a config", []string{"server", "-config", "/nonexistent/keyhold.hcl", "-dev-dir", "/tmp/x"}, "only -dev takes -dev-dir"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "dev")
			args := slices.Clone(c.args)
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "DEVDIR", dir)
			}
			out, err := keyholdCmd(context.Background(), args...).CombinedOutput()
			if err == nil {
				t.Fatalf("exit 0; output %s", out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("output %q lacks %q", out, c.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("a refused start made the dev folder %s (%v)", dir, err)
			}
		})
	}
}

// -h prints the usage and is no error.
func TestServerHelpExitsZero(t *testing.T) {
	out, err := keyholdCmd(context.Background(), "server", "-h").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-dev-dir") {
		t.Fatalf("server -h: %v\n%s", err, out)
	}
}

func TestServerWrongPINFailsClearly(t *testing.T) {
	dir := t.TempDir()
	// First start creates the token; then the PIN file is changed.
	_, _, cmd, _ := devServer(t, dir)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if err := os.WriteFile(dir+"/hsm/pin", []byte("wrong-pin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := keyholdCmd(context.Background(), "server", "-dev", "-dev-dir", dir, "-dev-listen-address", freePort(t)).CombinedOutput()
	if err == nil {
		t.Fatal("started with a wrong PIN")
	}
	if !strings.Contains(string(out), "PIN is incorrect") || strings.Contains(string(out), "wrong-pin") {
		t.Fatalf("output: %s", out)
	}
}

// Without -dev-dir the dev server makes a temporary folder, says so, and
// removes it (PINs, root token, keys) when it stops.
func TestServerDevTempFolderGoesWithIt(t *testing.T) {
	tmp := t.TempDir()
	cmd := keyholdCmd(context.Background(), "server", "-dev", "-dev-listen-address", freePort(t))
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	folder, logs := startDev(t, cmd, regexp.MustCompile(`Data folder:\s+(\S+)\s+\(temporary`))
	if !strings.HasPrefix(folder, tmp) {
		t.Fatalf("data folder %s is not under TMPDIR %s", folder, tmp)
	}
	if _, err := os.Stat(filepath.Join(folder, "root-token")); err != nil {
		t.Fatalf("the running server's folder: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logs.String())
	}
	if _, err := os.Stat(folder); !os.IsNotExist(err) {
		t.Fatalf("the temporary folder is still there after the server stopped: %v", err)
	}
}

// A restart of a dev folder with another -dev-root-token-id replaces the
// root token: the old one no longer works.
func TestServerDevNewRootTokenReplacesTheOld(t *testing.T) {
	dir := t.TempDir()
	lookup := func(addr, tok string) int {
		req, _ := http.NewRequest("GET", addr+"/v1/auth/token/lookup-self", nil)
		req.Header.Set("X-Vault-Token", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	stop := func(cmd *exec.Cmd) {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	addr, _, cmd, _ := devServer(t, dir, "-dev-root-token-id", "root-a")
	if st := lookup(addr, "root-a"); st != 200 {
		t.Fatalf("root-a: %d", st)
	}
	stop(cmd)
	addr, _, cmd, _ = devServer(t, dir, "-dev-root-token-id", "root-b")
	defer stop(cmd)
	if st := lookup(addr, "root-b"); st != 200 {
		t.Fatalf("root-b: %d", st)
	}
	if st := lookup(addr, "root-a"); st != 403 {
		t.Fatalf("the replaced root token root-a: %d, want 403", st)
	}

	// A start with a new root token that fails before the old one is
	// revoked (here: the folder's store is held by the running server)
	// leaves the old token recorded, and the next start revokes it.
	out, err := keyholdCmd(context.Background(), "server", "-dev", "-dev-dir", dir, "-dev-listen-address", freePort(t),
		"-dev-root-token-id", "root-c").CombinedOutput()
	if err == nil {
		t.Fatalf("a second server on the folder started:\n%s", out)
	}
	stop(cmd)
	addr, tok, cmd, _ := devServer(t, dir)
	defer stop(cmd)
	if tok != "root-c" {
		t.Fatalf("root token after the failed start: %q, want root-c", tok)
	}
	if st := lookup(addr, "root-c"); st != 200 {
		t.Fatalf("root-c: %d", st)
	}
	if st := lookup(addr, "root-b"); st != 403 {
		t.Fatalf("root-b, replaced by a start that failed: %d, want 403", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "root-token.replaced")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the list of replaced tokens is kept once they are revoked: %v", err)
	}
}
