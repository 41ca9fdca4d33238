package api

import (
	"context"
	"errors"

	"github.com/keyhold/keyhold/auth"
	"github.com/keyhold/keyhold/fault"
)

// sys/init, as Vault's: GET says whether the appliance is initialised; PUT
// makes the first root token and shows it this once. There are no unseal
// keys: the HSM PIN, from the configuration, unlocks the keys. Both are
// served without a token, and PUT works once: revoking the root token later
// does not open it again.
func (s *Server) initRoutes() {
	// Vault's client sends its unseal-key settings; there is nothing to
	// unseal here, so they are accepted and ignored.
	f := Fields{}
	for _, k := range []string{"secret_shares", "secret_threshold", "stored_shares", "pgp_keys", "recovery_shares",
		"recovery_threshold", "recovery_pgp_keys", "root_token_pgp_key"} {
		f[k] = Field{Type: TypeAny}
	}
	r := s.handle("sys/init", f, map[Operation]HandlerFunc{OpRead: s.initStatus, OpUpdate: s.initialize})
	r.unauthN = true
}

func (s *Server) initStatus(ctx context.Context, req *Request) (*Response, error) {
	ok, err := s.d.Auth.Initialized(ctx)
	if err != nil {
		return nil, err
	}
	return &Response{Raw: map[string]any{"initialized": ok}}, nil
}

func (s *Server) initialize(ctx context.Context, req *Request) (*Response, error) {
	if k, _ := req.Data.raw["root_token_pgp_key"].(string); k != "" {
		return nil, fault.New(fault.Unsupported, "root_token_pgp_key is not supported: the root token is returned as is, over TLS")
	}
	tok, err := s.d.Auth.CreateRoot(ctx, false)
	if errors.Is(err, auth.ErrRootExists) {
		return nil, fault.New(fault.BadInput, "Keyhold is already initialized")
	}
	if err != nil {
		return nil, err
	}
	return &Response{Raw: map[string]any{"root_token": tok, "keys": []string{}, "keys_base64": []string{}}}, nil
}
