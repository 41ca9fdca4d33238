package api

import (
	"context"
	"slices"
	"strings"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/fault"
)

// sys/audit-log/:path reads the newest events of a file audit device, for
// the web console (a browser cannot read the file): filters by interface,
// operation, object (key) name, principal and result, paging back with
// before_seq, and with verify=true the hash chain's state (audit.Verify over
// the device's current file). It needs sudo, like the other audit paths.
// The events are answered as written (secrets only as HMACs); the answer is
// not copied into the trail, which would otherwise grow by every page read.

// maxAuditLogLimit bounds the events of one answer.
const maxAuditLogLimit = 1000

func (s *Server) auditLogRoutes() {
	s.handle("sys/audit-log/{path...}", Fields{
		"limit":      {Type: TypeInt},
		"before_seq": {Type: TypeInt},
		"type":       {Type: TypeString},
		"interface":  {Type: TypeString},
		"operation":  {Type: TypeString},
		"key":        {Type: TypeString},
		"principal":  {Type: TypeString},
		"result":     {Type: TypeString},
		"verify":     {Type: TypeBool},
	}, map[Operation]HandlerFunc{OpRead: s.readAuditLog}).sudo = true
}

func (s *Server) readAuditLog(ctx context.Context, req *Request) (*Response, error) {
	if s.d.Audit == nil {
		return nil, fault.New(fault.NotFound, "no audit trail")
	}
	q, err := auditQuery(req.Data)
	if err != nil {
		return nil, err
	}
	path := strings.Trim(req.Params["path"], "/")
	page, file, err := s.d.Audit.Query(path, q)
	if err != nil {
		return nil, err
	}
	data := map[string]any{
		"device":        path + "/",
		"file_path":     file,
		"events":        page.Events,
		"more":          page.More,
		"scanned_bytes": page.Scanned,
		"unreadable":    page.Unreadable,
	}
	if req.Data.Bool("verify") {
		rep, _, err := s.d.Audit.VerifyDevice(path)
		if err != nil {
			return nil, fault.Wrap(fault.Unavailable, err, "the audit file cannot be verified")
		}
		data["verification"] = verificationData(rep, req.ID)
	}
	// Raw: the envelope is Vault's, but the events are not written again
	// into the trail as response data.
	return &Response{Raw: map[string]any{
		"request_id": req.ID, "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": data, "wrap_info": nil, "warnings": nil, "auth": nil,
	}}, nil
}

func auditQuery(d *FieldData) (audit.Query, error) {
	q := audit.Query{
		Limit:     100,
		Type:      d.String("type"),
		Interface: d.String("interface"),
		Operation: d.String("operation"),
		Object:    d.String("key"),
		Principal: d.String("principal"),
		Result:    d.String("result"),
	}
	if d.Has("limit") {
		q.Limit = d.Int("limit")
		if q.Limit < 1 || q.Limit > maxAuditLogLimit {
			return q, fault.New(fault.BadInput, "limit must be 1 to %d", maxAuditLogLimit)
		}
	}
	if d.Has("before_seq") {
		n := d.Int("before_seq")
		if n < 1 {
			return q, fault.New(fault.BadInput, "before_seq must be a positive sequence number")
		}
		q.BeforeSeq = uint64(n)
	}
	if q.Type == "all" {
		q.Type = ""
	}
	for _, c := range []struct{ name, v, allowed string }{
		{"type", q.Type, ",request,response"},
		{"interface", q.Interface, ",rest,kmip,xks"},
		{"result", q.Result, ",ok,error"},
	} {
		if !slices.Contains(strings.Split(c.allowed, ","), c.v) {
			return q, fault.New(fault.BadInput, "%s must be one of %s", c.name, strings.TrimPrefix(strings.ReplaceAll(c.allowed, ",", ", "), ", "))
		}
	}
	return q, nil
}

// verificationData is the report as JSON. The note that the last request
// has no response is left out when that request is this read itself (its
// response event is written after the check).
func verificationData(r *audit.Report, self string) map[string]any {
	notes := []string{}
	for _, n := range r.Notes {
		if !strings.Contains(n, "("+self+")") {
			notes = append(notes, n)
		}
	}
	v := map[string]any{
		"intact":    r.Problem == nil,
		"events":    r.Events,
		"first_seq": r.FirstSeq,
		"last_seq":  r.LastSeq,
		"notes":     notes,
	}
	if r.Problem != nil {
		v["problem"] = map[string]any{"line": r.Problem.Line, "seq": r.Problem.Seq, "what": r.Problem.What}
	}
	return v
}
