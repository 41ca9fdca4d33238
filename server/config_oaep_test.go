package server

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTokenOnlyOAEP: the hsm block's token_only_oaep reaches the HSM's
// configuration.
func TestTokenOnlyOAEP(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       bool
	}{{"ok default", "", false}, {"ok set", "token_only_oaep = true", true}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.hcl")
			src := "hsm {\n module = \"/m.so\"\n token_label = \"t\"\n pin_env = \"KEYHOLD_TEST_OAEP_PIN\"\n " + tc.line + "\n}\nstorage { path = \"/x.db\" }\nlistener {\n address = \"127.0.0.1:0\"\n tls_disable = true\n}\n"
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("KEYHOLD_TEST_OAEP_PIN", "1234")
			cfg, err := LoadConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			hc, err := cfg.HSMOptions()
			if err != nil || hc.TokenOnlyOAEP != tc.want {
				t.Fatalf("TokenOnlyOAEP %v (%v), want %v", hc.TokenOnlyOAEP, err, tc.want)
			}
		})
	}
}
