package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyhold/keyhold/softhsm"
)

// A production appliance (-config, PIN from a file) starts uninitialised;
// `keyhold operator init` makes its root token, once.
func TestOperatorInitOnConfiguredServer(t *testing.T) {
	dir := t.TempDir()
	tok, err := softhsm.CreateToken(filepath.Join(dir, "hsm"), "prod", "1234-prod", "5678-prod")
	if err != nil {
		t.Fatal(err)
	}
	pinFile := filepath.Join(dir, "pin")
	os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o600)
	addr := freePort(t)
	cfg := fmt.Sprintf(`
hsm {
  module       = %q
  token_label  = "prod"
  pin_file     = %q
  softhsm_conf = %q
}
storage {
  path = %q
}
listener {
  address     = %q
  tls_disable = true
}
`, tok.Module, pinFile, tok.ConfPath, filepath.Join(dir, "keyhold.db"), addr)
	cfgPath := filepath.Join(dir, "keyhold.hcl")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	srv := keyholdCmd(context.Background(), "server", "-config", cfgPath)
	out, _ := srv.StdoutPipe()
	srv.Stderr = io.Discard
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	started := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Keyhold started") {
				started <- true
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(60 * time.Second):
		t.Fatal("the configured server did not start")
	}
	o := newOperator(t, "http://"+addr, "")
	o.mustFail("keyhold secrets enable keymgmt", "permission denied")
	stdout := o.must("keyhold operator init", `Initial Root Token: khs\.`)
	root := regexp.MustCompile(`Initial Root Token: (\S+)`).FindStringSubmatch(stdout)[1]
	o.mustFail("keyhold operator init", "already initialized")
	ro := newOperator(t, "http://"+addr, root)
	ro.must("keyhold secrets enable keymgmt", "Success! Enabled the keymgmt secrets engine")
	ro.must("keyhold write -f keymgmt/key/k type=aes256-gcm96", "latest_version")
}

// audit verify reports an intact trail, and the line of a changed event.
func TestAuditVerifyCommand(t *testing.T) {
	addr, root, _, _ := devServer(t, t.TempDir())
	o := newOperator(t, addr, root)
	logPath := filepath.Join(t.TempDir(), "audit.log")
	o.must("keyhold write sys/audit/file type=file options=file_path="+logPath, "Success")
	o.must("keyhold secrets enable keymgmt", "Success")
	o.must("keyhold write -f keymgmt/key/k type=ecdsa-p256", "latest_version")
	o.must("keyhold write -f keymgmt/key/k/rotate", "latest_version")
	o.must("keyhold audit verify "+logPath, `OK: \d+ event\(s\), seq 1 to \d+, chain intact`)
	data, _ := os.ReadFile(logPath)
	if strings.Contains(string(data), root) {
		t.Fatal("the root token is in the audit trail")
	}
	lines := strings.Split(string(data), "\n")
	lines[2] = strings.Replace(lines[2], `"operation":"`, `"operation":"x`, 1)
	tampered := filepath.Join(t.TempDir(), "tampered.log")
	os.WriteFile(tampered, []byte(strings.Join(lines, "\n")), 0o600)
	out, _, code := o.sh("keyhold audit verify " + tampered)
	if code != exitError || !strings.Contains(out, "tampered.log:3") || !strings.Contains(out, "was changed") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// A crash of the machine can take from the disk the end of the audit log
// (written, not yet flushed): the next start gives it back from the
// journal. A file rotated (SIGHUP) just before a crash continues the chain.
func TestAuditTrailAfterACrash(t *testing.T) {
	dir := t.TempDir()
	addr, root, cmd, _ := devServer(t, dir, "-dev-root-token-id", "root-crash")
	o := newOperator(t, addr, root)
	logPath := filepath.Join(t.TempDir(), "audit.log")
	o.must("keyhold write sys/audit/file type=file options=file_path="+logPath, "Success")
	o.must("keyhold secrets enable keymgmt", "Success")
	for i := range 4 {
		o.must(fmt.Sprintf("keyhold write -f keymgmt/key/k%d type=aes256-gcm96", i), "latest_version")
	}
	cmd.Process.Kill()
	cmd.Wait()
	whole, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// What the disk kept: the first half of the lines and a piece of the next.
	lines := strings.SplitAfter(string(whole), "\n")
	kept := strings.Join(lines[:len(lines)/2], "") + lines[len(lines)/2][:20]
	os.WriteFile(logPath, []byte(kept), 0o600)

	addr, _, cmd, logs := devServer(t, dir, "-dev-root-token-id", "root-crash")
	o = newOperator(t, addr, root)
	after, _ := os.ReadFile(logPath)
	if !strings.HasPrefix(string(after), string(whole)) {
		t.Fatalf("the log after the restart does not hold every event it had:\n%s", after)
	}
	o.must("keyhold audit verify "+logPath, `chain intact`)

	os.Rename(logPath, logPath+".1")
	cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(logPath); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new log file after SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !strings.Contains(logs.String(), "recovered events from its journal") {
		t.Fatalf("the server did not say what it recovered:\n%s", logs.String())
	}

	addr, _, cmd, _ = devServer(t, dir, "-dev-root-token-id", "root-crash")
	o = newOperator(t, addr, root)
	o.must("keyhold write -f keymgmt/key/k9 type=aes256-gcm96", "latest_version")
	o.must("keyhold audit verify "+logPath+".1 "+logPath, `chain intact`)
}

// A file without events (wiped, or a pipe whose producer failed) is not an
// intact trail; -h prints the command's usage.
func TestAuditVerifyNothing(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runCLI(t, "", "", "", "audit", "verify", empty)
	if code != exitError || !strings.Contains(out, "FAILED: no events") {
		t.Fatalf("an empty trail: exit %d, stdout %s, stderr %s", code, out, stderr)
	}
	if _, stderr, code := runCLI(t, "", "", "", "audit", "verify", "-h"); code != exitOK || !strings.Contains(stderr, "Usage: keyhold audit verify FILE...") {
		t.Fatalf("-h: exit %d, stderr %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "", "", "", "audit", "verify", empty+".missing"); code != exitUsage || !strings.Contains(stderr, "no such file") {
		t.Fatalf("a missing file: exit %d, stderr %s", code, stderr)
	}
}
