package api

import (
	"context"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/kmip"
)

// The kmip mount type: administration of the KMIP server, with Vault's KMIP
// paths. The protocol runs on the mount's own mutual-TLS listener (package
// kmip); these routes configure it:
//
//	config                                        read, write (listener, CA, TLS, client defaults)
//	ca                                            read the CA certificate
//	scope                                         LIST
//	scope/:scope                                  create, delete (force while it holds objects)
//	scope/:scope/role                             LIST
//	scope/:scope/role/:role                       write, read, delete
//	scope/:scope/role/:role/credential            LIST (serial numbers)
//	scope/:scope/role/:role/credential/generate   write: a client key and certificate
//	scope/:scope/role/:role/credential/sign       write: certify a CSR
//	scope/:scope/role/:role/credential/lookup     read: a certificate by serial number
//	scope/:scope/role/:role/credential/revoke     write: revoke by serial number or certificate

func (s *Server) kmipRoutes() {
	s.handleBackend("kmip", "config", Fields{
		"listen_addrs":                {Type: TypeStringList},
		"connection_timeout":          {Type: TypeDuration},
		"server_hostnames":            {Type: TypeStringList},
		"server_ips":                  {Type: TypeStringList},
		"tls_ca_key_type":             {Type: TypeString},
		"tls_ca_key_bits":             {Type: TypeInt},
		"tls_min_version":             {Type: TypeString},
		"tls_cipher_suites":           {Type: TypeStringList},
		"default_tls_client_key_type": {Type: TypeString},
		"default_tls_client_key_bits": {Type: TypeInt},
		"default_tls_client_ttl":      {Type: TypeDuration},
		"max_message_bytes":           {Type: TypeInt},
		"idle_timeout":                {Type: TypeDuration},
		"max_connections":             {Type: TypeInt},
	}, map[Operation]HandlerFunc{OpRead: s.kmipReadConfig, OpUpdate: s.kmipWriteConfig})
	s.handleBackend("kmip", "ca", Fields{}, map[Operation]HandlerFunc{OpRead: s.kmipReadCA})
	s.kmipScopeRoutes()
	s.kmipCredentialRoutes()
}

// kmipManager returns the KMIP manager, or an error if the appliance runs without one.
func (s *Server) kmipManager() (*kmip.Manager, error) {
	if s.d.KMIP == nil {
		return nil, fault.New(fault.Unsupported, "the KMIP server is not enabled in this appliance")
	}
	return s.d.KMIP, nil
}

func kmipConfigData(v *kmip.ConfigView) map[string]any {
	c := v.Config
	suites := c.TLSCipherSuites
	if suites == nil {
		suites = []string{}
	}
	return map[string]any{
		"listen_addrs":                c.ListenAddrs,
		"listening":                   v.Listening,
		"connection_timeout":          int(c.ConnectionTimeout / time.Second),
		"server_hostnames":            c.ServerHostnames,
		"server_ips":                  c.ServerIPs,
		"tls_ca_key_type":             c.TLSCAKeyType,
		"tls_ca_key_bits":             c.TLSCAKeyBits,
		"tls_min_version":             c.TLSMinVersion,
		"tls_cipher_suites":           suites,
		"default_tls_client_key_type": c.DefaultTLSClientKeyType,
		"default_tls_client_key_bits": c.DefaultTLSClientKeyBits,
		"default_tls_client_ttl":      int(c.DefaultTLSClientTTL / time.Second),
		"max_message_bytes":           c.MaxMessageBytes,
		"idle_timeout":                int(c.IdleTimeout / time.Second),
		"max_connections":             c.MaxConnections,
		"updated_at":                  c.UpdatedAt.Format(time.RFC3339Nano),
	}
}

func (s *Server) kmipReadConfig(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	v, err := m.Config(ctx, req.Mount.UUID)
	if err != nil {
		return nil, err
	}
	return &Response{Data: kmipConfigData(v)}, nil
}

func (s *Server) kmipWriteConfig(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	d := req.Data
	v, err := m.SetConfig(ctx, req.Mount.UUID, kmip.ConfigInput{
		ListenAddrs:             optional(d, "listen_addrs", d.Strings),
		ConnectionTimeout:       optional(d, "connection_timeout", d.Duration),
		ServerHostnames:         optional(d, "server_hostnames", d.Strings),
		ServerIPs:               optional(d, "server_ips", d.Strings),
		TLSCAKeyType:            optional(d, "tls_ca_key_type", d.String),
		TLSCAKeyBits:            optional(d, "tls_ca_key_bits", d.Int),
		TLSMinVersion:           optional(d, "tls_min_version", d.String),
		TLSCipherSuites:         optional(d, "tls_cipher_suites", d.Strings),
		DefaultTLSClientKeyType: optional(d, "default_tls_client_key_type", d.String),
		DefaultTLSClientKeyBits: optional(d, "default_tls_client_key_bits", d.Int),
		DefaultTLSClientTTL:     optional(d, "default_tls_client_ttl", d.Duration),
		MaxMessageBytes:         optional(d, "max_message_bytes", d.Int),
		IdleTimeout:             optional(d, "idle_timeout", d.Duration),
		MaxConnections:          optional(d, "max_connections", d.Int),
	})
	if err != nil {
		return nil, err
	}
	return &Response{Data: kmipConfigData(v)}, nil
}

func (s *Server) kmipReadCA(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	pem, err := m.CA(ctx, req.Mount.UUID)
	if err != nil {
		return nil, err
	}
	return &Response{Data: map[string]any{"ca_pem": pem}}, nil
}
