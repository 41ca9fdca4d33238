package xks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/hsm"
)

// opTimeout bounds one request's work in the HSM: AWS KMS gives up after 250 ms.
const opTimeout = 2 * time.Second

// proxy is one xks mount's data plane: an http.Handler over the current state.
type proxy struct {
	mountID string
	h       *hsm.HSM
	log     *slog.Logger
	now     func() time.Time
	version string
	metrics Metrics
	audit   Auditor
	guard   func(ctx context.Context) error // nil: state is always fresh (one node)
	pending func() bool                     // a change of another node waits to be loaded

	st      atomic.Pointer[state]
	stale   atomic.Bool // a reload failed: st may grant what the store no longer does
	health  healthCache
	limitMu sync.Mutex
	limits  map[string]*bucket // rate limiters by prefix, kept across reloads

	// inflight counts the requests in progress on connections that have
	// not authenticated, each of which may hold a body before its
	// signature is checked (admit). Over HTTP/1.1 a connection carries one
	// at a time, so max_connections bounds them; HTTP/2 carries several
	// streams on one connection (up to 250), so they are bounded by the
	// same number here, counted before the body is read or anything
	// waits. With the per-connection HTTP/2 receive buffer (listen), the
	// bodies held before authentication are at most max_connections ×
	// (the body limit + 256 KiB).
	inflight atomic.Int64
}

var _ http.Handler = (*proxy)(nil)

// ServeHTTP serves the four XKS operations. Order of checks: the requests
// in progress on connections that have not authenticated
// (ThrottlingException, admit), the freshness of
// the state (DependencyTimeoutException), the path's shape
// (InvalidUriPathException), the method (405), the body size, the
// SigV4 signature (AuthenticationFailedException), the prefix and the
// credential's prefix, the rate limit, the body, then the operation.
func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &logRecord{}
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("xks: panic serving a request", "mount", p.mountID, "panic", v)
			rec.err = xerr(InternalException, "internal error")
			writeError(w, rec.err)
		}
		if rec.admitted {
			p.inflight.Add(-1)
			if rec.conn != nil {
				rec.conn.pending.Add(-1)
			}
		}
		d := time.Since(start)
		p.logRequest(r, rec, d)
		p.count(rec, d)
	}()
	resp, err := p.serveRecovered(r, rec)
	if aerr := p.auditResponse(r, rec, resp, err); aerr != nil {
		resp, err = nil, aerr
	}
	if err != nil && !rec.authed && !connOf(r.Context()).stillAuthenticated(p.st.Load()) {
		// Not authenticated: the connection is closed after the answer
		// (for HTTP/2, once its streams end), so that a client without
		// credentials cannot keep a place under max_connections by
		// keep-alive (a connection that has authenticated before, AWS
		// KMS's, is kept: a failure there is a credential being rotated,
		// not a stranger). Two refusals made before the signature is looked
		// at keep it: while the proxy reloads its state (a routine change
		// on another node; KMS retries on the connection), and over the
		// bound on requests in progress (only HTTP/2 reaches it, where
		// closing would end the connection's other streams' home and
		// cost KMS a new handshake, signed in the HSM, under load). A
		// connection that never authenticates is closed after
		// unauthenticatedTimeout anyway (capped.go).
		if name := wireError(err).Name; name != DependencyTimeoutException && name != ThrottlingException {
			w.Header().Set("Connection", "close")
		}
	}
	var me *methodError
	if errors.As(err, &me) {
		rec.err = &Error{Name: UnsupportedOperationException, Msg: "only POST is allowed on XKS URIs", Err: err}
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{ErrorName: rec.err.Name, ErrorMessage: rec.err.Msg})
		return
	}
	if err != nil {
		rec.err = wireError(err)
		writeError(w, rec.err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// logRecord is what the request log says; never plaintext, keys or secrets.
type logRecord struct {
	route route
	akid  string
	meta  *RequestMetadata
	err   *Error
	entry *audit.Entry // set once the request event is written
	// admitted: counted in proxy.inflight until the request ends.
	admitted bool
	conn     *countedConn // its pending count was taken too (admit)
	// authed: the signature verified with a credential of this key store.
	authed bool
	// throttled: refused by the throttle (rate_limit, or the bounds on
	// requests in progress); its events are queued, not waited for.
	throttled bool
}

// maxPendingPerConn bounds the requests in progress on one connection that
// has not authenticated: HTTP/2 lets a connection carry up to 250, so a
// few connections could otherwise fill the bound on requests in progress.
const maxPendingPerConn = 8

// admit counts a request in progress from its start, before anything that
// can wait (the guard catches up with the cluster for up to a second), and
// refuses one over the bound at once (ThrottlingException). The bound
// covers the requests of connections none of whose requests has
// authenticated yet, which may hold bodies before a signature is checked:
// at most max_connections over the mount, and maxPendingPerConn on one
// connection. A connection that has authenticated (AWS KMS's) is not
// counted, so that clients without credentials cannot throttle it.
func (p *proxy) admit(r *http.Request, rec *logRecord) error {
	cc, st := connOf(r.Context()), p.st.Load()
	if cc.stillAuthenticated(st) {
		return nil
	}
	if cc != nil {
		if cc.pending.Add(1) > maxPendingPerConn {
			cc.pending.Add(-1)
			p.refused(refusedConnInProgress)
			rec.throttled = true
			return xerr(ThrottlingException, "too many requests in progress on this connection before it has authenticated")
		}
	}
	if p.inflight.Add(1) > int64(st.cfg.ConnectionLimit()) {
		p.inflight.Add(-1)
		if cc != nil {
			cc.pending.Add(-1)
		}
		p.refused(refusedInProgress)
		rec.throttled = true
		return xerr(ThrottlingException, "too many requests in progress on this proxy (max_connections)")
	}
	rec.admitted, rec.conn = true, cc
	return nil
}

// serveRecovered is serve; a panic in it (a bug) becomes InternalException,
// so that the request is answered, audited and counted like any failure.
func (p *proxy) serveRecovered(r *http.Request, rec *logRecord) (resp any, err error) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("xks: panic serving a request", "mount", p.mountID, "panic", v)
			resp, err = nil, xerr(InternalException, "internal error")
		}
	}()
	return p.serve(r, rec)
}

