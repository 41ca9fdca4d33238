package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyhold/keyhold/store"
)

var _ store.Locker = (*Store)(nil)

// heldLock is a session advisory lock and the pooled connection that holds it.
type heldLock struct {
	conn *pgxpool.Conn
	key  int64
	once sync.Once
}

// release unlocks and gives the connection back; force closes it instead
// (the lock goes with the session). It runs once.
func (l *heldLock) release(force bool) {
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if force {
			l.conn.Conn().Close(ctx)
		} else if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, l.key); err != nil {
			l.conn.Conn().Close(ctx)
		}
		l.conn.Release()
	})
}

// Lock takes a session advisory lock on a connection of its own, held
// until unlock; if this process dies the connection closes and the lock
// goes with it. Close releases the locks still held.
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, s.closedOr(wrap("lock", err))
	}
	l := &heldLock{conn: conn, key: lockKey("keyhold lock " + s.schema + " " + name)}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, l.key); err != nil {
		// A wait cut short may still have taken the lock: the session goes.
		l.release(true)
		return nil, s.closedOr(wrap("lock", err))
	}
	s.locksMu.Lock()
	if s.closed.Load() {
		s.locksMu.Unlock()
		l.release(true)
		return nil, store.ErrClosed
	}
	s.locks[l] = struct{}{}
	s.locksMu.Unlock()
	return func() {
		s.locksMu.Lock()
		delete(s.locks, l)
		s.locksMu.Unlock()
		l.release(false)
	}, nil
}

// releaseLocks ends every lock still held (the store is closing).
func (s *Store) releaseLocks() {
	s.locksMu.Lock()
	held := s.locks
	s.locks = map[*heldLock]struct{}{}
	s.locksMu.Unlock()
	for l := range held {
		l.release(true)
	}
}
