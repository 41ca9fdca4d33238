package kmip

import (
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/kmip/wire"
)

// Config is a kmip mount's configuration: Vault's KMIP config fields, plus
// the cipher suites, the message size limit, the idle timeout and the
// connection limit. Stored as JSON with the server certificate (its key as
// an HSM blob).
type Config struct {
	ListenAddrs             []string      `json:"listen_addrs"`
	ConnectionTimeout       time.Duration `json:"connection_timeout"`
	ServerHostnames         []string      `json:"server_hostnames"`
	ServerIPs               []string      `json:"server_ips"`
	TLSCAKeyType            string        `json:"tls_ca_key_type"`
	TLSCAKeyBits            int           `json:"tls_ca_key_bits"`
	TLSMinVersion           string        `json:"tls_min_version"`
	TLSCipherSuites         []string      `json:"tls_cipher_suites"`
	DefaultTLSClientKeyType string        `json:"default_tls_client_key_type"`
	DefaultTLSClientKeyBits int           `json:"default_tls_client_key_bits"`
	DefaultTLSClientTTL     time.Duration `json:"default_tls_client_ttl"`
	MaxMessageBytes         int           `json:"max_message_bytes"`
	IdleTimeout             time.Duration `json:"idle_timeout"`
	MaxConnections          int           `json:"max_connections"`
	UpdatedAt               time.Time     `json:"updated_at"`

	// The server's certificate chain (leaf, CA) and its key in the HSM.
	ServerCertPEM string `json:"server_cert_pem"`
	ServerKeyID   string `json:"server_key_id"`
	ServerKeyBlob []byte `json:"server_key_blob"`
}

// ConfigInput is a write of the configuration; nil fields keep their value.
type ConfigInput struct {
	ListenAddrs             *[]string
	ConnectionTimeout       *time.Duration
	ServerHostnames         *[]string
	ServerIPs               *[]string
	TLSCAKeyType            *string
	TLSCAKeyBits            *int
	TLSMinVersion           *string
	TLSCipherSuites         *[]string
	DefaultTLSClientKeyType *string
	DefaultTLSClientKeyBits *int
	DefaultTLSClientTTL     *time.Duration
	MaxMessageBytes         *int
	IdleTimeout             *time.Duration
	MaxConnections          *int
}

// defaultConfig has Vault's defaults, and Keyhold's for its own fields.
func defaultConfig() Config {
	return Config{
		ListenAddrs:             []string{"127.0.0.1:5696"},
		ConnectionTimeout:       time.Second,
		ServerHostnames:         []string{"localhost"},
		ServerIPs:               []string{"127.0.0.1", "::1"},
		TLSCAKeyType:            "ec",
		TLSCAKeyBits:            256,
		TLSMinVersion:           "tls12",
		DefaultTLSClientKeyType: "ec",
		DefaultTLSClientKeyBits: 256,
		DefaultTLSClientTTL:     336 * time.Hour,
		MaxMessageBytes:         wire.DefaultMaxMessage,
		IdleTimeout:             10 * time.Minute,
		MaxConnections:          1024,
	}
}

// defaultCipherSuites are the TLS 1.2 suites offered unless configured
// (TLS 1.3 suites are not configurable in Go and are always offered). The
// ECDHE AEAD suites come first; the two ECDHE CBC-SHA256 suites follow for
// KMIP clients that offer nothing else (PyKMIP 0.10's TLS 1.2 suite list,
// KMIP 1.x profiles' TLS 1.2 authentication suite). They are forward
// secret but MAC-then-encrypt, and Go's CBC implementation is not fully
// constant-time (Lucky13); remove them with tls_cipher_suites where every
// client does AEAD.
var defaultCipherSuites = []string{
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
}

