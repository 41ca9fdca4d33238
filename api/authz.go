package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/keyhold/keyhold/auth"
	"github.com/keyhold/keyhold/fault"
)

// authenticate reads the token from X-Vault-Token or Authorization: Bearer.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (*auth.Token, error) {
	tok := r.Header.Get("X-Vault-Token")
	if tok == "" {
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			tok = strings.TrimSpace(v)
		}
	}
	if tok == "" {
		return nil, fault.New(fault.Unauthorized, "permission denied: no token (set X-Vault-Token or Authorization: Bearer)")
	}
	return s.d.Auth.Authenticate(ctx, tok)
}

// authorize checks the token's policies for the request's path and operation.
func (s *Server) authorize(ctx context.Context, req *Request, sudo bool) error {
	ok, err := s.d.Auth.Allowed(ctx, req.Token, req.Path, string(req.Op), sudo)
	if err != nil {
		return err
	}
	if !ok {
		return fault.New(fault.Permission, "permission denied")
	}
	return nil
}

func (s *Server) initAuth(ctx context.Context, rootToken string) error {
	return s.d.Auth.Bootstrap(ctx, rootToken)
}
