package api

import (
	"context"
	"strconv"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/keymgmt"
)

// The Key Management engine's KMS paths, as in Vault:
//   kms                          LIST
//   kms/:name                    create/update (provider, key_collection, credentials, endpoint, timeout, oaep_hash), read, delete
//   kms/:name/key                LIST
//   kms/:name/key/:key_name      write (purpose, protection): distribute or resume; read; delete: remove from that provider only
//   key/:name/kms                LIST
// Credentials are sealed in the HSM and never answered; the audit trail holds
// them only as HMACs (sensitiveFields).

func (s *Server) keymgmtKMSRoutes() {
	s.handleBackend("keymgmt", "kms", Fields{}, map[Operation]HandlerFunc{OpList: s.listKMS})
	r := s.handleBackend("keymgmt", "kms/{name}", Fields{
		"provider":       {Type: TypeString},
		"key_collection": {Type: TypeString},
		"credentials":    {Type: TypeMap},
		"endpoint":       {Type: TypeString},
		"timeout":        {Type: TypeDuration},
		"oaep_hash":      {Type: TypeString},
	}, map[Operation]HandlerFunc{
		OpCreate: s.writeKMS,
		OpUpdate: s.writeKMS,
		OpRead:   s.readKMS,
		OpDelete: s.deleteKMS,
	})
	r.exists = func(ctx context.Context, req *Request) (bool, error) {
		return s.d.Keys.KMSExists(ctx, req.Mount.UUID, req.Params["name"])
	}
	s.handleBackend("keymgmt", "kms/{name}/key", Fields{}, map[Operation]HandlerFunc{OpList: s.listKMSKeys})
	s.handleBackend("keymgmt", "kms/{name}/key/{key_name}", Fields{
		"purpose":    {Type: TypeStringList},
		"protection": {Type: TypeString},
	}, map[Operation]HandlerFunc{
		OpUpdate: s.distributeKey,
		OpRead:   s.readDistribution,
		OpDelete: s.removeDistribution,
	})
	s.handleBackend("keymgmt", "key/{name}/kms", Fields{}, map[Operation]HandlerFunc{OpList: s.listKeyKMS})
}

func kmsData(k *keymgmt.KMS) map[string]any {
	d := map[string]any{
		"name":           k.Name,
		"provider":       k.Provider,
		"key_collection": k.KeyCollection,
		"oaep_hash":      k.OAEPHash,
		"timeout":        int64(k.Timeout / time.Second),
	}
	if k.Endpoint != "" {
		d["endpoint"] = k.Endpoint
	}
	return d
}

func (s *Server) listKMS(ctx context.Context, req *Request) (*Response, error) {
	names, err := s.d.Keys.ListKMS(ctx, req.Mount.UUID)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fault.New(fault.NotFound, "no kms providers")
	}
	return &Response{Data: map[string]any{"keys": names}}, nil
}

func strField(req *Request, name string) *string {
	if !req.Data.Has(name) {
		return nil
	}
	v := req.Data.String(name)
	return &v
}

func (s *Server) writeKMS(ctx context.Context, req *Request) (*Response, error) {
	u := keymgmt.KMSUpdate{
		Provider:      strField(req, "provider"),
		KeyCollection: strField(req, "key_collection"),
		Endpoint:      strField(req, "endpoint"),
		OAEPHash:      strField(req, "oaep_hash"),
	}
	if req.Data.Has("credentials") {
		u.Credentials = req.Data.Map("credentials")
		if u.Credentials == nil {
			u.Credentials = map[string]string{}
		}
	}
	u.Timeout = optional(req.Data, "timeout", req.Data.Duration)
	if req.Op == OpCreate && u.Credentials == nil {
		return nil, fault.New(fault.BadInput, "credentials are required")
	}
	if u.Endpoint != nil && *u.Endpoint != "" {
		// Whoever sets an endpoint decides where every key distributed
		// there is sent, and a host that is no cloud would unwrap them: a
		// new one needs sudo on the path. The same one again, or none,
		// needs no more than the write.
		ok, err := s.hasSudo(ctx, req)
		if err != nil {
			return nil, err
		}
		u.EndpointFixed = !ok
	}
	k, err := s.d.Keys.WriteKMS(ctx, req.Mount.UUID, req.Params["name"], u)
	if err != nil {
		return nil, err
	}
	return &Response{Data: kmsData(k)}, nil
}

func (s *Server) readKMS(ctx context.Context, req *Request) (*Response, error) {
	k, err := s.d.Keys.ReadKMS(ctx, req.Mount.UUID, req.Params["name"])
	if err != nil {
		return nil, err
	}
	return &Response{Data: kmsData(k)}, nil
}

func (s *Server) deleteKMS(ctx context.Context, req *Request) (*Response, error) {
	return nil, s.d.Keys.DeleteKMS(ctx, req.Mount.UUID, req.Params["name"])
}

func (s *Server) listKMSKeys(ctx context.Context, req *Request) (*Response, error) {
	names, err := s.d.Keys.ListDistributed(ctx, req.Mount.UUID, req.Params["name"])
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fault.New(fault.NotFound, "no keys are distributed to kms %q", req.Params["name"])
	}
	return &Response{Data: map[string]any{"keys": names}}, nil
}

func (s *Server) listKeyKMS(ctx context.Context, req *Request) (*Response, error) {
	names, err := s.d.Keys.KeyKMS(ctx, req.Mount.UUID, req.Params["name"])
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fault.New(fault.NotFound, "key %q is distributed to no kms", req.Params["name"])
	}
	return &Response{Data: map[string]any{"keys": names}}, nil
}

// distributionData answers like Vault (name, purpose, protection, versions:
// version → the provider's id) plus the distribution's status and, per
// version, its state there and how its import blob was made.
func distributionData(d *keymgmt.Distribution) map[string]any {
	versions := map[string]any{}
	details := map[string]any{}
	for _, v := range d.Versions {
		n := strconv.Itoa(v.Version)
		versions[n] = v.ProviderID
		details[n] = map[string]any{
			"provider_id":     v.ProviderID,
			"imported":        v.Imported,
			"enabled":         v.Enabled,
			"wrapping_scheme": v.Scheme,
			"wrapping_path":   v.Path,
		}
	}
	out := map[string]any{
		"name":            d.Key,
		"kms":             d.KMS,
		"purpose":         d.Purposes,
		"protection":      d.Protection,
		"versions":        versions,
		"version_details": details,
		"status":          d.Status,
	}
	if d.Error != "" {
		out["error"] = d.Error
	}
	return out
}

func (s *Server) distributeKey(ctx context.Context, req *Request) (*Response, error) {
	d, err := s.d.Keys.Distribute(ctx, req.Mount.UUID, keymgmt.DistributeRequest{
		KMS: req.Params["name"], Key: req.Params["key_name"],
		Purposes: req.Data.Strings("purpose"), Protection: req.Data.String("protection"),
	})
	if err != nil {
		return nil, err
	}
	return &Response{Data: distributionData(d)}, nil
}

func (s *Server) readDistribution(ctx context.Context, req *Request) (*Response, error) {
	d, err := s.d.Keys.ReadDistribution(ctx, req.Mount.UUID, req.Params["name"], req.Params["key_name"])
	if err != nil {
		return nil, err
	}
	return &Response{Data: distributionData(d)}, nil
}

func (s *Server) removeDistribution(ctx context.Context, req *Request) (*Response, error) {
	return nil, s.d.Keys.RemoveDistribution(ctx, req.Mount.UUID, req.Params["name"], req.Params["key_name"])
}
