package xks

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
)

// Spec minimums and this proxy's defaults and ceilings for the size limits.
const (
	MinPlaintext     = 4300  // the spec's minimum plaintext/ciphertext size
	MinAAD           = 8192  // the spec's minimum AAD size
	DefaultPlaintext = 8192  // default max_plaintext_bytes
	DefaultAAD       = 16384 // default max_aad_bytes
	maxPlaintextCap  = 1 << 20
	maxAADCap        = 65535 // the AAD construction carries a 2-byte length

	DefaultMaxConnections = 1024 // default max_connections
	maxConnectionsCap     = 1 << 20
)

// Config is an xks mount's listener configuration, as stored. The TLS key is
// an HSM blob (imported or generated in the token), never plaintext.
type Config struct {
	ListenAddrs []string `json:"listen_addrs"`
	Prefixes    []string `json:"uri_path_prefixes"`

	TLSInternalCA  bool     `json:"tls_internal_ca"` // the server certificate is issued by the mount's CA
	TLSDNSNames    []string `json:"tls_dns_names,omitempty"`
	TLSIPAddresses []string `json:"tls_ip_addresses,omitempty"`
	TLSCertPEM     string   `json:"tls_cert_pem"` // leaf first, then intermediates
	TLSKeyID       string   `json:"tls_key_id"`
	TLSKeyBlob     []byte   `json:"tls_key_blob"`

	ClientCAPEM     string   `json:"mtls_client_ca_pem,omitempty"`
	AllowedSubjects []string `json:"mtls_allowed_subjects,omitempty"` // client certificate subject CNs
	AllowedDNSNames []string `json:"mtls_allowed_dns_names,omitempty"`

	MaxPlaintext int `json:"max_plaintext_bytes"`
	MaxAAD       int `json:"max_aad_bytes"`
	RateLimit    int `json:"rate_limit"` // requests per second per prefix; 0 is unlimited
	// MaxConnections bounds the connections open at once over all listen
	// addresses (0, as stored before it existed: the default): each may
	// hold a request body before it is authenticated.
	MaxConnections int `json:"max_connections,omitempty"`
	// Regions are the AWS regions of the key stores, by prefix: AWS KMS
	// signs its requests to a key store for the region the key store is
	// in (the region of the SigV4 credential scope), and a request signed
	// for another one is refused. A key store without a region (every
	// one, as stored before the setting existed) takes any.
	Regions map[string]string `json:"key_store_regions,omitempty"`

	UpdatedAt time.Time `json:"updated_at"`
}

// ConfigInput is a write of the configuration; nil fields keep their value.
type ConfigInput struct {
	ListenAddrs     *[]string
	Prefixes        *[]string
	TLSCertPEM      *string
	TLSKeyPEM       *string // imported into the HSM, never stored
	TLSInternalCA   *bool
	TLSDNSNames     *[]string
	TLSIPAddresses  *[]string
	ClientCAPEM     *string
	AllowedSubjects *[]string
	AllowedDNSNames *[]string
	MaxPlaintext    *int
	MaxAAD          *int
	RateLimit       *int
	MaxConnections  *int
	Regions         *map[string]string // replaces them all; a key store left out takes any region
}

// ConfigView is the configuration as shown to an operator (no key blob).
type ConfigView struct {
	Config
	URIPaths  []string
	Listening []string // the addresses the listener is bound to
}