func (p *proxy) serve(r *http.Request, rec *logRecord) (any, error) {
	rt, ok := parseRoute(r.URL.Path)
	rec.route = rt // the zero route if !ok
	if err := p.admit(r, rec); err != nil {
		return nil, err
	}
	if p.guard != nil {
		if err := p.guard(r.Context()); err != nil {
			return nil, &Error{Name: DependencyTimeoutException, Msg: "the proxy cannot confirm that its credentials and keys are current", Err: err}
		}
	}
	if p.pending != nil && p.pending() {
		return nil, &Error{Name: DependencyTimeoutException, Msg: "a change made on another node is being loaded; retry"}
	}
	if p.stale.Load() {
		return nil, &Error{Name: DependencyTimeoutException, Msg: "the proxy could not reload its credentials and keys after a change; it refuses requests until it has"}
	}
	st := p.st.Load()
	if !ok {
		return nil, xerr(InvalidURIPathException, "the URI path is not an XKS API path")
	}
	if r.Method != http.MethodPost {
		return nil, &methodError{method: r.Method}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, st.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, xerr(UnsupportedOperationException, "the request body is larger than this proxy's configured limits")
		}
		return nil, xerr(ValidationException, "could not read the request body")
	}
	cred, xe := verifySigV4(r, body, p.now(), st.credential)
	if xe != nil {
		return nil, xe
	}
	rec.akid = cred.AccessKeyID
	if !st.prefixes[rt.Prefix] {
		return nil, xerr(InvalidURIPathException, "no key store is configured at this URI path")
	}
	if cred.Prefix != rt.Prefix {
		return nil, authFailure(errors.New("the credential belongs to another path prefix"))
	}
	// Only a request its credential may make marks its connection as
	// authenticated (uncounted by admit, kept by the server's timeouts).
	rec.authed = true
	connOf(r.Context()).authenticated(cred.AccessKeyID)
	if st.cfg.RateLimit > 0 && !p.bucket(rt.Prefix, st.cfg.RateLimit).take(p.now()) {
		p.refused(refusedRateLimit)
		rec.throttled = true
		return nil, xerr(ThrottlingException, "request rate over the configured limit")
	}
	req, xe := ParseRequest(rt.Op, body, st.limits)
	if xe != nil {
		return nil, xe
	}
	rec.meta = &req.Meta
	// The request event is durable before the HSM is used; if it cannot be
	// written the request is refused (fail closed).
	if err := p.auditRequest(r, rec, req); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	if rt.Op == OpHealth {
		return p.healthStatus(ctx, st)
	}
	k := st.keys[rt.KeyID]
	if k == nil || !k.servesPrefix(rt.Prefix) {
		// A key of other key stores only: as if it did not exist here.
		return nil, xerr(KeyNotFoundException, "external key not found")
	}
	if err := authorize(st.rules, rt.Prefix, rt.KeyID, &req.Meta); err != nil {
		return nil, &Error{Name: AccessDeniedException, Msg: "denied by the proxy's secondary authorization rules", Err: err}
	}
	switch rt.Op {
	case OpMetadata:
		return &MetadataResponse{KeySpec: keySpecAES, KeyUsage: k.Usage, KeyStatus: k.Status()}, nil
	case OpEncrypt:
		return p.encrypt(ctx, k, req)
	default:
		return p.decrypt(ctx, k, req)
	}
}

