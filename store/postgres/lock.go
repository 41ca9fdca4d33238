package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyhold/keyhold/store"
)

var _ store.Locker = (*Store)(nil)

// How a held lock's session is watched: a round trip every lockProbe, and
// a probe (or a Check) with no answer within lockProbeTimeout counts the
// lock as lost. Variables so that tests can shorten them.
var (
	lockProbe        = time.Second
	lockProbeTimeout = 2 * time.Second
)

// heldLock is a session advisory lock and the pooled connection that holds
// it. The database keeps a session's advisory locks for as long as the
// session lives, so a round trip on the connection proves the lock is
// still held; a failed one means the session is gone (a restart, a
// failover, a terminated backend) or cannot be reached, and the lock is
// then taken as lost: its connection is closed, so that a database that
// still has the session lets the lock go too.
type heldLock struct {
	conn *pgxpool.Conn
	key  int64

	mu       sync.Mutex // serializes the connection: probes, Check, release
	released bool

	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{}
	watcher  sync.WaitGroup
}

func (l *heldLock) Lost() <-chan struct{} { return l.lost }

// Check makes a round trip on the lock's session. It may first wait for a
// probe under way, and the round trip is not cut short by ctx (a query cut
// short ends the session, and the lock with it): ctx is only looked at
// before, and a lock known to be lost is reported as such even then.
func (l *heldLock) Check(ctx context.Context) error {
	if l.isLost() {
		return store.ErrLockLost
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.probeLocked()
}

// probeLocked checks the session; l.mu is held.
func (l *heldLock) probeLocked() error {
	if l.released || l.isLost() {
		return store.ErrLockLost
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockProbeTimeout)
	defer cancel()
	if _, err := l.conn.Exec(ctx, `SELECT 1`); err != nil {
		l.loseLocked()
		return store.ErrLockLost
	}
	return nil
}

func (l *heldLock) isLost() bool {
	select {
	case <-l.lost:
		return true
	default:
		return false
	}
}

// loseLocked marks the lock lost and closes its connection; l.mu is held.
func (l *heldLock) loseLocked() {
	l.lostOnce.Do(func() {
		close(l.lost)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.conn.Conn().Close(ctx)
	})
}

// watch probes the session every lockProbe until the lock is released or lost.
func (l *heldLock) watch() {
	defer l.watcher.Done()
	t := time.NewTicker(lockProbe)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.lost:
			return
		case <-t.C:
		}
		l.mu.Lock()
		l.probeLocked() // does nothing once released
		l.mu.Unlock()
	}
}

// release unlocks and gives the connection back; force closes it instead
// (the lock goes with the session), and tells the holder, who did not ask,
// that the lock is lost. It runs once.
func (l *heldLock) release(force bool) {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return
	}
	if force {
		l.loseLocked()
	}
	l.released = true
	close(l.stop)
	if !l.isLost() { // a lost lock's connection is closed already
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, l.key); err != nil {
			l.conn.Conn().Close(ctx)
		}
	}
	l.conn.Release()
	l.mu.Unlock()
	l.watcher.Wait()
}

// Lock takes a session advisory lock on a connection of its own, held
// until Unlock; if this process dies the connection closes and the lock
// goes with it. The session is probed while the lock is held (see
// heldLock). Close releases the locks still held.
func (s *Store) Lock(ctx context.Context, name string) (store.HeldLock, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, s.closedOr(wrap("lock", err))
	}
	l := &heldLock{conn: conn, key: lockKey("keyhold lock " + s.schema + " " + name), lost: make(chan struct{}), stop: make(chan struct{})}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, l.key); err != nil {
		// A wait cut short may still have taken the lock: the session goes.
		l.release(true)
		return nil, s.closedOr(wrap("lock", err))
	}
	l.watcher.Add(1)
	go l.watch()
	s.locksMu.Lock()
	if s.closed.Load() {
		s.locksMu.Unlock()
		l.release(true)
		return nil, store.ErrClosed
	}
	s.locks[l] = struct{}{}
	s.locksMu.Unlock()
	return &ownLock{heldLock: l, s: s}, nil
}

// ownLock is what Lock hands out: Unlock also forgets the lock.
type ownLock struct {
	*heldLock
	s *Store
}

func (l *ownLock) Unlock() {
	l.s.locksMu.Lock()
	delete(l.s.locks, l.heldLock)
	l.s.locksMu.Unlock()
	l.release(false)
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