// apply merges the input into c and checks the result. It reports whether
// a new server certificate is needed (TLS settings changed).
func (c *Config) apply(in ConfigInput) (newCert bool, err error) {
	if in.ListenAddrs != nil {
		c.ListenAddrs = *in.ListenAddrs
	}
	if len(c.ListenAddrs) == 0 {
		return false, fault.New(fault.BadInput, "listen_addrs is required (e.g. 0.0.0.0:443)")
	}
	for _, a := range c.ListenAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return false, fault.New(fault.BadInput, "invalid listen address %q: want host:port", a)
		}
	}
	if in.Prefixes != nil {
		seen := map[string]bool{}
		var ps []string
		for _, p := range *in.Prefixes {
			n, err := NormalizePrefix(p)
			if err != nil {
				return false, err
			}
			if !seen[n] {
				seen[n] = true
				ps = append(ps, n)
			}
		}
		c.Prefixes = ps
	}
	if len(c.Prefixes) == 0 {
		return false, fault.New(fault.BadInput, "uri_path_prefixes is required: one or more path prefixes (\"\" for none)")
	}
	if in.TLSInternalCA != nil && *in.TLSInternalCA != c.TLSInternalCA {
		c.TLSInternalCA = *in.TLSInternalCA
		newCert = true
	}
	if in.TLSDNSNames != nil {
		c.TLSDNSNames = *in.TLSDNSNames
		newCert = newCert || c.TLSInternalCA
	}
	if in.TLSIPAddresses != nil {
		for _, ip := range *in.TLSIPAddresses {
			if net.ParseIP(ip) == nil {
				return false, fault.New(fault.BadInput, "invalid IP address %q in tls_ip_addresses", ip)
			}
		}
		c.TLSIPAddresses = *in.TLSIPAddresses
		newCert = newCert || c.TLSInternalCA
	}
	provided := in.TLSCertPEM != nil || in.TLSKeyPEM != nil
	switch {
	case provided && c.TLSInternalCA:
		return false, fault.New(fault.BadInput, "give either tls_cert and tls_key or tls_internal_ca=true, not both")
	case provided && (in.TLSCertPEM == nil || in.TLSKeyPEM == nil):
		return false, fault.New(fault.BadInput, "tls_cert and tls_key go together")
	case provided:
		newCert = true
	case c.TLSInternalCA:
		if c.TLSKeyBlob == nil {
			newCert = true
		}
		if len(c.TLSDNSNames) == 0 && len(c.TLSIPAddresses) == 0 {
			c.TLSDNSNames = []string{"localhost"}
			c.TLSIPAddresses = []string{"127.0.0.1", "::1"}
		}
	case c.TLSKeyBlob == nil || newCert:
		return false, fault.New(fault.BadInput, "a server certificate is required: give tls_cert and tls_key (PEM), or tls_internal_ca=true for one issued by the mount's internal CA (dev and test)")
	}
	if in.ClientCAPEM != nil {
		if *in.ClientCAPEM != "" {
			if _, err := parseCertPool(*in.ClientCAPEM); err != nil {
				return false, err
			}
		}
		c.ClientCAPEM = *in.ClientCAPEM
	}
	if in.AllowedSubjects != nil {
		c.AllowedSubjects = *in.AllowedSubjects
	}
	if in.AllowedDNSNames != nil {
		c.AllowedDNSNames = *in.AllowedDNSNames
	}
	if c.ClientCAPEM == "" && (len(c.AllowedSubjects) > 0 || len(c.AllowedDNSNames) > 0) {
		return false, fault.New(fault.BadInput, "mtls_allowed_subjects and mtls_allowed_dns_names need mtls_client_ca")
	}
	if c.ClientCAPEM != "" && len(c.AllowedSubjects) == 0 && len(c.AllowedDNSNames) == 0 {
		// The spec has the customer configure the client's subject; AWS
		// KMS's certificates come from a public CA, which issues them to
		// anyone.
		return false, fault.New(fault.BadInput, "mtls_client_ca needs mtls_allowed_subjects or mtls_allowed_dns_names (e.g. cks.kms.us-east-1.amazonaws.com): the CA alone would admit every client certificate it issued")
	}
	// As for max_connections below, an explicit 0 is refused (it could be
	// read as "no limit"); only a configuration that never had a limit
	// gets the default.
	if in.MaxPlaintext != nil {
		c.MaxPlaintext = *in.MaxPlaintext
	} else if c.MaxPlaintext == 0 {
		c.MaxPlaintext = DefaultPlaintext
	}
	if c.MaxPlaintext < MinPlaintext || c.MaxPlaintext > maxPlaintextCap {
		return false, fault.New(fault.BadInput, "max_plaintext_bytes must be %d (the spec's minimum) to %d", MinPlaintext, maxPlaintextCap)
	}
	if in.MaxAAD != nil {
		c.MaxAAD = *in.MaxAAD
	} else if c.MaxAAD == 0 {
		c.MaxAAD = DefaultAAD
	}
	if c.MaxAAD < MinAAD || c.MaxAAD > maxAADCap {
		return false, fault.New(fault.BadInput, "max_aad_bytes must be %d (the spec's minimum) to %d", MinAAD, maxAADCap)
	}
	if in.RateLimit != nil {
		c.RateLimit = *in.RateLimit
	}
	if c.RateLimit < 0 {
		return false, fault.New(fault.BadInput, "rate_limit must be 0 (unlimited) or a number of requests per second")
	}
	// An explicit 0 is refused below (it could be read as "no limit"); a
	// configuration stored before the field existed holds 0 and gets the
	// default.
	if in.MaxConnections != nil {
		c.MaxConnections = *in.MaxConnections
	} else if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.MaxConnections < 1 || c.MaxConnections > maxConnectionsCap {
		return false, fault.New(fault.BadInput, "max_connections must be between 1 and %d", maxConnectionsCap)
	}
	if err := c.applyRegions(in.Regions); err != nil {
		return false, err
	}
	return newCert, nil
}