// cipherSuiteIDs resolves suite names (Go's, which are the IANA names).
// Suites without forward secrecy or with RC4/3DES are refused.
func cipherSuiteIDs(names []string) ([]uint16, error) {
	known := map[string]*tls.CipherSuite{}
	for _, s := range tls.CipherSuites() {
		known[s.Name] = s
	}
	for _, s := range tls.InsecureCipherSuites() {
		known[s.Name] = s
	}
	var out []uint16
	for _, n := range names {
		s, ok := known[n]
		if !ok {
			return nil, fault.New(fault.BadInput, "unknown TLS cipher suite %q", n)
		}
		if !strings.HasPrefix(n, "TLS_ECDHE_") || strings.Contains(n, "RC4") || strings.Contains(n, "3DES") {
			return nil, fault.New(fault.BadInput, "TLS cipher suite %q is not allowed: only ECDHE suites without RC4 or 3DES", n)
		}
		if !slices.Contains(s.SupportedVersions, tls.VersionTLS12) {
			return nil, fault.New(fault.BadInput, "TLS cipher suite %q is not a TLS 1.2 suite", n)
		}
		out = append(out, s.ID)
	}
	return out, nil
}

func tlsVersion(name string) (uint16, error) {
	switch name {
	case "tls12":
		return tls.VersionTLS12, nil
	case "tls13":
		return tls.VersionTLS13, nil
	}
	return 0, fault.New(fault.BadInput, "tls_min_version must be tls12 or tls13, not %q", name)
}

// checkKey checks a key type and size for the CA or a client.
func checkKey(field, typ string, bits int) error {
	switch typ {
	case "ec":
		// Not 224: TLS 1.3 has no signature scheme for P-224, and Go's TLS
		// stack refuses such certificates; the credential would not work.
		if bits != 256 && bits != 384 && bits != 521 {
			return fault.New(fault.BadInput, "%s: an ec key has 256, 384 or 521 bits, not %d (P-224 cannot sign in TLS 1.3)", field, bits)
		}
	case "rsa":
		if bits != 2048 && bits != 3072 && bits != 4096 {
			return fault.New(fault.BadInput, "%s: an rsa key has 2048, 3072 or 4096 bits, not %d", field, bits)
		}
	default:
		return fault.New(fault.BadInput, "%s: key type must be ec or rsa, not %q", field, typ)
	}
	return nil
}

// apply merges a write into c and checks the result. It reports whether
// the server certificate must be issued again (new names).
func (c *Config) apply(in ConfigInput, caExists bool) (newCert bool, err error) {
	if caExists {
		if in.TLSCAKeyType != nil && *in.TLSCAKeyType != c.TLSCAKeyType {
			return false, fault.New(fault.BadInput, "the mount's CA exists with an %s key; tls_ca_key_type cannot change", c.TLSCAKeyType)
		}
		if in.TLSCAKeyBits != nil && *in.TLSCAKeyBits != c.TLSCAKeyBits {
			return false, fault.New(fault.BadInput, "the mount's CA exists with a %d-bit key; tls_ca_key_bits cannot change", c.TLSCAKeyBits)
		}
	}
	setS := func(dst *[]string, src *[]string) {
		if src != nil {
			*dst = slices.Clone(*src)
		}
	}
	// A field sent again with its stored value is no change: a record read
	// and written back whole keeps a value stored before a rule held.
	if in.ConnectionTimeout != nil && *in.ConnectionTimeout == c.ConnectionTimeout {
		in.ConnectionTimeout = nil
	}
	if (in.DefaultTLSClientKeyType == nil || *in.DefaultTLSClientKeyType == c.DefaultTLSClientKeyType) &&
		(in.DefaultTLSClientKeyBits == nil || *in.DefaultTLSClientKeyBits == c.DefaultTLSClientKeyBits) {
		in.DefaultTLSClientKeyType, in.DefaultTLSClientKeyBits = nil, nil
	}
	oldHosts, oldIPs := slices.Clone(c.ServerHostnames), slices.Clone(c.ServerIPs)
	setS(&c.ListenAddrs, in.ListenAddrs)
	setS(&c.ServerHostnames, in.ServerHostnames)
	setS(&c.ServerIPs, in.ServerIPs)
	setS(&c.TLSCipherSuites, in.TLSCipherSuites)
	for _, p := range []struct {
		dst *string
		src *string
	}{{&c.TLSCAKeyType, in.TLSCAKeyType}, {&c.TLSMinVersion, in.TLSMinVersion}, {&c.DefaultTLSClientKeyType, in.DefaultTLSClientKeyType}} {
		if p.src != nil {
			*p.dst = *p.src
		}
	}
	for _, p := range []struct {
		dst *int
		src *int
	}{{&c.TLSCAKeyBits, in.TLSCAKeyBits}, {&c.DefaultTLSClientKeyBits, in.DefaultTLSClientKeyBits}, {&c.MaxMessageBytes, in.MaxMessageBytes}, {&c.MaxConnections, in.MaxConnections}} {
		if p.src != nil {
			*p.dst = *p.src
		}
	}
	for _, p := range []struct {
		dst *time.Duration
		src *time.Duration
	}{{&c.ConnectionTimeout, in.ConnectionTimeout}, {&c.DefaultTLSClientTTL, in.DefaultTLSClientTTL}, {&c.IdleTimeout, in.IdleTimeout}} {
		if p.src != nil {
			*p.dst = *p.src
		}
	}
	if err := c.check(in); err != nil {
		return false, err
	}
	return c.ServerCertPEM == "" || !slices.Equal(oldHosts, c.ServerHostnames) || !slices.Equal(oldIPs, c.ServerIPs), nil
}

