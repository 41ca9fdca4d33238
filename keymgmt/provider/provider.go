// Package provider is the contract between the Key Management engine and
// the cloud KMSs it distributes keys to (BYOK): one small interface that each
// cloud package (awskms, azurekv, gcpckms) implements over its vendor SDK.
//
// The engine owns the records: what was distributed where, and for each
// version of a key, how far its import went. A provider reads and fills in
// those records and calls Save after every step that changed the cloud, so a
// failure part-way leaves a recorded state and running the same step again
// resumes it without creating a second key in the cloud. Providers never see
// the HSM: they get a Wrap function that builds the import blob in the token.
package provider

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/wrap"
)

// The provider names of the kms/:name provider field (Vault's).
const (
	AWSKMS        = "awskms"
	AzureKeyVault = "azurekeyvault"
	GCPCKMS       = "gcpckms"
)

// The purposes and protections of a distribution (Vault's).
const (
	ProtectionHSM      = "hsm"
	ProtectionSoftware = "software"
)

// Purposes lists the purposes a distribution may ask for.
var Purposes = []string{"decrypt", "encrypt", "sign", "unwrap", "verify", "wrap"}

// DefaultTimeout bounds one call to a cloud when nothing else is configured.
const DefaultTimeout = 30 * time.Second

// Config is a KMS provider as configured on the mount, with its credentials
// unsealed.
type Config struct {
	Name          string            // the kms/:name of the provider in the appliance
	KeyCollection string            // AWS region, Azure vault name, GCP key ring resource name
	Credentials   map[string]string // never logged, never returned
	Endpoint      string            // optional override (private endpoints, tests)
	Timeout       time.Duration     // per cloud call
	// OAEPHash is "sha256" or "sha1": the OAEP hash of the wrapping schemes
	// where the cloud offers both.
	OAEPHash string
	// TokenOAEPSHA256 tells whether the HSM itself does OAEP with SHA-256 (so
	// direct OAEP-SHA-256 schemes are possible).
	TokenOAEPSHA256 bool
}

// Key is the appliance key being distributed.
type Key struct {
	ID         string   // the appliance's random id of the key (names can be reused; ids are not)
	Name       string   // the key's name; also its name in the provider
	Type       string   // keymgmt type, e.g. "aes256-gcm96"
	Purposes   []string // sorted
	Protection string
}

// State is provider-wide progress of a distribution (e.g. Azure's KEK id, GCP's crypto key name).
type State map[string]string

// Version is the record of one key version in one provider.
type Version struct {
	Version    int               `json:"version"`
	ProviderID string            `json:"provider_id,omitempty"` // the cloud's id of this version
	Imported   bool              `json:"imported"`
	Enabled    bool              `json:"enabled"`
	Scheme     string            `json:"scheme,omitempty"` // wrapping scheme used
	Path       string            `json:"path,omitempty"`   // how the token made the blob (hsm.TransferPath)
	Progress   map[string]string `json:"progress,omitempty"`
}

// WrapFunc builds the import blob of the version being imported, in the HSM.
type WrapFunc func(ctx context.Context, scheme wrap.Scheme, wrappingKey *rsa.PublicKey, kid string) (*wrap.Result, error)

// ImportRequest asks a provider to import one version.
type ImportRequest struct {
	Key     Key
	State   State
	Version *Version
	// Versions are all the distribution's version records (Version among
	// them), as MakeCurrent gets them.
	Versions []*Version
	// MinEnabledVersion is the key's min_enabled_version: a version below
	// it is imported disabled where the cloud can do so (the engine
	// disables it right after its import elsewhere), never usable in the
	// cloud while the next versions are imported.
	MinEnabledVersion int
	Wrap              WrapFunc
	// Save records State and Version; call it after each step that changed
	// the cloud, before the next.
	Save func(ctx context.Context) error
}

// Provider is one cloud KMS account/collection. Every method is idempotent
// given the records it is handed.
type Provider interface {
	// Check refuses a key type, purposes or protection the cloud cannot take,
	// before anything is created.
	Check(k Key) error
	// Import creates what the version needs in the cloud (key, KEK, import
	// job) and imports it, resuming from req.Version's progress.
	Import(ctx context.Context, req *ImportRequest) error
	// MakeCurrent makes v the version the cloud uses for new operations
	// where the key's purpose has such a notion. vs are all the records of
	// the distribution (v among them): what the cloud holds for this key,
	// as opposed to what another key of the same name or the customer made.
	MakeCurrent(ctx context.Context, k Key, st State, v *Version, vs []*Version) error
	// SetEnabled enables or disables one version in the cloud.
	SetEnabled(ctx context.Context, k Key, st State, v *Version, enabled bool) error
	// Remove deletes (or schedules the deletion of) the key and every version
	// in the cloud; things already gone are not an error.
	Remove(ctx context.Context, k Key, st State, vs []*Version) error
}

// Reacher is a provider whose credentials decide which collection of keys
// they reach, beyond the key collection configured (an AWS account: the
// region is configured, the account is the credentials'). Reaches fails
// with a conflict if these credentials cannot reach the cloud keys that vs
// record, so that new credentials of another account are refused while
// keys are distributed (the next sync would split a key over two
// accounts).
type Reacher interface {
	Reaches(ctx context.Context, k Key, vs []*Version) error
}

// Factory makes a provider from its configuration.
type Factory func(ctx context.Context, cfg Config) (Provider, error)

