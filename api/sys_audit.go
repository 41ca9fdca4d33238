package api

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"

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
	s.handle("sys/audit-hash/{path...}", Fields{"input": {Type: TypeString}, "encoding": {Type: TypeString}},
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

// auditHash answers the HMAC a device writes for input. The XKS and KMIP
// events HMAC bytes (plaintext, ciphertext, key material) that their
// clients send encoded: encoding=base64 (or hex) decodes input first, so
// that those can be found too.
func (s *Server) auditHash(ctx context.Context, req *Request) (*Response, error) {
	in := []byte(req.Data.String("input"))
	switch enc := req.Data.String("encoding"); enc {
	case "":
	case "base64":
		b, err := base64.StdEncoding.DecodeString(string(in))
		if err != nil {
			return nil, fault.New(fault.BadInput, "input is not base64: %v", err)
		}
		in = b
	case "hex":
		b, err := hex.DecodeString(string(in))
		if err != nil {
			return nil, fault.New(fault.BadInput, "input is not hex: %v", err)
		}
		in = b
	default:
		return nil, fault.New(fault.BadInput, "encoding must be base64 or hex (or absent: input as text), got %q", enc)
	}
	h, err := s.d.Audit.Hash(strings.Trim(req.Params["path"], "/"), in)
	if err != nil {
		return nil, err
	}
	return &Response{Data: map[string]any{"hash": h}}, nil
}

// sensitiveFields are request and response fields (at any depth) whose
// values the audit trail holds only as HMACs, by their names with case,
// '_' and '-' ignored; sensitiveParts are parts of a name that make any
// field sensitive (secret_key, RawSecretAccessKey, tls_private_key, ...).
var (
	sensitiveFields = map[string]bool{
		"token": true, "clienttoken": true, "roottoken": true, "sessiontoken": true, "id": true,
		"credentials": true, "credential": true, "accesskey": true, "serviceaccountfile": true,
		"plaintext": true, "ciphertext": true, "keymaterial": true, "password": true, "pin": true,
		"input": true, "hash": true, "certificate": true, "cachain": true, "keyvalue": true,
		"tlskey": true, "pem": true, "pembundle": true,
	}
	sensitiveParts = []string{"secret", "password", "passphrase", "privatekey"}
)

// sensitiveField reports whether a field of that name is written only as
// an HMAC.
func sensitiveField(name string) bool {
	n := strings.Map(func(r rune) rune {
		if r == '_' || r == '-' {
			return -1
		}
		return unicode.ToLower(r)
	}, name)
	if sensitiveFields[n] {
		return true
	}
	for _, p := range sensitiveParts {
		if strings.Contains(n, p) {
			return true
		}
	}
	return false
}

// split collects, by their paths (prefix, the names of the objects and the
// indexes of the lists above them, joined by dots), what splitSensitive
// takes out of a request's or response's data: sensitive fields, as
// hmacInput gives them for the audit devices to HMAC, and token accessors,
// which a device with hmac_accessor writes as HMACs too.
type split struct {
	sens map[string][]byte
	acc  map[string]string
}

// splitSensitive returns data without its sensitive fields and accessors,
// which go to sp.
func splitSensitive(data map[string]any, sp split, prefix string) map[string]any {
	if len(data) == 0 {
		return nil
	}
	out := make(map[string]any, len(data))
	for k, v := range data {
		if sensitiveField(k) {
			sp.sens[prefix+k] = hmacInput(v)
			continue
		}
		if a, ok := v.(string); ok && strings.EqualFold(k, "accessor") {
			sp.acc[prefix+k] = a
			continue
		}
		out[k] = splitValue(v, sp, prefix+k)
	}
	return out
}

// hmacInput is what a sensitive value's HMAC is taken of: a value that is a
// string in JSON (a token, a secret, bytes as base64) as that text, which
// is what a client sees and what sys/audit-hash is given; another value
// (an object, a number) as its JSON.
func hmacInput(v any) []byte {
	b, _ := json.Marshal(v)
	var s string
	if len(b) > 0 && b[0] == '"' && json.Unmarshal(b, &s) == nil {
		return []byte(s)
	}
	return b
}

// splitValue is splitSensitive for the value at path: objects and lists are
// searched, and values of other types (structs, typed maps) through their
// JSON form, so that a sensitive field nested in them is found too.
func splitValue(v any, sp split, path string) any {
	switch x := v.(type) {
	case nil, string, bool, float64, float32, int, int32, int64, uint, uint32, uint64, json.Number, []string:
		return x
	case map[string]any:
		if x == nil {
			return x
		}
		return splitSensitive(x, sp, path+".")
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = splitValue(e, sp, path+"."+strconv.Itoa(i))
		}
		return out
	}
	b, err := json.Marshal(v)
	if err != nil {
		return v // the audit encoder reports it
	}
	var g any
	if err := json.Unmarshal(b, &g); err != nil {
		return v
	}
	if _, ok := g.(map[string]any); !ok {
		if _, ok := g.([]any); !ok {
			return g
		}
	}
	return splitValue(g, sp, path)
}
