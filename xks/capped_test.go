package xks

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/fault"
)

// max_connections bounds the connections open at once: one more is closed
// before its handshake, a closed one frees its place, and the bound can be
// raised without a restart. A value out of range is refused.
func TestMaxConnections(t *testing.T) {
	ctx := context.Background()
	two := 2
	e, cm := newCountingEnv(t, ConfigInput{MaxConnections: &two})
	dial := func() (*tls.Conn, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr, &tls.Config{RootCAs: e.pool, ServerName: "localhost"})
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c, nil
	}
	var open []*tls.Conn
	for range 2 {
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	if c, err := dial(); err == nil {
		c.Close()
		t.Fatal("a third connection was served with max_connections=2")
	}
	cm.wait(t, "refused|max_connections", 1)
	// A closed connection gives its place back (once the server sees it).
	open[0].Close()
	var err error
	for range 50 {
		var c *tls.Conn
		if c, err = dial(); err == nil {
			open[0] = c
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("no connection after one closed: %v", err)
	}
	// Raised, it takes effect on the running listener.
	three := 3
	if _, err := e.m.SetConfig(ctx, e.mount, ConfigInput{MaxConnections: &three}); err != nil {
		t.Fatal(err)
	}
	c, err := dial()
	if err != nil {
		t.Fatalf("a third connection with max_connections=3: %v", err)
	}
	c.Close()
	for _, c := range open {
		c.Close()
	}
	for _, bad := range []int{0, -1, 1<<20 + 1} {
		if _, err := e.m.SetConfig(ctx, e.mount, ConfigInput{MaxConnections: &bad}); err == nil {
			t.Fatalf("max_connections=%d accepted", bad)
		}
	}
}

// A configuration stored before max_connections existed holds 0: written
// again without the field, it gets the default. An explicit 0, which a
// writer may mean as "no limit", is refused as any value out of range is.
func TestMaxConnectionsZero(t *testing.T) {
	stored := func() *Config {
		return &Config{ListenAddrs: []string{"127.0.0.1:0"}, Prefixes: []string{""}, TLSCertPEM: "cert", TLSKeyBlob: []byte{1},
			MaxPlaintext: DefaultPlaintext, MaxAAD: DefaultAAD}
	}
	c := stored()
	if _, err := c.apply(ConfigInput{}); err != nil || c.MaxConnections != DefaultMaxConnections {
		t.Fatalf("a stored configuration without max_connections: %d, %v; want the default %d", c.MaxConnections, err, DefaultMaxConnections)
	}
	zero := 0
	c = stored()
	_, err := c.apply(ConfigInput{MaxConnections: &zero})
	if fault.KindOf(err) != fault.BadInput || err.Error() != fmt.Sprintf("max_connections must be between 1 and %d", maxConnectionsCap) {
		t.Fatalf("max_connections=0: %v (%s), want bad input", err, fault.KindOf(err))
	}
	// The size limits likewise: an explicit 0 is refused, not read as the
	// default (nor as no limit).
	for name, in := range map[string]ConfigInput{"max_plaintext_bytes": {MaxPlaintext: &zero}, "max_aad_bytes": {MaxAAD: &zero}} {
		c = stored()
		if _, err := c.apply(in); fault.KindOf(err) != fault.BadInput || !strings.HasPrefix(err.Error(), name+" must be") {
			t.Fatalf("%s=0: %v (%s), want bad input", name, err, fault.KindOf(err))
		}
	}
	c = stored()
	c.MaxPlaintext, c.MaxAAD = 0, 0
	if _, err := c.apply(ConfigInput{}); err != nil || c.MaxPlaintext != DefaultPlaintext || c.MaxAAD != DefaultAAD {
		t.Fatalf("a configuration without limits: %d, %d, %v; want the defaults", c.MaxPlaintext, c.MaxAAD, err)
	}
}

// HTTP/2 carries many streams on one connection, each of which may hold a
// body before its signature is checked: the requests in progress on a
// mount are bounded by max_connections as its connections are, and one
// more is refused (ThrottlingException) before its body is read.
func TestInflightRequestsBoundedOverHTTP2(t *testing.T) {
	two := 2
	e, cm := newCountingEnv(t, ConfigInput{MaxConnections: &two})
	p := e.runtime().p
	c := e.h2Client()
	defer c.CloseIdleConnections()
	url, body := e.encryptTarget(t)
	// Signed requests whose bodies come slowly hold their streams in the
	// body read until the rest is written.
	type result struct {
		resp   *http.Response
		err    error
		reused bool
	}
	var rests []chan struct{} // closing one lets its body's rest go
	defer func() {
		for _, r := range rests {
			select {
			case <-r:
			default:
				close(r)
			}
		}
	}()
	send := func() chan result {
		req := sdkRequest(t, url, body, e.akid, e.secret, time.Now())
		r, w := io.Pipe()
		rest := make(chan struct{})
		rests = append(rests, rest)
		req.Body, req.GetBody = r, nil
		done := make(chan result, 1)
		var reused bool
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused },
		}))
		go func() {
			resp, err := c.Do(req)
			done <- result{resp, err, reused}
		}()
		go func() {
			w.Write(body[:10])
			<-rest
			w.Write(body[10:])
			w.Close()
		}()
		return done
	}
	var held []chan result
	for want := int64(1); want <= 2; want++ {
		held = append(held, send())
		waitInflight(t, p, want)
	}
	select {
	case r := <-send():
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.resp.Body.Close()
		b, _ := io.ReadAll(r.resp.Body)
		if r.resp.ProtoMajor != 2 {
			t.Fatalf("the client spoke %s, want HTTP/2", r.resp.Proto)
		}
		wantError(t, r.resp.StatusCode, b, ThrottlingException)
		cm.wait(t, "refused|in_progress", 1)
	case <-time.After(5 * time.Second):
		t.Fatal("a third request in progress on one HTTP/2 connection was admitted with max_connections=2")
	}
	// The held requests end, served, and give their places back.
	close(rests[0])
	close(rests[1])
	// served waits for a held request's answer, which must be a success,
	// and tells whether it went on a connection opened before.
	served := func(ch chan result) bool {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		b, _ := io.ReadAll(r.resp.Body)
		r.resp.Body.Close()
		wantOK(t, r.resp.StatusCode, b, &EncryptResponse{})
		return r.reused
	}
	for _, ch := range held {
		served(ch)
	}
	if n := p.inflight.Load(); n != 0 {
		t.Fatalf("%d requests in progress after all ended", n)
	}
	// A throttled stream does not end its connection (a GOAWAY would make
	// KMS open another, a handshake signed in the HSM, while the proxy is
	// loaded): the next request goes on the same one.
	next := send()
	close(rests[len(rests)-1])
	if !served(next) {
		t.Fatal("the request after a throttled one opened a new connection")
	}
}

