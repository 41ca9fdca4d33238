package api

import (
	"context"
	"maps"
	"net/http"
	"sort"
	"strconv"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
)

// auditing reports whether the request goes to the audit trail.
func (s *Server) auditing(st *reqState) bool {
	return s.d.Audit != nil && !st.noAudit && s.d.Audit.Enabled()
}

// entry describes the request for the audit trail: sensitive fields only
// as HMACs, the token only by its accessor.
func (s *Server) entry(r *http.Request, st *reqState) *audit.Entry {
	e := &audit.Entry{
		RequestID: st.id,
		Interface: audit.REST,
		Operation: string(st.op),
		Path:      st.path,
		Auth:      audit.Principal{RemoteAddr: r.RemoteAddr},
		Sensitive: map[string][]byte{},
	}
	if st.token != nil {
		e.Auth.TokenAccessor, e.Auth.Policies = st.token.Accessor, st.token.Policies
	}
	if st.unrouted != "" {
		e.Sensitive["path"] = []byte(st.unrouted) // as sys/audit-hash takes it
	}
	if st.req != nil {
		e.Accessors = map[string]string{}
		e.Data = splitSensitive(st.req.Data.raw, split{e.Sensitive, e.Accessors}, "")
		for _, k := range sortedKeys(st.req.Params) {
			e.Objects = append(e.Objects, st.req.Params[k])
		}
	}
	return e
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// auditRequest writes the request event before the handler runs.
func (s *Server) auditRequest(r *http.Request, st *reqState) error {
	if !s.auditing(st) {
		return nil
	}
	e := s.entry(r, st)
	if err := s.d.Audit.LogRequest(r.Context(), e); err != nil {
		return err
	}
	st.entry = e
	return nil
}

// auditResponse writes the response event (and, for a request refused
// before its handler, the request event too). An error means the response
// must not be sent as it is.
func (s *Server) auditResponse(r *http.Request, st *reqState, resp *Response, err error) error {
	if !s.auditing(st) {
		return nil
	}
	ctx := context.WithoutCancel(r.Context())
	e := st.entry
	if e == nil {
		// Refused before its handler: nothing it asked for was done, so
		// its request event is made durable with its response event, in
		// one flush. (Authentication may have spent a use of a limited
		// token already, as it does before any request event is written.)
		e = s.entry(r, st)
		if lerr := s.d.Audit.QueueRequest(ctx, e); lerr != nil {
			return lerr
		}
	}
	e.Status = http.StatusNoContent
	if err != nil {
		e.Status, e.Error = statusOf(err)
	} else if resp != nil {
		e.Status = max(resp.Status, http.StatusOK)
		e.SensitiveResponse, e.ResponseAccessors = map[string][]byte{}, map[string]string{}
		sp := split{e.SensitiveResponse, e.ResponseAccessors}
		respData := resp.Data
		if keys, ok := respData["keys"].([]string); ok && st.rt != nil && st.rt.accessorKeys {
			respData = maps.Clone(respData)
			delete(respData, "keys")
			for i, a := range keys {
				sp.acc["keys."+strconv.Itoa(i)] = a
			}
		}
		data := splitSensitive(respData, sp, "")
		if resp.Auth != nil {
			if data == nil {
				data = map[string]any{}
			}
			data["auth"] = splitSensitive(resp.Auth, sp, "auth.")
		}
		if resp.Raw == nil {
			e.ResponseData = data
		}
	}
	return s.d.Audit.LogResponse(ctx, e)
}

// errKind names the class of an error for the metrics.
func errKind(err error) string {
	if e, ok := fault.As(err); ok {
		return string(e.Kind)
	}
	if k := hsm.KindOf(err); k != hsm.KindInternal {
		return "hsm " + string(k)
	}
	if _, ok := err.(*methodError); ok {
		return "method"
	}
	return "internal"
}

func (s *Server) metricsRoutes() {
	r := s.handle("sys/metrics", Fields{"format": {Type: TypeString}}, map[Operation]HandlerFunc{OpRead: s.metrics})
	r.noAudit = true
	r.unauthN = s.d.UnauthenticatedMetrics
}

// metrics serves the Prometheus text format (format=prometheus, the
// default; Vault's JSON format is not offered).
func (s *Server) metrics(ctx context.Context, req *Request) (*Response, error) {
	if f := req.Data.String("format"); f != "" && f != "prometheus" {
		return nil, fault.New(fault.BadInput, "format %q is not supported (prometheus)", f)
	}
	if s.d.Metrics == nil {
		return nil, fault.New(fault.NotFound, "metrics are not enabled")
	}
	return &Response{Stream: s.d.Metrics.Handler()}, nil
}
