package xks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/logbuf"
	"github.com/keyhold/keyhold/store"
)

// post signs with the SDK signer and sends.
func (e *testEnv) post(t *testing.T, prefix, target string, body any, akid, secret string) (int, []byte) {
	t.Helper()
	b, ok := body.([]byte)
	if !ok {
		b = must(json.Marshal(body))
	}
	return sdkSigner{}.post(t, e, e.xksURL(prefix, target), b, akid, secret)
}

func TestCredentialRotationWithoutRestart(t *testing.T) {
	e := newTestEnv(t, ConfigInput{Prefixes: &[]string{testPrefix, "other"}})
	ctx := context.Background()
	addr := e.m.Addrs(e.mount)
	second, err := e.m.GenerateCredential(ctx, e.mount, testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.AccessKeyID) < 20 || len(second.AccessKeyID) > 30 || strings.Trim(second.AccessKeyID, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
		t.Fatalf("access key id %q is not 20-30 of [A-Z2-7]", second.AccessKeyID)
	}
	if n := len(second.SecretAccessKey); n < 43 || n > 64 || len(must(base64.StdEncoding.DecodeString(second.SecretAccessKey))) < 32 {
		t.Fatalf("secret of %d characters", n)
	}
	for _, c := range [][2]string{{e.akid, e.secret}, {second.AccessKeyID, second.SecretAccessKey}} {
		st, b := e.post(t, testPrefix, "health", healthBody(), c[0], c[1])
		wantOK(t, st, b, &HealthResponse{})
	}
	if err := e.m.RevokeCredential(ctx, e.mount, e.akid); err != nil {
		t.Fatal(err)
	}
	st, b := e.post(t, testPrefix, "health", healthBody(), e.akid, e.secret)
	wantError(t, st, b, AuthenticationFailedException)
	st, b = e.post(t, testPrefix, "health", healthBody(), second.AccessKeyID, second.SecretAccessKey)
	wantOK(t, st, b, &HealthResponse{})
	// A credential is valid for its own prefix only.
	st, b = e.post(t, "other", "health", healthBody(), second.AccessKeyID, second.SecretAccessKey)
	wantError(t, st, b, AuthenticationFailedException)
	if got := e.m.Addrs(e.mount); len(got) != 1 || got[0] != addr[0] {
		t.Fatalf("the listener changed: %v -> %v", addr, got)
	}
	for i := 1; i < maxCredsPerPrefix; i++ {
		if _, err := e.m.GenerateCredential(ctx, e.mount, testPrefix); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.m.GenerateCredential(ctx, e.mount, testPrefix); err == nil {
		t.Fatal("more than the maximum of credentials per prefix")
	}
	if _, err := e.m.GenerateCredential(ctx, e.mount, "unknown"); err == nil {
		t.Fatal("a credential for an unconfigured prefix")
	}
}

func TestEmptyPrefixAndMethods(t *testing.T) {
	e := newTestEnv(t, ConfigInput{Prefixes: &[]string{"", testPrefix}})
	c, err := e.m.GenerateCredential(context.Background(), e.mount, "")
	if err != nil {
		t.Fatal(err)
	}
	body := must(json.Marshal(healthBody()))
	// The conformance client with URI_PREFIX="" sends //kms/...; AWS sends /kms/....
	for _, url := range []string{e.xksURL("", "health"), "https://" + e.addr + "/kms/xks/v1/health"} {
		for _, s := range signers {
			st, b := s.post(t, e, url, body, c.AccessKeyID, c.SecretAccessKey)
			wantOK(t, st, b, &HealthResponse{})
		}
	}
	st, b := e.post(t, "", "keys/foo/sign", healthBody(), c.AccessKeyID, c.SecretAccessKey)
	wantError(t, st, b, InvalidURIPathException)
	st, b = e.post(t, "nope", "health", healthBody(), c.AccessKeyID, c.SecretAccessKey)
	wantError(t, st, b, InvalidURIPathException)
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(m, e.xksURL(testPrefix, "keys/foo/encrypt"), nil)
		st, _ := do(t, e.client(), req)
		if st != http.StatusMethodNotAllowed {
			t.Fatalf("%s: status %d, want 405", m, st)
		}
	}
}