// A request counts as in progress from its start, before the cluster's
// freshness guard, which can wait up to a second: with max_connections
// requests waiting there, one more is refused at once instead of waiting
// with them (HTTP/2 would let up to 250 a connection wait, each holding
// its headers and a goroutine).
func TestInflightRequestsBoundedWhileGuardWaits(t *testing.T) {
	two := 2
	var entered atomic.Int64
	release := make(chan struct{})
	guard := func(ctx context.Context) error {
		entered.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e := newTestEnvWith(t, ConfigInput{MaxConnections: &two}, true, func(o *Options) { o.Guard = guard })
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	c := e.h2Client()
	defer c.CloseIdleConnections()
	url, body := e.encryptTarget(t)
	type result struct {
		status int
		proto  int
		body   []byte
		err    error
	}
	send := func() chan result {
		req := sdkRequest(t, url, body, e.akid, e.secret, time.Now())
		done := make(chan result, 1)
		go func() {
			resp, err := c.Do(req)
			if err != nil {
				done <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			done <- result{resp.StatusCode, resp.ProtoMajor, b, err}
		}()
		return done
	}
	var held []chan result
	for want := int64(1); want <= 2; want++ {
		held = append(held, send())
		deadline := time.Now().Add(5 * time.Second)
		for entered.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d requests in the guard, want %d", entered.Load(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	select {
	case r := <-send():
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.proto != 2 {
			t.Fatalf("the client spoke HTTP/%d, want HTTP/2", r.proto)
		}
		wantError(t, r.status, r.body, ThrottlingException)
	case <-time.After(5 * time.Second):
		t.Fatal("a third request waited in the guard with max_connections=2")
	}
	if n := entered.Load(); n != 2 {
		t.Fatalf("%d requests reached the guard, want 2", n)
	}
	// Let through, the waiting requests are served.
	close(release)
	released = true
	for _, ch := range held {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.status != http.StatusOK {
			t.Fatalf("a request let through by the guard: %d %s", r.status, r.body)
		}
	}
}

// A request that does not authenticate has its connection closed after the
// answer, so that keep-alive cannot hold a place under max_connections for
// a client without credentials; a signed one keeps its connection.
func TestUnauthenticatedConnectionClosed(t *testing.T) {
	e := newTestEnv(t, ConfigInput{Prefixes: &[]string{testPrefix, "other"}})
	c := e.client()
	defer c.CloseIdleConnections()
	url, body := e.encryptTarget(t)
	// A valid signature by the credential of another key store does not
	// authenticate the connection either.
	resp, err := c.Do(sdkRequest(t, e.xksURL("other", "keys/foo/encrypt"), body, e.akid, e.secret, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, resp.StatusCode, b, AuthenticationFailedException)
	if !resp.Close {
		t.Fatal("a request with the credential of another key store kept its connection")
	}
	req := sdkRequest(t, url, body, e.akid, "wrong-secret-wrong-secret-wrong-secret-wrong", time.Now())
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || !resp.Close {
		t.Fatalf("a request with a bad signature: %d, connection kept: %v", resp.StatusCode, !resp.Close)
	}
	resp, err = c.Do(sdkRequest(t, url, body, e.akid, e.secret, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("a signed request: %d, connection closed: %v", resp.StatusCode, resp.Close)
	}
	// On a connection that has authenticated, a failure (a credential
	// being rotated) keeps it.
	resp, err = c.Do(sdkRequest(t, url, body, e.akid, "wrong-secret-wrong-secret-wrong-secret-wrong", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || resp.Close {
		t.Fatalf("a bad signature on an authenticated connection: %d, connection closed: %v", resp.StatusCode, resp.Close)
	}
	// Refused while the proxy loads a change of another node (before the
	// signature is looked at): the connection stays for KMS's retry.
	e.m.mu.Lock()
	e.m.Changed(context.Background(), []string{"kv:" + kvPath(e.mount, "cred", e.akid)})
	resp, err = c.Do(sdkRequest(t, url, body, e.akid, e.secret, time.Now()))
	e.m.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, resp.StatusCode, b, DependencyTimeoutException)
	if resp.Close {
		t.Fatal("a request refused while the proxy reloads closed its connection")
	}
}

// Over HTTP/2 a request that does not authenticate makes the server send
// GOAWAY: the client opens no more streams on the connection, which is
// closed once its streams have ended, and its place under max_connections
// is given back. A signed request keeps its connection.
func TestUnauthenticatedConnectionClosedOverHTTP2(t *testing.T) {
	e := newTestEnv(t, ConfigInput{})
	rt := e.runtime()
	c := e.h2Client()
	defer c.CloseIdleConnections()
	url, body := e.encryptTarget(t)
	send := func(secret string) (reused bool, status int, b []byte) {
		t.Helper()
		resp, b, reused := doTraced(t, c, sdkRequest(t, url, body, e.akid, secret, time.Now()))
		if resp.ProtoMajor != 2 {
			t.Fatalf("the client spoke %s, want HTTP/2", resp.Proto)
		}
		return reused, resp.StatusCode, b
	}
	// until waits for the number of connections the mount counts open.
	until := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for rt.open.Load() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections open, want %d", rt.open.Load(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	_, status, b := send("wrong-secret-wrong-secret-wrong-secret-wrong")
	wantError(t, status, b, AuthenticationFailedException)
	until(0)
	reused, status, b := send(e.secret)
	if status != http.StatusOK || reused {
		t.Fatalf("a signed request after a refused one: %d %s, on the refused one's connection: %v", status, b, reused)
	}
	reused, status, b = send(e.secret)
	if status != http.StatusOK || !reused {
		t.Fatalf("a second signed request: %d %s, on the first one's connection: %v", status, b, reused)
	}
	until(1)
}

// A connection none of whose requests has authenticated is closed
// unauthenticatedTimeout after it was accepted, whatever it is doing, and
// gives its place back: over HTTP/2 one that opens no stream would
// otherwise stay for the idle timeout (120 s), over HTTP/1.1 one that
// sends nothing for the header timeout (10 s). A connection whose request
// authenticated outlives the timeout.
func TestUnauthenticatedConnectionTimesOut(t *testing.T) {
	old := unauthenticatedTimeout
	unauthenticatedTimeout = 2 * time.Second // room for a signed handshake on a loaded machine
	t.Cleanup(func() { unauthenticatedTimeout = old })
	one := 1
	e, cm := newCountingEnv(t, ConfigInput{MaxConnections: &one})
	rt := e.runtime()
	// closed waits until the mount counts no connection open.
	closed := func(what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for rt.open.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d connections open after the last one closed", what, rt.open.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, proto := range []string{"h2", "http/1.1"} {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr,
			&tls.Config{RootCAs: e.pool, ServerName: "localhost", NextProtos: []string{proto}})
		if err != nil {
			t.Fatal(err)
		}
		if p := c.ConnectionState().NegotiatedProtocol; p != proto {
			t.Fatalf("negotiated %q, want %q", p, proto)
		}
		if proto == "h2" {
			// The client preface and an empty SETTINGS frame, then no stream.
			if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.Copy(io.Discard, c)
		c.Close()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("%s: a connection without a request was still open after 5 s", proto)
		}
		closed(proto)
	}
	cm.wait(t, "refused|unauthenticated_timeout", 2)
	for _, h2 := range []bool{true, false} {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: e.pool}, ForceAttemptHTTP2: h2}}
		url := e.xksURL(testPrefix, "keys/foo/encrypt")
		body, err := json.Marshal(encBody("aGVsbG8=", "", false))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			var reused bool
			req := sdkRequest(t, url, body, e.akid, e.secret, time.Now())
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused },
			}))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || (resp.ProtoMajor == 2) != h2 {
				t.Fatalf("a signed request: %d over %s", resp.StatusCode, resp.Proto)
			}
			if i == 1 && !reused {
				t.Fatalf("%s: the connection of an authenticated request was closed after the timeout", resp.Proto)
			}
			if i == 0 {
				time.Sleep(2 * unauthenticatedTimeout)
			}
		}
		c.CloseIdleConnections()
		closed("a signed request's connection")
	}
	// The authenticated connections were closed by their clients, not by
	// the timer.
	cm.wait(t, "refused|unauthenticated_timeout", 2)
}

