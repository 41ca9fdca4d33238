package auth

import (
	"context"
	"errors"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
)

// Renew extends the life of the token an accessor names, as Vault does: to
// now + increment (or its creation TTL if increment is 0; a periodic token
// always gets its period), never past its explicit maximum TTL, MaxTTL
// after issue for non-periodic tokens, or its parent's expiry.
func (m *Manager) Renew(ctx context.Context, accessor string, increment time.Duration) (*Token, error) {
	if increment < 0 {
		return nil, fault.New(fault.BadInput, "increment must not be negative")
	}
	var t *Token
	err := m.st.Update(ctx, func(tx store.Tx) error {
		hash, err := hashOfAccessor(ctx, tx, accessor)
		if errors.Is(err, store.ErrNotFound) {
			return errDenied()
		}
		if err != nil {
			return err
		}
		t, err = getEntry(ctx, tx, hash)
		if errors.Is(err, store.ErrNotFound) {
			return errDenied()
		}
		if err != nil {
			return err
		}
		now := m.now().UTC()
		if t.expired(now) {
			return errDenied()
		}
		if !t.Renewable || t.ExpireAt.IsZero() {
			return fault.New(fault.BadInput, "the token is not renewable")
		}
		ttl := increment
		switch {
		case t.Period > 0:
			ttl = t.Period
		case ttl == 0:
			ttl = t.TTL
		}
		exp := now.Add(ttl)
		if t.ExplicitMaxTTL > 0 {
			exp = minTime(exp, t.IssuedAt.Add(t.ExplicitMaxTTL))
		}
		if t.Period == 0 {
			exp = minTime(exp, t.IssuedAt.Add(MaxTTL))
		}
		if t.Parent != "" {
			p, err := entryByAccessor(ctx, tx, t.Parent)
			if errors.Is(err, store.ErrNotFound) {
				return errDenied()
			}
			if err != nil {
				return err
			}
			if !p.ExpireAt.IsZero() {
				exp = minTime(exp, p.ExpireAt)
			}
		}
		t.ExpireAt, t.LastRenewal = exp, now
		return putEntry(ctx, tx, hash, t)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
