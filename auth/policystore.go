package auth

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
)

// defaultPolicyText is the "default" policy until an operator edits it: a
// token may look itself up, renew and revoke itself.
const defaultPolicyText = `# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}
`

// policyName lowercases a policy name, as Vault does, and checks it.
func policyName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if !policyNameRe.MatchString(n) {
		return "", fault.New(fault.BadInput, "invalid policy name %q: 1 to 128 lowercase letters, digits, '_', '.' and '-'", name)
	}
	return n, nil
}

// Policy returns a policy; a NotFound fault if there is none. The root
// policy has no text (it allows everything).
func (m *Manager) Policy(ctx context.Context, name string) (*Policy, error) {
	n, err := policyName(name)
	if err != nil {
		return nil, err
	}
	p, err := m.policy(ctx, n)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fault.New(fault.NotFound, "no policy named %q", n)
	}
	return p, nil
}

// PolicyNames returns the names of all policies, the built-ins included, sorted.
func (m *Manager) PolicyNames(ctx context.Context) ([]string, error) {
	var names []string
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		names, err = tx.List(ctx, policyPrefix)
		return err
	})
	if err != nil {
		return nil, err
	}
	names = append(names, DefaultPolicy, RootPolicy)
	slices.Sort(names)
	return slices.Compact(names), nil
}

// PutPolicy creates or replaces a policy after parsing it. The root policy
// cannot be changed.
func (m *Manager) PutPolicy(ctx context.Context, name, text string) (*Policy, error) {
	n, err := policyName(name)
	if err != nil {
		return nil, err
	}
	if n == RootPolicy {
		return nil, fault.New(fault.BadInput, "cannot update the root policy")
	}
	p, err := ParsePolicy(n, text)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.st.Update(ctx, func(tx store.Tx) error { return tx.Put(ctx, policyPrefix+n, []byte(text)) }); err != nil {
		return nil, err
	}
	m.gen++
	m.policies[n] = p
	return p, nil
}

// DeletePolicy deletes a policy; deleting one that does not exist is not an
// error. The built-in policies cannot be deleted. Tokens keep the name and
// lose what it granted.
func (m *Manager) DeletePolicy(ctx context.Context, name string) error {
	n, err := policyName(name)
	if err != nil {
		return err
	}
	if n == RootPolicy || n == DefaultPolicy {
		return fault.New(fault.BadInput, "cannot delete the %s policy", n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, policyPrefix+n) }); err != nil {
		return err
	}
	m.gen++
	m.policies[n] = nil
	return nil
}

// policy returns a policy from the cache, loading it if needed; nil if
// there is none.
func (m *Manager) policy(ctx context.Context, name string) (*Policy, error) {
	if name == RootPolicy {
		return &Policy{Name: RootPolicy}, nil
	}
	m.mu.RLock()
	p, ok := m.policies[name]
	gen := m.gen
	m.mu.RUnlock()
	if ok {
		return p, nil
	}
	var text []byte
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		text, err = tx.Get(ctx, policyPrefix+name)
		return err
	})
	switch {
	case err == nil:
		if p, err = ParsePolicy(name, string(text)); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "stored policy %q does not parse", name)
		}
	case errors.Is(err, store.ErrNotFound) && name == DefaultPolicy:
		if p, err = ParsePolicy(name, defaultPolicyText); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "built-in default policy does not parse")
		}
	case errors.Is(err, store.ErrNotFound):
		p = nil
	default:
		return nil, err
	}
	m.mu.Lock()
	if m.gen == gen {
		m.policies[name] = p
	}
	m.mu.Unlock()
	return p, nil
}

// acl merges the named policies; names without a policy grant nothing.
func (m *Manager) acl(ctx context.Context, names []string) (*acl, error) {
	ps := make([]*Policy, 0, len(names))
	for _, n := range names {
		p, err := m.policy(ctx, n)
		if err != nil {
			return nil, err
		}
		if p != nil {
			ps = append(ps, p)
		}
	}
	return newACL(ps), nil
}
