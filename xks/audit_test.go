package xks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

// stalledAuditor is the trail of a disk that has stalled: while stalled,
// LogPair (which waits for durability) waits too.
type stalledAuditor struct {
	Auditor
	stall atomic.Pointer[chan struct{}]
}

func (a *stalledAuditor) LogPair(ctx context.Context, e *audit.Entry) error {
	if ch := a.stall.Load(); ch != nil {
		<-*ch
	}
	return a.Auditor.LogPair(ctx, e)
}

// A request the throttle refuses (rate_limit, or the bound on requests in
// progress) is answered ThrottlingException without waiting for the trail
// to be durable, so that a flood of them neither waits on nor costs a disk
// flush each, while a request that is served still waits; once the disk
// moves again, the trail holds the refused requests' events.
func TestThrottledAnswersDoNotWaitForTheTrail(t *testing.T) {
	rate := 1
	var trail *stalledAuditor
	e := newTestEnvWith(t, ConfigInput{RateLimit: &rate}, true, func(o *Options) {
		trail = &stalledAuditor{Auditor: o.Audit}
		o.Audit = trail
	})
	logPath := filepath.Join(t.TempDir(), "audit.log")
	if err := e.audit.Enable(context.Background(), audit.Device{Path: "file", Type: "file", FilePath: logPath}); err != nil {
		t.Fatal(err)
	}
	body := must(json.Marshal(map[string]any{"requestMetadata": meta("DescribeKey")}))
	url := e.xksURL(testPrefix, "keys/foo/metadata")
	type answer struct {
		status int
		body   []byte
		err    error
	}
	send := func(req *http.Request) chan answer {
		ch := make(chan answer, 1)
		go func() {
			resp, err := e.client().Do(req)
			if err != nil {
				ch <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			ch <- answer{resp.StatusCode, b, err}
		}()
		return ch
	}
	within := func(ch chan answer, what string) answer {
		t.Helper()
		select {
		case a := <-ch:
			if a.err != nil {
				t.Fatal(a.err)
			}
			return a
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no answer while the trail is stalled", what)
		}
		panic("unreachable")
	}

	a := within(send(sdkRequest(t, url, body, e.akid, e.secret, time.Now())), "the first request")
	wantOK(t, a.status, a.body, &MetadataResponse{})
	stall := make(chan struct{})
	trail.stall.Store(&stall)
	released := false
	release := func() {
		if !released {
			released = true
			trail.stall.Store(nil)
			close(stall)
		}
	}
	defer release()

	// Over rate_limit (its one token a second is taken).
	a = within(send(sdkRequest(t, url, body, e.akid, e.secret, time.Now())), "a request over rate_limit")
	wantError(t, a.status, a.body, ThrottlingException)
	// Over the bounds on requests in progress of connections that have not
	// authenticated: the mount's, and a connection's.
	p := e.runtime().p
	for _, over := range []string{"the mount's", "a connection's"} {
		r, _ := serverSide(t, sdkRequest(t, url, body, e.akid, e.secret, time.Now()))
		if over == "the mount's" {
			p.inflight.Store(int64(p.st.Load().cfg.ConnectionLimit()))
		} else {
			cc := &countedConn{}
			cc.pending.Store(maxPendingPerConn)
			r = r.WithContext(context.WithValue(r.Context(), connKey{}, cc))
		}
		served := make(chan *httptest.ResponseRecorder, 1)
		go func() {
			w := httptest.NewRecorder()
			p.ServeHTTP(w, r)
			served <- w
		}()
		select {
		case w := <-served:
			wantError(t, w.Code, w.Body.Bytes(), ThrottlingException)
		case <-time.After(5 * time.Second):
			t.Fatalf("a request over %s bound on requests in progress: no answer while the trail is stalled", over)
		}
		p.inflight.Store(0)
	}
	// A request that is served waits for the trail (a second later by the
	// proxy's clock, the rate limit has a token again).
	e.clock.offset = 2 * time.Second
	pending := send(sdkRequestFor(t, url, body, e.akid, e.secret, time.Now().Add(e.clock.offset), testRegion, testService))
	select {
	case a := <-pending:
		t.Fatalf("a served request answered (%d %s) while the trail was stalled", a.status, a.body)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	a = within(pending, "the served request")
	wantOK(t, a.status, a.body, &MetadataResponse{})

	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var responses []audit.Event
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var ev audit.Event
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == "response" {
			responses = append(responses, ev)
		}
	}
	var statuses []int
	for _, ev := range responses {
		statuses = append(statuses, ev.Response.Status)
		if ev.Response.Status == 429 && ev.Response.XKSErrorName != string(ThrottlingException) {
			t.Fatalf("a throttled request's event names %q", ev.Response.XKSErrorName)
		}
	}
	if !slices.Equal(statuses, []int{200, 429, 429, 429, 200}) {
		t.Fatalf("response events with statuses %v, want 200, 429, 429, 429, 200", statuses)
	}
	if rep, err := audit.Verify([]string{logPath}); err != nil || rep.Problem != nil || rep.Events != 10 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
