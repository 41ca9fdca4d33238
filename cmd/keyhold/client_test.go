package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// fakeAPI answers canned responses by "METHOD /v1/path" (a GET with
// ?list=true is "LIST ...") and records the requests, so the commands'
// requests and output can be checked without an appliance.
type fakeAPI struct {
	mu      sync.Mutex
	answers map[string]fakeAnswer
	got     []fakeRequest
}

type fakeAnswer struct {
	status int
	body   string
}

type fakeRequest struct {
	route string
	query string
	token string
	body  map[string]any
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	q := r.URL.Query()
	if method == http.MethodGet && q.Get("list") == "true" {
		method = "LIST"
		q.Del("list")
	}
	route := method + " " + r.URL.Path
	var body map[string]any
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, "bad JSON", 400)
			return
		}
	}
	f.mu.Lock()
	f.got = append(f.got, fakeRequest{route: route, query: q.Encode(), token: r.Header.Get("X-Vault-Token"), body: body})
	a, ok := f.answers[route]
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(404)
		io.WriteString(w, `{"errors":["no handler for route"]}`)
		return
	}
	if a.status == 0 {
		a.status = 200
	}
	if a.status == 204 {
		w.WriteHeader(204)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

// runCLI runs the command line in-process against addr.
func runCLI(t *testing.T, addr, token, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errw strings.Builder
	e := &env{ctx: context.Background(), stdin: strings.NewReader(stdin), stdout: &out, stderr: &errw,
		getenv: func(k string) string {
			switch k {
			case "KEYHOLD_ADDR":
				return addr
			case "KEYHOLD_TOKEN":
				return token
			}
			return ""
		}}
	code := run(args, e)
	return out.String(), errw.String(), code
}

func TestCommandsAgainstFake(t *testing.T) {
	dir := t.TempDir()
	policyFile := filepath.Join(dir, "ops.hcl")
	os.WriteFile(policyFile, []byte(`path "keymgmt/*" { capabilities = ["read"] }`+"\n"), 0o600)
	tokenAuth := `{"auth":{"client_token":"hvs.new","accessor":"acc1","policies":["default","ops"],
		"token_policies":["default","ops"],"lease_duration":3600,"renewable":true}}`
	lookup := `{"data":{"accessor":"acc1","policies":["default","ops"],"ttl":3599,"display_name":"token-ci","num_uses":3}}`

	cases := []struct {
		name    string
		args    []string
		stdin   string
		answers map[string]fakeAnswer
		route   string         // the last request's route
		query   string         // its query
		body    map[string]any // its body
		stdout  string
		stderr  string
		code    int
		token   string // "-": none sent (default tok-1)
	}{
		{name: "ok token create", args: []string{"token", "create", "-policy=ops", "-policy=default", "-ttl=1h", "-use-limit=3", "-display-name=ci"},
			answers: map[string]fakeAnswer{"POST /v1/auth/token/create": {body: tokenAuth}},
			route:   "POST /v1/auth/token/create",
			body:    map[string]any{"policies": []any{"ops", "default"}, "ttl": "1h", "num_uses": float64(3), "display_name": "ci"},
			stdout:  "token                hvs.new\ntoken_accessor       acc1\ntoken_duration       1h\ntoken_renewable      true\ntoken_policies       [\"default\" \"ops\"]\n"},
		// Days, as the server (and Vault) takes them.
		{name: "ok token create ttl in days", args: []string{"token", "create", "-ttl=7d", "-field=token"},
			answers: map[string]fakeAnswer{"POST /v1/auth/token/create": {body: tokenAuth}},
			route:   "POST /v1/auth/token/create", body: map[string]any{"ttl": "7d"}, stdout: "hvs.new"},
		{name: "ok token create sends only what is set", args: []string{"token", "create", "-orphan", "-renewable=false", "-metadata=team=x"},
			answers: map[string]fakeAnswer{"POST /v1/auth/token/create-orphan": {body: tokenAuth}},
			route:   "POST /v1/auth/token/create-orphan",
			body:    map[string]any{"renewable": false, "meta": map[string]any{"team": "x"}},
			stdout:  "token "},
		{name: "ok token create -field", args: []string{"token", "create", "-field=token"},
			answers: map[string]fakeAnswer{"POST /v1/auth/token/create": {body: tokenAuth}},
			route:   "POST /v1/auth/token/create", body: map[string]any{}, stdout: "hvs.new\n"},
		{name: "ok token lookup self", args: []string{"token", "lookup"},
			answers: map[string]fakeAnswer{"GET /v1/auth/token/lookup-self": {body: lookup}},
			route:   "GET /v1/auth/token/lookup-self", stdout: "display_name    token-ci\nnum_uses        3\n"},
		{name: "ok token lookup other", args: []string{"token", "lookup", "hvs.other"},
			answers: map[string]fakeAnswer{"POST /v1/auth/token/lookup": {body: lookup}},
			route:   "POST /v1/auth/token/lookup", body: map[string]any{"token": "hvs.other"}, stdout: "accessor        acc1\n"},
		{name: "ok token lookup accessor json", args: []string{"token", "lookup", "-format=json", "-accessor", "acc1"},
			answers: map[string]fakeAnswer{"POST /v1/auth/token/lookup-accessor": {body: lookup}},
			route:   "POST /v1/auth/token/lookup-accessor", body: map[string]any{"accessor": "acc1"}, stdout: `"display_name": "token-ci"`},
		{name: "ok token revoke", args: []string{"token", "revoke", "hvs.other"},
			answers: map[string]fakeAnswer{"POST /v1/auth/token/revoke": {status: 204}},
			route:   "POST /v1/auth/token/revoke", body: map[string]any{"token": "hvs.other"}, stdout: "Success! Revoked token (if it existed)\n"},
		{name: "ok token revoke self", args: []string{"token", "revoke", "-self"},
			answers: map[string]fakeAnswer{"POST /v1/auth/token/revoke-self": {status: 204}},
			route:   "POST /v1/auth/token/revoke-self", stdout: "Success! Revoked token"},
		{name: "ok token revoke accessor after --", args: []string{"token", "revoke", "-accessor", "--", "-acc1"},
			answers: map[string]fakeAnswer{"POST /v1/auth/token/revoke-accessor": {status: 204}},
			route:   "POST /v1/auth/token/revoke-accessor", body: map[string]any{"accessor": "-acc1"}, stdout: "Success! Revoked token"},
		{name: "ok policy write from file", args: []string{"policy", "write", "ops", policyFile},
			answers: map[string]fakeAnswer{"PUT /v1/sys/policies/acl/ops": {status: 204}},
			route:   "PUT /v1/sys/policies/acl/ops", body: map[string]any{"policy": `path "keymgmt/*" { capabilities = ["read"] }` + "\n"},
			stdout: "Success! Uploaded policy: ops\n"},
		{name: "ok policy write from stdin", args: []string{"policy", "write", "ops", "-"}, stdin: `path "a" {}`,
			answers: map[string]fakeAnswer{"PUT /v1/sys/policies/acl/ops": {status: 204}},
			route:   "PUT /v1/sys/policies/acl/ops", body: map[string]any{"policy": `path "a" {}`}, stdout: "Success! Uploaded policy: ops\n"},
		// The name the server keeps: lowercased, as Vault prints it.
		{name: "ok policy write names the stored policy", args: []string{"policy", "write", "Ops", "-"}, stdin: `path "a" {}`,
			answers: map[string]fakeAnswer{"PUT /v1/sys/policies/acl/Ops": {status: 204}},
			route:   "PUT /v1/sys/policies/acl/Ops", body: map[string]any{"policy": `path "a" {}`}, stdout: "Success! Uploaded policy: ops\n"},
		{name: "ok policy read prints the rules", args: []string{"policy", "read", "ops"},
			answers: map[string]fakeAnswer{"GET /v1/sys/policies/acl/ops": {body: `{"data":{"name":"ops","policy":"path \"a\" {}"}}`}},
			route:   "GET /v1/sys/policies/acl/ops", stdout: "path \"a\" {}\n"},
		{name: "ok policy list", args: []string{"policy", "list"},
			answers: map[string]fakeAnswer{"LIST /v1/sys/policies/acl": {body: `{"data":{"keys":["default","ops","root"]}}`}},
			route:   "LIST /v1/sys/policies/acl", stdout: "default\nops\nroot\n"},
		{name: "ok policy delete", args: []string{"policy", "delete", "ops"},
			answers: map[string]fakeAnswer{"DELETE /v1/sys/policies/acl/ops": {status: 204}},
			route:   "DELETE /v1/sys/policies/acl/ops", stdout: "Success! Deleted policy: ops\n"},
		{name: "ok secrets enable at a path", args: []string{"secrets", "enable", "-path=finance/", "-description=Finance", "kmip"},
			answers: map[string]fakeAnswer{"POST /v1/sys/mounts/finance": {status: 204}},
			route:   "POST /v1/sys/mounts/finance", body: map[string]any{"type": "kmip", "description": "Finance"},
			stdout: "Success! Enabled the kmip secrets engine at: finance/\n"},
		{name: "ok secrets disable -force", args: []string{"secrets", "disable", "-force", "keymgmt/"},
			answers: map[string]fakeAnswer{"DELETE /v1/sys/mounts/keymgmt": {status: 204}},
			route:   "DELETE /v1/sys/mounts/keymgmt", query: "force=true",
			stdout: "Success! Disabled the secrets engine (if it existed) at: keymgmt/\n"},
		// The server's 409 names its API parameter; the CLI says its flag.
		{name: "fail secrets disable of a mount holding keys", args: []string{"secrets", "disable", "keymgmt/"},
			answers: map[string]fakeAnswer{"DELETE /v1/sys/mounts/keymgmt": {status: 409,
				body: `{"errors":["the mount at keymgmt/ still holds 1 key(s); disable it with force=true to destroy them"]}`}},
			route:  "DELETE /v1/sys/mounts/keymgmt",
			stderr: "force=true to destroy them\n\nWith this command: keyhold secrets disable -force keymgmt\n", code: 1},
		{name: "ok secrets list", args: []string{"secrets", "list"},
			answers: map[string]fakeAnswer{"GET /v1/sys/mounts": {body: `{"data":{"keymgmt/":{"type":"keymgmt","accessor":"keymgmt_1","description":""},"kmip/":{"type":"kmip","accessor":"kmip_2","description":"KMIP"}}}`}},
			route:   "GET /v1/sys/mounts",
			stdout:  "Path        Type       Accessor     Description\n----        ----       --------     -----------\nkeymgmt/    keymgmt    keymgmt_1    n/a\nkmip/       kmip       kmip_2       KMIP\n"},
		{name: "ok write sends strings and maps", args: []string{"write", "keymgmt/kms/example-kms", "provider=azurekeyvault",
			"key_collection=keyvault-name", "credentials=client_id=id", "credentials=client_secret=sec", "credentials=tenant_id=ten"},
			answers: map[string]fakeAnswer{"PUT /v1/keymgmt/kms/example-kms": {status: 204}},
			route:   "PUT /v1/keymgmt/kms/example-kms",
			body: map[string]any{"provider": "azurekeyvault", "key_collection": "keyvault-name",
				"credentials": map[string]any{"client_id": "id", "client_secret": "sec", "tenant_id": "ten"}},
			stdout: "Success! Data written to: keymgmt/kms/example-kms\n"},
		{name: "ok read with query", args: []string{"read", "-format=json", "keymgmt/key/k", "version=2"},
			answers: map[string]fakeAnswer{"GET /v1/keymgmt/key/k": {body: `{"data":{"name":"k"}}`}},
			route:   "GET /v1/keymgmt/key/k", query: "version=2", stdout: `"name": "k"`},
		{name: "ok read top-level fields json", args: []string{"read", "-format=json", "sys/init"},
			answers: map[string]fakeAnswer{"GET /v1/sys/init": {body: `{"initialized":true}`}},
			route:   "GET /v1/sys/init", stdout: `"initialized": true`},
		{name: "ok read top-level fields table", args: []string{"read", "sys/init"},
			answers: map[string]fakeAnswer{"GET /v1/sys/init": {body: `{"initialized":true}`}},
			route:   "GET /v1/sys/init", stdout: "initialized    true\n"},
		{name: "fail read envelope only", args: []string{"read", "a/b"},
			answers: map[string]fakeAnswer{"GET /v1/a/b": {body: `{"request_id":"r","data":null,"warnings":null}`}},
			route:   "GET /v1/a/b", stderr: "No value found at a/b\n", code: 1},
		{name: "fail without a token: the hint", args: []string{"read", "a/b"}, token: "-",
			answers: map[string]fakeAnswer{"GET /v1/a/b": {status: 403, body: `{"errors":["permission denied: no token"]}`}},
			route:   "GET /v1/a/b", stderr: "* no token was sent: set KEYHOLD_TOKEN", code: 1},
		{name: "fail read a non-JSON answer", args: []string{"read", "sys/metrics"},
			answers: map[string]fakeAnswer{"GET /v1/sys/metrics": {body: "# HELP x\nx 1\n"}},
			route:   "GET /v1/sys/metrics", stderr: "not JSON: the CLI reads JSON paths; fetch others, such as sys/metrics, with curl", code: 1},
		{name: "fail read a JSON array", args: []string{"read", "a/b"},
			answers: map[string]fakeAnswer{"GET /v1/a/b": {body: `[1,2]`}},
			route:   "GET /v1/a/b", stderr: "is a JSON array, not the object", code: 1},
		{name: "fail status not keyhold", args: []string{"status"},
			answers: map[string]fakeAnswer{"GET /v1/sys/health": {body: `{"status":"ok"}`}},
			route:   "GET /v1/sys/health", stderr: "Error checking status: the answer is not a Keyhold health report\n", code: 1},
		{name: "ok status healthy", args: []string{"status"},
			answers: map[string]fakeAnswer{"GET /v1/sys/health": {body: `{"initialized":true,"sealed":false,"version":"9.9","hsm":{"token_label":"lbl","model":"SoftHSM v2","kek_version":3,"capabilities":{"oaep_hashes":["SHA-1"]}}}`}},
			route:   "GET /v1/sys/health", stdout: "HSM Token Label      lbl\nHSM Manufacturer     n/a\nHSM Model            SoftHSM v2\n"},

		{name: "fail status unhealthy", args: []string{"status"},
			answers: map[string]fakeAnswer{"GET /v1/sys/health": {status: 503, body: `{"initialized":true,"version":"9.9","problems":["hsm: unavailable"]}`}},
			route:   "GET /v1/sys/health", stdout: "Problems             hsm: unavailable\n", code: 2},
		{name: "fail a pair refused: the hint", args: []string{"write", "sys/audit-hash/file", "input=user=alice"},
			answers: map[string]fakeAnswer{"PUT /v1/sys/audit-hash/file": {status: 400, body: `{"errors":["field \"input\": want a string"]}`}},
			route:   "PUT /v1/sys/audit-hash/file", body: map[string]any{"input": map[string]any{"user": "alice"}},
			stderr: "Note: input=NAME=VALUE sent an object", code: 1},
		{name: "ok read pair-like query value", args: []string{"read", "sys/audit-log/file", "principal=a=b"},
			answers: map[string]fakeAnswer{"GET /v1/sys/audit-log/file": {body: `{"data":{"events":[]}}`}},
			route:   "GET /v1/sys/audit-log/file", query: "principal=a%3Db", stdout: "events"},
		{name: "fail server message and status", args: []string{"write", "-f", "keymgmt/key/k", "type=dsa"},
			answers: map[string]fakeAnswer{"PUT /v1/keymgmt/key/k": {status: 400, body: `{"errors":["unknown key type \"dsa\""]}`}},
			route:   "PUT /v1/keymgmt/key/k", body: map[string]any{"type": "dsa"},
			stderr: "Error writing keymgmt/key/k: Code: 400. Errors:\n\n* unknown key type \"dsa\"\n", code: 1},
		{name: "fail token endpoint missing", args: []string{"token", "lookup"},
			route: "GET /v1/auth/token/lookup-self", stderr: "Error looking up token: Code: 404. Errors:\n\n* no handler for route\n", code: 1},
		{name: "fail not JSON", args: []string{"read", "a/b"},
			answers: map[string]fakeAnswer{"GET /v1/a/b": {status: 502, body: "<html>bad gateway</html>"}},
			route:   "GET /v1/a/b", stderr: "Code: 502. Errors:\n\n* Bad Gateway: <html>bad gateway</html>", code: 1},
		{name: "fail list empty", args: []string{"list", "keymgmt/key"},
			answers: map[string]fakeAnswer{"LIST /v1/keymgmt/key": {status: 204}},
			route:   "LIST /v1/keymgmt/key", stderr: "No value found at keymgmt/key/", code: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeAPI{answers: c.answers}
			ts := httptest.NewServer(f)
			defer ts.Close()
			tok := "tok-1"
			if c.token == "-" {
				tok = ""
			}
			stdout, stderr, code := runCLI(t, ts.URL, tok, c.stdin, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, c.code, stdout, stderr)
			}
			if !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
				t.Fatalf("stdout\n%s\nstderr\n%s\nwant stdout %q, stderr %q", stdout, stderr, c.stdout, c.stderr)
			}
			if len(f.got) != 1 {
				t.Fatalf("%d requests, want 1: %v", len(f.got), f.got)
			}
			r := f.got[0]
			if r.route != c.route || r.query != c.query || r.token != tok {
				t.Fatalf("request %s ?%s token %q, want %s ?%s", r.route, r.query, r.token, c.route, c.query)
			}
			if c.body != nil && !reflect.DeepEqual(r.body, c.body) {
				t.Fatalf("body %v, want %v", r.body, c.body)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"fail write without data", []string{"write", "keymgmt/key/k"}, "must supply data or use -force"},
		{"fail write without path", []string{"write"}, "not enough arguments"},
		{"fail flag after the path", []string{"write", "keymgmt/key/k", "-f"}, "flag -f after the arguments"},
		{"fail bad pair", []string{"write", "keymgmt/key/k", "rsa-2048"}, `invalid key/value pair "rsa-2048"`},
		{"fail bad format", []string{"read", "-format=yaml", "a"}, `invalid format "yaml"`},
		{"fail unknown flag", []string{"read", "-nope", "a"}, "flag provided but not defined: -nope"},
		{"fail read two paths", []string{"list", "a", "b"}, "too many arguments"},
		{"fail secrets without subcommand", []string{"secrets"}, "Usage: keyhold secrets"},
		{"fail unknown subcommand", []string{"token", "renew"}, `unknown subcommand "renew"`},
		{"fail revoke nothing", []string{"token", "revoke"}, "give a TOKEN, -accessor ACCESSOR or -self"},
		{"fail revoke self and token", []string{"token", "revoke", "-self", "t"}, "-self takes no argument"},
		{"fail lookup accessor without one", []string{"token", "lookup", "-accessor"}, "-accessor needs an ACCESSOR"},
		{"fail policy write without file", []string{"policy", "write", "ops"}, "not enough arguments"},
		{"fail bad metadata", []string{"token", "create", "-metadata=x"}, `invalid -metadata "x"`},
		{"fail bad address", []string{"read", "-address=ftp://x", "a"}, `invalid address "ftp://x"`},
		{"fail empty path", []string{"list", ""}, "PATH is empty"},
		{"fail slashes only", []string{"write", "-f", "/"}, "PATH is empty"},
		{"fail secrets enable without a type", []string{"secrets", "enable", ""}, "TYPE is empty"},
		{"fail secrets enable at /", []string{"secrets", "enable", "-path=/", "keymgmt"}, "is empty once its slashes are dropped"},
		{"fail secrets disable empty", []string{"secrets", "disable", "/"}, "PATH is empty"},
		{"fail policy write empty name", []string{"policy", "write", "", "-"}, "NAME is empty"},
		{"fail policy read empty name", []string{"policy", "read", ""}, "NAME is empty"},
		{"fail policy delete empty name", []string{"policy", "delete", ""}, "NAME is empty"},
		{"fail token create bad ttl", []string{"token", "create", "-ttl=abc"}, `-ttl "abc" is not a duration`},
		{"fail token create bad period", []string{"token", "create", "-period=1x"}, `-period "1x" is not a duration`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeAPI{}
			ts := httptest.NewServer(f)
			defer ts.Close()
			_, stderr, code := runCLI(t, ts.URL, "tok", "", c.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want 2; stderr %s", code, stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Fatalf("stderr %q lacks %q", stderr, c.want)
			}
			if len(f.got) != 0 {
				t.Fatalf("a usage error sent %v", f.got)
			}
		})
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	var hits int
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		http.Redirect(w, r, "http://elsewhere.invalid/v1/x", http.StatusTemporaryRedirect)
	}))
	defer ts.Close()
	_, stderr, code := runCLI(t, ts.URL, "tok", "", "read", "x")
	if code != exitError || hits != 1 || !strings.Contains(stderr, "redirected to http://elsewhere.invalid/v1/x; not followed") {
		t.Fatalf("exit %d, hits %d, stderr %s", code, hits, stderr)
	}
}

