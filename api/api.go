// Package api is the REST API: Vault's wire conventions over the appliance's
// domain packages. Paths live under /v1; success bodies are {"data": {...}},
// errors {"errors": ["..."]} with a status from one mapping (errors.go);
// LIST is the LIST method or GET ?list=true; request bodies are size-limited
// JSON objects checked against each route's field schema. Handlers parse and
// answer; the key logic lives in the domain packages.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/auth"
	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/ha"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/keymgmt"
	"github.com/keyhold/keyhold/kmip"
	"github.com/keyhold/keyhold/metrics"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/xks"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// Deps are what the API serves.
type Deps struct {
	HSM     *hsm.HSM
	Store   store.Store
	Auth    *auth.Manager
	Keys    *keymgmt.Manager
	Audit   *audit.Broker
	Metrics *metrics.Metrics
	// UnauthenticatedMetrics serves sys/metrics without a token.
	UnauthenticatedMetrics bool
	Logger                 *slog.Logger
	Version                string
	XKS                    *xks.Manager  // the XKS proxy listeners; nil leaves xks mounts unserved
	KMIP                   *kmip.Manager // the KMIP listeners; nil leaves kmip mounts unserved
	// Cluster is this node's membership (sys/ha-status, health); with
	// several nodes, a request is served only from caches caught up with the
	// other nodes' changes within a second (Guard). Nil: a lone node.
	Cluster *ha.Cluster
}

// Server is the REST API handler.
type Server struct {
	d       Deps
	routes  []*route            // sys/ and auth/ routes
	backend map[string][]*route // routes of each mount type, relative to the mount
	mounts  *mountTable
}

// New returns the REST API over the dependencies.
func New(d Deps) *Server {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{d: d, backend: map[string][]*route{}, mounts: newMountTable(d.Store)}
	s.sysRoutes()
	s.mountRoutes()
	s.keymgmtRoutes()
	s.keymgmtKMSRoutes()
	s.auditRoutes()
	s.auditLogRoutes()
	s.initRoutes()
	s.metricsRoutes()
	s.xksRoutes()
	s.kmipRoutes()
	s.kmipObjectRoutes()
	s.tokenRoutes()
	s.policyRoutes()
	s.haRoutes()
	return s
}

// Init loads what the API keeps in memory (the mount table) and bootstraps
// the root token; call it once before serving.
func (s *Server) Init(ctx context.Context, rootToken string) error {
	if err := s.mounts.load(ctx); err != nil {
		return err
	}
	return s.initAuth(ctx, rootToken)
}

// Operation is what a request does, as Vault's ACL capabilities name it.
type Operation string

// The operations.
const (
	OpRead   Operation = "read"
	OpCreate Operation = "create"
	OpUpdate Operation = "update"
	OpDelete Operation = "delete"
	OpList   Operation = "list"
)

// Request is a parsed API request.
type Request struct {
	ID     string
	Op     Operation
	Path   string            // after /v1/, without a trailing slash
	Params map[string]string // the route's {name} segments
	Data   *FieldData
	HTTP   *http.Request
	Mount  *Mount      // the mount the path is under, for backend routes
	Token  *auth.Token // the caller's token (nil on unauthenticated routes)
}

// Response is what a handler answers. A nil *Response means 204 No Content.
type Response struct {
	Status int            // default 200
	Data   map[string]any // becomes {"data": ...}
	Auth   map[string]any // becomes {"auth": ...} (token creation)
	Raw    any            // written as the whole body instead (sys/health)
	// Warnings are Vault's "warnings": what was done otherwise than asked.
	Warnings []string
	Stream   http.Handler // serves the whole response instead (sys/metrics)
}

// HandlerFunc serves one operation of a route.
type HandlerFunc func(ctx context.Context, req *Request) (*Response, error)

