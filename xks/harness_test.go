package xks

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/store/sqlite"
)

// testPrefix is the conformance client's default URI_PREFIX.
const testPrefix = "example/uri/path/prefix"

// testEnv is a Manager over a fresh SoftHSM2 token and SQLite file, with one
// xks mount listening on loopback with an internal-CA certificate, one
// credential for testPrefix and the conformance client's four keys.
type testEnv struct {
	m       *Manager
	h       *hsm.HSM
	mount   string
	addr    string // host:port, host "localhost" (the certificate's name)
	caPEM   string
	caFile  string
	akid    string
	secret  string
	clock   *testClock
	pool    *x509.CertPool
	baseDir string
	audit   *audit.Broker // no device enabled unless a test enables one
}

// testClock is the proxy's clock in tests, shiftable to test the skew window.
type testClock struct{ offset time.Duration }

func (c *testClock) now() time.Time { return time.Now().Add(c.offset) }

func newTestEnv(t testing.TB, cfg ConfigInput) *testEnv {
	t.Helper()
	return newTestEnvCA(t, cfg, true)
}

// newTestEnvCA is newTestEnv; withCA says whether the mount's internal CA
// issues the server certificate (else cfg carries one).
func newTestEnvCA(t testing.TB, cfg ConfigInput, withCA bool) *testEnv {
	t.Helper()
	return newTestEnvWith(t, cfg, withCA, nil)
}

// newTestEnvWith is newTestEnvCA; opts, if set, changes the Manager's
// options before it starts.
func newTestEnvWith(t testing.TB, cfg ConfigInput, withCA bool, opts func(*Options)) *testEnv {
	t.Helper()
	ctx := context.Background()
	h := hsmtest.Open(t)
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("KEYHOLD_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	clock := &testClock{}
	trail := audit.NewBroker(h, st, logger)
	t.Cleanup(trail.Close)
	o := Options{HSM: h, Store: st, Logger: logger, Version: "test", Now: clock.now, Audit: trail}
	if opts != nil {
		opts(&o)
	}
	m := New(o)
	t.Cleanup(func() { m.Close() })
	e := &testEnv{m: m, h: h, mount: "m0" + randomID()[:8], clock: clock, baseDir: dir, audit: trail}
	if cfg.ListenAddrs == nil {
		cfg.ListenAddrs = &[]string{"127.0.0.1:0"}
	}
	if cfg.Prefixes == nil {
		cfg.Prefixes = &[]string{testPrefix}
	}
	if cfg.TLSInternalCA == nil && cfg.TLSCertPEM == nil {
		yes := true
		cfg.TLSInternalCA = &yes
	}
	v, err := m.SetConfig(ctx, e.mount, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(v.Listening[0], ":")
	e.addr = "localhost:" + port
	if !withCA {
		e.caPEM = *cfg.TLSCertPEM
	} else if e.caPEM, err = m.CA(ctx, e.mount); err != nil {
		t.Fatal(err)
	}
	e.caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(e.caFile, []byte(e.caPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	e.pool = x509.NewCertPool()
	e.pool.AppendCertsFromPEM([]byte(e.caPEM))
	prefix := (*cfg.Prefixes)[0]
	c, err := m.GenerateCredential(ctx, e.mount, prefix)
	if err != nil {
		t.Fatal(err)
	}
	e.akid, e.secret = c.AccessKeyID, c.SecretAccessKey
	for name, usage := range map[string][]string{
		"foo":              {UsageEncrypt, UsageDecrypt},
		"encrypt_only_key": {UsageEncrypt},
		"decrypt_only_key": {UsageDecrypt},
		"impotent_key":     {},
	} {
		if _, err := m.CreateKey(ctx, e.mount, name, usage, true); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// xksURL is the conformance client's URL: https://HOST/$URI_PREFIX/kms/xks/v1/TARGET
// (so the empty prefix gives a path starting with //).
func (e *testEnv) xksURL(prefix, target string) string {
	return "https://" + e.addr + "/" + prefix + "/kms/xks/v1/" + target
}

// signer sends a signed XKS request and returns the status and body.
type signer interface {
	name() string
	post(t testing.TB, e *testEnv, url string, body []byte, akid, secret string, extra ...string) (int, []byte)
}

// The credential scope the tests sign for unless they say otherwise, as
// AWS KMS in us-east-1 does.
const (
	testRegion  = "us-east-1"
	testService = "kms-xks-proxy"
)

// curlSigner runs the real curl with --aws-sigv4, as the conformance
// client does, signing for region and service (testRegion and testService
// if empty).
type curlSigner struct{ region, service string }

func (curlSigner) name() string { return "curl" }

func (s curlSigner) post(t testing.TB, e *testEnv, url string, body []byte, akid, secret string, extra ...string) (int, []byte) {
	t.Helper()
	args := []string{url, "--silent", "--cacert", e.caFile,
		"-H", "Content-Type:application/json",
		"--aws-sigv4", "aws:amz:" + cmp.Or(s.region, testRegion) + ":" + cmp.Or(s.service, testService),
		"--user", akid + ":" + secret,
		"--data-binary", "@-",
		"-w", "\n%{http_code}"}
	args = append(args, extra...)
	cmd := exec.Command("curl", args...)
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	i := bytes.LastIndexByte(out, '\n')
	code, err := strconv.Atoi(string(out[i+1:]))
	if err != nil {
		t.Fatalf("curl: no status in %q", out)
	}
	return code, out[:i]
}

// sdkSigner signs with the AWS SDK for Go v2's SigV4 signer, for region
// and service (testRegion and testService if empty).
type sdkSigner struct{ region, service string }

func (sdkSigner) name() string { return "sdk" }

func (s sdkSigner) post(t testing.TB, e *testEnv, url string, body []byte, akid, secret string, _ ...string) (int, []byte) {
	t.Helper()
	req := sdkRequestFor(t, url, body, akid, secret, time.Now(), cmp.Or(s.region, testRegion), cmp.Or(s.service, testService))
	return do(t, e.client(), req)
}

func sdkRequest(t testing.TB, url string, body []byte, akid, secret string, at time.Time) *http.Request {
	t.Helper()
	return sdkRequestFor(t, url, body, akid, secret, at, testRegion, testService)
}

// sdkRequestFor is sdkRequest signed for the given region and service.
func sdkRequestFor(t testing.TB, url string, body []byte, akid, secret string, at time.Time, region, service string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256Hex(body)
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret},
		req, sum, service, region, at)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func (e *testEnv) client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool}}}
}

func do(t testing.TB, c *http.Client, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

var signers = []signer{curlSigner{}, sdkSigner{}}

// wantError checks an XKS error answer: its status and errorName.
func wantError(t testing.TB, status int, body []byte, name Name) {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("want %s, got status %d body %q", name, status, body)
	}
	if eb.ErrorName != name || status != statuses[name] {
		t.Fatalf("want %d %s, got %d %s (%s)", statuses[name], name, status, eb.ErrorName, eb.ErrorMessage)
	}
}

// wantOK decodes a 200 answer into v.
func wantOK(t testing.TB, status int, body []byte, v any) {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("want 200, got %d: %s", status, body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return v
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