func TestTLS(t *testing.T) {
	ts := httptest.NewUnstartedServer(&fakeAPI{answers: map[string]fakeAnswer{"GET /v1/a/b": {body: `{"data":{"k":"v"}}`}}})
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	ts.StartTLS()
	defer ts.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600)
	cases := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"ok -ca-cert", []string{"read", "-ca-cert=" + ca, "a/b"}, nil, 0, "k      v"},
		{"ok KEYHOLD_CACERT", []string{"read", "a/b"}, map[string]string{"KEYHOLD_CACERT": ca}, 0, "k      v"},
		{"ok KEYHOLD_SKIP_VERIFY", []string{"read", "a/b"}, map[string]string{"KEYHOLD_SKIP_VERIFY": "true"}, 0, "k      v"},
		{"ok -tls-skip-verify", []string{"read", "-tls-skip-verify", "a/b"}, nil, 0, "k      v"},
		{"fail unknown CA", []string{"read", "a/b"}, nil, 1, "certificate signed by unknown authority"},
		{"fail CA file missing", []string{"read", "-ca-cert=/nonexistent.pem", "a/b"}, nil, 2, "no such file"},
		{"fail bad KEYHOLD_SKIP_VERIFY", []string{"read", "a/b"}, map[string]string{"KEYHOLD_SKIP_VERIFY": "maybe"}, 2, "invalid KEYHOLD_SKIP_VERIFY"},
		// The flag given explicitly wins over the environment.
		{"fail -tls-skip-verify=false over KEYHOLD_SKIP_VERIFY", []string{"read", "-tls-skip-verify=false", "a/b"}, map[string]string{"KEYHOLD_SKIP_VERIFY": "true"}, 1, "certificate signed by unknown authority"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errw strings.Builder
			e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errw,
				getenv: func(k string) string {
					if k == "KEYHOLD_ADDR" {
						return ts.URL
					}
					return c.env[k]
				}}
			code := run(c.args, e)
			if code != c.code || !strings.Contains(out.String()+errw.String(), c.want) {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s\nwant %q", code, c.code, out.String(), errw.String(), c.want)
			}
		})
	}
}

