package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleConfigParses(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("..", "keyhold.example.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HSM.TokenLabel != "keyhold" || cfg.HSM.PINEnv != "KEYHOLD_HSM_PIN" || cfg.HSM.Sessions != 8 ||
		cfg.Storage.Path != "/var/lib/keyhold/keyhold.db" || cfg.Listener.Address != "0.0.0.0:8200" || cfg.Listener.TLSDisable {
		t.Fatalf("example config decoded as %+v %+v %+v", cfg.HSM, cfg.Storage, cfg.Listener)
	}
}

func TestConfigErrors(t *testing.T) {
	const base = `
hsm { module = "/m.so"
 token_label = "t"
 pin_env = "P" }
storage { path = "/x.db" }
listener { address = "127.0.0.1:0"
 tls_disable = true }
`
	cases := []struct{ name, src, want string }{
		{"fail unknown top-level key", base + `lgo_level = "info"`, "unknown setting(s): lgo_level"},
		{"fail unknown nested key", strings.Replace(base, `pin_env = "P"`, `pin_env = "P"
 pin = "1234"`, 1), "unknown setting(s): hsm.pin"},
		{"fail no hsm", `storage { path = "/x" }`, "an hsm block is required"},
		{"fail two pin sources", strings.Replace(base, `pin_env = "P"`, `pin_env = "P"
 pin_file = "/f"`, 1), "exactly one of hsm.pin_env and hsm.pin_file"},
		{"fail tls files missing", strings.Replace(base, "tls_disable = true", "tls_disable = false", 1), "tls_cert_file"},
		{"fail bad storage type", strings.Replace(base, `path = "/x.db"`, `path = "/x.db"
 type = "mysql"`, 1), `storage.type "mysql"`},
		{"fail syntax", "hsm {", "config:"},
		{"fail log level", base + `log_level = "loud"`, `log_level "loud"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig(c.src)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	if _, err := ParseConfig(base); err != nil {
		t.Fatalf("ok base config: %v", err)
	}
}

func TestPINSources(t *testing.T) {
	dir := t.TempDir()
	t.Run("ok env", func(t *testing.T) {
		t.Setenv("KH_TEST_PIN", "1234")
		pin, err := (&HSMConfig{PINEnv: "KH_TEST_PIN"}).PIN()
		if err != nil || pin != "1234" {
			t.Fatalf("%q %v", pin, err)
		}
	})
	t.Run("fail env unset", func(t *testing.T) {
		_, err := (&HSMConfig{PINEnv: "KH_TEST_PIN_UNSET"}).PIN()
		if err == nil || !strings.Contains(err.Error(), "KH_TEST_PIN_UNSET") {
			t.Fatal(err)
		}
	})
	t.Run("ok file", func(t *testing.T) {
		p := filepath.Join(dir, "pin")
		os.WriteFile(p, []byte("5678\n"), 0o600)
		pin, err := (&HSMConfig{PINFile: p}).PIN()
		if err != nil || pin != "5678" {
			t.Fatalf("%q %v", pin, err)
		}
	})
	t.Run("fail file readable by others", func(t *testing.T) {
		p := filepath.Join(dir, "open-pin")
		os.WriteFile(p, []byte("5678\n"), 0o644)
		os.Chmod(p, 0o644)
		_, err := (&HSMConfig{PINFile: p}).PIN()
		if err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "5678") {
			t.Fatalf("got %v", err)
		}
	})
}

// A dev root token has the form of every other token, and is kept across
// restarts of the dev appliance.
func TestDevRootToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root-token")
	tok, err := devRootToken(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "khs.") || len(tok) != len("khs.")+32 {
		t.Fatalf("dev root token %q, want khs. and 192 bits", tok)
	}
	again, err := devRootToken(path, "")
	if err != nil || again != tok {
		t.Fatalf("the second start got %q (%v), want the kept %q", again, err, tok)
	}
}