type route struct {
	pattern []string // segments; "{x}" one segment, "{x...}" the rest
	fields  Fields
	ops     map[Operation]HandlerFunc
	// exists decides between create and update for writes; without it a
	// write is an update.
	exists  func(ctx context.Context, req *Request) (bool, error)
	unauthN bool // served without a token
	sudo    bool // needs the sudo capability besides the operation's
	noAudit bool // not written to the audit trail (health, metrics)
	// lowerLast: the last segment is a name the store keeps lowercase and
	// trimmed (policies, as in Vault); it is made so before the policy
	// check, so that "ADMIN" is checked as the "admin" it will change.
	lowerLast bool
	// accessorKeys: the response's "keys" are token accessors, audited as
	// the device's hmac_accessor says.
	accessorKeys bool
}

// handle registers a sys/ or auth/ route.
func (s *Server) handle(pattern string, fields Fields, ops map[Operation]HandlerFunc) *route {
	r := &route{pattern: strings.Split(pattern, "/"), fields: fields, ops: ops}
	s.routes = append(s.routes, r)
	return r
}

// handleBackend registers a route of a mount type, relative to the mount path.
func (s *Server) handleBackend(mountType, pattern string, fields Fields, ops map[Operation]HandlerFunc) *route {
	r := &route{pattern: strings.Split(pattern, "/"), fields: fields, ops: ops}
	s.backend[mountType] = append(s.backend[mountType], r)
	return r
}

// match returns the params if path matches the pattern.
func (r *route) match(segs []string) (map[string]string, bool) {
	params := map[string]string{}
	for i, p := range r.pattern {
		if strings.HasSuffix(p, "...}") {
			if i >= len(segs) {
				return nil, false
			}
			params[p[1:len(p)-4]] = strings.Join(segs[i:], "/")
			return params, true
		}
		if i >= len(segs) {
			return nil, false
		}
		if strings.HasPrefix(p, "{") {
			if segs[i] == "" {
				return nil, false
			}
			params[p[1:len(p)-1]] = segs[i]
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	return params, len(segs) == len(r.pattern)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := &reqState{id: newID()}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	defer func() {
		if p := recover(); p != nil {
			s.d.Logger.Error("panic serving request", "request_id", st.id, "path", r.URL.Path, "panic", p)
			s.writeError(w, st.id, fault.New(fault.Internal, "internal error"))
		}
	}()
	resp, err := s.serveRecovered(r, st)
	if aerr := s.auditResponse(r, st, resp, err); aerr != nil {
		resp, err = nil, aerr
	}
	status := http.StatusNoContent
	if err != nil {
		status, _ = statusOf(err)
		s.writeError(w, st.id, err)
	} else {
		if resp != nil {
			status = max(resp.Status, http.StatusOK)
		}
		s.writeResponse(w, r, st.id, resp)
	}
	if s.d.Metrics != nil {
		s.d.Metrics.Request("rest", st.metricOp(), status, time.Since(start))
		if err != nil {
			s.d.Metrics.Error("rest", errKind(err))
		}
	}
}

// serveRecovered is serve; a panic in it (a bug) becomes an internal error,
// so that the request is answered, audited and counted like any failure.
func (s *Server) serveRecovered(r *http.Request, st *reqState) (resp *Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.d.Logger.Error("panic serving request", "request_id", st.id, "path", r.URL.Path, "panic", p)
			resp, err = nil, fault.New(fault.Internal, "internal error")
		}
	}()
	return s.serve(r, st)
}

// reqState is what serve learned of a request, for the audit trail and the
// metrics.
type reqState struct {
	id      string
	req     *Request
	rt      *route
	mount   *Mount
	op      Operation
	path    string
	token   *auth.Token
	entry   *audit.Entry // set once the request event is written
	noAudit bool         // health and metrics are not audited
	// unrouted: the path of a request no route took; audited as an HMAC.
	unrouted string
}

func (st *reqState) metricOp() string {
	if st.rt == nil {
		return string(st.op) + " unknown"
	}
	prefix := ""
	if st.mount != nil {
		prefix = st.mount.Type + ":"
	}
	return string(st.op) + " " + prefix + strings.Join(st.rt.pattern, "/")
}

// sameOrigin reports whether an Origin header names the host the request
// was sent to.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, r.Host)
}