// A password in the address is not repeated in errors, and a token's
// surrounding whitespace (a newline from a file) is dropped, while one with
// a control character inside is refused as a usage error.
func TestAddressPasswordAndTokenWhitespace(t *testing.T) {
	_, stderr, code := runCLI(t, "http://user:s3cretpw@127.0.0.1:1", "tok", "", "read", "x")
	if code != exitError || strings.Contains(stderr, "s3cretpw") || !strings.Contains(stderr, "cannot reach Keyhold at http://user:xxxxx@127.0.0.1:1") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	f := &fakeAPI{answers: map[string]fakeAnswer{"GET /v1/a/b": {body: `{"data":{"k":"v"}}`}}}
	ts := httptest.NewServer(f)
	defer ts.Close()
	if out, stderr, code := runCLI(t, ts.URL, "hvs.tok\n", "", "read", "a/b"); code != exitOK || !strings.Contains(out, "k      v") || f.got[0].token != "hvs.tok" {
		t.Fatalf("a token ending in a newline: exit %d, stdout %s, stderr %s, sent %q", code, out, stderr, f.got)
	}
	if _, stderr, code := runCLI(t, ts.URL, "hvs.\x1btok", "", "read", "a/b"); code != exitUsage || !strings.Contains(stderr, "KEYHOLD_TOKEN contains a control character") {
		t.Fatalf("a token with a control character: exit %d, stderr %s", code, stderr)
	}
}

