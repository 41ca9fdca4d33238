package api

import (
	"context"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/xks"
)

// The xks mount type: administration of the AWS XKS proxy. The data plane
// (SigV4, the four XKS operations) runs on its own HTTPS listener in package
// xks; these routes configure it:
//
//	config                      read, write (listener, prefixes, TLS, mTLS, limits)
//	ca                          read the internal CA certificate
//	credential/generate         write: a new SigV4 key pair for a prefix
//	credential                  LIST
//	credential/revoke           write access_key_id
//	credential/:access_key_id   read, delete
//	key                         LIST
//	key/:name                   create, read, update, delete
//	rule                        LIST
//	rule/:name                  write, read, delete

func (s *Server) xksRoutes() {
	s.handleBackend("xks", "config", Fields{
		"listen_addrs":           {Type: TypeStringList},
		"uri_path_prefixes":      {Type: TypeStringList},
		"tls_cert":               {Type: TypeString},
		"tls_key":                {Type: TypeString},
		"tls_internal_ca":        {Type: TypeBool},
		"tls_dns_names":          {Type: TypeStringList},
		"tls_ip_addresses":       {Type: TypeStringList},
		"mtls_client_ca":         {Type: TypeString},
		"mtls_allowed_subjects":  {Type: TypeStringList},
		"mtls_allowed_dns_names": {Type: TypeStringList},
		"max_plaintext_bytes":    {Type: TypeInt},
		"max_connections":        {Type: TypeInt},
		"max_aad_bytes":          {Type: TypeInt},
		"rate_limit":             {Type: TypeInt},
		// An object of prefix to region, or PREFIX=REGION strings (a list
		// or comma-separated): the CLI sends k=v pairs as an object only
		// when the name is an identifier, and a prefix may hold '/'.
		"key_store_regions": {Type: TypeAny},
	}, map[Operation]HandlerFunc{OpRead: s.xksReadConfig, OpUpdate: s.xksWriteConfig})
	s.handleBackend("xks", "ca", Fields{}, map[Operation]HandlerFunc{OpRead: s.xksReadCA})
	s.xksCredentialRoutes()
	s.xksKeyRoutes()
	s.xksRuleRoutes()
}

// xksManager returns the XKS manager, or an error if the appliance runs without one.
func (s *Server) xksManager() (*xks.Manager, error) {
	if s.d.XKS == nil {
		return nil, fault.New(fault.Unsupported, "the XKS proxy is not enabled in this appliance")
	}
	return s.d.XKS, nil
}

func xksConfigData(v *xks.ConfigView) map[string]any {
	c := v.Config
	listening := v.Listening
	if listening == nil {
		listening = []string{}
	}
	regions := map[string]string{}
	for p, r := range c.Regions {
		regions[p] = r
	}
	return map[string]any{
		"listen_addrs":           c.ListenAddrs,
		"listening":              listening,
		"uri_path_prefixes":      c.Prefixes,
		"uri_paths":              v.URIPaths,
		"tls_internal_ca":        c.TLSInternalCA,
		"tls_dns_names":          c.TLSDNSNames,
		"tls_ip_addresses":       c.TLSIPAddresses,
		"tls_cert":               c.TLSCertPEM,
		"mtls_client_ca":         c.ClientCAPEM,
		"mtls_allowed_subjects":  c.AllowedSubjects,
		"mtls_allowed_dns_names": c.AllowedDNSNames,
		"max_plaintext_bytes":    c.MaxPlaintext,
		"max_connections":        c.ConnectionLimit(),
		"max_aad_bytes":          c.MaxAAD,
		"rate_limit":             c.RateLimit,
		"key_store_regions":      regions,
		"updated_at":             c.UpdatedAt.Format(time.RFC3339Nano),
	}
}

func (s *Server) xksReadConfig(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	v, err := m.Config(ctx, req.Mount.UUID)
	if err != nil {
		return nil, err
	}
	return &Response{Data: xksConfigData(v)}, nil
}

func (s *Server) xksWriteConfig(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	d := req.Data
	in := xks.ConfigInput{
		ListenAddrs:     optional(d, "listen_addrs", d.Strings),
		Prefixes:        optional(d, "uri_path_prefixes", d.Strings),
		TLSCertPEM:      optional(d, "tls_cert", d.String),
		TLSKeyPEM:       optional(d, "tls_key", d.String),
		TLSDNSNames:     optional(d, "tls_dns_names", d.Strings),
		TLSIPAddresses:  optional(d, "tls_ip_addresses", d.Strings),
		ClientCAPEM:     optional(d, "mtls_client_ca", d.String),
		AllowedSubjects: optional(d, "mtls_allowed_subjects", d.Strings),
		AllowedDNSNames: optional(d, "mtls_allowed_dns_names", d.Strings),
		MaxPlaintext:    optional(d, "max_plaintext_bytes", d.Int),
		MaxConnections:  optional(d, "max_connections", d.Int),
		MaxAAD:          optional(d, "max_aad_bytes", d.Int),
		RateLimit:       optional(d, "rate_limit", d.Int),
		TLSInternalCA:   optional(d, "tls_internal_ca", d.Bool),
	}
	if d.Has("key_store_regions") {
		rs, err := keyStoreRegions(d.raw["key_store_regions"])
		if err != nil {
			return nil, err
		}
		in.Regions = &rs
	}
	if text, ok := d.raw["uri_path_prefixes"].(string); ok && in.Prefixes != nil && len(*in.Prefixes) == 0 && strings.TrimSpace(text) == "" {
		// uri_path_prefixes="" is the empty prefix; an empty list is no
		// prefix at all, which the configuration refuses.
		*in.Prefixes = []string{""}
	}
	v, err := m.SetConfig(ctx, req.Mount.UUID, in)
	if err != nil {
		return nil, err
	}
	return &Response{Data: xksConfigData(v)}, nil
}

// keyStoreRegions reads key_store_regions: an object of prefix to region,
// or PREFIX=REGION strings, a list or one comma-separated string ("" or
// "/" is the empty prefix, as in "=us-east-1"). xks.Config checks the
// prefixes and the regions.
func keyStoreRegions(v any) (map[string]string, error) {
	bad := func(format string, args ...any) error {
		return fault.New(fault.BadInput, "field \"key_store_regions\": "+format, args...)
	}
	out := map[string]string{}
	var pairs []string
	switch x := v.(type) {
	case map[string]any:
		for p, r := range x {
			s, ok := r.(string)
			if !ok {
				return nil, bad("the region of %q must be a string", p)
			}
			out[p] = s
		}
		return out, nil
	case string:
		for _, p := range strings.Split(x, ",") {
			if p = strings.TrimSpace(p); p != "" {
				pairs = append(pairs, p)
			}
		}
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, bad("want an object of prefix to region, or PREFIX=REGION strings")
			}
			pairs = append(pairs, s)
		}
	default:
		return nil, bad("want an object of prefix to region, or PREFIX=REGION strings")
	}
	for _, pr := range pairs {
		i := strings.LastIndexByte(pr, '=')
		if i < 0 {
			return nil, bad("%q is not PREFIX=REGION", pr)
		}
		p := strings.TrimSpace(pr[:i])
		if _, dup := out[p]; dup {
			return nil, bad("the prefix %q is given twice", p)
		}
		out[p] = strings.TrimSpace(pr[i+1:])
	}
	return out, nil
}

func (s *Server) xksReadCA(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	pem, err := m.CA(ctx, req.Mount.UUID)
	if err != nil {
		return nil, err
	}
	return &Response{Data: map[string]any{"certificate": pem}}, nil
}
