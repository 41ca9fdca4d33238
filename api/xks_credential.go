package api

import (
	"context"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/xks"
)

func (s *Server) xksCredentialRoutes() {
	s.handleBackend("xks", "credential/generate", Fields{"prefix": {Type: TypeString}},
		map[Operation]HandlerFunc{OpUpdate: s.xksGenerateCredential})
	s.handleBackend("xks", "credential", Fields{}, map[Operation]HandlerFunc{OpList: s.xksListCredentials})
	s.handleBackend("xks", "credential/revoke", Fields{"access_key_id": {Type: TypeString}},
		map[Operation]HandlerFunc{OpUpdate: s.xksRevokeCredential})
	s.handleBackend("xks", "credential/{access_key_id}", Fields{},
		map[Operation]HandlerFunc{OpRead: s.xksReadCredential, OpDelete: s.xksDeleteCredential})
}

// xksGenerateCredential answers the new key pair once, with the JSON file
// the AWS KMS console accepts for an external key store (spec: "XKS proxy
// configuration in AWS KMS console").
func (s *Server) xksGenerateCredential(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	c, err := m.GenerateCredential(ctx, req.Mount.UUID, req.Data.String("prefix"))
	if err != nil {
		return nil, err
	}
	return &Response{Data: map[string]any{
		"access_key_id":     c.AccessKeyID,
		"secret_access_key": c.SecretAccessKey,
		"prefix":            c.Prefix,
		"uri_path":          c.URIPath,
		"created_at":        c.CreatedAt.Format(time.RFC3339Nano),
		"xks_proxy_configuration": map[string]any{
			"XksProxyUriPath": c.URIPath,
			"XksProxyAuthenticationCredential": map[string]any{
				"AccessKeyId":        c.AccessKeyID,
				"RawSecretAccessKey": c.SecretAccessKey,
			},
		},
	}}, nil
}

func credentialData(c xks.CredentialInfo) map[string]any {
	return map[string]any{"access_key_id": c.AccessKeyID, "prefix": c.Prefix, "uri_path": c.URIPath,
		"created_at": c.CreatedAt.Format(time.RFC3339Nano)}
}

func (s *Server) xksListCredentials(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	cs, err := m.Credentials(ctx, req.Mount.UUID)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, fault.New(fault.NotFound, "no credentials")
	}
	keys := make([]string, 0, len(cs))
	info := map[string]any{}
	for _, c := range cs {
		keys = append(keys, c.AccessKeyID)
		info[c.AccessKeyID] = credentialData(c)
	}
	return &Response{Data: map[string]any{"keys": keys, "key_info": info}}, nil
}

func (s *Server) xksReadCredential(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	cs, err := m.Credentials(ctx, req.Mount.UUID)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if c.AccessKeyID == req.Params["access_key_id"] {
			return &Response{Data: credentialData(c)}, nil
		}
	}
	return nil, fault.New(fault.NotFound, "no credential with access key id %q", req.Params["access_key_id"])
}

func (s *Server) xksRevokeCredential(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	id := req.Data.String("access_key_id")
	if id == "" {
		return nil, fault.New(fault.BadInput, "access_key_id is required")
	}
	if strings.ContainsAny(id, "/*+") || id == "." || id == ".." {
		return nil, fault.New(fault.NotFound, "no such credential")
	}
	// The credential's own path decides too: a policy that denies it (or
	// grants no delete there) is not bypassed through this route.
	target := strings.TrimSuffix(req.Path, "revoke") + id
	ok, err := s.d.Auth.Allowed(ctx, req.Token, target, string(OpDelete), false)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fault.New(fault.Permission, "permission denied: revoking a credential also needs delete on %s", target)
	}
	return nil, m.RevokeCredential(ctx, req.Mount.UUID, id)
}

func (s *Server) xksDeleteCredential(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	return nil, m.RevokeCredential(ctx, req.Mount.UUID, req.Params["access_key_id"])
}
