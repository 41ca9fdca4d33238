package api

import (
	"context"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/xks"
)

// xksRuleFields are a rule's scope (prefixes, keys) and its conditions on
// requestMetadata: lists of patterns where '*' matches any characters.
var xksRuleFields = Fields{
	"prefixes":          {Type: TypeStringList},
	"keys":              {Type: TypeStringList},
	"aws_principal_arn": {Type: TypeStringList},
	"kms_operation":     {Type: TypeStringList},
	"kms_key_arn":       {Type: TypeStringList},
	"aws_source_vpc":    {Type: TypeStringList},
	"aws_source_vpce":   {Type: TypeStringList},
	"kms_via_service":   {Type: TypeStringList},
}

func (s *Server) xksRuleRoutes() {
	s.handleBackend("xks", "rule", Fields{}, map[Operation]HandlerFunc{OpList: s.xksListRules})
	s.handleBackend("xks", "rule/{name}", xksRuleFields, map[Operation]HandlerFunc{
		OpUpdate: s.xksWriteRule,
		OpRead:   s.xksReadRule,
		OpDelete: s.xksDeleteRule,
	})
}

func xksRuleData(r *xks.Rule) map[string]any {
	l := func(v []string) []string {
		if v == nil {
			return []string{}
		}
		return v
	}
	return map[string]any{
		"name": r.Name, "prefixes": l(r.Prefixes), "keys": l(r.Keys),
		"aws_principal_arn": l(r.AWSPrincipalArns), "kms_operation": l(r.KMSOperations),
		"kms_key_arn": l(r.KMSKeyArns), "aws_source_vpc": l(r.AWSSourceVpcs),
		"aws_source_vpce": l(r.AWSSourceVpces), "kms_via_service": l(r.KMSViaServices),
	}
}

// xksWriteRule creates or replaces a rule with exactly the fields given.
func (s *Server) xksWriteRule(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	d := req.Data
	r := &xks.Rule{
		Name: req.Params["name"], Prefixes: d.Strings("prefixes"), Keys: d.Strings("keys"),
		AWSPrincipalArns: d.Strings("aws_principal_arn"), KMSOperations: d.Strings("kms_operation"),
		KMSKeyArns: d.Strings("kms_key_arn"), AWSSourceVpcs: d.Strings("aws_source_vpc"),
		AWSSourceVpces: d.Strings("aws_source_vpce"), KMSViaServices: d.Strings("kms_via_service"),
	}
	if err := m.PutRule(ctx, req.Mount.UUID, r); err != nil {
		return nil, err
	}
	return &Response{Data: xksRuleData(r)}, nil
}

func (s *Server) xksReadRule(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	r, err := m.Rule(ctx, req.Mount.UUID, req.Params["name"])
	if err != nil {
		return nil, err
	}
	return &Response{Data: xksRuleData(r)}, nil
}

func (s *Server) xksDeleteRule(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	return nil, m.DeleteRule(ctx, req.Mount.UUID, req.Params["name"])
}

func (s *Server) xksListRules(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.xksManager()
	if err != nil {
		return nil, err
	}
	names, err := m.Rules(ctx, req.Mount.UUID)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fault.New(fault.NotFound, "no rules")
	}
	return &Response{Data: map[string]any{"keys": names}}, nil
}
