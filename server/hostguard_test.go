package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A page whose DNS name an attacker points at 127.0.0.1 reaches a dev
// listener with its own name as Host: refused, so its writes cannot pass
// the API's cross-origin check (Origin against Host). Loopback names pass.
func TestDevListenerRefusesOtherHosts(t *testing.T) {
	addr, _, stop := startDev(t, t.TempDir(), "root")
	defer stop()
	port := addr[strings.LastIndex(addr, ":")+1:]
	for _, tt := range []struct {
		host string
		want int
	}{
		{"evil.example:" + port, http.StatusMisdirectedRequest},
		{"evil.example", http.StatusMisdirectedRequest},
		{"127.0.0.1:" + port, http.StatusOK},
		{"localhost:" + port, http.StatusOK},
		{"LOCALHOST", http.StatusOK},
		{"[::1]:" + port, http.StatusOK},
		{"127.0.0.2:" + port, http.StatusOK},
	} {
		req, _ := http.NewRequest("PUT", addr+"/v1/sys/init", strings.NewReader(`{}`))
		req.Host = tt.host
		req.Header.Set("Origin", "http://"+tt.host)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// A Host the listener answers reaches the API, which says the
		// appliance is initialised already (400).
		got := resp.StatusCode
		if tt.want == http.StatusOK && got != http.StatusMisdirectedRequest {
			got = http.StatusOK
		}
		if got != tt.want {
			t.Errorf("Host %q: %d, want %d", tt.host, resp.StatusCode, tt.want)
		}
	}
}

func TestHostGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	for _, tt := range []struct {
		name          string
		allowed       []string
		loopbackPlain bool
		host          string
		pass          bool
	}{
		{"no rule: TLS or a reachable address", nil, false, "anything.example", true},
		{"loopback plain: name", nil, true, "keyhold.example:8200", false},
		{"loopback plain: ip", nil, true, "127.0.0.1:8200", true},
		{"loopback plain: other ip", nil, true, "192.168.1.5:8200", false},
		{"allowed name, any port", []string{"keyhold.example"}, true, "keyhold.example:8443", true},
		{"allowed name, case", []string{"Keyhold.Example"}, false, "keyhold.example", true},
		{"allowed name:port, other port", []string{"keyhold.example:8443"}, false, "keyhold.example:9000", false},
		{"allowed name:port", []string{"keyhold.example:8443"}, false, "keyhold.example:8443", true},
		{"allowed replaces the loopback rule", []string{"keyhold.example"}, true, "127.0.0.1:8200", false},
		{"allowed ipv6", []string{"[::1]"}, false, "[::1]:8200", true},
		{"not allowed", []string{"keyhold.example"}, false, "evil.example", false},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/v1/sys/health", nil)
		req.Host = tt.host
		hostGuard(ok, tt.allowed, tt.loopbackPlain).ServeHTTP(rec, req)
		if pass := rec.Code == http.StatusOK; pass != tt.pass {
			t.Errorf("%s: Host %q answered %d", tt.name, tt.host, rec.Code)
		}
	}
}

func TestAllowedHostsConfig(t *testing.T) {
	const base = `
hsm { module = "/m.so"
 token_label = "t"
 pin_env = "P" }
storage { path = "/x.db" }
listener { address = "127.0.0.1:0"
 tls_disable = true
 allowed_hosts = [%s] }
`
	cfg, err := ParseConfig(fmt.Sprintf(base, `"keyhold.example", "keyhold.example:8443"`))
	if err != nil {
		t.Fatalf("allowed_hosts: %v", err)
	}
	if got := cfg.Listener.AllowedHosts; len(got) != 2 || got[1] != "keyhold.example:8443" {
		t.Fatalf("allowed_hosts decoded as %q", got)
	}
	if _, err := ParseConfig(fmt.Sprintf(base, `"https://keyhold.example/"`)); err == nil || !strings.Contains(err.Error(), "allowed_hosts") {
		t.Fatalf("a URL in allowed_hosts: %v", err)
	}
}

// The dev folder's secret files are replaced, not rewritten in place: a
// crash leaves the old content or the new, never a truncated file.
func TestWriteSecretReplacesTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "root-token")
	if err := writeSecret(path, "old"); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Link(path, link); err != nil {
		t.Fatal(err)
	}
	if err := writeSecret(path, "new"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(link); string(b) != "old\n" {
		t.Fatalf("the old file was rewritten in place: %q", b)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new file: %q, mode %v", b, fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("files left in the folder: %v", entries)
	}
}
