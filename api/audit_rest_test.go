package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"github.com/keyhold/keyhold/audit"
)

func readEvents(t *testing.T, path string) []audit.Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var ev audit.Event
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatalf("bad event %q: %v", l, err)
		}
		out = append(out, ev)
	}
	return out
}

func TestRESTAuditTrail(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	logPath := enableFileAudit(t, root)
	mountKeymgmt(t, root, "keymgmt")
	if _, err := root.Logical().Write("keymgmt/key/audited", map[string]any{"type": "ecdsa-p256"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("reader", `path "keymgmt/key/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	child, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"reader"}})
	if err != nil {
		t.Fatal(err)
	}
	reader := env.client(t, child.Auth.ClientToken)
	if _, err := reader.Logical().Read("keymgmt/key/audited"); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Logical().Write("keymgmt/key/audited/rotate", nil); statusOfErr(err) != 403 {
		t.Fatalf("rotate by reader: %v", err)
	}
	devices, err := root.Sys().ListAudit()
	if err != nil || devices["file/"] == nil || devices["file/"].Options["file_path"] != logPath {
		t.Fatalf("list audit: %v %v", devices, err)
	}

	events := readEvents(t, logPath)
	raw, _ := os.ReadFile(logPath)
	for _, secret := range []string{testRootToken, child.Auth.ClientToken} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatal("a token is in the audit trail in the clear")
		}
	}
	// The investigator finds the child's accessor through audit-hash.
	hs, err := root.Logical().Write("sys/audit-hash/file", map[string]any{"input": child.Auth.Accessor})
	if err != nil {
		t.Fatal(err)
	}
	accHash := hs.Data["hash"].(string)
	var create, read, denied, tokenCreate *audit.Event
	for i := range events {
		ev := &events[i]
		if ev.Type != "response" {
			continue
		}
		switch {
		case ev.Request.Path == "keymgmt/key/audited" && ev.Request.Operation == "create":
			create = ev
		case ev.Request.Path == "keymgmt/key/audited" && ev.Request.Operation == "read":
			read = ev
		case ev.Request.Path == "keymgmt/key/audited/rotate":
			denied = ev
		case ev.Request.Path == "auth/token/create":
			tokenCreate = ev
		}
	}
	if create == nil || create.Response.Status != 200 || create.Interface != "rest" || len(create.Request.Objects) != 1 || create.Request.Objects[0] != "audited" {
		t.Fatalf("create event %+v", create)
	}
	if read == nil || read.Auth.TokenAccessor != accHash || strings.Join(read.Auth.Policies, ",") != "default,reader" {
		t.Fatalf("read event principal %+v, want accessor %s", read, accHash)
	}
	if denied == nil || denied.Response.Status != 403 || denied.Auth.TokenAccessor != accHash {
		t.Fatalf("denied event %+v", denied)
	}
	if tokenCreate == nil {
		t.Fatal("no token create event")
	}
	ct, _ := tokenCreate.Response.Data["auth.client_token"].(string)
	if !strings.HasPrefix(ct, audit.HMACPrefix) {
		t.Fatalf("client_token written as %q", ct)
	}
	// ... and the child token itself: audit-hash of a value is what the
	// trail holds for a field of that value.
	hs, err = root.Logical().Write("sys/audit-hash/file", map[string]any{"input": child.Auth.ClientToken})
	if err != nil {
		t.Fatal(err)
	}
	if hs.Data["hash"] != ct {
		t.Fatalf("audit-hash of the child token is %v, the trail has %s", hs.Data["hash"], ct)
	}
	// Every response event follows its request event, and the chain verifies.
	rep, err := audit.Verify([]string{logPath})
	if err != nil || rep.Problem != nil {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	for _, ev := range events {
		if ev.Request.Path == "sys/health" {
			t.Fatal("health checks are audited")
		}
	}
}

func TestRESTAuditFailsClosed(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	logPath := enableFileAudit(t, root)
	mountKeymgmt(t, root, "keymgmt")
	os.Remove(logPath)
	if err := os.Symlink("/dev/full", logPath); err != nil {
		t.Fatal(err)
	}
	// Reopening onto a file that cannot be made durable is refused.
	if err := env.srv.d.Audit.Reopen(); err == nil || !strings.Contains(err.Error(), "sync") {
		t.Fatalf("reopen onto /dev/full: %v", err)
	}
	_, err := root.Logical().Write("keymgmt/key/never", map[string]any{"type": "aes256-gcm96"})
	if statusOfErr(err) != 503 || !strings.Contains(err.Error(), "audit trail cannot be written") {
		t.Fatalf("create with a broken trail: %v", err)
	}
	m := env.srv.mounts.get("keymgmt")
	if ok, err := env.srv.d.Keys.Exists(context.Background(), m.UUID, "never"); err != nil || ok {
		t.Fatalf("the key exists after a refused request: %v %v", ok, err)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	mountKeymgmt(t, root, "keymgmt")
	root.Logical().Write("keymgmt/key/m", map[string]any{"type": "aes256-gcm96"})
	root.Logical().Read("keymgmt/key/nope")
	if st, _ := rawReq(t, env, "GET", "/v1/sys/metrics", "", ""); st != 403 {
		t.Fatalf("metrics without a token: %d", st)
	}
	req, _ := http.NewRequest("GET", env.ts.URL+"/v1/sys/metrics?format=prometheus", nil)
	req.Header.Set("X-Vault-Token", testRootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`keyhold_requests_total{interface="rest",operation="create keymgmt:key/{name}",status="200"} 1`,
		`keyhold_requests_total{interface="rest",operation="read keymgmt:key/{name}",status="404"} 1`,
		`keyhold_errors_total{interface="rest",kind="not found"} 1`,
		`keyhold_request_duration_seconds_bucket{interface="rest",operation="create keymgmt:key/{name}"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("metrics lack %s:\n%s", want, body)
		}
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
}

// A request whose handler panics is answered 500, and the trail holds its
// request and response events all the same.
func TestRESTAuditPanic(t *testing.T) {
	env := newTestEnv(t)
	env.srv.handle("sys/panics", nil, map[Operation]HandlerFunc{OpRead: func(context.Context, *Request) (*Response, error) {
		panic("a bug")
	}})
	ts := httptest.NewServer(env.srv) // serves the route added above
	t.Cleanup(ts.Close)
	root := env.client(t, testRootToken)
	if err := root.SetAddress(ts.URL); err != nil {
		t.Fatal(err)
	}
	logPath := enableFileAudit(t, root)
	_, err := root.Logical().Read("sys/panics")
	if statusOfErr(err) != 500 || !strings.Contains(err.Error(), "internal error") {
		t.Fatalf("read of a handler that panics: %v", err)
	}
	var evs []audit.Event
	for _, ev := range readEvents(t, logPath) {
		if ev.Request.Path == "sys/panics" {
			evs = append(evs, ev)
		}
	}
	if len(evs) != 2 {
		t.Fatalf("%d events of the request, want a request and a response event", len(evs))
	}
	if evs[0].Type != "request" || evs[1].Type != "response" || evs[1].RequestID != evs[0].RequestID || evs[1].Response.Status != 500 {
		t.Fatalf("events: %+v %+v", evs[0], evs[1].Response)
	}
}

// Secrets that reach the REST API in other shapes than the common field
// names (nested in a configuration object, a PEM key under tls_key) stay
// out of the audit trail, in requests and in responses.
func TestRESTAuditHidesNestedSecrets(t *testing.T) {
	env, _ := newXKSEnv(t)
	root := env.client(t, testRootToken)
	logPath := enableFileAudit(t, root)
	c := root.Logical()
	// A TLS key that the request carries; the write fails (the key does
	// not match the certificate), and the request event was written first.
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	c.Write("xks/config", map[string]any{"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "p", "tls_cert": "not a certificate", "tls_key": keyPEM})
	if _, err := c.Write("xks/config", map[string]any{"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "p", "tls_internal_ca": true}); err != nil {
		t.Fatal(err)
	}
	cred, err := c.Write("xks/credential/generate", map[string]any{"prefix": "p"})
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := cred.Data["secret_access_key"].(string)
	nested, _ := json.Marshal(cred.Data["xks_proxy_configuration"])
	if secret == "" || !strings.Contains(string(nested), secret) {
		t.Fatalf("the response does not carry the secret where this test looks: %v", cred.Data)
	}
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"the secret access key": secret, "the TLS key": strings.Split(keyPEM, "\n")[1]} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("%s is in the audit trail in the clear", name)
		}
	}
	if !bytes.Contains(raw, []byte(`"xks_proxy_configuration.XksProxyAuthenticationCredential.RawSecretAccessKey":"hmac-sha256:`)) {
		t.Errorf("the nested secret is not in the trail as an HMAC under its path")
	}
}

func TestSensitiveFieldNames(t *testing.T) {
	for name, want := range map[string]bool{
		"token": true, "client_token": true, "root_token": true, "secret_access_key": true, "RawSecretAccessKey": true,
		"tls_key": true, "TLS-Key": true, "private_key": true, "tls_private_key": true, "Password": true, "pin": true,
		"key_type": false, "access_key_id": false, "AccessKeyId": false, "token_label": false, "name": false, "tls_key_blob": false,
	} {
		if got := sensitiveField(name); got != want {
			t.Errorf("%s: sensitive %v, want %v", name, got, want)
		}
	}
}

// A path that no route takes can carry a secret (Vault's old
// auth/token/revoke/TOKEN form): the trail has it only as an HMAC, and the
// error does not repeat it.
func TestRESTAuditUnroutedPath(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	logPath := enableFileAudit(t, root)
	child, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	secret := child.Auth.ClientToken
	for _, token := range []string{testRootToken, ""} {
		st, m := rawReq(t, env, "POST", "/v1/auth/token/revoke/"+secret, token, "")
		if st != 404 && st != 403 || strings.Contains(errText(m), secret) {
			t.Fatalf("token %q: %d %v", token, st, m)
		}
	}
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("the token in the path is in the audit trail in the clear")
	}
	if !bytes.Contains(raw, []byte(`"path":"hmac-sha256:`)) {
		t.Fatal("the unrouted path is not in the trail as an HMAC")
	}
	// An investigator finds it through audit-hash.
	hs, err := root.Logical().Write("sys/audit-hash/file", map[string]any{"input": "auth/token/revoke/" + secret})
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := hs.Data["hash"].(string); !bytes.Contains(raw, []byte(`"path":"`+h+`"`)) {
		t.Fatalf("audit-hash of the unrouted path (%s) is not in the trail", h)
	}
}

// Token accessors in request and response data follow the device's
// hmac_accessor setting, as the principal's accessor does: HMACs by default
// (a reader of the trail must not be handed accessors to look up, renew or
// revoke tokens by), as they are with hmac_accessor=false.
func TestRESTAuditAccessorFields(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	dir := t.TempDir()
	paths := map[string]string{"true": filepath.Join(dir, "hmac.log"), "false": filepath.Join(dir, "clear.log")}
	for setting, p := range paths {
		if err := root.Sys().EnableAuditWithOptions("dev-"+setting, &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": p, "hmac_accessor": setting}}); err != nil {
			t.Fatal(err)
		}
	}
	child, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	acc := child.Auth.Accessor
	if _, err := root.Auth().Token().LookupAccessor(acc); err != nil {
		t.Fatal(err)
	}
	if l, err := root.Logical().List("auth/token/accessors"); err != nil || l == nil {
		t.Fatalf("list accessors: %v", err)
	}
	hmacked, err := root.Sys().AuditHash("dev-true", acc)
	if err != nil {
		t.Fatal(err)
	}
	for setting, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		clear, hashed := bytes.Count(raw, []byte(acc)), bytes.Count(raw, []byte(hmacked))
		switch {
		case setting == "true" && clear > 0:
			t.Errorf("hmac_accessor=true: the accessor is in the trail %d times in the clear", clear)
		case setting == "true" && hashed < 4: // the create's response, lookup-accessor's request and response, the list
			t.Errorf("hmac_accessor=true: the accessor's HMAC is there %d times, want at least 4", hashed)
		case setting == "false" && clear < 4:
			t.Errorf("hmac_accessor=false: the accessor is there %d times, want at least 4", clear)
		}
	}
}

// enableFileAudit enables a file audit device "file" at a new path through
// the client c (which needs sudo on sys/audit) and returns the path.
func enableFileAudit(t *testing.T, c *vault.Client) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "audit.log")
	if err := c.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": logPath}}); err != nil {
		t.Fatal(err)
	}
	return logPath
}

