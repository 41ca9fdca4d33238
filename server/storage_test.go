package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPostgresStorageConfig(t *testing.T) {
	const head = `
hsm { module = "/m.so"
 token_label = "t"
 pin_env = "P" }
listener { tls_disable = true }
`
	tests := []struct {
		name, storage, want string
	}{
		{name: "ok url and password file", storage: `type = "postgres"
 url = "postgres://keyhold@db:5432/kh?sslmode=verify-full"
 password_file = "/etc/keyhold/db-password"
 max_conns = 4`},
		{name: "ok url and password env", storage: `type = "postgres"
 url = "host=db user=keyhold dbname=kh sslmode=verify-full"
 password_env = "KH_DB"`},
		{name: "ok a database on this host without TLS", storage: `type = "postgres"
 url = "postgres://keyhold@127.0.0.1:5432/kh?sslmode=disable"`},
		{name: "ok a Unix socket", storage: `type = "postgres"
 url = "host=/var/run/postgresql user=keyhold dbname=kh"`},
		{name: "ok verify-ca", storage: `type = "postgres"
 url = "postgres://keyhold@db/kh?sslmode=verify-ca"`},
		{name: "fail another host without sslmode (prefer: no check, plaintext fallback)", storage: `type = "postgres"
 url = "postgres://keyhold@db/kh"`, want: "needs sslmode=verify-full"},
		{name: "fail another host with sslmode=require (no certificate check)", storage: `type = "postgres"
 url = "postgres://keyhold@db/kh?sslmode=require"`, want: "needs sslmode=verify-full"},
		{name: "fail another host with sslmode=disable", storage: `type = "postgres"
 url = "host=db user=keyhold sslmode=disable"`, want: "needs sslmode=verify-full"},
		{name: "fail one of several hosts unverified", storage: `type = "postgres"
 url = "postgres://keyhold@127.0.0.1,db/kh?sslmode=disable"`, want: "needs sslmode=verify-full"},
		{name: "fail password in the url", storage: `type = "postgres"
 url = "postgres://keyhold:hunter2-SECRET@db/kh"`, want: "must not hold the password"},
		{name: "fail password query parameter", storage: `type = "postgres"
 url = "postgres://keyhold@db/kh?password=SECRET"`, want: "must not hold the password"},
		{name: "fail password keyword", storage: `type = "postgres"
 url = "host=db password=SECRET"`, want: "must not hold the password"},
		{name: "fail password keyword with spaces", storage: `type = "postgres"
 url = "host=db user=keyhold password = SECRET sslmode=verify-full"`, want: "must not hold the password"},
		{name: "fail password keyword with a space after", storage: `type = "postgres"
 url = "host=db password= SECRET sslmode=verify-full"`, want: "must not hold the password"},
		{name: "fail password keyword with tabs", storage: "type = \"postgres\"\n url = \"host=db\tpassword\t=\tSECRET sslmode=verify-full\"", want: "must not hold the password"},
		{name: "fail password keyword quoted", storage: `type = "postgres"
 url = "host=db password = 'SECRET with spaces' sslmode=verify-full"`, want: "must not hold the password"},
		{name: "fail password keyword first", storage: `type = "postgres"
 url = "password=SECRET host=db sslmode=verify-full"`, want: "must not hold the password"},
		{name: "fail password keyword in capitals", storage: `type = "postgres"
 url = "host=db PASSWORD=SECRET sslmode=verify-full"`, want: "must not hold the password"},
		{name: "fail password query parameter, postgresql scheme", storage: `type = "postgres"
 url = "postgresql://keyhold@db/kh?sslmode=verify-full&password=SECRET"`, want: "must not hold the password"},
		{name: "fail password in the url of a database on this host", storage: `type = "postgres"
 url = "postgres://keyhold:SECRET@127.0.0.1/kh?sslmode=disable"`, want: "must not hold the password"},
		{name: "fail no url", storage: `type = "postgres"`, want: "storage.url is required"},
		{name: "fail path with postgres", storage: `type = "postgres"
 url = "postgres://k@db/kh"
 path = "/x.db"`, want: "storage.path is for type"},
		{name: "fail url with sqlite", storage: `path = "/x.db"
 url = "postgres://k@db/kh"`, want: "are for type"},
		{name: "fail two password sources", storage: `type = "postgres"
 url = "postgres://k@db/kh"
 password_env = "A"
 password_file = "/b"`, want: "at most one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseConfig(head + "storage {\n " + tt.storage + "\n}\n")
			if tt.want == "" {
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				if cfg.Storage.Type != "postgres" {
					t.Fatalf("type %q", cfg.Storage.Type)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

// TestStorageURLPasswordFromEnvironment: a password the driver would take
// from PGPASSWORD is not one in storage.url.
func TestStorageURLPasswordFromEnvironment(t *testing.T) {
	t.Setenv("PGPASSWORD", "from-the-environment")
	for _, u := range []string{"postgres://keyhold@db/kh?sslmode=verify-full", "host=db user=keyhold sslmode=verify-full"} {
		if urlHasPassword(u) {
			t.Errorf("%s: reported as holding a password", u)
		}
	}
	for _, u := range []string{"postgres://keyhold:x@db/kh?sslmode=verify-full", "host=db user=keyhold password = x sslmode=verify-full"} {
		if !urlHasPassword(u) {
			t.Errorf("%s: not reported as holding a password", u)
		}
	}
}

func TestStoragePasswordSources(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "pw")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("s3cret\n"), 0o644)
	t.Setenv("KH_TEST_DB_PW", "from-env")
	tests := []struct {
		name, env, file, want, wantErr string
	}{
		{name: "ok env", env: "KH_TEST_DB_PW", want: "from-env"},
		{name: "ok file without its newline", file: good, want: "s3cret"},
		{name: "fail file readable by others", file: loose, wantErr: "readable by group or others"},
		{name: "fail env unset", env: "KH_TEST_DB_PW_UNSET", wantErr: "is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readSecret("storage.password_env", tt.env, "storage.password_file", tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestForgetMatch(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		id    string
		want  bool
	}{
		{name: "ok xks key under its path", paths: []string{"kv:xks/m1/key/k1"}, id: "xks/m1/key/k1/abc", want: true},
		{name: "ok other xks key", paths: []string{"kv:xks/m1/key/k1"}, id: "xks/m1/key/k10/abc", want: false},
		{name: "ok kmip object", paths: []string{"kmip:m1/s1/u1"}, id: "kmip:m1:u1", want: true},
		{name: "ok other kmip object", paths: []string{"kmip:m1/s1/u1"}, id: "kmip:m1:u2", want: false},
		{name: "ok kmip scope deleted", paths: []string{"kmip:m1/s1/"}, id: "kmip:m1:u9", want: true},
		{name: "ok coarse kv", paths: []string{"kv:xks/"}, id: "xks/m2/key/k/1", want: true},
		{name: "ok everything", paths: nil, id: "anything", want: true},
		{name: "ok a policy is no key", paths: []string{"kv:sys/policy/p"}, id: "kmip:m1:u1", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := forgetMatch(tt.paths)(tt.id); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
