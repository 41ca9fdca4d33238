package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
)

// Token is a token's entry: what a lookup shows and what a request carries.
// It never holds the token itself.
type Token struct {
	Accessor       string            `json:"accessor"`
	Policies       []string          `json:"policies"` // sorted
	Root           bool              `json:"-"`        // holds the root policy
	DisplayName    string            `json:"display_name"`
	Meta           map[string]string `json:"meta,omitempty"`
	Path           string            `json:"path"` // the endpoint that created it
	IssuedAt       time.Time         `json:"issued_at"`
	LastRenewal    time.Time         `json:"last_renewal,omitzero"`
	TTL            time.Duration     `json:"ttl"`                // at creation; 0 for none
	ExpireAt       time.Time         `json:"expire_at,omitzero"` // zero: never
	ExplicitMaxTTL time.Duration     `json:"explicit_max_ttl,omitempty"`
	Period         time.Duration     `json:"period,omitempty"`
	Renewable      bool              `json:"renewable"`
	NumUses        int               `json:"num_uses"`         // uses left; 0 is unlimited unless UseLimited
	UseLimited     bool              `json:"-"`                // the token had a use limit (its last use may have spent it)
	Parent         string            `json:"parent,omitempty"` // the parent's accessor; "" for orphans
	Orphan         bool              `json:"orphan"`
}

// Remaining is the token's TTL left at now (0 for a token that never expires).
func (t *Token) Remaining(now time.Time) time.Duration {
	if t.ExpireAt.IsZero() {
		return 0
	}
	return max(t.ExpireAt.Sub(now).Round(time.Second), 0)
}

func (t *Token) expired(now time.Time) bool {
	return !t.ExpireAt.IsZero() && !now.Before(t.ExpireAt)
}

// CreateRequest is what a new token is made of. The caller (the REST
// adapter) decides who may set ID, Orphan and Period; Create enforces the
// rest: a non-root parent can give only a subset of its own policies.
type CreateRequest struct {
	ID              string   // the token itself, instead of a random one
	Policies        []string // none: the parent's
	NoDefaultPolicy bool
	Orphan          bool
	TTL             time.Duration // 0: DefaultTTL (none for a root token of a root parent)
	ExplicitMaxTTL  time.Duration
	Period          time.Duration // a periodic token: each renewal gives it Period again, without a maximum
	NumUses         int           // 0: unlimited
	Renewable       *bool         // nil: true
	DisplayName     string
	Meta            map[string]string
	Path            string // the endpoint, shown by lookups
}

var (
	policyNameRe  = regexp.MustCompile(`^[a-z0-9_.-]{1,128}$`)
	accessorRe    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	displayNameRe = regexp.MustCompile(`[^a-zA-Z0-9-]`)
)

// hashToken is the only form in which a token is stored.
func hashToken(token string) string {
	h := sha256.New()
	h.Write([]byte("keyhold auth token v1\x00"))
	h.Write([]byte(token))
	return hex.EncodeToString(h.Sum(nil))
}

func newToken() string { return "khs." + randomString(24) }