// Requests on a connection that has authenticated (AWS KMS's) are not
// counted against the bound on requests in progress, so clients without
// credentials filling it cannot throttle KMS; and a connection that has
// not authenticated may hold at most maxPendingPerConn requests, so a few
// HTTP/2 connections cannot fill the bound alone.
func TestInflightBoundSparesAuthenticatedConnections(t *testing.T) {
	three := 3
	e, cm := newCountingEnv(t, ConfigInput{MaxConnections: &three})
	p := e.runtime().p
	url, body := e.encryptTarget(t)
	kms := e.h2Client()
	defer kms.CloseIdleConnections()
	signed := func() (int, []byte, bool) {
		resp, b, reused := doTraced(t, kms, sdkRequest(t, url, body, e.akid, e.secret, time.Now()))
		return resp.StatusCode, b, reused
	}
	st, b, _ := signed()
	wantOK(t, st, b, &EncryptResponse{})

	// A stranger's connection holds unsigned requests whose bodies never end.
	stranger := e.h2Client()
	defer stranger.CloseIdleConnections()
	var pipes []*io.PipeWriter
	defer func() {
		for _, w := range pipes {
			w.Close()
		}
	}()
	hold := func() chan *http.Response {
		r, w := io.Pipe()
		pipes = append(pipes, w)
		req, err := http.NewRequest(http.MethodPost, url, r)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan *http.Response, 1)
		go func() {
			resp, err := stranger.Do(req)
			if err != nil {
				resp = nil
			}
			done <- resp
		}()
		go w.Write([]byte(`{"requestMetadata":`))
		return done
	}
	// fill holds n requests on the stranger's connection; overflow checks
	// that one more is throttled at once.
	fill := func(n int64) {
		for want := int64(1); want <= n; want++ {
			hold()
			waitInflight(t, p, want)
		}
	}
	overflow := func(what string) {
		select {
		case resp := <-hold():
			if resp == nil {
				t.Fatalf("%s failed", what)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantError(t, resp.StatusCode, b, ThrottlingException)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s was admitted", what)
		}
	}
	fill(3)
	// The bound is full; KMS's authenticated connection still serves.
	st, b, reused := signed()
	wantOK(t, st, b, &EncryptResponse{})
	if !reused {
		t.Fatal("KMS's request did not go on its authenticated connection")
	}
	overflow("a fourth unauthenticated request with max_connections=3")
	cm.wait(t, "refused|in_progress", 1)
	for _, w := range pipes {
		w.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.inflight.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in progress after the stranger's ended", p.inflight.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}

	// One unauthenticated connection holds at most maxPendingPerConn.
	if _, err := e.m.SetConfig(context.Background(), e.mount, ConfigInput{MaxConnections: new(int(1000))}); err != nil {
		t.Fatal(err)
	}
	p = e.runtime().p
	greedy := e.h2Client()
	defer greedy.CloseIdleConnections()
	stranger = greedy
	fill(maxPendingPerConn)
	overflow(fmt.Sprintf("request %d on one unauthenticated connection", maxPendingPerConn+1))
	cm.wait(t, "refused|connection_in_progress", 1)
	cm.wait(t, "refused|in_progress", 1)
}

// newCountingEnv is newTestEnv with its metrics counted from the start.
func newCountingEnv(t *testing.T, cfg ConfigInput) (*testEnv, *countMetrics) {
	cm := &countMetrics{n: map[string]int{}}
	return newTestEnvWith(t, cfg, true, func(o *Options) { o.Metrics = cm }), cm
}

// wait waits until the count under key is want (a refusal may be counted
// just after the client sees it), and fails if it is not within 5 s.
func (c *countMetrics) wait(t *testing.T, key string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n := c.n[key]
		c.mu.Unlock()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s counted %d times, want %d", key, n, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runtime is the mount's running listener.
func (e *testEnv) runtime() *runtime {
	e.m.mu.Lock()
	defer e.m.mu.Unlock()
	return e.m.mounts[e.mount]
}

// h2Client is a client of the mount that speaks HTTP/2.
func (e *testEnv) h2Client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: e.pool}, ForceAttemptHTTP2: true}}
}

