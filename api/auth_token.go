package api

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/keyhold/keyhold/auth"
	"github.com/keyhold/keyhold/fault"
)

// The token store's paths, as in Vault:
//   auth/token/create, create-orphan           a child or an orphan token
//   auth/token/lookup-self, lookup, lookup-accessor
//   auth/token/revoke-self, revoke, revoke-accessor, revoke-orphan (sudo)
//   auth/token/renew-self, renew, renew-accessor
//   auth/token/accessors                        LIST (sudo)

// tokenCreateFields are what Vault's client sends to create a token.
var tokenCreateFields = Fields{
	"id":                {Type: TypeString},
	"policies":          {Type: TypeStringList},
	"meta":              {Type: TypeMap},
	"no_parent":         {Type: TypeBool},
	"no_default_policy": {Type: TypeBool},
	"renewable":         {Type: TypeBool},
	"ttl":               {Type: TypeDuration},
	"lease":             {Type: TypeDuration}, // the old name of ttl
	"explicit_max_ttl":  {Type: TypeDuration},
	"period":            {Type: TypeDuration},
	"display_name":      {Type: TypeString},
	"num_uses":          {Type: TypeInt},
	"type":              {Type: TypeString},
	"entity_alias":      {Type: TypeString},
}

func (s *Server) tokenRoutes() {
	s.handle("auth/token/create", tokenCreateFields, map[Operation]HandlerFunc{OpUpdate: s.createToken})
	s.handle("auth/token/create-orphan", tokenCreateFields, map[Operation]HandlerFunc{OpUpdate: s.createOrphanToken})
	s.handle("auth/token/create/{role}", tokenCreateFields, map[Operation]HandlerFunc{OpUpdate: s.createRoleToken})
	s.handle("auth/token/lookup-self", Fields{"token": {Type: TypeString}}, map[Operation]HandlerFunc{
		OpRead: s.lookupSelf, OpUpdate: s.lookupSelf,
	})
	s.handle("auth/token/lookup", Fields{"token": {Type: TypeString}}, map[Operation]HandlerFunc{OpUpdate: s.lookupToken})
	s.handle("auth/token/lookup-accessor", Fields{"accessor": {Type: TypeString}}, map[Operation]HandlerFunc{OpUpdate: s.lookupAccessor})
	s.handle("auth/token/revoke-self", Fields{}, map[Operation]HandlerFunc{OpUpdate: s.revokeSelf})
	s.handle("auth/token/revoke", Fields{"token": {Type: TypeString}}, map[Operation]HandlerFunc{OpUpdate: s.revokeToken})
	s.handle("auth/token/revoke-accessor", Fields{"accessor": {Type: TypeString}}, map[Operation]HandlerFunc{OpUpdate: s.revokeAccessor})
	s.handle("auth/token/revoke-orphan", Fields{"token": {Type: TypeString}}, map[Operation]HandlerFunc{OpUpdate: s.revokeOrphan}).sudo = true
	s.handle("auth/token/renew-self", Fields{"increment": {Type: TypeDuration}, "token": {Type: TypeString}}, map[Operation]HandlerFunc{OpUpdate: s.renewSelf})
	s.handle("auth/token/renew", Fields{"increment": {Type: TypeDuration}, "token": {Type: TypeString}}, map[Operation]HandlerFunc{OpUpdate: s.renewToken})
	s.handle("auth/token/renew-accessor", Fields{"increment": {Type: TypeDuration}, "accessor": {Type: TypeString}}, map[Operation]HandlerFunc{OpUpdate: s.renewAccessor})
	acc := s.handle("auth/token/accessors", Fields{}, map[Operation]HandlerFunc{OpList: s.listAccessors})
	acc.sudo, acc.accessorKeys = true, true
}

func (s *Server) createToken(ctx context.Context, req *Request) (*Response, error) {
	return s.newToken(ctx, req, false)
}

func (s *Server) createOrphanToken(ctx context.Context, req *Request) (*Response, error) {
	return s.newToken(ctx, req, true)
}

func (s *Server) createRoleToken(ctx context.Context, req *Request) (*Response, error) {
	return nil, fault.New(fault.Unsupported, "token roles are not supported: create tokens at auth/token/create")
}