// regionRe is the form of an AWS region name (us-east-1, us-gov-west-1,
// eu-isoe-west-1).
var regionRe = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,3}$`)

// applyRegions replaces the key stores' regions with in (if set), each
// region checked and each prefix one of the configured ones; without in, the
// regions of prefixes no longer configured go with them.
func (c *Config) applyRegions(in *map[string]string) error {
	if in == nil {
		// A new map: c may share its map with the stored configuration
		// it was copied from.
		var kept map[string]string
		for p, r := range c.Regions {
			if contains(c.Prefixes, p) {
				if kept == nil {
					kept = map[string]string{}
				}
				kept[p] = r
			}
		}
		c.Regions = kept
		return nil
	}
	rs := map[string]string{}
	given := make([]string, 0, len(*in))
	for p := range *in {
		given = append(given, p)
	}
	sort.Strings(given) // the same error for the same input
	for _, p := range given {
		r := strings.TrimSpace((*in)[p])
		n, err := NormalizePrefix(p)
		if err != nil {
			return err
		}
		if !contains(c.Prefixes, n) {
			return fault.New(fault.BadInput, "key_store_regions names %q, which is not one of the uri_path_prefixes %q", p, c.Prefixes)
		}
		if _, dup := rs[n]; dup {
			return fault.New(fault.BadInput, "key_store_regions names the key store %q twice", URIPath(n))
		}
		if !regionRe.MatchString(r) {
			return fault.New(fault.BadInput, "key_store_regions: %q is not an AWS region name (such as us-east-1) for the key store %q; leave a key store out to accept any region", r, URIPath(n))
		}
		rs[n] = r
	}
	c.Regions = nil
	if len(rs) > 0 {
		c.Regions = rs
	}
	return nil
}

// ConnectionLimit is MaxConnections, or the default for a configuration
// stored before it existed.
func (c *Config) ConnectionLimit() int {
	if c.MaxConnections > 0 {
		return c.MaxConnections
	}
	return DefaultMaxConnections
}

func (c *Config) limits() Limits { return Limits{MaxPlaintext: c.MaxPlaintext, MaxAAD: c.MaxAAD} }

// maxBody bounds a request body: the Base64 of the largest fields plus room
// for requestMetadata (ARNs up to 2048 characters) and JSON.
func (c *Config) maxBody() int64 {
	return int64((c.MaxPlaintext+c.MaxAAD+200)/3*4) + 64<<10
}

func parseCertPool(p string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest := []byte(p)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fault.New(fault.BadInput, "mtls_client_ca: a certificate does not parse")
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fault.New(fault.BadInput, "mtls_client_ca holds no PEM certificate")
	}
	return pool, nil
}
