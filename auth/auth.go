// Package auth holds the token store and the ACL policies, with Vault's
// semantics so that Vault's clients and policies work unchanged.
//
// Tokens are random strings that are never stored: the store keeps a
// domain-separated SHA-256 hash of each, under which the token's entry lives,
// and a random accessor (not secret) that names the token for lookups and
// revocation. A token is either an orphan or the child of the token that
// created it; revoking a token revokes its children, recursively. A child
// never outlives its parent's expiry, so an expired parent leaves no live
// descendants even though expired entries are removed lazily (when presented,
// or by Tidy). A token with a use limit spends one use per authenticated
// request, atomically in a store transaction, and is revoked by its last use.
//
// Policies are Vault's HCL: path globs with capabilities. A token's policies
// are merged into one ACL; for a request path the exact rule wins, else the
// most specific glob (Vault's priority order), and deny in the winning rule
// denies everything. The "root" policy allows everything and cannot be
// changed; "default" is given to tokens unless asked otherwise and can be
// edited but not deleted. Parsed policies are cached in memory and the cache
// is invalidated by this process's writes (one node; several nodes sharing a
// store would need an invalidation signal).
package auth

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
)

// The TTL limits of tokens, Vault's defaults (32 days).
const (
	DefaultTTL = 768 * time.Hour // a token created without a TTL, unless it is a root token
	MaxTTL     = 768 * time.Hour // the longest life of a non-periodic token
)

// Built-in policy names.
const (
	RootPolicy    = "root"
	DefaultPolicy = "default"
)

// ErrRootExists is returned by CreateRoot when a root token exists already.
var ErrRootExists = errors.New("auth: a root token exists already")

// Store paths of the token store and the policies.
const (
	idPrefix       = "auth/token/id/"       // + hash → entry (JSON)
	accessorPrefix = "auth/token/accessor/" // + accessor → hash
	parentPrefix   = "auth/token/parent/"   // + parent accessor + "/" + child accessor → ""
	rootPrefix     = "auth/token/root/"     // + accessor → "" for tokens with the root policy
	initializedKey = "auth/initialized"     // → time of the first root token: init is done for good
	policyPrefix   = "sys/policy/"          // + name → HCL text
)

// Manager is the token store and the policy store.
type Manager struct {
	st  store.Store
	now func() time.Time // the clock; tests move it

	mu       sync.RWMutex
	policies map[string]*Policy // parsed policies by name; nil value: known missing
	gen      uint64             // bumped by every policy write, so a stale load is not cached
}

// New returns a manager over the store.
func New(st store.Store) *Manager {
	return &Manager{st: st, now: time.Now, policies: map[string]*Policy{}}
}

// errDenied is the answer to a missing, revoked or expired token; it never
// says which, nor echoes the token.
func errDenied() error {
	return fault.New(fault.Unauthorized, "permission denied: invalid or expired token")
}

// Allowed reports whether the token may use the capability ("create",
// "read", "update", "delete" or "list") on the request path (without /v1/),
// and, if sudo is set, whether it also holds sudo there. As in Vault, a list
// is checked against the path with a trailing slash (so "keymgmt/key/*"
// allows listing keymgmt/key), after an exact rule for the bare path.
func (m *Manager) Allowed(ctx context.Context, t *Token, path, capability string, sudo bool) (bool, error) {
	if t == nil {
		return false, nil
	}
	if t.Root {
		return true, nil
	}
	want, ok := capabilityBits[capability]
	if !ok || want == capDeny || want == capSudo {
		return false, fault.New(fault.Internal, "unknown operation %q", capability)
	}
	a, err := m.acl(ctx, t.Policies)
	if err != nil {
		return false, err
	}
	return a.allowed(path, want, sudo), nil
}