// newToken creates a child token of the caller (or an orphan). Setting the
// id, making an orphan through auth/token/create (no_parent) and making a
// periodic token need root or sudo on the path, as in Vault; a non-root
// caller can give only a subset of its own policies.
func (s *Server) newToken(ctx context.Context, req *Request, orphan bool) (*Response, error) {
	d := req.Data
	switch t := d.String("type"); t {
	case "", "service":
	case "batch":
		return nil, fault.New(fault.Unsupported, "batch tokens are not supported: leave type empty or set it to \"service\"")
	default:
		return nil, fault.New(fault.BadInput, "unknown token type %q: want \"service\"", t)
	}
	if d.String("entity_alias") != "" {
		return nil, fault.New(fault.Unsupported, "entity_alias needs a token role, and token roles are not supported")
	}
	if d.Has("ttl") && d.Has("lease") && d.Duration("ttl") != d.Duration("lease") {
		return nil, fault.New(fault.BadInput, "ttl and lease (its old name) disagree: set ttl only")
	}
	ttl := d.Duration("ttl")
	if !d.Has("ttl") {
		ttl = d.Duration("lease")
	}
	noParent := d.Bool("no_parent")
	if d.String("id") != "" || (noParent && !orphan) || d.Duration("period") > 0 {
		ok, err := s.hasSudo(ctx, req)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fault.New(fault.Permission, "permission denied: root or sudo privileges are needed to set id, no_parent or period")
		}
	}
	cr := auth.CreateRequest{
		ID:              d.String("id"),
		Policies:        d.Strings("policies"),
		NoDefaultPolicy: d.Bool("no_default_policy"),
		Orphan:          orphan || noParent,
		TTL:             ttl,
		ExplicitMaxTTL:  d.Duration("explicit_max_ttl"),
		Period:          d.Duration("period"),
		NumUses:         d.Int("num_uses"),
		DisplayName:     d.String("display_name"),
		Meta:            d.Map("meta"),
		Path:            req.Path,
	}
	cr.Renewable = optional(d, "renewable", d.Bool)
	tok, t, err := s.d.Auth.Create(ctx, req.Token, cr)
	if err != nil {
		return nil, err
	}
	resp := &Response{Auth: authBlock(tok, t)}
	if ttl > 0 && cr.Period == 0 && t.TTL < ttl {
		// As Vault says it: the token lives less long than asked.
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly", ttl, t.TTL))
	}
	// A policy that does not exist (yet) grants nothing: said, as Vault does.
	if names, err := s.d.Auth.PolicyNames(ctx); err == nil {
		for _, p := range t.Policies {
			if !slices.Contains(names, p) {
				resp.Warnings = append(resp.Warnings, fmt.Sprintf("Policy %q does not exist", p))
			}
		}
	}
	return resp, nil
}

// authBlock is Vault's "auth" object of a response that issues or renews a token.
func authBlock(token string, t *auth.Token) map[string]any {
	return map[string]any{
		"client_token":    token,
		"accessor":        t.Accessor,
		"policies":        t.Policies,
		"token_policies":  t.Policies,
		"metadata":        t.Meta,
		"lease_duration":  seconds(t.Remaining(time.Now())),
		"renewable":       t.Renewable,
		"entity_id":       "",
		"token_type":      "service",
		"orphan":          t.Orphan,
		"num_uses":        t.NumUses,
		"mfa_requirement": nil,
	}
}

