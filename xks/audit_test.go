package xks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/loadgen"
)

// XKS requests go to the audit trail with the SigV4 access key and the AWS
// principal; plaintext, ciphertext and the SigV4 secret never appear.
func TestXKSAuditTrail(t *testing.T) {
	e := newTestEnv(t, ConfigInput{})
	logPath := filepath.Join(t.TempDir(), "audit.log")
	if err := e.audit.Enable(context.Background(), audit.Device{Path: "file", Type: "file", FilePath: logPath}); err != nil {
		t.Fatal(err)
	}
	plaintext := []byte("xks audit plaintext that must never be in the trail")
	body := encBody(base64.StdEncoding.EncodeToString(plaintext), base64.StdEncoding.EncodeToString([]byte("aad")), false)
	st, b := e.post(t, testPrefix, "keys/foo/encrypt", body, e.akid, e.secret)
	var enc EncryptResponse
	wantOK(t, st, b, &enc)
	st, b = e.post(t, testPrefix, "keys/encrypt_only_key/decrypt", decBody(&enc, base64.StdEncoding.EncodeToString([]byte("aad"))), e.akid, e.secret)
	wantError(t, st, b, InvalidKeyUsageException)
	st, b = e.post(t, testPrefix, "keys/foo/encrypt", body, e.akid, strings.Repeat("A", len(e.secret)))
	wantError(t, st, b, AuthenticationFailedException)

	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range [][]byte{plaintext, []byte(base64.StdEncoding.EncodeToString(plaintext)), []byte(e.secret), enc.Ciphertext, []byte(base64.StdEncoding.EncodeToString(enc.Ciphertext))} {
		if bytes.Contains(raw, secret) {
			t.Fatalf("the trail holds a secret value in the clear")
		}
	}
	var responses []audit.Event
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var ev audit.Event
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Interface != "xks" {
			t.Fatalf("interface %q", ev.Interface)
		}
		if ev.Type == "response" {
			responses = append(responses, ev)
		}
	}
	if len(responses) != 3 {
		t.Fatalf("%d response events, want 3", len(responses))
	}
	ok, denied, unauth := responses[0], responses[1], responses[2]
	if ok.Response.Status != 200 || ok.Auth.AccessKeyID != e.akid || ok.Auth.PrincipalARN != tcPrincipal ||
		ok.Request.Operation != "encrypt" || len(ok.Request.Objects) != 1 || ok.Request.Objects[0] != "foo" ||
		!strings.HasPrefix(ok.Request.Data["plaintext"].(string), audit.HMACPrefix) || ok.Request.Data["kmsKeyArn"] != tcKeyArn {
		t.Fatalf("encrypt event %+v", ok)
	}
	wantHash, _ := e.audit.Hash("file", plaintext)
	if ok.Request.Data["plaintext"] != wantHash {
		t.Fatal("the plaintext's HMAC is not the device's audit-hash")
	}
	if denied.Response.XKSErrorName != string(InvalidKeyUsageException) || denied.Response.Status != 400 {
		t.Fatalf("denied event %+v", denied.Response)
	}
	if unauth.Response.XKSErrorName != string(AuthenticationFailedException) || unauth.Auth.AccessKeyID != "" {
		t.Fatalf("unauthenticated event %+v %+v", unauth.Response, unauth.Auth)
	}
	// An event carries KMS's request id; a request refused before its body
	// was read carries one of the proxy's own.
	if want := body["requestMetadata"].(map[string]any)["kmsRequestId"]; ok.RequestID != want || ok.Request.Data["kmsRequestId"] != want {
		t.Fatalf("request id %q (data %v), want KMS's %v", ok.RequestID, ok.Request.Data["kmsRequestId"], want)
	}
	if !strings.HasPrefix(unauth.RequestID, "xks-") || len(unauth.RequestID) != len("xks-")+24 {
		t.Fatalf("request id of the unauthenticated request %q", unauth.RequestID)
	}
	if rep, err := audit.Verify([]string{logPath}); err != nil || rep.Problem != nil {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// With the trail unwritable, an Encrypt is refused before the HSM is used.
func TestXKSAuditFailsClosed(t *testing.T) {
	e := newTestEnv(t, ConfigInput{})
	logPath := filepath.Join(t.TempDir(), "audit.log")
	if err := e.audit.Enable(context.Background(), audit.Device{Path: "file", Type: "file", FilePath: logPath}); err != nil {
		t.Fatal(err)
	}
	os.Remove(logPath)
	if err := os.Symlink("/dev/full", logPath); err != nil {
		t.Fatal(err)
	}
	// Reopening onto a file that cannot be made durable is refused.
	if err := e.audit.Reopen(); err == nil || !strings.Contains(err.Error(), "sync") {
		t.Fatalf("reopen onto /dev/full: %v", err)
	}
	st, b := e.post(t, testPrefix, "keys/foo/encrypt", encBody(base64.StdEncoding.EncodeToString([]byte("p")), "", false), e.akid, e.secret)
	wantError(t, st, b, InternalException)
	if !strings.Contains(string(b), "audit trail") {
		t.Fatalf("answer %s", b)
	}
}

// A request whose handling panics is answered InternalException, and the
// trail holds its request and response events all the same.
func TestXKSAuditPanic(t *testing.T) {
	panicking := atomic.Bool{}
	e := newTestEnvWith(t, ConfigInput{}, true, func(o *Options) {
		o.Guard = func(context.Context) error {
			if panicking.Load() {
				panic("a bug")
			}
			return nil
		}
	})
	logPath := filepath.Join(t.TempDir(), "audit.log")
	if err := e.audit.Enable(context.Background(), audit.Device{Path: "file", Type: "file", FilePath: logPath}); err != nil {
		t.Fatal(err)
	}
	panicking.Store(true)
	body := encBody(base64.StdEncoding.EncodeToString([]byte("p")), "", false)
	st, b := e.post(t, testPrefix, "keys/foo/encrypt", body, e.akid, e.secret)
	wantError(t, st, b, InternalException)
	panicking.Store(false)
	st, b = e.post(t, testPrefix, "keys/foo/encrypt", body, e.akid, e.secret)
	wantOK(t, st, b, &EncryptResponse{})

	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var evs []audit.Event
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var ev audit.Event
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if len(evs) != 4 {
		t.Fatalf("%d events, want a request and a response event for each of 2 requests", len(evs))
	}
	req, resp := evs[0], evs[1]
	if req.Type != "request" || resp.Type != "response" || req.RequestID != resp.RequestID ||
		resp.Response.Status != 500 || resp.Response.XKSErrorName != string(InternalException) {
		t.Fatalf("events of the request that panicked: %+v %+v", req, resp.Response)
	}
	if rep, err := audit.Verify([]string{logPath}); err != nil || rep.Problem != nil {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// BenchmarkXKSAuditOverhead: Encrypt throughput with the file audit device
// on and off (issue: overhead ≤ 20%), measured in three rounds of one run
// at each of XKS_AUDIT_WORKERS closed-loop client counts (default
// 64,128,256,512); the figures per count are medians over the rounds and a
// mode's throughput is its peak over the counts (loadgen.OnOff). The
// clients run in a child process (loadproc_test.go), as AWS KMS does on
// other hosts; XKS_LOAD_SEPARATE=0 runs them in this one.
// XKS_AUDIT_STEP (3s) is the length of one measurement.
//
//	go test -run '^$' -bench XKSAuditOverhead -benchtime 1x ./xks
func BenchmarkXKSAuditOverhead(b *testing.B) {
	step := envDuration("XKS_AUDIT_STEP", 3*time.Second)
	counts, err := loadgen.Counts("XKS_AUDIT_WORKERS", []int{64, 128, 256, 512})
	if err != nil {
		b.Fatal(err)
	}
	e, lt := keyholdTarget(b, slices.Max(counts))
	enc, _ := loadBodies(b, lt, "foo")
	run := func(workers int) (loadgen.Sample, int64) {
		cpu := loadgen.CPUTime()
		r, ops, errs := closedLoop(b, lt, step, workers, "keys/foo/encrypt", enc)
		cpu = loadgen.CPUTime() - cpu
		s := loadgen.Sample{Rate: r}
		if ops > 0 {
			s.ServerCPU = float64(cpu.Microseconds()) / float64(ops)
		}
		return s, errs
	}
	if os.Getenv("XKS_LOAD_SEPARATE") != "0" {
		run = func(workers int) (loadgen.Sample, int64) {
			return closedLoopProcess(b, e, lt, step, workers, "keys/foo/encrypt", enc)
		}
	}
	measure := func(workers int) (loadgen.Sample, error) {
		s, errs := run(workers)
		if errs > 0 {
			return s, fmt.Errorf("%d workers: %d failed requests", workers, errs)
		}
		return s, nil
	}
	for range b.N {
		loadgen.AuditOverhead(b, e.audit, counts, measure, fmt.Sprintf("XKS Encrypt, %v a measurement,", step), "workers", "req/s")
	}
}