type methodError struct{ method string }

func (e *methodError) Error() string { return "method " + e.method + " not allowed" }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"errorName":"InternalException"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, status(e.Name), errorBody{ErrorName: e.Name, ErrorMessage: e.Msg})
}

// logRequest logs one request: the spec asks for requestMetadata (above all
// kmsRequestId), the outcome and the processing time. Failures are logged
// with their cause at Info (4xx) or Error (5xx); successes at Debug.
func (p *proxy) logRequest(r *http.Request, rec *logRecord, d time.Duration) {
	level := slog.LevelDebug
	if rec.err != nil {
		level = slog.LevelInfo
		if status(rec.err.Name) >= 500 {
			level = slog.LevelError
		}
	}
	if !p.log.Enabled(context.Background(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("mount", p.mountID),
		slog.String("op", string(rec.route.Op)),
		slog.String("prefix", rec.route.Prefix),
		slog.String("key", rec.route.KeyID),
		slog.String("access_key_id", rec.akid),
		slog.String("remote", r.RemoteAddr),
		slog.Duration("duration", d),
	}
	if rec.meta != nil {
		attrs = append(attrs, slog.String("kms_request_id", rec.meta.KMSRequestID),
			slog.String("kms_operation", rec.meta.KMSOperation),
			slog.String("aws_principal_arn", rec.meta.AWSPrincipalArn),
			slog.String("kms_key_arn", rec.meta.KMSKeyArn),
			slog.String("kms_via_service", rec.meta.KMSViaService),
			slog.String("aws_source_vpc", rec.meta.AWSSourceVpc),
			slog.String("aws_source_vpce", rec.meta.AWSSourceVpce))
	}
	if rec.err != nil {
		attrs = append(attrs, slog.String("error_name", string(rec.err.Name)))
		if rec.err.Err != nil {
			attrs = append(attrs, slog.String("cause", rec.err.Err.Error()))
		}
	}
	p.log.LogAttrs(context.Background(), level, "xks request", attrs...)
}

// bucket is a token bucket: rate tokens a second, bursts of rate.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func (p *proxy) bucket(prefix string, rate int) *bucket {
	p.limitMu.Lock()
	defer p.limitMu.Unlock()
	b := p.limits[prefix]
	if b == nil || b.rate != float64(rate) {
		b = &bucket{rate: float64(rate), tokens: float64(rate)}
		p.limits[prefix] = b
	}
	return b
}

func (b *bucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Refusal reasons, the label values of Metrics.XKSRefused.
const (
	refusedMaxConnections = "max_connections"         // a connection over max_connections, closed at once
	refusedUnauthTimeout  = "unauthenticated_timeout" // a connection without an authenticated request, closed
	refusedInProgress     = "in_progress"             // a request over the proxy's bound (admit)
	refusedConnInProgress = "connection_in_progress"  // a request over its connection's bound (admit)
	refusedRateLimit      = "rate_limit"              // a request over rate_limit
)

// refused counts a refusal in the metrics.
func (p *proxy) refused(reason string) {
	if p.metrics != nil {
		p.metrics.XKSRefused(reason)
	}
}

// count records the request in the metrics. Only configured prefixes are
// label values (a path is the caller's choice; labels must stay few).
func (p *proxy) count(rec *logRecord, d time.Duration) {
	if p.metrics == nil {
		return
	}
	keystore, op := "", string(rec.route.Op)
	if st := p.st.Load(); st != nil && st.prefixes[rec.route.Prefix] {
		keystore = URIPath(rec.route.Prefix)
	}
	if op == "" {
		op = "invalid"
	}
	name := ""
	if rec.err != nil {
		name = string(rec.err.Name)
	}
	p.metrics.XKSRequest(keystore, op, name)
	code := 200
	if rec.err != nil {
		code = status(rec.err.Name)
		p.metrics.Error("xks", name)
	}
	p.metrics.Request("xks", op, code, d)
}
