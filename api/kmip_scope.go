package api

import (
	"context"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/kmip"
)

func (s *Server) kmipScopeRoutes() {
	s.handleBackend("kmip", "scope", Fields{}, map[Operation]HandlerFunc{OpList: s.kmipListScopes})
	s.handleBackend("kmip", "scope/{scope}", Fields{"force": {Type: TypeBool}},
		map[Operation]HandlerFunc{OpUpdate: s.kmipCreateScope, OpDelete: s.kmipDeleteScope})
	s.handleBackend("kmip", "scope/{scope}/role", Fields{}, map[Operation]HandlerFunc{OpList: s.kmipListRoles})
	roleFields := Fields{
		"operation_all":       {Type: TypeBool},
		"operation_none":      {Type: TypeBool},
		"tls_client_key_type": {Type: TypeString},
		"tls_client_key_bits": {Type: TypeInt},
		"tls_client_ttl":      {Type: TypeDuration},
		"rng_seed_max_bytes":  {Type: TypeInt},
	}
	for _, op := range kmip.OperationNames() {
		roleFields["operation_"+op] = Field{Type: TypeBool}
	}
	s.handleBackend("kmip", "scope/{scope}/role/{role}", roleFields, map[Operation]HandlerFunc{
		OpUpdate: s.kmipWriteRole, OpRead: s.kmipReadRole, OpDelete: s.kmipDeleteRole,
	})
}

func (s *Server) kmipListScopes(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	names, err := m.Scopes(ctx, req.Mount.UUID)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fault.New(fault.NotFound, "no scopes")
	}
	return &Response{Data: map[string]any{"keys": names}}, nil
}

func (s *Server) kmipCreateScope(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	return nil, m.CreateScope(ctx, req.Mount.UUID, req.Params["scope"])
}

func (s *Server) kmipDeleteScope(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	return nil, m.DeleteScope(ctx, req.Mount.UUID, req.Params["scope"], req.Data.Bool("force"))
}

func (s *Server) kmipListRoles(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	names, err := m.Roles(ctx, req.Mount.UUID, req.Params["scope"])
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fault.New(fault.NotFound, "no roles")
	}
	return &Response{Data: map[string]any{"keys": names}}, nil
}

// kmipRoleData is a role as Vault shows it: the operation_* flags it
// grants, and the credential settings it sets.
func kmipRoleData(r *kmip.Role) map[string]any {
	d := map[string]any{}
	if r.All {
		d["operation_all"] = true
	} else if len(r.Operations) == 0 {
		d["operation_none"] = true
	}
	for _, op := range r.Operations {
		d["operation_"+op] = true
	}
	if r.TLSClientKeyType != "" {
		d["tls_client_key_type"], d["tls_client_key_bits"] = r.TLSClientKeyType, r.TLSClientKeyBits
	}
	if r.TLSClientTTL != 0 {
		d["tls_client_ttl"] = int(r.TLSClientTTL / time.Second)
	}
	if r.RNGSeedMaxBytes != nil {
		d["rng_seed_max_bytes"] = *r.RNGSeedMaxBytes
	}
	return d
}

func (s *Server) kmipWriteRole(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	d := req.Data
	in := kmip.RoleInput{Ops: map[string]bool{}}
	for _, op := range append(kmip.OperationNames(), "all", "none") {
		if d.Has("operation_" + op) {
			in.Ops[op] = d.Bool("operation_" + op)
		}
	}
	in.TLSClientKeyType = optional(d, "tls_client_key_type", d.String)
	in.TLSClientKeyBits = optional(d, "tls_client_key_bits", d.Int)
	in.TLSClientTTL = optional(d, "tls_client_ttl", d.Duration)
	in.RNGSeedMaxBytes = optional(d, "rng_seed_max_bytes", d.Int)
	r, err := m.PutRole(ctx, req.Mount.UUID, req.Params["scope"], req.Params["role"], in)
	if err != nil {
		return nil, err
	}
	return &Response{Data: kmipRoleData(r)}, nil
}

func (s *Server) kmipReadRole(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	r, err := m.Role(ctx, req.Mount.UUID, req.Params["scope"], req.Params["role"])
	if err != nil {
		return nil, err
	}
	return &Response{Data: kmipRoleData(r)}, nil
}

func (s *Server) kmipDeleteRole(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	return nil, m.DeleteRole(ctx, req.Mount.UUID, req.Params["scope"], req.Params["role"])
}