// check validates a whole configuration after the write in. Two rules are
// checked only when the write sets their fields, so that a configuration
// stored before they held can still be changed in its other fields: a
// connection_timeout under 1s, and an ec 224 default client key (which
// credentials then refuse).
func (c *Config) check(in ConfigInput) error {
	if len(c.ListenAddrs) == 0 {
		return fault.New(fault.BadInput, "listen_addrs needs at least one address")
	}
	for _, a := range c.ListenAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fault.New(fault.BadInput, "listen_addrs: %q is not host:port", a)
		}
	}
	if len(c.ServerHostnames) == 0 && len(c.ServerIPs) == 0 {
		return fault.New(fault.BadInput, "the server certificate needs server_hostnames or server_ips")
	}
	for _, ip := range c.ServerIPs {
		if net.ParseIP(ip) == nil {
			return fault.New(fault.BadInput, "server_ips: %q is not an IP address", ip)
		}
	}
	if in.ConnectionTimeout != nil && (c.ConnectionTimeout < time.Second || c.ConnectionTimeout > time.Hour) {
		return fault.New(fault.BadInput, "connection_timeout must be between 1s and 1h")
	}
	if c.IdleTimeout < 0 || c.IdleTimeout > 24*time.Hour {
		return fault.New(fault.BadInput, "idle_timeout must be between 0 (no limit) and 24h")
	}
	if err := checkKey("tls_ca_key", c.TLSCAKeyType, c.TLSCAKeyBits); err != nil {
		return err
	}
	if c.TLSCAKeyType == "ec" && c.TLSCAKeyBits == 224 {
		return fault.New(fault.BadInput, "tls_ca_key_bits: the HSM holds P-256, P-384 and P-521 CA keys, not P-224")
	}
	legacyEC224 := in.DefaultTLSClientKeyType == nil && in.DefaultTLSClientKeyBits == nil &&
		c.DefaultTLSClientKeyType == "ec" && c.DefaultTLSClientKeyBits == 224
	if err := checkKey("default_tls_client_key", c.DefaultTLSClientKeyType, c.DefaultTLSClientKeyBits); err != nil && !legacyEC224 {
		return err
	}
	if c.DefaultTLSClientTTL < time.Minute {
		return fault.New(fault.BadInput, "default_tls_client_ttl must be at least 1m")
	}
	if _, err := tlsVersion(c.TLSMinVersion); err != nil {
		return err
	}
	if _, err := cipherSuiteIDs(c.cipherSuites()); err != nil {
		return err
	}
	if c.MaxMessageBytes < 4096 || c.MaxMessageBytes > 64<<20 {
		return fault.New(fault.BadInput, "max_message_bytes must be between 4096 and %d", 64<<20)
	}
	if c.MaxConnections < 1 || c.MaxConnections > 1<<20 {
		return fault.New(fault.BadInput, "max_connections must be between 1 and %d", 1<<20)
	}
	return nil
}

func (c *Config) cipherSuites() []string {
	if len(c.TLSCipherSuites) == 0 {
		return defaultCipherSuites
	}
	return c.TLSCipherSuites
}

// String is for logs.
func (c *Config) String() string {
	return fmt.Sprintf("listen=%v tls_min=%s", c.ListenAddrs, c.TLSMinVersion)
}
