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