// Requests over plain http to another host get one warning on stderr, with
// a token or without (sys/init answers with one); https, loopback addresses
// and localhost get none.
func TestPlainHTTPTokenWarning(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"data":{}}`))
	}))
	defer ts.Close()
	const tok = "hvs.the-token-value"
	for _, tc := range []struct {
		addr, token string
		warn        bool
	}{
		{"http://keyhold.example:8200", tok, true},
		{"http://10.1.2.3:8200", tok, true},
		{"http://[2001:db8::1]:8200", tok, true},
		{"http://keyhold.example:8200", "", true},
		{"http://127.0.0.1:8200", "", false},
		{"https://keyhold.example:8200", tok, false},
		{"http://127.0.0.1:8200", tok, false},
		{"http://127.0.0.2:8200", tok, false},
		{"http://[::1]:8200", tok, false},
		{"http://LocalHost:8200", tok, false},
	} {
		env := map[string]string{"KEYHOLD_ADDR": tc.addr, "KEYHOLD_TOKEN": tc.token}
		cl, err := newClient(&clientFlags{}, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cl.warn = &stderr
		// Every address reaches the test server, over plain http.
		cl.hc.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", ts.Listener.Addr().String())
		}}
		https := strings.HasPrefix(tc.addr, "https:")
		for range 2 {
			// (An https request fails its handshake with the plain test
			// server; the warning is decided before.)
			if _, err := cl.do(context.Background(), "GET", "sys/health", nil, nil); err != nil && !https {
				t.Fatalf("%s: %v", tc.addr, err)
			}
		}
		got := stderr.String()
		if n := strings.Count(got, "Warning: talking to"); (n == 1) != tc.warn || n > 1 {
			t.Fatalf("%s token %q: stderr %q, want a warning: %v (once)", tc.addr, tc.token, got, tc.warn)
		}
		if tc.warn && (!strings.Contains(got, cl.addr.Host) || (tc.token != "" && strings.Contains(got, tc.token))) {
			t.Fatalf("warning %q should name the host and not show the token", got)
		}
	}
}
