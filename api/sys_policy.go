package api

import (
	"context"
	"encoding/base64"
	"unicode/utf8"

	"github.com/keyhold/keyhold/fault"
)

// The ACL policy paths, as in Vault:
//   sys/policy                 GET or LIST: keys and policies
//   sys/policy/:name           GET (name, rules), PUT (policy or rules), DELETE
//   sys/policies/acl           LIST
//   sys/policies/acl/:name     GET (name, policy), PUT (policy), DELETE

func (s *Server) policyRoutes() {
	s.handle("sys/policy", Fields{}, map[Operation]HandlerFunc{OpRead: s.listPolicies, OpList: s.listPolicies})
	s.handle("sys/policy/{name}", Fields{"policy": {Type: TypeString}, "rules": {Type: TypeString}}, map[Operation]HandlerFunc{
		OpRead:   s.readPolicyRules,
		OpUpdate: s.writePolicy,
		OpDelete: s.deletePolicy,
	}).lowerLast = true
	s.handle("sys/policies/acl", Fields{}, map[Operation]HandlerFunc{OpList: s.listPolicies})
	s.handle("sys/policies/acl/{name}", Fields{"policy": {Type: TypeString}}, map[Operation]HandlerFunc{
		OpRead:   s.readPolicy,
		OpUpdate: s.writePolicy,
		OpDelete: s.deletePolicy,
	}).lowerLast = true
}

func (s *Server) listPolicies(ctx context.Context, req *Request) (*Response, error) {
	names, err := s.d.Auth.PolicyNames(ctx)
	if err != nil {
		return nil, err
	}
	return &Response{Data: map[string]any{"keys": names, "policies": names}}, nil
}

// readPolicyRules answers the old path's form: name and rules.
func (s *Server) readPolicyRules(ctx context.Context, req *Request) (*Response, error) {
	p, err := s.d.Auth.Policy(ctx, req.Params["name"])
	if err != nil {
		return nil, err
	}
	return &Response{Data: map[string]any{"name": p.Name, "rules": p.Text}}, nil
}

func (s *Server) readPolicy(ctx context.Context, req *Request) (*Response, error) {
	p, err := s.d.Auth.Policy(ctx, req.Params["name"])
	if err != nil {
		return nil, err
	}
	return &Response{Data: map[string]any{"name": p.Name, "policy": p.Text}}, nil
}

// writePolicy takes the HCL text in "policy" (or "rules" on the old path);
// like Vault, a base64-encoded text is accepted too.
func (s *Server) writePolicy(ctx context.Context, req *Request) (*Response, error) {
	text := req.Data.String("policy")
	if text == "" && req.Data.Has("rules") {
		text = req.Data.String("rules")
	}
	if text == "" {
		return nil, fault.New(fault.BadInput, "policy is required: the policy's HCL text, e.g. path \"keymgmt/key/*\" { capabilities = [\"read\"] }")
	}
	if b, err := base64.StdEncoding.DecodeString(text); err == nil && utf8.Valid(b) {
		text = string(b)
	}
	_, err := s.d.Auth.PutPolicy(ctx, req.Params["name"], text)
	return nil, err
}

func (s *Server) deletePolicy(ctx context.Context, req *Request) (*Response, error) {
	return nil, s.d.Auth.DeletePolicy(ctx, req.Params["name"])
}