func TestSecondaryAuthorization(t *testing.T) {
	e := newTestEnv(t, ConfigInput{})
	ctx := context.Background()
	rule := &Rule{Name: "alice-only", Keys: []string{"foo"},
		AWSPrincipalArns: []string{"arn:aws:iam::123456789012:user/Alice"}, KMSOperations: []string{"Encrypt", "Decrypt", "DescribeKey"}}
	if err := e.m.PutRule(ctx, e.mount, rule); err != nil {
		t.Fatal(err)
	}
	bob := encBody(tcPlain, "", false)
	bob["requestMetadata"].(map[string]any)["awsPrincipalArn"] = "arn:aws:iam::123456789012:user/Bob"
	st, b := e.post(t, testPrefix, "keys/foo/encrypt", bob, e.akid, e.secret)
	wantError(t, st, b, AccessDeniedException)
	st, b = e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", false), e.akid, e.secret)
	wantOK(t, st, b, &EncryptResponse{})
	gdk := encBody(tcPlain, "", false)
	gdk["requestMetadata"].(map[string]any)["kmsOperation"] = "GenerateDataKey"
	st, b = e.post(t, testPrefix, "keys/foo/encrypt", gdk, e.akid, e.secret)
	wantError(t, st, b, AccessDeniedException)
	// Other keys are not covered by the rule; health is never subject to rules.
	st, b = e.post(t, testPrefix, "keys/encrypt_only_key/encrypt", bob, e.akid, e.secret)
	wantOK(t, st, b, &EncryptResponse{})
	if err := e.m.PutRule(ctx, e.mount, &Rule{Name: "vpc", Prefixes: []string{testPrefix}, AWSSourceVpcs: []string{"vpc-1"}}); err != nil {
		t.Fatal(err)
	}
	st, b = e.post(t, testPrefix, "keys/encrypt_only_key/encrypt", bob, e.akid, e.secret)
	wantError(t, st, b, AccessDeniedException)
	st, b = e.post(t, testPrefix, "health", healthBody(), e.akid, e.secret)
	wantOK(t, st, b, &HealthResponse{})
	// Alice matches alice-only for foo even though the prefix-wide rule does not match.
	st, b = e.post(t, testPrefix, "keys/foo/metadata", map[string]any{"requestMetadata": meta("DescribeKey")}, e.akid, e.secret)
	wantOK(t, st, b, &MetadataResponse{})
	if err := e.m.DeleteRule(ctx, e.mount, "vpc"); err != nil {
		t.Fatal(err)
	}
	st, b = e.post(t, testPrefix, "keys/encrypt_only_key/encrypt", bob, e.akid, e.secret)
	wantOK(t, st, b, &EncryptResponse{})
	if err := e.m.PutRule(ctx, e.mount, &Rule{Name: "empty"}); err == nil {
		t.Fatal("a rule without conditions was accepted")
	}
}