func (s *Server) serve(r *http.Request, st *reqState) (*Response, error) {
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		return nil, fault.New(fault.NotFound, "no handler for this path: paths start with /v1/")
	}
	path = strings.TrimSuffix(path, "/")
	// A segment holding an encoded "/" (%2F) would be decoded into two:
	// a name with a slash is no object's name, and a link built from one
	// would act on another object.
	if ep := strings.ToLower(r.URL.EscapedPath()); strings.Contains(ep, "%2f") {
		return nil, fault.New(fault.BadInput, "the path has an encoded \"/\" (%%2F): no name holds one")
	}
	// A browser sends Origin with a cross-site write, which may carry no
	// token (a page the operator visits posting to sys/init): such writes
	// are refused. The console is same-origin; other clients send none.
	if o := r.Header.Get("Origin"); o != "" && r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(o, r) {
		return nil, fault.New(fault.Permission, "cross-origin write refused")
	}
	// Policies match the path as written, and handlers act on its
	// segments: a path with an empty, "." or ".." segment could name one
	// object to the policy check and another to the handler
	// (sys/mounts//prod for sys/mounts/prod), so it is refused.
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return nil, fault.New(fault.BadInput, "the path has an empty, \".\" or \"..\" segment")
		}
	}
	st.path = path
	op, err := operation(r)
	if err != nil {
		return nil, err
	}
	st.op = op
	if s.d.Cluster != nil && path != "sys/health" && path != "sys/metrics" && path != "sys/ha-status" {
		// Mounts and policies as every node committed them before this
		// request: what an operator wrote through one node is there on the
		// next (one read of the change log, shared by concurrent requests).
		if err := s.d.Cluster.Sync(r.Context()); err != nil {
			return nil, err
		}
	}
	rt, params, mount := s.findRoute(path)
	if rt == nil {
		// An unknown path can carry anything (an old form with a token in
		// it, auth/token/revoke/TOKEN): the trail gets it only as an HMAC
		// and the error does not repeat it. And without a token nobody
		// learns which paths exist: 403 before 404.
		st.path, st.unrouted = "", path
		tok, err := s.authenticate(r.Context(), r)
		if err != nil {
			return nil, err
		}
		st.token = tok
		// Nor does a token that may not use the path learn it: as in
		// Vault, its policies are checked before the route.
		allowed, err := s.d.Auth.Allowed(r.Context(), tok, path, string(op), false)
		if err == nil && !allowed && op == OpUpdate {
			allowed, err = s.d.Auth.Allowed(r.Context(), tok, path, string(OpCreate), false)
		}
		if err != nil {
			return nil, err
		}
		if !allowed {
			return nil, fault.New(fault.Permission, "permission denied")
		}
		return nil, fault.New(fault.NotFound, "no handler for this path")
	}
	if rt.lowerLast {
		last := path[strings.LastIndexByte(path, '/')+1:]
		name := strings.ToLower(strings.TrimSpace(last))
		for k, v := range params {
			if v == last {
				params[k] = name
			}
		}
		path = path[:len(path)-len(last)] + name
		st.path = path
	}
	st.rt, st.mount, st.noAudit = rt, mount, rt.noAudit
	// The token first: without one, a body the route refuses must not tell
	// that the route (and its mount) exists.
	var tok *auth.Token
	if !rt.unauthN {
		if tok, err = s.authenticate(r.Context(), r); err != nil {
			return nil, err
		}
		st.token = tok
	}
	raw, err := readBody(r, op)
	if err != nil {
		return nil, err
	}
	data, err := newFieldData(raw, rt.fields)
	if err != nil {
		return nil, err
	}
	req := &Request{ID: st.id, Op: op, Path: path, Params: params, Data: data, HTTP: r, Mount: mount, Token: tok}
	st.req = req
	if op == OpUpdate && rt.exists != nil {
		ok, err := rt.exists(r.Context(), req)
		if err != nil {
			return nil, err
		}
		if !ok {
			req.Op = OpCreate
			st.op = OpCreate
		}
	}
	if !rt.unauthN {
		if err := s.authorize(r.Context(), req, rt.sudo); err != nil {
			return nil, err
		}
	}
	h := rt.ops[req.Op]
	if h == nil && req.Op == OpCreate {
		h = rt.ops[OpUpdate]
	}
	if h == nil {
		return nil, &methodError{op: req.Op, path: path}
	}
	// The request event is durable before anything changes; if it cannot be
	// written the request is refused (fail closed).
	if err := s.auditRequest(r, st); err != nil {
		return nil, err
	}
	return h(r.Context(), req)
}

