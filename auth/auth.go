// Package auth holds tokens and ACL policies.
//
// INTERIM: only the root token given at start is known. The token store and
// the policies are being written.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
)

// Token is an authenticated caller.
type Token struct {
	Accessor string
	Policies []string
	Root     bool
}

// Manager authenticates tokens and authorizes requests.
type Manager struct {
	st   store.Store
	root [32]byte
	set  bool
}

// New returns a manager over the store.
func New(st store.Store) *Manager { return &Manager{st: st} }

// Bootstrap makes the root token known.
func (m *Manager) Bootstrap(ctx context.Context, rootToken string) error {
	if rootToken != "" {
		m.root, m.set = sha256.Sum256([]byte(rootToken)), true
	}
	return nil
}

// Authenticate returns the token's identity.
func (m *Manager) Authenticate(ctx context.Context, token string) (*Token, error) {
	h := sha256.Sum256([]byte(token))
	if token == "" || !m.set || subtle.ConstantTimeCompare(h[:], m.root[:]) != 1 {
		return nil, fault.New(fault.Unauthorized, "permission denied")
	}
	return &Token{Accessor: "root", Policies: []string{"root"}, Root: true}, nil
}

// Allowed reports whether the token may do the capability on the path.
func (m *Manager) Allowed(ctx context.Context, t *Token, path, capability string, sudo bool) (bool, error) {
	return t.Root, nil
}