// CheckPurposes refuses purposes outside allowed and empty ones.
func CheckPurposes(provider string, k Key, allowed ...string) error {
	if len(k.Purposes) == 0 {
		return fault.New(fault.BadInput, "purpose is required (%s)", strings.Join(Purposes, ", "))
	}
	for _, p := range k.Purposes {
		if !slices.Contains(allowed, p) {
			return fault.New(fault.BadInput, "%s cannot give a %s key the purpose %q; allowed: %s", provider, k.Type, p, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// NormalizePurposes checks and sorts a purpose list.
func NormalizePurposes(ps []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, p := range ps {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" || seen[p] {
			continue
		}
		if !slices.Contains(Purposes, p) {
			return nil, fault.New(fault.BadInput, "unknown purpose %q: use %s", p, strings.Join(Purposes, ", "))
		}
		seen[p] = true
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// Has reports whether the key has a purpose.
func (k Key) Has(p string) bool { return slices.Contains(k.Purposes, p) }

// Call runs one cloud call with the provider's timeout.
func Call(ctx context.Context, timeout time.Duration, fn func(ctx context.Context) error) error {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(ctx)
}

// CloudError makes a cloud's error a fault whose message reaches the
// operator: the operation, the cloud's own message, with every credential
// value cut out. Timeouts and unreachable clouds are Unavailable; the rest
// BadInput unless kind says otherwise.
func CloudError(cfg Config, kind fault.Kind, op string, err error) error {
	msg := err.Error()
	for _, v := range secretForms(cfg.Credentials) {
		msg = strings.ReplaceAll(msg, v, "[redacted]")
	}
	if ctxErr := context.DeadlineExceeded; strings.Contains(msg, ctxErr.Error()) {
		return fault.New(fault.Unavailable, "%s: %s: no answer within the client timeout (%s)", cfg.Name, op, timeoutOf(cfg))
	}
	return fault.New(kind, "%s: %s: %s", cfg.Name, op, msg)
}

// secretForms are the strings CloudError cuts out of a cloud's message,
// longest first, since SDKs quote and encode what they send: each
// credential value of at least 4 characters as it is, JSON-escaped (the
// ways encoders differ, non-ASCII characters also as \uXXXX escapes) and
// URL-escaped (hex digits in upper and lower case); the string values in a
// credential that is a JSON document (a GCP service account key) whose
// names say they are secret (secretField), in the same forms; and the lines
// of a value of several lines, since a parser's error can quote one: every
// base64 line of a PEM block, else lines of at least 16 characters.
func secretForms(creds map[string]string) []string {
	seen := map[string]bool{}
	var add func(v string, depth int)
	add = func(v string, depth int) {
		if len(v) < 4 || seen[v] {
			return
		}
		seen[v] = true
		// JSON-escaped, with and without '<', '>' and '&' escaped (Go
		// escapes them by default, most encoders do not), and with '/'
		// escaped as some encoders do.
		for _, html := range []bool{true, false} {
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(html)
			if enc.Encode(v) == nil {
				q := strings.TrimSuffix(b.String(), "\n")
				q = q[1 : len(q)-1]
				for _, f := range []string{q, asciiJSON(q, false), asciiJSON(q, true)} {
					seen[f] = true
					seen[strings.ReplaceAll(f, "/", `\/`)] = true
				}
			}
		}
		for _, f := range []string{url.QueryEscape(v), url.PathEscape(v)} {
			seen[f] = true
			seen[lowerPercent(f)] = true
		}
		if depth < 4 {
			var doc map[string]any
			if json.Unmarshal([]byte(v), &doc) == nil {
				for k, x := range doc {
					if str, ok := x.(string); ok && secretField(k) {
						add(str, depth+1)
					}
				}
			} else if strings.Contains(v, "\n") {
				// A value of several lines that is not a JSON document (a
				// PEM key): each line but the armour; in a PEM block every
				// line (the last one of its base64 is often short), else
				// lines of 16 characters or more.
				least := 16
				if strings.Contains(v, "-----BEGIN ") {
					least = 4
				}
				for _, line := range strings.Split(v, "\n") {
					if line = strings.TrimSpace(line); len(line) >= least && line != v && !strings.HasPrefix(line, "-----") {
						add(line, depth+1)
					}
				}
			}
		}
	}
	for _, v := range creds {
		add(v, 0)
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		if len(v) >= 4 {
			out = append(out, v)
		}
	}
	// Longest first, so that a value is cut whole before a part of it.
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i] < out[j]
	})
	return out
}

// asciiJSON writes the non-ASCII characters of a JSON string's content as
// \uXXXX escapes (UTF-16 surrogate pairs above U+FFFF), with lower- or
// upper-case hex digits, as ASCII-only encoders do.
func asciiJSON(q string, upper bool) string {
	digits := "0123456789abcdef"
	if upper {
		digits = "0123456789ABCDEF"
	}
	var b strings.Builder
	unit := func(u rune) {
		b.WriteString(`\u`)
		for shift := 12; shift >= 0; shift -= 4 {
			b.WriteByte(digits[(u>>shift)&0xf])
		}
	}
	for _, r := range q {
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			unit(hi)
			unit(lo)
		default:
			unit(r)
		}
	}
	return b.String()
}

// lowerPercent writes the hex digits of a URL-escaped string's %XX escapes
// in lower case, as some encoders do.
func lowerPercent(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = lowerHex(b[i+1]), lowerHex(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lowerHex(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

// secretField reports whether a field of a JSON credential holds a secret
// (a service account key's private_key and private_key_id, a client secret,
// a refresh token), not a name or an address a message may usefully show.
func secretField(name string) bool {
	name = strings.ToLower(name)
	for _, s := range []string{"private", "secret", "password", "refresh_token", "access_token"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

func timeoutOf(cfg Config) time.Duration {
	if cfg.Timeout <= 0 {
		return DefaultTimeout
	}
	return cfg.Timeout
}

// CallTimeout returns the configured per-call timeout (DefaultTimeout if unset).
func (c Config) CallTimeout() time.Duration { return timeoutOf(c) }