func newAccessor() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b) // never starts with "-", unlike base64url
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidTokenText reports whether s can be a token (what is hashed is
// bounded): visible ASCII, at most 1 KiB.
func ValidTokenText(s string) bool {
	if s == "" || len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// normalizePolicies lowercases, trims, sorts and deduplicates policy names
// and checks them; "root" alone replaces any list that has it.
func normalizePolicies(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" {
			continue
		}
		if !policyNameRe.MatchString(n) {
			return nil, fault.New(fault.BadInput, "invalid policy name %q: lowercase letters, digits, '_', '.' and '-'", n)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if slices.Contains(out, RootPolicy) {
		return []string{RootPolicy}, nil
	}
	return out, nil
}

// Create makes a token as a child of parent and returns the token, which
// is shown this once, and its entry. A nil parent makes an orphan with
// root's authority (any policies), for callers inside the appliance; the
// REST adapter always passes the caller's token.
func (m *Manager) Create(ctx context.Context, parent *Token, req CreateRequest) (string, *Token, error) {
	t, err := m.newEntry(parent, req)
	if err != nil {
		return "", nil, err
	}
	id := req.ID
	if id == "" {
		id = newToken()
	} else if !ValidTokenText(id) || len(id) > 256 || strings.Contains(id, ".") {
		return "", nil, fault.New(fault.BadInput, "invalid custom token id: up to 256 visible ASCII characters, without '.'")
	}
	err = m.st.Update(ctx, func(tx store.Tx) error {
		if parent != nil && !t.Orphan {
			p, err := entryByAccessor(ctx, tx, parent.Accessor)
			if errors.Is(err, store.ErrNotFound) || err == nil && p.expired(m.now()) {
				return fault.New(fault.Permission, "permission denied: the parent token was revoked or has expired")
			}
			if err != nil {
				return err
			}
			capExpiry(t, p)
		}
		return putNew(ctx, tx, hashToken(id), t)
	})
	if err != nil {
		return "", nil, err
	}
	return id, t, nil
}

// newEntry checks the request against the parent and fills the entry.
func (m *Manager) newEntry(parent *Token, req CreateRequest) (*Token, error) {
	if req.NumUses < 0 {
		return nil, fault.New(fault.BadInput, "num_uses must be 0 (unlimited) or more")
	}
	if req.TTL < 0 || req.ExplicitMaxTTL < 0 || req.Period < 0 {
		return nil, fault.New(fault.BadInput, "ttl, explicit_max_ttl and period must not be negative")
	}
	if parent != nil && parent.UseLimited {
		return nil, fault.New(fault.BadInput, "a token with limited uses cannot create tokens")
	}
	policies, err := normalizePolicies(req.Policies)
	if err != nil {
		return nil, err
	}
	parentRoot := parent == nil || parent.Root
	if len(req.Policies) == 0 && parent != nil {
		policies = slices.Clone(parent.Policies)
	}
	if !parentRoot {
		for _, p := range policies {
			if !slices.Contains(parent.Policies, p) {
				return nil, fault.New(fault.Permission, "permission denied: a child token's policies must be a subset of its parent's (%s is not)", p)
			}
		}
	}
	if req.NoDefaultPolicy {
		// As Vault does: without default, even when named or inherited.
		policies = slices.DeleteFunc(policies, func(p string) bool { return p == DefaultPolicy })
	}
	root := slices.Contains(policies, RootPolicy)
	if !root && !req.NoDefaultPolicy && !slices.Contains(policies, DefaultPolicy) &&
		(parentRoot || slices.Contains(parent.Policies, DefaultPolicy)) {
		policies = append(policies, DefaultPolicy)
		slices.Sort(policies)
	}
	if len(policies) == 0 {
		return nil, fault.New(fault.BadInput, "the token would have no policies")
	}
	meta := make(map[string]string, len(req.Meta))
	for k, v := range req.Meta {
		meta[k] = v
	}
	if len(meta) == 0 {
		meta = nil
	}
	now := m.now().UTC()
	t := &Token{
		Accessor:       newAccessor(),
		Policies:       policies,
		Root:           root,
		DisplayName:    displayName(req.DisplayName),
		Meta:           meta,
		Path:           req.Path,
		IssuedAt:       now,
		ExplicitMaxTTL: req.ExplicitMaxTTL,
		Period:         req.Period,
		NumUses:        req.NumUses,
		UseLimited:     req.NumUses > 0,
		Orphan:         parent == nil || req.Orphan,
	}
	if !t.Orphan {
		t.Parent = parent.Accessor
	}
	switch {
	case req.Period > 0:
		t.TTL = req.Period
	case req.TTL > 0:
		t.TTL = min(req.TTL, MaxTTL)
	case root && parentRoot && req.ExplicitMaxTTL == 0:
		t.TTL = 0 // a root token made by root may live until revoked, as in Vault
	default:
		t.TTL = DefaultTTL
	}
	if req.ExplicitMaxTTL > 0 {
		t.TTL = min(t.TTL, req.ExplicitMaxTTL)
	}
	if t.TTL > 0 {
		t.ExpireAt = now.Add(t.TTL)
	}
	t.Renewable = t.TTL > 0 && (req.Renewable == nil || *req.Renewable)
	return t, nil
}

// displayName is Vault's: "token" or "token-<name>", sanitized.
func displayName(s string) string {
	if s == "" {
		return "token"
	}
	d := displayNameRe.ReplaceAllString("token-"+s, "-")
	return strings.TrimRight(d, "-")
}

// capExpiry keeps a child's expiry within its parent's, so that an expired
// parent has no live descendants.
func capExpiry(t, parent *Token) {
	if parent.ExpireAt.IsZero() || (!t.ExpireAt.IsZero() && t.ExpireAt.Before(parent.ExpireAt)) {
		return
	}
	t.ExpireAt = parent.ExpireAt
	t.TTL = t.ExpireAt.Sub(t.IssuedAt)
	if t.TTL < time.Second {
		t.TTL = time.Second
	}
}

// putNew stores a new entry under its hash with its indexes.
func putNew(ctx context.Context, tx store.Tx, hash string, t *Token) error {
	if _, err := tx.Get(ctx, idPrefix+hash); err == nil {
		return fault.New(fault.Conflict, "a token with that id exists already")
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := putEntry(ctx, tx, hash, t); err != nil {
		return err
	}
	if err := tx.Put(ctx, accessorPrefix+t.Accessor, []byte(hash)); err != nil {
		return err
	}
	if t.Parent != "" {
		if err := tx.Put(ctx, parentPrefix+t.Parent+"/"+t.Accessor, nil); err != nil {
			return err
		}
	}
	if t.Root {
		if err := tx.Put(ctx, rootPrefix+t.Accessor, nil); err != nil {
			return err
		}
		return markInitialized(ctx, tx, t.IssuedAt)
	}
	return nil
}

// markInitialized records, once, that the appliance has had a root token.
func markInitialized(ctx context.Context, tx store.Tx, at time.Time) error {
	if _, err := tx.Get(ctx, initializedKey); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return tx.Put(ctx, initializedKey, []byte(at.UTC().Format(time.RFC3339Nano)))
}

func putEntry(ctx context.Context, tx store.Tx, hash string, t *Token) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return tx.Put(ctx, idPrefix+hash, b)
}

// getEntry reads the entry under a hash; store.ErrNotFound if none.
func getEntry(ctx context.Context, tx store.Tx, hash string) (*Token, error) {
	b, err := tx.Get(ctx, idPrefix+hash)
	if err != nil {
		return nil, err
	}
	var t Token
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "corrupt token entry")
	}
	t.Root = slices.Contains(t.Policies, RootPolicy)
	t.UseLimited = t.NumUses > 0
	return &t, nil
}

// hashOfAccessor returns the hash an accessor names; store.ErrNotFound if none.
func hashOfAccessor(ctx context.Context, tx store.Tx, accessor string) (string, error) {
	if !accessorRe.MatchString(accessor) {
		return "", store.ErrNotFound
	}
	b, err := tx.Get(ctx, accessorPrefix+accessor)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func entryByAccessor(ctx context.Context, tx store.Tx, accessor string) (*Token, error) {
	h, err := hashOfAccessor(ctx, tx, accessor)
	if err != nil {
		return nil, err
	}
	return getEntry(ctx, tx, h)
}