// findRoute finds the sys/ or auth/ route for path, else the mount the path
// is under (longest mount path first) and the route of its type.
func (s *Server) findRoute(path string) (*route, map[string]string, *Mount) {
	segs := strings.Split(path, "/")
	for _, c := range s.routes {
		if p, ok := c.match(segs); ok {
			return c, p, nil
		}
	}
	m, rel := s.mounts.resolve(path)
	if m == nil {
		return nil, nil, nil
	}
	rsegs := strings.Split(rel, "/")
	for _, c := range s.backend[m.Type] {
		if p, ok := c.match(rsegs); ok {
			return c, p, m
		}
	}
	return nil, nil, nil
}

type methodError struct {
	op   Operation
	path string
}

func (e *methodError) Error() string {
	return "unsupported operation " + string(e.op) + " on " + e.path
}

func operation(r *http.Request) (Operation, error) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if l, err := strconv.ParseBool(r.URL.Query().Get("list")); err == nil && l {
			return OpList, nil
		}
		return OpRead, nil
	case "LIST":
		return OpList, nil
	case http.MethodPost, http.MethodPut:
		// PATCH is refused (405): Vault gives it merge semantics and its
		// own "patch" capability, and taken as a write it would replace
		// what a client meant to change in part.
		return OpUpdate, nil
	case http.MethodDelete:
		return OpDelete, nil
	}
	return "", &methodError{op: Operation(strings.ToLower(r.Method)), path: r.URL.Path}
}

// readBody parses a write's JSON object body, strictly and size-limited.
// Reads, lists and deletes take their data from the query string (as Vault
// does); a delete may also carry a body.
func readBody(r *http.Request, op Operation) (map[string]any, error) {
	q := map[string]any{}
	if op != OpUpdate {
		for k, v := range r.URL.Query() {
			if k == "list" || len(v) == 0 {
				continue
			}
			// A field given twice is not settled by picking one.
			for _, other := range v[1:] {
				if other != v[0] {
					return nil, fault.New(fault.BadInput, "field %q is given more than once in the query, with different values", k)
				}
			}
			q[k] = v[0]
		}
		if op != OpDelete || r.ContentLength == 0 {
			return q, nil
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, fault.Wrap(fault.BadInput, err, "could not read the request body")
	}
	if len(body) > MaxBodyBytes {
		return nil, fault.New(fault.TooLarge, "request body larger than %d bytes", MaxBodyBytes)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fault.New(fault.BadInput, "malformed JSON body: %s", jsonErrText(err))
	}
	if m == nil {
		m = map[string]any{} // "null": Vault's client sends it for a write without data
	}
	if dec.More() {
		return nil, fault.New(fault.BadInput, "malformed JSON body: data after the object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fault.New(fault.BadInput, "malformed JSON body: data after the object")
	}
	// A delete's query parameters count with its body (?force=true with a
	// body of {}); a field given in both must agree.
	for k, v := range q {
		if b, ok := m[k]; ok && !sameValue(b, v.(string)) {
			return nil, fault.New(fault.BadInput, "field %q is given in the query and in the body with different values", k)
		}
		m[k] = v
	}
	return m, nil
}

// sameValue reports whether a body's value b and a query's text q say the
// same: a boolean as any form strconv.ParseBool takes (force=1 and
// "force": true agree), anything else as its text.
func sameValue(b any, q string) bool {
	if bb, ok := b.(bool); ok {
		qb, err := strconv.ParseBool(q)
		return err == nil && qb == bb
	}
	return fmt.Sprint(b) == q
}

// jsonErrText describes a JSON error without echoing the input.
func jsonErrText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "want an object"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of input"
	}
	return "invalid JSON"
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
