package postgres

import (
	"context"
	"time"

	"github.com/keyhold/keyhold/store"
)

var _ store.Locker = (*Store)(nil)

// Lock takes a session advisory lock on a connection of its own, held
// until unlock; if this process dies the connection closes and the lock
// goes with it.
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, s.closedOr(wrap("lock", err))
	}
	key := lockKey("keyhold lock " + s.schema + " " + name)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		// A wait cut short may still have taken the lock: the session goes.
		conn.Conn().Close(context.Background())
		conn.Release()
		return nil, s.closedOr(wrap("lock", err))
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
			conn.Conn().Close(uctx)
		}
		conn.Release()
	}, nil
}
