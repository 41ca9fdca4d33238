package xks

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
)

// Key usages an external key may have (spec: GetKeyMetadata keyUsage).
const (
	UsageEncrypt = "ENCRYPT"
	UsageDecrypt = "DECRYPT"
)

// Spec limits on identifiers.
var (
	keyIDRe  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	prefixRe = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`)
	ruleRe   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// uriSuffix is what every XKS URI path ends its prefix with.
const uriSuffix = "/kms/xks/v1"

// Key is an external key: an AES-256 key generated in the HSM, kept as a
// wrapped blob bound to ID.
type Key struct {
	Name    string   `json:"name"`
	ID      string   `json:"id"`
	Usage   []string `json:"key_usage"`
	Enabled bool     `json:"enabled"`
	// Prefixes are the key stores (uri_path_prefixes) whose credentials
	// may use the key; empty: every key store of the mount.
	Prefixes  []string  `json:"prefixes,omitempty"`
	Blob      []byte    `json:"blob"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (k *Key) can(usage string) bool { return contains(k.Usage, usage) }

// servesPrefix reports whether requests at a key store prefix may use the key.
func (k *Key) servesPrefix(prefix string) bool {
	return len(k.Prefixes) == 0 || contains(k.Prefixes, prefix)
}

// NormalizePrefixes checks and normalises a key's prefixes (sorted, each
// once); nil stays nil (every key store).
func NormalizePrefixes(ps []string) ([]string, error) {
	if ps == nil {
		return nil, nil
	}
	out := []string{}
	for _, p := range ps {
		n, err := NormalizePrefix(p)
		if err != nil {
			return nil, err
		}
		if !contains(out, n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Status is the key's keyStatus.
func (k *Key) Status() string {
	if k.Enabled {
		return "ENABLED"
	}
	return "DISABLED"
}

// KeyUpdate changes a key; nil fields are left as they are.
type KeyUpdate struct {
	Usage    []string
	Enabled  *bool
	Prefixes *[]string // empty: every key store
}

// CheckKeyName checks an externalKeyId against the spec.
func CheckKeyName(name string) error {
	if !keyIDRe.MatchString(name) {
		return fault.New(fault.BadInput, "invalid key name %q: 1 to 128 of A-Z, a-z, 0-9, '.', '_' and '-' (an XKS externalKeyId)", name)
	}
	return nil
}

// NormalizeUsage checks and sorts a key usage list; each entry is ENCRYPT or
// DECRYPT (case-insensitive), and the list may be empty (a key that can do
// neither, as the conformance client's "impotent" key).
func NormalizeUsage(in []string) ([]string, error) {
	out := []string{}
	for _, u := range in {
		u = strings.ToUpper(strings.TrimSpace(u))
		if u == "" {
			continue
		}
		if u != UsageEncrypt && u != UsageDecrypt {
			return nil, fault.New(fault.BadInput, "invalid key usage %q: ENCRYPT and/or DECRYPT", u)
		}
		if !contains(out, u) {
			out = append(out, u)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out))) // ENCRYPT, DECRYPT
	return out, nil
}

// NormalizePrefix checks a uri_path_prefix and returns it without leading and
// trailing slashes ("" is the empty prefix). The whole XksProxyUriPath
// (prefix + /kms/xks/v1) must fit AWS's 128 characters.
func NormalizePrefix(p string) (string, error) {
	p = strings.Trim(strings.TrimSpace(p), "/")
	if p == "" {
		return "", nil
	}
	if !prefixRe.MatchString(p) {
		return "", fault.New(fault.BadInput, "invalid uri_path_prefix %q: segments of A-Z, a-z, 0-9, '_' and '-'", p)
	}
	if n := len(p) + 1 + len(uriSuffix); n > 128 {
		return "", fault.New(fault.BadInput, "uri_path_prefix %q makes an XksProxyUriPath of %d characters; AWS allows 128", p, n)
	}
	return p, nil
}

// URIPath is the XksProxyUriPath AWS KMS is configured with for a prefix.
func URIPath(prefix string) string {
	if prefix == "" {
		return uriSuffix
	}
	return "/" + prefix + uriSuffix
}

// Rule is a secondary authorization rule. It applies to requests for the
// listed path prefixes and keys (any, when a list is empty); a request that
// any rule applies to is allowed only if at least one applicable rule
// matches it: each non-empty condition has a pattern ('*' matches any run of
// characters) that matches the request's metadata field, and an absent field
// matches no pattern. Requests no rule applies to are allowed. GetHealthStatus
// is never subject to rules.
type Rule struct {
	Name             string   `json:"name"`
	Prefixes         []string `json:"prefixes,omitempty"`
	Keys             []string `json:"keys,omitempty"`
	AWSPrincipalArns []string `json:"aws_principal_arn,omitempty"`
	KMSOperations    []string `json:"kms_operation,omitempty"`
	KMSKeyArns       []string `json:"kms_key_arn,omitempty"`
	AWSSourceVpcs    []string `json:"aws_source_vpc,omitempty"`
	AWSSourceVpces   []string `json:"aws_source_vpce,omitempty"`
	KMSViaServices   []string `json:"kms_via_service,omitempty"`
}

// Check validates a rule.
func (r *Rule) Check() error {
	if !ruleRe.MatchString(r.Name) {
		return fault.New(fault.BadInput, "invalid rule name %q: 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'", r.Name)
	}
	for i, p := range r.Prefixes {
		n, err := NormalizePrefix(p)
		if err != nil {
			return err
		}
		r.Prefixes[i] = n
	}
	for _, k := range r.Keys {
		if err := CheckKeyName(k); err != nil {
			return err
		}
	}
	conds := 0
	for _, c := range r.conditions() {
		conds += len(c.patterns)
		for _, p := range c.patterns {
			if p == "" || len(p) > maxFieldLen {
				return fault.New(fault.BadInput, "rule %s: empty or overlong %s pattern", r.Name, c.field)
			}
		}
	}
	if conds == 0 {
		return fault.New(fault.BadInput, "rule %s has no condition: give at least one of aws_principal_arn, kms_operation, kms_key_arn, aws_source_vpc, aws_source_vpce, kms_via_service", r.Name)
	}
	return nil
}

type condition struct {
	field    string
	patterns []string
	value    func(*RequestMetadata) string
}

func (r *Rule) conditions() []condition {
	return []condition{
		{"aws_principal_arn", r.AWSPrincipalArns, func(m *RequestMetadata) string { return m.AWSPrincipalArn }},
		{"kms_operation", r.KMSOperations, func(m *RequestMetadata) string { return m.KMSOperation }},
		{"kms_key_arn", r.KMSKeyArns, func(m *RequestMetadata) string { return m.KMSKeyArn }},
		{"aws_source_vpc", r.AWSSourceVpcs, func(m *RequestMetadata) string { return m.AWSSourceVpc }},
		{"aws_source_vpce", r.AWSSourceVpces, func(m *RequestMetadata) string { return m.AWSSourceVpce }},
		{"kms_via_service", r.KMSViaServices, func(m *RequestMetadata) string { return m.KMSViaService }},
	}
}

func (r *Rule) appliesTo(prefix, key string) bool {
	return (len(r.Prefixes) == 0 || contains(r.Prefixes, prefix)) && (len(r.Keys) == 0 || contains(r.Keys, key))
}

// match reports whether the metadata satisfies every condition, and if not
// which field failed.
func (r *Rule) match(m *RequestMetadata) (bool, string) {
	for _, c := range r.conditions() {
		if len(c.patterns) == 0 {
			continue
		}
		v := c.value(m)
		ok := false
		for _, p := range c.patterns {
			if v != "" && glob(p, v) {
				ok = true
				break
			}
		}
		if !ok {
			return false, c.field
		}
	}
	return true, ""
}

// authorize applies the rules to a request; it returns nil or the reason for
// a denial (for the log: which rules applied and what failed).
func authorize(rules []Rule, prefix, key string, m *RequestMetadata) error {
	var applied []string
	for i := range rules {
		r := &rules[i]
		if !r.appliesTo(prefix, key) {
			continue
		}
		ok, field := r.match(m)
		if ok {
			return nil
		}
		applied = append(applied, r.Name+" (failed on "+field+")")
	}
	if len(applied) == 0 {
		return nil
	}
	return fmt.Errorf("no secondary authorization rule matched: %s", strings.Join(applied, ", "))
}

// glob matches s against a pattern where '*' matches any run of characters
// (slashes included, as ARNs have them) and every other byte itself.
func glob(pattern, s string) bool {
	px, sx := 0, 0
	star, mark := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pattern) && pattern[px] == '*':
			star, mark = px, sx
			px++
		case px < len(pattern) && pattern[px] == s[sx]:
			px++
			sx++
		case star >= 0:
			px = star + 1
			mark++
			sx = mark
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}