// tokenData is Vault's lookup answer; id is the token when the caller
// presented it, else "".
func tokenData(id string, t *auth.Token) map[string]any {
	now := time.Now()
	d := map[string]any{
		"accessor":         t.Accessor,
		"creation_time":    t.IssuedAt.Unix(),
		"creation_ttl":     seconds(t.TTL),
		"display_name":     t.DisplayName,
		"entity_id":        "",
		"expire_time":      nil,
		"explicit_max_ttl": seconds(t.ExplicitMaxTTL),
		"id":               id,
		"issue_time":       t.IssuedAt.Format(time.RFC3339Nano),
		"meta":             t.Meta,
		"num_uses":         t.NumUses,
		"orphan":           t.Orphan,
		"path":             t.Path,
		"policies":         t.Policies,
		"renewable":        t.Renewable,
		"ttl":              seconds(t.Remaining(now)),
		"type":             "service",
	}
	if !t.ExpireAt.IsZero() {
		d["expire_time"] = t.ExpireAt.Format(time.RFC3339Nano)
	}
	if t.Period > 0 {
		d["period"] = seconds(t.Period)
	}
	if !t.LastRenewal.IsZero() {
		d["last_renewal_time"] = t.LastRenewal.Unix()
		d["last_renewal"] = t.LastRenewal.Format(time.RFC3339Nano)
	}
	return d
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// required returns a string field that must be set.
func required(req *Request, name string) (string, error) {
	v := req.Data.String(name)
	if v == "" {
		return "", fault.New(fault.BadInput, "%s is required", name)
	}
	return v, nil
}

func (s *Server) lookupSelf(ctx context.Context, req *Request) (*Response, error) {
	return &Response{Data: tokenData(requestToken(req.HTTP), req.Token)}, nil
}

func (s *Server) lookupToken(ctx context.Context, req *Request) (*Response, error) {
	tok, err := required(req, "token")
	if err != nil {
		return nil, err
	}
	t, err := s.d.Auth.Lookup(ctx, tok)
	if fault.KindOf(err) == fault.Unauthorized {
		// Not the caller's token that failed: say which one (still 403,
		// as Vault answers a bad token looked up).
		return nil, fault.New(fault.Unauthorized, "the token looked up is invalid or expired")
	}
	if err != nil {
		return nil, err
	}
	return &Response{Data: tokenData(tok, t)}, nil
}

func (s *Server) lookupAccessor(ctx context.Context, req *Request) (*Response, error) {
	acc, err := required(req, "accessor")
	if err != nil {
		return nil, err
	}
	t, err := s.d.Auth.LookupAccessor(ctx, acc)
	if err != nil {
		return nil, err
	}
	return &Response{Data: tokenData("", t)}, nil
}

func (s *Server) revokeSelf(ctx context.Context, req *Request) (*Response, error) {
	return nil, s.d.Auth.Revoke(ctx, requestToken(req.HTTP))
}

func (s *Server) revokeToken(ctx context.Context, req *Request) (*Response, error) {
	tok, err := required(req, "token")
	if err != nil {
		return nil, err
	}
	return nil, s.d.Auth.Revoke(ctx, tok)
}

func (s *Server) revokeAccessor(ctx context.Context, req *Request) (*Response, error) {
	acc, err := required(req, "accessor")
	if err != nil {
		return nil, err
	}
	return nil, s.d.Auth.RevokeAccessor(ctx, acc)
}

func (s *Server) revokeOrphan(ctx context.Context, req *Request) (*Response, error) {
	tok, err := required(req, "token")
	if err != nil {
		return nil, err
	}
	return nil, s.d.Auth.RevokeOrphan(ctx, tok)
}

func (s *Server) renewSelf(ctx context.Context, req *Request) (*Response, error) {
	t, err := s.d.Auth.Renew(ctx, req.Token.Accessor, req.Data.Duration("increment"))
	if err != nil {
		return nil, err
	}
	return &Response{Auth: authBlock(requestToken(req.HTTP), t)}, nil
}

func (s *Server) renewToken(ctx context.Context, req *Request) (*Response, error) {
	tok, err := required(req, "token")
	if err != nil {
		return nil, err
	}
	t, err := s.d.Auth.Lookup(ctx, tok)
	if err != nil {
		return nil, err
	}
	if t, err = s.d.Auth.Renew(ctx, t.Accessor, req.Data.Duration("increment")); err != nil {
		return nil, err
	}
	return &Response{Auth: authBlock(tok, t)}, nil
}

func (s *Server) renewAccessor(ctx context.Context, req *Request) (*Response, error) {
	acc, err := required(req, "accessor")
	if err != nil {
		return nil, err
	}
	if _, err := s.d.Auth.LookupAccessor(ctx, acc); err != nil {
		return nil, err
	}
	t, err := s.d.Auth.Renew(ctx, acc, req.Data.Duration("increment"))
	if err != nil {
		return nil, err
	}
	return &Response{Auth: authBlock("", t)}, nil
}

func (s *Server) listAccessors(ctx context.Context, req *Request) (*Response, error) {
	accs, err := s.d.Auth.Accessors(ctx)
	if err != nil {
		return nil, err
	}
	return &Response{Data: map[string]any{"keys": accs}}, nil
}
