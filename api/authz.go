package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/keyhold/keyhold/auth"
	"github.com/keyhold/keyhold/fault"
)

// requestToken returns the token a request presents: X-Vault-Token, else
// Authorization: Bearer.
func requestToken(r *http.Request) string {
	if tok := strings.TrimSpace(r.Header.Get("X-Vault-Token")); tok != "" {
		return tok
	}
	scheme, v, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(v)
	}
	return ""
}

// authenticate returns the entry of the request's token, spending one of
// its uses if it has a limit. The error never echoes the token.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (*auth.Token, error) {
	tok := requestToken(r)
	if tok == "" {
		return nil, fault.New(fault.Unauthorized, "permission denied: no token (set X-Vault-Token or Authorization: Bearer)")
	}
	return s.d.Auth.Authenticate(ctx, tok)
}

// authorize checks the token's policies for the request's path and
// operation (and sudo, for the routes that need it).
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

// hasSudo reports whether the request's token holds sudo on the request's
// path (root does): what Vault asks of callers that set a token's id, make
// an orphan through auth/token/create, or make a periodic token.
func (s *Server) hasSudo(ctx context.Context, req *Request) (bool, error) {
	return s.d.Auth.Allowed(ctx, req.Token, req.Path, string(req.Op), true)
}

// initAuth makes sure the root token given at start exists.
func (s *Server) initAuth(ctx context.Context, rootToken string) error {
	return s.d.Auth.Bootstrap(ctx, rootToken)
}
