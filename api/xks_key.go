package api

import (
	"context"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/xks"
)

func (s *Server) xksKeyRoutes() {
	s.handleBackend("xks", "key", Fields{}, map[Operation]HandlerFunc{OpList: s.xksListKeys})
	r := s.handleBackend("xks", "key/{name}", Fields{
		"key_usage": {Type: TypeStringList},
		"enabled":   {Type: TypeBool},
		"prefixes":  {Type: TypeStringList},
	}, map[Operation]HandlerFunc{
		OpCreate: s.xksCreateKey,
		OpUpdate: s.xksUpdateKey,
		OpRead:   s.xksReadKey,
		OpDelete: s.xksDeleteKey,
	})
	r.exists = func(ctx context.Context, req *Request) (bool, error) {
		m, err := s.xksManager()
		if err != nil {
			return false, err
		}
		_, err = m.Key(ctx, req.Mount.UUID, req.Params["name"])
		if fault.KindOf(err) == fault.NotFound {
			return false, nil
		}
		return err == nil, err
	}
}

func xksKeyData(k *xks.Key) map[string]any {
	return map[string]any{
		"name":       k.Name,
		"key_spec":   "AES_256",
		"key_usage":  k.Usage,
		"key_status": k.Status(),
		"enabled":    k.Enabled,
		"prefixes":   prefixesOrAll(k.Prefixes),
		"created_at": k.CreatedAt.Format(time.RFC3339Nano),
		"updated_at": k.UpdatedAt.Format(time.RFC3339Nano),
	}
}

// prefixesOrAll shows a key's key stores; none means all of the mount's.
func prefixesOrAll(ps []string) []string {
	if len(ps) == 0 {
		return []string{}
	}
	return ps
}

func (s *Server) xksListKeys(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	names, err := m.Keys(ctx, req.Mount.UUID)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fault.New(fault.NotFound, "no keys")
	}
	return &Response{Data: map[string]any{"keys": names}}, nil
}

// xksCreateKey generates an AES-256 key in the HSM; key_usage defaults to
// ENCRYPT and DECRYPT, and may be given empty (a key usable for neither).
func (s *Server) xksCreateKey(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	usage := []string{xks.UsageEncrypt, xks.UsageDecrypt}
	if req.Data.Has("key_usage") {
		usage = req.Data.Strings("key_usage")
	}
	enabled := true
	if req.Data.Has("enabled") {
		enabled = req.Data.Bool("enabled")
	}
	k, err := m.CreateKeyFor(ctx, req.Mount.UUID, req.Params["name"], usage, enabled, req.Data.Strings("prefixes"))
	if err != nil {
		return nil, err
	}
	return &Response{Data: xksKeyData(k)}, nil
}

func (s *Server) xksUpdateKey(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	var u xks.KeyUpdate
	if req.Data.Has("key_usage") {
		u.Usage = req.Data.Strings("key_usage")
		if u.Usage == nil {
			u.Usage = []string{}
		}
	}
	u.Enabled = optional(req.Data, "enabled", req.Data.Bool)
	if req.Data.Has("prefixes") {
		ps := req.Data.Strings("prefixes")
		if ps == nil {
			ps = []string{}
		}
		u.Prefixes = &ps
	}
	k, err := m.UpdateKey(ctx, req.Mount.UUID, req.Params["name"], u)
	if err != nil {
		return nil, err
	}
	return &Response{Data: xksKeyData(k)}, nil
}

func (s *Server) xksReadKey(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	k, err := m.Key(ctx, req.Mount.UUID, req.Params["name"])
	if err != nil {
		return nil, err
	}
	return &Response{Data: xksKeyData(k)}, nil
}

func (s *Server) xksDeleteKey(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	return nil, m.DeleteKey(ctx, req.Mount.UUID, req.Params["name"])
}
