// Package e2e drives the web console in headless Chromium against a real
// `keyhold server -dev` process, one per test with its own dev folder. The
// browser side is Node scripts over playwright-core (package.json and its
// lock here; `make ui-deps` installs them and Debian's chromium); this
// package starts the appliance and the cloud fake, runs a script, and then
// checks what the appliance, the fake and the downloads really hold, so a
// console that only looks right does not pass.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/keyhold/keyhold/keymgmt/kmsfake"
	"github.com/keyhold/keyhold/kmip/kmiptest"
	"github.com/keyhold/keyhold/logbuf"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// dir is this package's folder: the scripts and node_modules live here.
func dir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// prerequisites fails (not skips) when the browser or the driver is
// missing: `make test` installs both.
func prerequisites(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: the console's end-to-end tests need Node.js 20 (run `make ui-deps`)")
	}
	if _, err := os.Stat(chromium()); err != nil {
		t.Fatalf("%s is missing: run `make ui-deps` (apt-get install chromium)", chromium())
	}
	if _, err := os.Stat(filepath.Join(dir(t), "node_modules", "playwright-core")); err != nil {
		t.Fatal("playwright-core is not installed: run `make ui-deps` (npm ci in ui/e2e)")
	}
}

func chromium() string {
	if c := os.Getenv("KEYHOLD_CHROMIUM"); c != "" {
		return c
	}
	return "/usr/bin/chromium"
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// keyholdBin is $KEYHOLD_BIN (the Makefile passes bin/keyhold), else the
// binary built once for this test run.
func keyholdBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("KEYHOLD_BIN"); b != "" {
		abs, err := filepath.Abs(b)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	binOnce.Do(func() {
		out, err := os.MkdirTemp("", "keyhold-e2e-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(out, "keyhold")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/keyhold/keyhold/cmd/keyhold")
		if b, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, b)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// appliance is a running dev server.
type appliance struct {
	addr, token, dir string
	logs             *logbuf.Buffer
}

// devServer starts `keyhold server -dev` in a fresh folder and waits for
// its root token.
func devServer(t *testing.T) *appliance {
	t.Helper()
	d := t.TempDir()
	addr := freeAddr(t)
	cmd := exec.Command(keyholdBin(t), "server", "-dev", "-dev-dir", d, "-dev-listen-address", addr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`Root Token:\s+(\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case tok := <-found:
		return &appliance{addr: "http://" + addr, token: tok, dir: d, logs: logs}
	case <-time.After(60 * time.Second):
		t.Fatalf("the dev server did not start:\n%s", logs.String())
	}
	return nil
}

// screenshots is where the scripts save their PNGs: $KEYHOLD_SCREENSHOTS,
// else ui/e2e/screenshots (ignored by git).
func screenshots(t *testing.T) string {
	if d := os.Getenv("KEYHOLD_SCREENSHOTS"); d != "" {
		return d
	}
	return filepath.Join(dir(t), "screenshots")
}

// node runs one script against the appliance; its output goes to the test
// log, and a non-zero exit fails the test.
func node(t *testing.T, a *appliance, script string, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = dir(t)
	cmd.Env = append(os.Environ(),
		"KEYHOLD_ADDR="+a.addr,
		"KEYHOLD_TOKEN="+a.token,
		"KEYHOLD_CHROMIUM="+chromium(),
		"KEYHOLD_SCREENSHOTS="+screenshots(t),
		"KEYHOLD_DOWNLOADS="+t.TempDir(),
	)
	cmd.Env = append(cmd.Env, extra...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("node %s:\n%s", script, out.String())
	if err != nil {
		t.Fatalf("node %s: %v", script, err)
	}
}

// rest calls the appliance's API with a token and decodes data.
func rest(t *testing.T, a *appliance, token, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.addr+"/v1/"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data map[string]any `json:"data"`
		Auth map[string]any `json:"auth"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if out.Data == nil {
		out.Data = out.Auth
	}
	return resp.StatusCode, out.Data
}

// TestConsoleWorkflow runs workflow.mjs, then checks the cloud fake, the
// downloads and the appliance's state through the API.
func TestConsoleWorkflow(t *testing.T) {
	prerequisites(t)
	aws := kmsfake.NewAWS("us-east-1")
	fake := aws.Serve()
	defer fake.Close()
	a := devServer(t)
	downloads := t.TempDir()
	kmipAddr, xksAddr := freeAddr(t), freeAddr(t)
	node(t, a, "workflow.mjs",
		"KEYHOLD_FAKE_AWS="+fake.URL,
		"KEYHOLD_AUDIT_FILE="+filepath.Join(a.dir, "audit.log"),
		"KEYHOLD_KMIP_ADDR="+kmipAddr,
		"KEYHOLD_XKS_ADDR="+xksAddr,
		"KEYHOLD_DOWNLOADS="+downloads,
	)

	// The key reached the fake AWS KMS: one AWS key per version, the first
	// disabled there by min_enabled_version=2.
	states := map[string]string{}
	for _, k := range aws.Keys() {
		if k.Tags["keyhold-key"] == "payments-key" {
			if k.Material == nil {
				t.Fatalf("AWS key %s has no imported material", k.ID)
			}
			states[k.Tags["keyhold-version"]] = k.State
		}
	}
	if len(states) != 2 || states["1"] != "Disabled" || states["2"] != "Enabled" {
		t.Fatalf("AWS holds versions %v, want 1 Disabled and 2 Enabled", states)
	}

	// The PEM bundle holds a private key and a certificate issued by the
	// mount's CA (the CA file downloaded from the console).
	caPEM, err := os.ReadFile(filepath.Join(downloads, "kmip-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := os.ReadFile(filepath.Join(downloads, "kmip-client.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	var leaf *x509.Certificate
	for rest := bundle; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		types = append(types, blk.Type)
		if blk.Type == "CERTIFICATE" && leaf == nil {
			if leaf, err = x509.ParseCertificate(blk.Bytes); err != nil {
				t.Fatal(err)
			}
		}
	}
	if strings.Join(types, ",") != "PRIVATE KEY,CERTIFICATE,CERTIFICATE" || leaf == nil {
		t.Fatalf("bundle blocks %v", types)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("the downloaded CA is not a PEM certificate")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("the client certificate does not chain to the downloaded CA: %v", err)
	}
	if code, d := rest(t, a, a.token, "GET", "kmip/scope/finance/role/accounting", nil); code != 200 || d["operation_locate"] != true || d["operation_encrypt"] != nil {
		t.Fatalf("role as saved: %d %v", code, d)
	}
	// The credential works: a KMIP client with the downloaded bundle
	// creates a key in the scope (the dashboard counts it below), and keeps
	// getting it while the dashboard draws its charts.
	stop := kmipTraffic(t, kmipAddr, caPEM, bundle)

	// The XKS key is disabled; the credential the console showed signs
	// requests the proxy accepts: an Encrypt under the disabled key is
	// refused with InvalidStateException, health checks follow below.
	if code, d := rest(t, a, a.token, "GET", "xks/key/xks-key-1", nil); code != 200 || d["enabled"] != false {
		t.Fatalf("xks key: %d %v", code, d)
	}
	x := newXKSClient(t, a, xksAddr, downloads)
	if code, body := x.post(t, "keys/xks-key-1/encrypt", map[string]any{"requestMetadata": map[string]any{"kmsOperation": "Encrypt",
		"kmsRequestId": "console-e2e", "awsPrincipalArn": "arn:aws:iam::111122223333:user/console",
		"kmsKeyArn": "arn:aws:kms:us-east-1:111122223333:key/console"},
		"plaintext": "aGVsbG8=", "encryptionAlgorithm": "AES_GCM"}); code != 400 || !strings.Contains(string(body), "InvalidStateException") {
		t.Fatalf("encrypt under the disabled key: %d %s", code, body)
	}
	stopXKS := x.healthChecks(t)

	// Secrets never reached the audit file in the clear.
	trail, err := os.ReadFile(filepath.Join(a.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"console-secret-never-shown", a.token} {
		if bytes.Contains(trail, []byte(s)) {
			t.Fatalf("%q is in the audit trail", s)
		}
	}
	if strings.Contains(a.logs.String(), a.token) {
		t.Fatal("the root token is in the server log")
	}

	node(t, a, "dashboard.mjs")
	if n := stop(); n < 5 {
		t.Fatalf("only %d KMIP Gets were served", n)
	}
	if n := stopXKS(); n < 5 {
		t.Fatalf("only %d XKS health checks were answered", n)
	}

	node(t, a, "destroy.mjs")
	for _, k := range aws.Keys() {
		if k.Tags["keyhold-key"] == "payments-key" && k.State != "PendingDeletion" {
			t.Fatalf("AWS key of version %s is %s after the removal", k.Tags["keyhold-version"], k.State)
		}
	}
	if code, _ := rest(t, a, a.token, "GET", "keymgmt/key/payments-key", nil); code != 404 {
		t.Fatalf("the deleted key answers %d", code)
	}
	if code, _ := rest(t, a, a.token, "GET", "xks/key/xks-key-1", nil); code != 404 {
		t.Fatalf("the deleted XKS key answers %d", code)
	}
	if err := kmipDial(kmipAddr, caPEM, bundle); err == nil {
		t.Fatal("the revoked client certificate still gets an answer")
	}
}

// kmipDial connects with a bundle and asks for a Get of nothing; it fails
// when the server refuses the certificate.
func kmipDial(addr string, caPEM, bundle []byte) error {
	cert, err := tls.X509KeyPair(bundle, bundle)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	conn, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = (&kmiptest.Client{Conn: conn}).Do(gokmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: "none"})
	return err
}

// kmipTraffic connects to the KMIP listener with a PEM bundle (key,
// certificate, CA), creates an AES key, and then gets it every 200 ms until
// stop is called, which returns how many Gets succeeded.
func kmipTraffic(t *testing.T, addr string, caPEM, bundle []byte) (stop func() int) {
	t.Helper()
	cert, err := tls.X509KeyPair(bundle, bundle)
	if err != nil {
		t.Fatalf("the bundle is not a usable TLS credential: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	conn, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	c := &kmiptest.Client{Conn: conn}
	it, err := c.Do(gokmip.V1_4, &payloads.CreateRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, TemplateAttribute: gokmip.TemplateAttribute{
		Attribute: []gokmip.Attribute{
			{AttributeName: gokmip.AttributeNameCryptographicAlgorithm, AttributeValue: gokmip.CryptographicAlgorithmAES},
			{AttributeName: gokmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
		}}})
	if err != nil || it.ResultStatus != gokmip.ResultStatusSuccess {
		conn.Close()
		t.Fatalf("KMIP Create with the console's credential: %v %+v", err, it)
	}
	id := it.ResponsePayload.(*payloads.CreateResponsePayload).UniqueIdentifier
	done := make(chan struct{})
	gets := make(chan int, 1)
	go func() {
		n := 0
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				gets <- n
				return
			case <-tick.C:
				if it, err := c.Do(gokmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: id}); err == nil && it.ResultStatus == gokmip.ResultStatusSuccess {
					n++
				}
			}
		}
	}()
	return func() int {
		close(done)
		n := <-gets
		conn.Close()
		return n
	}
}

// TestConsoleXSS: markup in names and descriptions shows as text and runs
// nothing.
func TestConsoleXSS(t *testing.T) {
	prerequisites(t)
	a := devServer(t)
	node(t, a, "xss.mjs", "KEYHOLD_AUDIT_FILE="+filepath.Join(a.dir, "audit.log"))
}

// TestConsoleDeniedToken: a token without rights sees the refusal on each
// page, not a blank page.
func TestConsoleDeniedToken(t *testing.T) {
	prerequisites(t)
	a := devServer(t)
	if code, _ := rest(t, a, a.token, "POST", "sys/mounts/keymgmt", map[string]any{"type": "keymgmt"}); code != 204 {
		t.Fatalf("enable keymgmt: %d", code)
	}
	if code, _ := rest(t, a, a.token, "POST", "sys/policy/keys-reader", map[string]any{
		"policy": `path "keymgmt/key" { capabilities = ["list"] }`}); code != 204 {
		t.Fatalf("policy: %d", code)
	}
	code, auth := rest(t, a, a.token, "POST", "auth/token/create", map[string]any{"policies": []string{"keys-reader"}, "display_name": "reader"})
	if code != 200 || auth["client_token"] == nil {
		t.Fatalf("token create: %d %v", code, auth)
	}
	node(t, a, "denied.mjs", "KEYHOLD_LIMITED_TOKEN="+auth["client_token"].(string))
}

// TestConsoleRouteParams: "." and ".." (and other names the appliance
// would not hold) in a route show "Not found", and a path the browser
// would rewrite is not sent; the scope and its role are still there.
func TestConsoleRouteParams(t *testing.T) {
	prerequisites(t)
	a := devServer(t)
	for _, c := range []struct {
		path string
		body map[string]any
	}{
		{"sys/mounts/kmip", map[string]any{"type": "kmip"}},
		{"sys/mounts/keymgmt", map[string]any{"type": "keymgmt"}},
		{"kmip/scope/prod", map[string]any{}},
		{"kmip/scope/prod/role/app", map[string]any{"operation_get": true}},
	} {
		if code, d := rest(t, a, a.token, "POST", c.path, c.body); code != 200 && code != 204 {
			t.Fatalf("POST %s: %d %v", c.path, code, d)
		}
	}
	node(t, a, "routes.mjs")
	if code, d := rest(t, a, a.token, "GET", "kmip/scope/prod/role/app", nil); code != 200 || d["operation_get"] != true {
		t.Fatalf("the role after the visits: %d %v", code, d)
	}
	if code, d := rest(t, a, a.token, "GET", "kmip/scope?list=true", nil); code != 200 || fmt.Sprint(d["keys"]) != "[prod]" {
		t.Fatalf("the scopes after the visits: %d %v", code, d)
	}
}

// TestConsoleSecretFields: a service account key pasted in the KMS
// provider forms is gone from the page after the submit, taken or refused.
func TestConsoleSecretFields(t *testing.T) {
	prerequisites(t)
	a := devServer(t)
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "keyhold@p.iam.gserviceaccount.com",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	if code, _ := rest(t, a, a.token, "POST", "sys/mounts/keymgmt", map[string]any{"type": "keymgmt"}); code != 204 {
		t.Fatalf("enable keymgmt: %d", code)
	}
	if code, d := rest(t, a, a.token, "POST", "keymgmt/kms/gcp", map[string]any{"provider": "gcpckms",
		"key_collection": "projects/p/locations/l/keyRings/r", "credentials": map[string]any{"service_account_file": string(sa)}}); code != 200 && code != 204 {
		t.Fatalf("gcp provider: %d %v", code, d)
	}
	node(t, a, "secrets.mjs", "KEYHOLD_SA_JSON="+string(sa))
}

// xksClient signs XKS requests with the credential the console showed.
type xksClient struct {
	base, akid, secret string
	http               *http.Client
}

func newXKSClient(t *testing.T, a *appliance, addr, downloads string) *xksClient {
	t.Helper()
	akid, err := os.ReadFile(filepath.Join(downloads, "xks-akid.txt"))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile(filepath.Join(downloads, "xks-secret.txt"))
	if err != nil {
		t.Fatal(err)
	}
	code, d := rest(t, a, a.token, "GET", "xks/ca", nil)
	pool := x509.NewCertPool()
	if pemText, _ := d["certificate"].(string); code != 200 || !pool.AppendCertsFromPEM([]byte(pemText)) {
		t.Fatalf("xks ca: %d", code)
	}
	return &xksClient{base: "https://" + addr + "/example/keystore/kms/xks/v1/", akid: string(akid), secret: string(secret),
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}}
}

func (x *xksClient) post(t *testing.T, target string, body any) (int, []byte) {
	t.Helper()
	code, b, err := x.try(target, body)
	if err != nil {
		t.Fatal(err)
	}
	return code, b
}

func (x *xksClient) try(target string, body any) (int, []byte, error) {
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, x.base+target, bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(raw)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: x.akid, SecretAccessKey: x.secret},
		req, hex.EncodeToString(sum[:]), "kms-xks-proxy", "us-east-1", time.Now()); err != nil {
		return 0, nil, err
	}
	resp, err := x.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// healthChecks sends a signed GetHealthStatus every 200 ms until stop,
// which returns how many were answered 200.
func (x *xksClient) healthChecks(t *testing.T) (stop func() int) {
	done := make(chan struct{})
	count := make(chan int, 1)
	go func() {
		n := 0
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				count <- n
				return
			case <-tick.C:
				code, _, err := x.try("health", map[string]any{"requestMetadata": map[string]any{"kmsOperation": "KmsHealthCheck", "kmsRequestId": "console-e2e"}})
				if err == nil && code == 200 {
					n++
				}
			}
		}
	}()
	return func() int {
		close(done)
		return <-count
	}
}