func TestKeyStateAndSizeLimits(t *testing.T) {
	lim := MinPlaintext
	e := newTestEnv(t, ConfigInput{MaxPlaintext: &lim})
	ctx := context.Background()
	var enc EncryptResponse
	st, b := e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", false), e.akid, e.secret)
	wantOK(t, st, b, &enc)
	off := false
	if _, err := e.m.UpdateKey(ctx, e.mount, "foo", KeyUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	var md MetadataResponse
	st, b = e.post(t, testPrefix, "keys/foo/metadata", map[string]any{"requestMetadata": meta("DescribeKey")}, e.akid, e.secret)
	wantOK(t, st, b, &md)
	if md.KeyStatus != "DISABLED" {
		t.Fatalf("status %s", md.KeyStatus)
	}
	st, b = e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", false), e.akid, e.secret)
	wantError(t, st, b, InvalidStateException)
	st, b = e.post(t, testPrefix, "keys/foo/decrypt", decBody(&enc, ""), e.akid, e.secret)
	wantError(t, st, b, InvalidStateException)
	on := true
	if _, err := e.m.UpdateKey(ctx, e.mount, "foo", KeyUpdate{Enabled: &on, Usage: []string{"decrypt"}}); err != nil {
		t.Fatal(err)
	}
	st, b = e.post(t, testPrefix, "keys/foo/decrypt", decBody(&enc, ""), e.akid, e.secret)
	wantOK(t, st, b, &DecryptResponse{})
	st, b = e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", false), e.akid, e.secret)
	wantError(t, st, b, InvalidKeyUsageException)
	if _, err := e.m.UpdateKey(ctx, e.mount, "foo", KeyUpdate{Usage: []string{"ENCRYPT", "DECRYPT"}}); err != nil {
		t.Fatal(err)
	}
	// The spec's minimums are accepted; one byte more than the limit is not.
	pt := base64.StdEncoding.EncodeToString(randBytes(MinPlaintext))
	aad := base64.StdEncoding.EncodeToString(randBytes(MinAAD))
	st, b = e.post(t, testPrefix, "keys/foo/encrypt", encBody(pt, aad, true), e.akid, e.secret)
	wantOK(t, st, b, &enc)
	st, b = e.post(t, testPrefix, "keys/foo/decrypt", decBody(&enc, aad), e.akid, e.secret)
	var d DecryptResponse
	wantOK(t, st, b, &d)
	if base64.StdEncoding.EncodeToString(d.Plaintext) != pt {
		t.Fatal("large round trip lost data")
	}
	big := base64.StdEncoding.EncodeToString(randBytes(MinPlaintext + 1))
	st, b = e.post(t, testPrefix, "keys/foo/encrypt", encBody(big, "", false), e.akid, e.secret)
	wantError(t, st, b, UnsupportedOperationException)
	huge := bytes.Repeat([]byte("A"), 1<<20)
	st, b = e.post(t, testPrefix, "keys/foo/encrypt", encBody(string(huge), "", false), e.akid, e.secret)
	wantError(t, st, b, UnsupportedOperationException)
	// Tampered ciphertext metadata, tag or IV: InvalidCiphertextException.
	for _, f := range []func(r *EncryptResponse){
		func(r *EncryptResponse) { r.CiphertextMetadata = []byte("kh2") },
		func(r *EncryptResponse) { r.CiphertextMetadata = nil },
		func(r *EncryptResponse) { r.Tag[0] ^= 1 },
		func(r *EncryptResponse) { r.IV[0] ^= 1 },
		func(r *EncryptResponse) { r.IV = append(r.IV, 0, 0, 0, 0) },
	} {
		c := enc
		c.Tag, c.IV = bytes.Clone(enc.Tag), bytes.Clone(enc.IV)
		f(&c)
		st, b = e.post(t, testPrefix, "keys/foo/decrypt", decBody(&c, aad), e.akid, e.secret)
		wantError(t, st, b, InvalidCiphertextException)
	}
}

func TestClockSkew(t *testing.T) {
	e := newTestEnv(t, ConfigInput{})
	for _, c := range []struct {
		off time.Duration
		ok  bool
	}{{4 * time.Minute, true}, {-4 * time.Minute, true}, {6 * time.Minute, false}, {-6 * time.Minute, false}} {
		e.clock.offset = c.off
		for _, s := range signers {
			st, b := s.post(t, e, e.xksURL(testPrefix, "health"), must(json.Marshal(healthBody())), e.akid, e.secret)
			if c.ok {
				wantOK(t, st, b, &HealthResponse{})
			} else {
				wantError(t, st, b, AuthenticationFailedException)
			}
		}
	}
}

func TestThrottling(t *testing.T) {
	rate := 2
	e, cm := newCountingEnv(t, ConfigInput{RateLimit: &rate})
	var names []Name
	for range 4 {
		st, b := e.post(t, testPrefix, "keys/foo/metadata", map[string]any{"requestMetadata": meta("DescribeKey")}, e.akid, e.secret)
		if st == http.StatusOK {
			names = append(names, "")
			continue
		}
		wantError(t, st, b, ThrottlingException)
		names = append(names, ThrottlingException)
	}
	if names[0] != "" || names[3] != ThrottlingException {
		t.Fatalf("answers %v", names)
	}
	// Counted apart from the other refusals, one per throttled answer.
	cm.wait(t, "refused|rate_limit", len(slices.DeleteFunc(names, func(n Name) bool { return n == "" })))
	cm.wait(t, "refused|in_progress", 0)
}

// A new Manager over the same store (an appliance restart) serves the same
// credentials and keys; a configuration write moves the listener.
func TestRestartAndReconfigure(t *testing.T) {
	e := newTestEnv(t, ConfigInput{})
	ctx := context.Background()
	var enc EncryptResponse
	st, b := e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", true), e.akid, e.secret)
	wantOK(t, st, b, &enc)
	e.m.Close()
	m2 := New(Options{HSM: e.h, Store: e.m.o.Store, Version: "test"})
	t.Cleanup(func() { m2.Close() })
	// Reconfiguration is needed because the old listener's port was :0; write
	// the same config with an explicit free port through the new manager.
	if err := m2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	addrs := m2.Addrs(e.mount)
	if len(addrs) != 1 {
		t.Fatalf("not listening after restart: %v", addrs)
	}
	e.m, e.addr = m2, "localhost:"+addrs[0][strings.LastIndexByte(addrs[0], ':')+1:]
	st, b = e.post(t, testPrefix, "keys/foo/decrypt", decBody(&enc, ""), e.akid, e.secret)
	wantOK(t, st, b, &DecryptResponse{})
	before := m2.Addrs(e.mount)[0]
	if _, err := m2.SetConfig(ctx, e.mount, ConfigInput{Prefixes: &[]string{"moved"}}); err != nil {
		t.Fatal(err)
	}
	if m2.Addrs(e.mount)[0] != before {
		t.Fatal("a prefix change restarted the listener")
	}
	st, b = e.post(t, testPrefix, "health", healthBody(), e.akid, e.secret)
	wantError(t, st, b, InvalidURIPathException)
	if _, err := m2.SetConfig(ctx, e.mount, ConfigInput{ListenAddrs: &[]string{"127.0.0.1:0", "[::1]:0"}}); err != nil {
		t.Fatal(err)
	}
	if got := m2.Addrs(e.mount); len(got) != 2 || got[0] == before {
		t.Fatalf("the listener did not move: %v", got)
	}
	if _, err := m2.SetConfig(ctx, e.mount, ConfigInput{ListenAddrs: &[]string{"256.0.0.1:1"}}); err == nil {
		t.Fatal("an unusable listen address was accepted")
	}
	if len(m2.Addrs(e.mount)) != 2 {
		t.Fatal("the previous listener was not brought back")
	}
}

// No secret, plaintext or key material reaches the log or the store.
func TestNothingSensitiveInLogsOrStore(t *testing.T) {
	e := newTestEnv(t, ConfigInput{})
	var buf logbuf.Buffer
	for _, rt := range e.m.mounts {
		rt.p.log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	secretPT := base64.StdEncoding.EncodeToString([]byte("top secret plaintext 42"))
	var enc EncryptResponse
	st, b := e.post(t, testPrefix, "keys/foo/encrypt", encBody(secretPT, tcAAD, true), e.akid, e.secret)
	wantOK(t, st, b, &enc)
	st, b = e.post(t, testPrefix, "keys/foo/decrypt", decBody(&enc, tcAAD), e.akid, e.secret)
	wantOK(t, st, b, &DecryptResponse{})
	st, b = e.post(t, testPrefix, "keys/foo/encrypt", encBody(secretPT, "", false), e.akid, "x"+e.secret)
	wantError(t, st, b, AuthenticationFailedException)
	log := buf.String()
	if !strings.Contains(log, "kms_request_id=") || !strings.Contains(log, "AuthenticationFailedException") {
		t.Fatalf("the request log lacks metadata or errors:\n%s", log)
	}
	var dump bytes.Buffer
	e.m.o.Store.View(context.Background(), func(tx store.Tx) error {
		paths, _ := tx.List(context.Background(), "")
		for _, p := range paths {
			v, _ := tx.Get(context.Background(), p)
			dump.WriteString(p + "=" + string(v) + "\n")
		}
		return nil
	})
	for _, s := range []string{e.secret, secretPT, "top secret plaintext"} {
		if strings.Contains(log, s) {
			t.Fatalf("the log holds %q", s)
		}
		if strings.Contains(dump.String(), s) {
			t.Fatalf("the store holds %q", s)
		}
	}
}

type countMetrics struct {
	mu sync.Mutex
	n  map[string]int
}

// XKSRefused counts under "refused|reason".
func (c *countMetrics) XKSRefused(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n["refused|"+reason]++
}

func (c *countMetrics) XKSRequest(keystore, op, errName string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[keystore+"|"+op+"|"+errName]++
}

// Request and Error count the interface-wide series (latency by operation,
// errors by kind) under "request|…" and "error|…".
func (c *countMetrics) Request(iface, op string, status int, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 {
		c.n["request|bad-duration"]++
	}
	c.n[fmt.Sprintf("request|%s|%s|%d", iface, op, status)]++
}

func (c *countMetrics) Error(iface, kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n["error|"+iface+"|"+kind]++
}

// Every request is counted by key store, operation and errorName; paths
// that name no configured key store are counted without one.
func TestMetrics(t *testing.T) {
	e := newTestEnv(t, ConfigInput{})
	cm := &countMetrics{n: map[string]int{}}
	for _, rt := range e.m.mounts {
		rt.p.metrics = cm
	}
	e.post(t, testPrefix, "health", healthBody(), e.akid, e.secret)
	e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", false), e.akid, "x"+e.secret)
	e.post(t, "attacker-chosen", "health", healthBody(), e.akid, e.secret)
	e.post(t, testPrefix, "nothing", healthBody(), e.akid, e.secret)
	cm.mu.Lock()
	defer cm.mu.Unlock()
	p := URIPath(testPrefix)
	for _, k := range []string{p + "|health|", p + "|encrypt|AuthenticationFailedException", "|health|InvalidUriPathException", "|invalid|InvalidUriPathException",
		"request|xks|health|200", "request|xks|encrypt|401", "request|xks|invalid|404", "error|xks|AuthenticationFailedException"} {
		if cm.n[k] != 1 {
			t.Errorf("count %q = %d (all: %v)", k, cm.n[k], cm.n)
		}
	}
	if cm.n["request|xks|health|404"] != 1 || cm.n["error|xks|InvalidUriPathException"] != 2 || cm.n["request|bad-duration"] != 0 {
		t.Errorf("counts %v", cm.n)
	}
}
