package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/softhsm"
)

// nodeConfig writes a node's configuration for a token of the shared
// SoftHSM2 folder.
func nodeConfig(t *testing.T, dir string, tok *softhsm.Token, extra string) string {
	t.Helper()
	pin := filepath.Join(dir, tok.Label+".pin")
	if err := os.WriteFile(pin, []byte(tok.PIN), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, tok.Label+".hcl")
	hcl := fmt.Sprintf(`hsm {
  module       = %q
  token_label  = %q
  pin_file     = %q
  softhsm_conf = %q
%s}
storage { path = %q }
listener { tls_disable = true }
`, tok.Module, tok.Label, pin, tok.ConfPath, extra, filepath.Join(dir, tok.Label+".db"))
	if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The KEK ceremony through the command line, each step its own process:
// the receiving token ends up with the sending token's KEKs (it opens a
// blob the sender made) and neither the transport key nor the trusted key
// stays behind.
func TestKEKCeremonyCommands(t *testing.T) {
	dir := t.TempDir()
	hsmDir := filepath.Join(dir, "hsm")
	var toks []*softhsm.Token
	for _, label := range []string{"node-a", "node-b"} {
		pin, _ := softhsm.RandomPIN()
		so, _ := softhsm.RandomPIN()
		tok, err := softhsm.CreateToken(hsmDir, label, pin, so)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	a, b := toks[0], toks[1]
	t.Setenv(softhsm.ConfEnv, a.ConfPath)
	cfgA := nodeConfig(t, dir, a, "")
	cfgB := nodeConfig(t, dir, b, "  join_cluster = true\n")
	soPIN := filepath.Join(dir, "so-pin")
	if err := os.WriteFile(soPIN, []byte(a.SOPIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Node A's token has a KEK and a blob under it.
	ctx := context.Background()
	var blob []byte
	func() {
		h, err := hsm.Open(ctx, hsm.Config{Module: a.Module, TokenLabel: a.Label, PIN: a.PIN})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if blob, err = h.Generate(ctx, hsm.GenerateRequest{ID: "made-on-a", Type: hsm.AES256}); err != nil {
			t.Fatal(err)
		}
	}()

	run := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := keyholdCmd(ctx, args...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if err != nil {
			code = cmd.ProcessState.ExitCode()
		}
		return out.String(), errb.String(), code
	}
	transport := filepath.Join(dir, "transport.pem")
	bundle := filepath.Join(dir, "keks.json")

	if _, stderr, code := run("operator", "kek-export", "-config", cfgA, "-transport-key", transport, "-out", bundle); code != exitUsage || !strings.Contains(stderr, "give exactly one of -so-pin-file and -so-pin-env") {
		t.Fatalf("kek-export without an SO PIN source: exit %d %s", code, stderr)
	}
	// A usage error names what is wrong; -h is not an error.
	if _, stderr, code := run("operator", "kek-import", "-config", cfgB); code != exitUsage || !strings.Contains(stderr, "-in is required") {
		t.Fatalf("kek-import without -in: exit %d %s", code, stderr)
	}
	if _, stderr, code := run("operator", "kek-transport-key", "-h"); code != exitOK || !strings.Contains(stderr, "Usage: keyhold operator kek-transport-key") {
		t.Fatalf("kek-transport-key -h: exit %d %s", code, stderr)
	}
	out, stderr, code := run("operator", "kek-transport-key", "-config", cfgB, "-out", transport)
	if code != 0 || !strings.Contains(out, "Fingerprint (SHA-256):") {
		t.Fatalf("kek-transport-key: %d %s %s", code, out, stderr)
	}
	if out, stderr, code = run("operator", "kek-export", "-config", cfgA, "-transport-key", transport, "-so-pin-file", soPIN, "-out", bundle); code != 0 {
		t.Fatalf("kek-export: %d %s %s", code, out, stderr)
	}
	raw, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{a.PIN, a.SOPIN} {
		if strings.Contains(string(raw), secret) || strings.Contains(out+stderr, secret) {
			t.Fatal("a PIN is in the bundle or the output")
		}
	}
	var bb hsm.KEKBundle
	if err := json.Unmarshal(raw, &bb); err != nil || bb.Current != 1 {
		t.Fatalf("bundle: %v %+v", err, bb)
	}
	if out, stderr, code = run("operator", "kek-import", "-config", cfgB, "-in", bundle); code != 0 {
		t.Fatalf("kek-import: %d %s %s", code, out, stderr)
	}
	if _, stderr, code = run("operator", "kek-import", "-config", cfgB, "-in", bundle); code != exitError || !strings.Contains(stderr, "no transport key") {
		t.Fatalf("a second import without a new transport key: %d %s", code, stderr)
	}

	// Node B's token opens A's blob; A's token kept no trusted key.
	h, err := hsm.Open(ctx, hsm.Config{Module: b.Module, TokenLabel: b.Label, PIN: b.PIN, NoCreateKEK: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Inspect(ctx, hsm.Key{ID: "made-on-a", Blob: blob}); err != nil {
		t.Fatalf("node B opens node A's blob: %v", err)
	}
	h.Close()
	// The trusted key is gone from A: an export needs the SO again.
	h, err = hsm.Open(ctx, hsm.Config{Module: a.Module, TokenLabel: a.Label, PIN: a.PIN})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.ExportKEKs(ctx, nil); hsm.KindOf(err) != hsm.KindBadInput {
		t.Fatalf("export without a transport key: %v", err)
	}
	pemText, _ := os.ReadFile(transport)
	pub, err := hsm.ParseTransportKey(pemText)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.ExportKEKs(ctx, pub)
	h.Close()
	if hsm.KindOf(err) != hsm.KindNotFound {
		t.Fatalf("export after the ceremony without the SO: %v", err)
	}
}
