package server

import (
	"strings"
	"testing"
	"time"
)

func TestKeyMgmtOptions(t *testing.T) {
	const base = `
hsm { module = "/m.so"
 token_label = "t"
 pin_env = "P" }
storage { path = "/x.db" }
listener { tls_disable = true }
`
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "KEYHOLD_CLIENT_TIMEOUT" {
				return v
			}
			return ""
		}
	}
	for _, c := range []struct {
		name, src, env string
		want           time.Duration
		forbid         bool
	}{
		{"ok default", base, "", 0, false},
		{"ok env seconds", base, "45", 45 * time.Second, false},
		{"ok env duration", base, "2m", 2 * time.Minute, false},
		{"ok config wins", base + `keymgmt { client_timeout = "5s"
 forbid_software_oaep = true }`, "45", 5 * time.Second, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfig(c.src)
			if err != nil {
				t.Fatal(err)
			}
			o, err := cfg.KeyMgmtOptions(env(c.env))
			if err != nil || o.ClientTimeout != c.want || o.ForbidSoftwareOAEP != c.forbid {
				t.Fatalf("%+v %v", o, err)
			}
		})
	}
	t.Run("fail bad env", func(t *testing.T) {
		cfg, _ := ParseConfig(base)
		if _, err := cfg.KeyMgmtOptions(env("soon")); err == nil || !strings.Contains(err.Error(), "soon") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("fail bad config", func(t *testing.T) {
		if _, err := ParseConfig(base + `keymgmt { client_timeout = "-1s" }`); err == nil || !strings.Contains(err.Error(), "client_timeout") {
			t.Fatalf("got %v", err)
		}
	})
}