// waitInflight waits up to 5 s for at least want requests in progress.
func waitInflight(t *testing.T, p *proxy, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.inflight.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in progress, want %d", p.inflight.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// encryptTarget is the URL of an Encrypt with key foo and a body for it.
func (e *testEnv) encryptTarget(t *testing.T) (string, []byte) {
	t.Helper()
	body, err := json.Marshal(encBody("aGVsbG8=", "", false))
	if err != nil {
		t.Fatal(err)
	}
	return e.xksURL(testPrefix, "keys/foo/encrypt"), body
}

// doTraced sends req on c and returns the answer (its body read and
// closed) and whether it went on a connection opened before.
func doTraced(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte, bool) {
	t.Helper()
	var reused bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b, reused
}

// The HSM round trip of a health check answers every caller for a while:
// a caller that gave up (AWS KMS cancels after 250 ms) must not make it a
// failure for the others.
func TestHealthCheckOutlivesACancelledCaller(t *testing.T) {
	e := newTestEnv(t, ConfigInput{})
	p := e.runtime().p
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.deepCheck(gone, p.st.Load()); err != nil {
		t.Fatalf("the check for a caller that gave up: %v", err)
	}
	if err := p.deepCheck(context.Background(), p.st.Load()); err != nil {
		t.Fatalf("the next caller got: %v", err)
	}
}

// A connection authenticated by a credential that is revoked since no
// longer counts as authenticated: a refused request closes it, as it
// would a stranger's.
func TestRevokedCredentialsConnectionIsNotAuthenticated(t *testing.T) {
	e := newTestEnv(t, ConfigInput{})
	c := e.client()
	defer c.CloseIdleConnections()
	url, body := e.encryptTarget(t)
	send := func() (*http.Response, []byte) {
		t.Helper()
		resp, err := c.Do(sdkRequest(t, url, body, e.akid, e.secret, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	if resp, b := send(); resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("a signed request: %d %s, connection closed: %v", resp.StatusCode, b, resp.Close)
	}
	if err := e.m.RevokeCredential(context.Background(), e.mount, e.akid); err != nil {
		t.Fatal(err)
	}
	resp, b := send()
	wantError(t, resp.StatusCode, b, AuthenticationFailedException)
	if !resp.Close {
		t.Fatal("the connection of a revoked credential was kept after a refused request")
	}
}
