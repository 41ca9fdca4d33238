package api

import (
	"context"
	"strconv"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/keymgmt"
)

// The Key Management engine's key paths, as in Vault:
//   key            LIST
//   key/:name      create (type), read, update (min_enabled_version, deletion_allowed), delete
//   key/:name/rotate

func (s *Server) keymgmtRoutes() {
	s.handleBackend("keymgmt", "key", Fields{}, map[Operation]HandlerFunc{OpList: s.listKeys})
	r := s.handleBackend("keymgmt", "key/{name}", Fields{
		"type":                {Type: TypeString},
		"min_enabled_version": {Type: TypeInt},
		"deletion_allowed":    {Type: TypeBool},
	}, map[Operation]HandlerFunc{
		OpCreate: s.createKey,
		OpUpdate: s.updateKey,
		OpRead:   s.readKey,
		OpDelete: s.deleteKey,
	})
	r.exists = func(ctx context.Context, req *Request) (bool, error) {
		return s.d.Keys.Exists(ctx, req.Mount.UUID, req.Params["name"])
	}
	s.handleBackend("keymgmt", "key/{name}/rotate", Fields{}, map[Operation]HandlerFunc{OpUpdate: s.rotateKey})
}

func keyData(k *keymgmt.Key) map[string]any {
	versions := map[string]any{}
	for _, v := range k.Versions {
		e := map[string]any{"creation_time": v.CreatedAt.Format(time.RFC3339Nano)}
		if v.PublicKey != "" {
			e["public_key"] = v.PublicKey
		}
		versions[strconv.Itoa(v.Version)] = e
	}
	return map[string]any{
		"name":                k.Name,
		"type":                k.Type,
		"latest_version":      k.LatestVersion,
		"min_enabled_version": k.MinEnabledVersion,
		"deletion_allowed":    k.DeletionAllowed,
		"versions":            versions,
	}
}

func (s *Server) listKeys(ctx context.Context, req *Request) (*Response, error) {
	names, err := s.d.Keys.List(ctx, req.Mount.UUID)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fault.New(fault.NotFound, "no keys")
	}
	return &Response{Data: map[string]any{"keys": names}}, nil
}

func (s *Server) createKey(ctx context.Context, req *Request) (*Response, error) {
	if v := req.Data.Int("min_enabled_version"); v < 0 || v > 1 {
		return nil, fault.New(fault.BadInput, "min_enabled_version %d is out of range: a new key has version 1 only", v)
	}
	k, err := s.d.Keys.Create(ctx, req.Mount.UUID, req.Params["name"], req.Data.String("type"))
	if fault.KindOf(err) == fault.Conflict {
		// Another request made the key since this one found it missing:
		// a write of an existing key is an update, as it would have been
		// a moment later, if the token may update it.
		if ok, aerr := s.d.Auth.Allowed(ctx, req.Token, req.Path, string(OpUpdate), false); aerr == nil && ok {
			return s.updateKey(ctx, req)
		}
	}
	if err != nil {
		return nil, err
	}
	if req.Data.Has("min_enabled_version") || req.Data.Has("deletion_allowed") {
		if k, err = s.d.Keys.UpdateKey(ctx, req.Mount.UUID, k.Name, keyUpdate(req)); err != nil {
			return nil, err
		}
	}
	return &Response{Data: keyData(k)}, nil
}

func keyUpdate(req *Request) keymgmt.Update {
	return keymgmt.Update{
		MinEnabledVersion: optional(req.Data, "min_enabled_version", req.Data.Int),
		DeletionAllowed:   optional(req.Data, "deletion_allowed", req.Data.Bool),
	}
}

func (s *Server) updateKey(ctx context.Context, req *Request) (*Response, error) {
	name := req.Params["name"]
	if req.Data.Has("type") {
		cur, err := s.d.Keys.Get(ctx, req.Mount.UUID, name)
		if err != nil {
			return nil, err
		}
		if t := req.Data.String("type"); t != cur.Type {
			return nil, fault.New(fault.BadInput, "key %q is of type %s; the type of a key cannot change (asked for %q)", name, cur.Type, t)
		}
	}
	k, err := s.d.Keys.UpdateKey(ctx, req.Mount.UUID, name, keyUpdate(req))
	if err != nil {
		return nil, err
	}
	return &Response{Data: keyData(k)}, nil
}

func (s *Server) readKey(ctx context.Context, req *Request) (*Response, error) {
	k, err := s.d.Keys.Get(ctx, req.Mount.UUID, req.Params["name"])
	if err != nil {
		return nil, err
	}
	return &Response{Data: keyData(k)}, nil
}

func (s *Server) deleteKey(ctx context.Context, req *Request) (*Response, error) {
	return nil, s.d.Keys.Delete(ctx, req.Mount.UUID, req.Params["name"])
}

func (s *Server) rotateKey(ctx context.Context, req *Request) (*Response, error) {
	k, err := s.d.Keys.Rotate(ctx, req.Mount.UUID, req.Params["name"])
	if err != nil {
		return nil, err
	}
	return &Response{Data: keyData(k)}, nil
}
