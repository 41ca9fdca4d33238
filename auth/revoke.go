package auth

import (
	"context"
	"errors"

	"github.com/keyhold/keyhold/store"
)

// Revoke revokes a token and, recursively, the tokens it created (orphans
// excepted). Revoking a token that does not exist is not an error.
func (m *Manager) Revoke(ctx context.Context, token string) error {
	if !ValidTokenText(token) {
		return nil
	}
	return m.st.Update(ctx, func(tx store.Tx) error {
		t, err := getEntry(ctx, tx, hashToken(token))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return revokeTx(ctx, tx, t.Accessor, false)
	})
}

// RevokeAccessor revokes the token an accessor names, and its children; a
// BadInput fault "invalid accessor" if there is none.
func (m *Manager) RevokeAccessor(ctx context.Context, accessor string) error {
	return m.st.Update(ctx, func(tx store.Tx) error {
		if _, err := hashOfAccessor(ctx, tx, accessor); errors.Is(err, store.ErrNotFound) {
			return errInvalidAccessor()
		} else if err != nil {
			return err
		}
		return revokeTx(ctx, tx, accessor, false)
	})
}

// RevokeOrphan revokes a token but not its children, which become orphans.
// Revoking a token that does not exist is not an error.
func (m *Manager) RevokeOrphan(ctx context.Context, token string) error {
	if !ValidTokenText(token) {
		return nil
	}
	return m.st.Update(ctx, func(tx store.Tx) error {
		t, err := getEntry(ctx, tx, hashToken(token))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return revokeTx(ctx, tx, t.Accessor, true)
	})
}

// Tidy removes the tokens that have expired (they are refused anyway; this
// reclaims their entries) and returns how many it removed.
func (m *Manager) Tidy(ctx context.Context) (int, error) {
	var expired []string
	err := m.st.View(ctx, func(tx store.Tx) error {
		accs, err := tx.List(ctx, accessorPrefix)
		if err != nil {
			return err
		}
		now := m.now()
		for _, a := range accs {
			t, err := entryByAccessor(ctx, tx, a)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if t.expired(now) {
				expired = append(expired, a)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range expired {
		err := m.st.Update(ctx, func(tx store.Tx) error {
			t, err := entryByAccessor(ctx, tx, a)
			if errors.Is(err, store.ErrNotFound) || err == nil && !t.expired(m.now()) {
				return nil
			}
			if err != nil {
				return err
			}
			n++
			return revokeTx(ctx, tx, a, false)
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// revokeTx deletes a token, its indexes and, breadth first, its
// descendants; with orphanChildren its direct children are kept and made
// orphans instead.
func revokeTx(ctx context.Context, tx store.Tx, accessor string, orphanChildren bool) error {
	queue := []string{accessor}
	for i := 0; i < len(queue); i++ {
		acc := queue[i]
		hash, err := hashOfAccessor(ctx, tx, acc)
		switch {
		case err == nil:
			t, err := getEntry(ctx, tx, hash)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if t != nil && t.Parent != "" {
				if err := tx.Delete(ctx, parentPrefix+t.Parent+"/"+acc); err != nil {
					return err
				}
			}
			if err := tx.Delete(ctx, idPrefix+hash); err != nil {
				return err
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		for _, p := range []string{accessorPrefix + acc, rootPrefix + acc} {
			if err := tx.Delete(ctx, p); err != nil {
				return err
			}
		}
		children, err := tx.List(ctx, parentPrefix+acc+"/")
		if err != nil {
			return err
		}
		for _, c := range children {
			if err := tx.Delete(ctx, parentPrefix+acc+"/"+c); err != nil {
				return err
			}
			if orphanChildren && i == 0 {
				if err := makeOrphan(ctx, tx, c); err != nil {
					return err
				}
				continue
			}
			queue = append(queue, c)
		}
	}
	return nil
}

func makeOrphan(ctx context.Context, tx store.Tx, accessor string) error {
	hash, err := hashOfAccessor(ctx, tx, accessor)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	t, err := getEntry(ctx, tx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	t.Parent, t.Orphan = "", true
	return putEntry(ctx, tx, hash, t)
}
