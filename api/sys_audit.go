package api

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/fault"
)

// Vault's audit device paths: sys/audit (list), sys/audit/:path (enable,
// disable), sys/audit-hash/:path (the HMAC a device writes for a value).
// Managing audit devices needs the sudo capability, as in Vault.

func (s *Server) auditRoutes() {
	s.handle("sys/audit", Fields{}, map[Operation]HandlerFunc{OpRead: s.listAudit}).sudo = true
	s.handle("sys/audit/{path...}", Fields{
		"type":        {Type: TypeString},
		"description": {Type: TypeString},
		"options":     {Type: TypeMap},
		"local":       {Type: TypeAny},
	}, map[Operation]HandlerFunc{OpUpdate: s.enableAudit, OpDelete: s.disableAudit}).sudo = true
	s.handle("sys/audit-hash/{path...}", Fields{"input": {Type: TypeString}},
		map[Operation]HandlerFunc{OpUpdate: s.auditHash}).sudo = true
}

func (s *Server) listAudit(ctx context.Context, req *Request) (*Response, error) {
	data := map[string]any{}
	for _, d := range s.d.Audit.Devices() {
		data[d.Path+"/"] = map[string]any{
			"type":        d.Type,
			"description": d.Description,
			"path":        d.Path + "/",
			"options":     map[string]any{"file_path": d.FilePath, "hmac_accessor": boolString(d.HMACAccessor)},
			"local":       false,
		}
	}
	return &Response{Data: data}, nil
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func (s *Server) enableAudit(ctx context.Context, req *Request) (*Response, error) {
	opts := req.Data.Map("options")
	d := audit.Device{
		Path:         strings.Trim(req.Params["path"], "/"),
		Type:         req.Data.String("type"),
		Description:  req.Data.String("description"),
		FilePath:     opts["file_path"],
		HMACAccessor: true,
	}
	for k, v := range opts {
		switch k {
		case "file_path":
		case "hmac_accessor":
			b, err := parseBool(v)
			if err != nil {
				return nil, fault.New(fault.BadInput, "options.hmac_accessor: want true or false")
			}
			d.HMACAccessor = b
		default:
			return nil, fault.New(fault.BadInput, "unknown audit option %q (file_path, hmac_accessor)", k)
		}
	}
	if d.Path == "" {
		return nil, fault.New(fault.BadInput, "an audit device needs a path")
	}
	return nil, s.d.Audit.Enable(ctx, d)
}

func parseBool(v string) (bool, error) {
	var b bool
	err := json.Unmarshal([]byte(v), &b)
	return b, err
}

func (s *Server) disableAudit(ctx context.Context, req *Request) (*Response, error) {
	return nil, s.d.Audit.Disable(ctx, strings.Trim(req.Params["path"], "/"))
}

func (s *Server) auditHash(ctx context.Context, req *Request) (*Response, error) {
	h, err := s.d.Audit.Hash(strings.Trim(req.Params["path"], "/"), []byte(req.Data.String("input")))
	if err != nil {
		return nil, err
	}
	return &Response{Data: map[string]any{"hash": h}}, nil
}

// sensitiveFields are request and response fields (at any depth) whose
// values the audit trail holds only as HMACs.
var sensitiveFields = map[string]bool{
	"token": true, "client_token": true, "id": true, "credentials": true,
	"secret_key": true, "access_key": true, "session_token": true, "client_secret": true,
	"service_account_file": true, "secret": true, "secret_access_key": true,
	"plaintext": true, "ciphertext": true, "key_material": true, "private_key": true,
	"password": true, "pin": true, "input": true, "hash": true, "certificate": true,
	"ca_chain": true, "key_value": true,
}

// splitSensitive returns data with the sensitive fields removed, and those
// fields JSON-encoded for the audit devices to HMAC.
func splitSensitive(data map[string]any, sens map[string][]byte, prefix string) map[string]any {
	if len(data) == 0 {
		return nil
	}
	out := make(map[string]any, len(data))
	for k, v := range data {
		if sensitiveFields[k] {
			b, _ := json.Marshal(v)
			sens[prefix+k] = b
			continue
		}
		if m, ok := v.(map[string]any); ok {
			out[k] = splitSensitive(m, sens, prefix+k+".")
			continue
		}
		out[k] = v
	}
	return out
}