// sys/audit-hash decodes a base64 or hex input first, so that the bytes
// the XKS and KMIP events HMAC (sent encoded by their clients) can be
// found: the HMAC of the decoded bytes is the text's HMAC of those bytes.
func TestAuditHashEncodings(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	enableFileAudit(t, root)
	hash := func(data map[string]any) (string, error) {
		s, err := root.Logical().Write("sys/audit-hash/file", data)
		if err != nil {
			return "", err
		}
		return s.Data["hash"].(string), nil
	}
	want, err := hash(map[string]any{"input": "hello world"})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []map[string]any{
		{"input": "aGVsbG8gd29ybGQ=", "encoding": "base64"},
		{"input": "68656c6c6f20776f726c64", "encoding": "hex"},
	} {
		if got, err := hash(in); err != nil || got != want {
			t.Errorf("%v: %s %v, want %s", in, got, err, want)
		}
	}
	if got, _ := hash(map[string]any{"input": "aGVsbG8gd29ybGQ="}); got == want {
		t.Error("base64 text without encoding=base64 was decoded")
	}
	for _, bad := range []map[string]any{
		{"input": "not base64!", "encoding": "base64"},
		{"input": "zz", "encoding": "hex"},
		{"input": "x", "encoding": "rot13"},
	} {
		if _, err := hash(bad); statusOfErr(err) != 400 {
			t.Errorf("%v: %v, want 400", bad, err)
		}
	}
}
