package auth

import (
	"context"
	"errors"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
)

// Bootstrap makes sure the root token given at start (dev mode's, fixed or
// generated) exists: it is created, with the root policy and no expiry, if
// it is missing (never made, or revoked since). An empty rootToken does
// nothing: in production the root token comes from CreateRoot.
func (m *Manager) Bootstrap(ctx context.Context, rootToken string) error {
	// A store an older build initialised has no mark: it gets one now,
	// while its tokens still show that it was initialised (they may all
	// expire and be tidied away later).
	if err := m.st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(ctx, initializedKey); err == nil || !errors.Is(err, store.ErrNotFound) {
			return err
		}
		done, err := m.initialized(ctx, tx)
		if err != nil || !done {
			return err
		}
		return markInitialized(ctx, tx, m.now())
	}); err != nil {
		return err
	}
	if rootToken == "" {
		return nil
	}
	if !ValidTokenText(rootToken) {
		return fault.New(fault.BadInput, "invalid root token id: up to 1024 visible ASCII characters")
	}
	hash := hashToken(rootToken)
	return m.st.Update(ctx, func(tx store.Tx) error {
		t, err := getEntry(ctx, tx, hash)
		switch {
		case err == nil && !t.expired(m.now()):
			return nil
		case err == nil:
			if err := revokeTx(ctx, tx, t.Accessor, false); err != nil {
				return err
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		return putNew(ctx, tx, hash, m.rootEntry())
	})
}

// CreateRoot makes a root token (root policy, no expiry, an orphan) and
// returns it; it is shown this once. Unless force is set it refuses, with
// a Conflict fault wrapping ErrRootExists, once the appliance has been
// initialised: `keyhold operator init` makes the first root token, and
// another is a deliberate act (force), as with Vault's generate-root.
// Revoking the root token after set-up, as Vault's hardening advice has it,
// does not open initialisation again.
func (m *Manager) CreateRoot(ctx context.Context, force bool) (string, error) {
	id := newToken()
	err := m.st.Update(ctx, func(tx store.Tx) error {
		if !force {
			done, err := m.initialized(ctx, tx)
			if err != nil {
				return err
			}
			if done {
				return fault.Wrap(fault.Conflict, ErrRootExists, "Keyhold is already initialized")
			}
		}
		return putNew(ctx, tx, hashToken(id), m.rootEntry())
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// liveRoot reports whether a token with the root policy exists and has not expired.
func (m *Manager) liveRoot(ctx context.Context, tx store.Tx) (bool, error) {
	accs, err := tx.List(ctx, rootPrefix)
	if err != nil {
		return false, err
	}
	for _, a := range accs {
		t, err := entryByAccessor(ctx, tx, a)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if !t.expired(m.now()) {
			return true, nil
		}
	}
	return false, nil
}

func (m *Manager) rootEntry() *Token {
	return &Token{
		Accessor:    newAccessor(),
		Policies:    []string{RootPolicy},
		Root:        true,
		DisplayName: "root",
		Path:        "auth/token/root",
		IssuedAt:    m.now().UTC(),
		Orphan:      true,
	}
}

// Initialized reports whether the appliance has been initialised (with
// `keyhold operator init`, or by dev mode's root token), whether or not its
// root token still exists.
func (m *Manager) Initialized(ctx context.Context) (bool, error) {
	var done bool
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		done, err = m.initialized(ctx, tx)
		return err
	})
	return done, err
}

// initialized: the mark that every root token leaves (initializedKey), or,
// for a store written before that mark existed, a live root token or any
// token at all (tokens are made only after initialisation).
func (m *Manager) initialized(ctx context.Context, tx store.Tx) (bool, error) {
	if _, err := tx.Get(ctx, initializedKey); err == nil {
		return true, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	if live, err := m.liveRoot(ctx, tx); err != nil || live {
		return live, err
	}
	accs, err := tx.List(ctx, accessorPrefix)
	if err != nil {
		return false, err
	}
	return len(accs) > 0, nil
}
