package auth

import (
	"context"
	"errors"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
)

// Authenticate returns the entry of the token presented with a request and
// spends one of its uses if it has a limit: the count goes down in a store
// transaction, so concurrent requests never spend more uses than there are,
// and the last use revokes the token (its entry is still returned, with
// UseLimited set and NumUses 0). A missing, revoked or expired token is
// refused with a Unauthorized fault that does not say which; an expired
// one is removed on the way.
func (m *Manager) Authenticate(ctx context.Context, token string) (*Token, error) {
	if !ValidTokenText(token) {
		return nil, errDenied()
	}
	hash := hashToken(token)
	var t *Token
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		t, err = getEntry(ctx, tx, hash)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errDenied()
	}
	if err != nil {
		return nil, err
	}
	if !t.expired(m.now()) && !t.UseLimited {
		return t, nil
	}
	denied := false
	err = m.st.Update(ctx, func(tx store.Tx) error {
		var err error
		denied = false
		t, err = getEntry(ctx, tx, hash)
		if errors.Is(err, store.ErrNotFound) {
			denied = true
			return nil
		}
		if err != nil {
			return err
		}
		if t.expired(m.now()) {
			denied = true
			return revokeTx(ctx, tx, t.Accessor, false)
		}
		if !t.UseLimited {
			return nil
		}
		t.NumUses--
		if t.NumUses == 0 {
			return revokeTx(ctx, tx, t.Accessor, false)
		}
		return putEntry(ctx, tx, hash, t)
	})
	if err != nil {
		return nil, err
	}
	if denied {
		return nil, errDenied()
	}
	return t, nil
}

// Lookup returns the entry of a token without spending a use. A missing or
// expired token is refused like Authenticate refuses it.
func (m *Manager) Lookup(ctx context.Context, token string) (*Token, error) {
	if !ValidTokenText(token) {
		return nil, errDenied()
	}
	var t *Token
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		t, err = getEntry(ctx, tx, hashToken(token))
		return err
	})
	if errors.Is(err, store.ErrNotFound) || err == nil && t.expired(m.now()) {
		return nil, errDenied()
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// LookupAccessor returns the entry of the token an accessor names; a
// BadInput fault "invalid accessor" if there is none (or it has expired).
func (m *Manager) LookupAccessor(ctx context.Context, accessor string) (*Token, error) {
	var t *Token
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		t, err = entryByAccessor(ctx, tx, accessor)
		return err
	})
	if errors.Is(err, store.ErrNotFound) || err == nil && t.expired(m.now()) {
		return nil, errInvalidAccessor()
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

func errInvalidAccessor() error { return fault.New(fault.BadInput, "invalid accessor") }

// Accessors returns the accessors of all tokens, sorted (expired ones that
// were not yet removed included).
func (m *Manager) Accessors(ctx context.Context) ([]string, error) {
	var out []string
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		out, err = tx.List(ctx, accessorPrefix)
		return err
	})
	return out, err
}
