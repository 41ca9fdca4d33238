package api

import (
	"context"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/kmip"
)

func (s *Server) kmipCredentialRoutes() {
	const base = "scope/{scope}/role/{role}/credential"
	s.handleBackend("kmip", base, Fields{}, map[Operation]HandlerFunc{OpList: s.kmipListCredentials})
	s.handleBackend("kmip", base+"/generate", Fields{"format": {Type: TypeString}},
		map[Operation]HandlerFunc{OpUpdate: s.kmipGenerateCredential})
	s.handleBackend("kmip", base+"/sign", Fields{"csr": {Type: TypeString}, "format": {Type: TypeString}},
		map[Operation]HandlerFunc{OpUpdate: s.kmipSignCredential})
	s.handleBackend("kmip", base+"/lookup", Fields{"serial_number": {Type: TypeString}, "format": {Type: TypeString}},
		map[Operation]HandlerFunc{OpRead: s.kmipLookupCredential, OpUpdate: s.kmipLookupCredential})
	s.handleBackend("kmip", base+"/revoke", Fields{"serial_number": {Type: TypeString}, "certificate": {Type: TypeString}},
		map[Operation]HandlerFunc{OpUpdate: s.kmipRevokeCredential})
}

func kmipCredentialData(c *kmip.Credential) map[string]any {
	d := map[string]any{"serial_number": c.SerialNumber, "certificate": c.Certificate, "ca_chain": c.CAChain}
	if c.PrivateKey != "" {
		d["private_key"] = c.PrivateKey
	}
	return d
}

func (s *Server) kmipListCredentials(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	serials, err := m.Credentials(ctx, req.Mount.UUID, req.Params["scope"], req.Params["role"])
	if err != nil {
		return nil, err
	}
	if len(serials) == 0 {
		return nil, fault.New(fault.NotFound, "no credentials")
	}
	return &Response{Data: map[string]any{"keys": serials}}, nil
}

// kmipGenerateCredential answers the private key once; it is not kept.
func (s *Server) kmipGenerateCredential(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	c, err := m.GenerateCredential(ctx, req.Mount.UUID, req.Params["scope"], req.Params["role"], req.Data.String("format"))
	if err != nil {
		return nil, err
	}
	return &Response{Data: kmipCredentialData(c)}, nil
}

func (s *Server) kmipSignCredential(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	if req.Data.String("csr") == "" {
		return nil, fault.New(fault.BadInput, "csr is required")
	}
	c, err := m.SignCredential(ctx, req.Mount.UUID, req.Params["scope"], req.Params["role"], req.Data.String("csr"), req.Data.String("format"))
	if err != nil {
		return nil, err
	}
	return &Response{Data: kmipCredentialData(c)}, nil
}

func (s *Server) kmipLookupCredential(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	if req.Data.String("serial_number") == "" {
		return nil, fault.New(fault.BadInput, "serial_number is required")
	}
	c, err := m.LookupCredential(ctx, req.Mount.UUID, req.Params["scope"], req.Params["role"], req.Data.String("serial_number"), req.Data.String("format"))
	if err != nil {
		return nil, err
	}
	return &Response{Data: kmipCredentialData(c)}, nil
}

func (s *Server) kmipRevokeCredential(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	return nil, m.RevokeCredential(ctx, req.Mount.UUID, req.Params["scope"], req.Params["role"],
		req.Data.String("serial_number"), req.Data.String("certificate"))
}
