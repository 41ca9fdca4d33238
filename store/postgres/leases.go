package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/keyhold/keyhold/store"
)

// leaseMargin is the part of a lease's ttl that a holder gives up at the
// end, against a clock that runs slower than the database's.
const leaseMargin = 10 // percent

// deadline is the holder's local deadline for a lease of ttl requested at start.
func deadline(start time.Time, ttl time.Duration) time.Time {
	return start.Add(ttl - ttl*leaseMargin/100)
}

// AcquireLease takes the lease for holder if it is free, expired or already
// the holder's. The epoch grows with every new holder.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (*store.Lease, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("store: acquire lease: ttl must be positive")
	}
	start := time.Now()
	l := &store.Lease{Name: name, Holder: holder}
	err := s.pool.QueryRow(ctx, `INSERT INTO leases AS l (name, holder, epoch, acquired_at, expires_at)
		VALUES ($1, $2, 1, now(), now() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET
			holder = excluded.holder,
			epoch = CASE WHEN l.holder = excluded.holder AND l.expires_at > now() THEN l.epoch ELSE l.epoch + 1 END,
			acquired_at = CASE WHEN l.holder = excluded.holder AND l.expires_at > now() THEN l.acquired_at ELSE now() END,
			expires_at = excluded.expires_at
		WHERE l.expires_at <= now() OR l.holder = excluded.holder
		RETURNING epoch, acquired_at, expires_at`, name, holder, ttl.Microseconds()).
		Scan(&l.Epoch, &l.AcquiredAt, &l.ExpiresAt)
	if noRows(err) {
		return nil, store.ErrLeaseHeld
	}
	if err != nil {
		return nil, s.closedOr(wrap("acquire lease", err))
	}
	l.AcquiredAt, l.ExpiresAt, l.Deadline = utc(l.AcquiredAt), utc(l.ExpiresAt), deadline(start, ttl)
	return l, nil
}

// RenewLease extends a held lease by ttl from now.
func (s *Store) RenewLease(ctx context.Context, l *store.Lease, ttl time.Duration) (*store.Lease, error) {
	start := time.Now()
	n := *l
	err := s.pool.QueryRow(ctx, `UPDATE leases SET expires_at = now() + $4 * interval '1 microsecond'
		WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()
		RETURNING expires_at`, l.Name, l.Holder, l.Epoch, ttl.Microseconds()).Scan(&n.ExpiresAt)
	if noRows(err) {
		return nil, store.ErrLeaseLost
	}
	if err != nil {
		return nil, s.closedOr(wrap("renew lease", err))
	}
	n.ExpiresAt, n.Deadline = utc(n.ExpiresAt), deadline(start, ttl)
	return &n, nil
}

// ReleaseLease makes a held lease expire now.
func (s *Store) ReleaseLease(ctx context.Context, l *store.Lease) error {
	_, err := s.pool.Exec(ctx, `UPDATE leases SET expires_at = now()
		WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()`, l.Name, l.Holder, l.Epoch)
	return s.closedOr(wrap("release lease", err))
}

// GetLease returns a lease's state, or store.ErrNotFound.
func (s *Store) GetLease(ctx context.Context, name string) (*store.Lease, error) {
	l := &store.Lease{Name: name}
	err := s.pool.QueryRow(ctx, `SELECT holder, epoch, acquired_at, expires_at FROM leases WHERE name = $1`, name).
		Scan(&l.Holder, &l.Epoch, &l.AcquiredAt, &l.ExpiresAt)
	if noRows(err) {
		return nil, fmt.Errorf("store: get lease: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, s.closedOr(wrap("get lease", err))
	}
	l.AcquiredAt, l.ExpiresAt = utc(l.AcquiredAt), utc(l.ExpiresAt)
	return l, nil
}
