// Package postgres implements store.Store on PostgreSQL, for several
// appliance nodes sharing one (replicated) database.
//
// Writers are serialized, as in SQLite: every Update takes a
// transaction-level advisory lock before its first statement, so read-
// modify-write transactions of different nodes (two rotations of one key)
// run one after the other and never lose a version; within a process a
// semaphore keeps waiting writers from holding more than one connection.
// An Update runs at READ COMMITTED, which after the lock sees every earlier
// commit; a View runs at REPEATABLE READ, READ ONLY, on one snapshot.
// PostgreSQL's commit is durable (fsync), so an Update that returned nil
// survives a crash.
//
// Beside the data the store keeps what nodes need to cooperate
// (store.ChangeLog, store.Leases, store.Nodes): every Update that wrote
// something appends one row to a change log naming what it touched, in
// commit order, and notifies listeners; leases expire on the database's
// clock; nodes register and send heartbeats.
//
// Several stores may share a database in different schemas (the URL's
// search_path): locks and notification channels are derived from the
// schema's name.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyhold/keyhold/store"
)

// Config says how to reach the database.
type Config struct {
	// URL is a libpq connection URL or keyword/value string, e.g.
	// postgres://keyhold@db.example:5432/keyhold?sslmode=verify-full.
	URL string
	// Password, when set, is used instead of any password in URL; the
	// appliance reads it from an environment variable or a file.
	Password string
	// MaxConns bounds the pool (default 16).
	MaxConns int
	// NodeID names this process's writes in the change log; random if empty.
	NodeID string
}

// Store is a store.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	node    string
	schema  string
	lockKey int64  // the advisory lock that serializes writers
	channel string // the notification channel of the change log
	writers chan struct{}
	closed  atomic.Bool

	locksMu sync.Mutex
	locks   map[*heldLock]struct{} // session locks held (Lock)

	confirmedMu sync.Mutex
	confirmed   map[int64]struct{}      // this node's changes whose Update returned nil, not yet read back
	pending     map[int64]chan struct{} // this node's changes whose COMMIT is under way: closed when its outcome is known

	listenMu sync.Mutex // one WaitChange at a time
	listen   *pgx.Conn  // the LISTEN connection, opened by WaitChange
	connCfg  *pgx.ConnConfig
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.ChangeLog = (*Store)(nil)
	_ store.Leases    = (*Store)(nil)
	_ store.Nodes     = (*Store)(nil)
)

// sessionDefaults are the server settings of every connection: it names
// itself keyhold, an Update left idle in its transaction for 30 s is ended
// (no Update waits that long between its statements), and a silent client
// is found dead after about 10 s + 3 × 5 s of keepalive probes.
var sessionDefaults = map[string]string{
	"application_name":                    "keyhold",
	"idle_in_transaction_session_timeout": "30000",
	"tcp_keepalives_idle":                 "10",
	"tcp_keepalives_interval":             "5",
	"tcp_keepalives_count":                "3",
}

// applySessionDefaults sets in params each of sessionDefaults the
// connection URL did not set.
func applySessionDefaults(params map[string]string) {
	for name, value := range sessionDefaults {
		if params[name] == "" {
			params[name] = value
		}
	}
}

// Open connects to the database and brings its schema up to date; nodes
// starting at once take turns (an advisory lock), so a migration runs once.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgx's parse errors may echo the URL, password included.
		return nil, errors.New("store: postgres: the connection URL does not parse")
	}
	if cfg.Password != "" {
		pc.ConnConfig.Password = cfg.Password
	}
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	// A node whose host dies, or is cut off, sends the database no FIN: its
	// backend would hold the writers' lock (inside an Update) or a key's
	// lock (Locker) until the server's TCP keepalive noticed, two hours by
	// default, and every write of every node would wait. The server drops
	// a transaction left idle, and probes idle clients, much sooner. The
	// connection URL may set other values.
	applySessionDefaults(pc.ConnConfig.RuntimeParams)
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 16
	}
	pc.MaxConns = int32(cfg.MaxConns)
	pc.MaxConnIdleTime = 5 * time.Minute
	pc.HealthCheckPeriod = 30 * time.Second
	node := cfg.NodeID
	if node == "" {
		node = randomID()
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	s := &Store{pool: pool, node: node, writers: make(chan struct{}, 1), connCfg: pc.ConnConfig.Copy(), locks: map[*heldLock]struct{}{}}
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&s.schema); err != nil {
		pool.Close()
		return nil, wrap("connect", err)
	}
	s.lockKey = lockKey("keyhold write " + s.schema)
	s.channel = "keyhold_changes_" + strconv.FormatUint(uint64(lockKey("keyhold changes "+s.schema)), 36)
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// lockKey derives an advisory lock key from a name.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NodeID names this process's writes in the change log.
func (s *Store) NodeID() string { return s.node }

// Update runs fn in a read-write transaction, serialized with every other
// writer of every node, and commits it if fn returns nil.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) (err error) {
	if s.closed.Load() {
		return store.ErrClosed
	}
	select {
	case s.writers <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("store: begin: %w", ctx.Err())
	}
	defer func() { <-s.writers }()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.closedOr(wrap("begin", err))
	}
	defer conn.Release()
	// One round trip: the transaction and the writers' lock.
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock("+strconv.FormatInt(s.lockKey, 10)+")"); err != nil {
		rollback(conn.Conn())
		return s.closedOr(wrap("begin", err))
	}
	t := &tx{c: conn.Conn(), writable: true}
	if err := fn(t); err != nil {
		rollback(conn.Conn())
		return err
	}
	var seq int64
	if len(t.changes) > 0 {
		if err := conn.QueryRow(ctx, `INSERT INTO changes (seq, node, paths) VALUES (nextval('change_seq'), $1, $2) RETURNING seq`,
			s.node, t.changePaths()).Scan(&seq); err != nil {
			rollback(conn.Conn())
			return wrap("commit", err)
		}
		// Until this Update knows its outcome, the change log's reader
		// waits for it on reading the change (ChangesSince), so it neither
		// skips a change whose COMMIT then fails on this side nor handles
		// one that is confirmed an instant later.
		done := s.beginCommit(seq)
		defer func() { s.endCommit(seq, done, err == nil) }()
	}
	commit := "COMMIT"
	if len(t.changes) > 0 {
		commit = "NOTIFY " + s.channel + "; COMMIT"
	}
	tag, err := conn.Exec(ctx, commit)
	if err != nil {
		rollback(conn.Conn())
		return wrap("commit", err)
	}
	if tag.String() != "COMMIT" {
		return wrap("commit", errors.New("the transaction was rolled back"))
	}
	return nil
}

// maxConfirmed bounds the confirmed changes kept for the watcher; past it
// they are forgotten, and the node handles its own changes again (a
// harmless reload).
const maxConfirmed = 1 << 16

func (s *Store) beginCommit(seq int64) chan struct{} {
	s.confirmedMu.Lock()
	defer s.confirmedMu.Unlock()
	if s.pending == nil {
		s.pending = map[int64]chan struct{}{}
	}
	done := make(chan struct{})
	s.pending[seq] = done
	return done
}

func (s *Store) endCommit(seq int64, done chan struct{}, ok bool) {
	s.confirmedMu.Lock()
	defer s.confirmedMu.Unlock()
	delete(s.pending, seq)
	if ok {
		if s.confirmed == nil || len(s.confirmed) >= maxConfirmed {
			s.confirmed = map[int64]struct{}{}
		}
		s.confirmed[seq] = struct{}{}
	}
	close(done)
}

// confirmedOnce reports whether seq is a confirmed change of this node,
// once; if its Update is still finishing, it waits for the outcome (or
// ctx).
func (s *Store) confirmedOnce(ctx context.Context, seq int64) (bool, error) {
	s.confirmedMu.Lock()
	done := s.pending[seq]
	s.confirmedMu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	s.confirmedMu.Lock()
	defer s.confirmedMu.Unlock()
	_, ok := s.confirmed[seq]
	delete(s.confirmed, seq)
	return ok, nil
}

// forgetConfirmed forgets the confirmed changes at or before after: read
// already (or confirmed after the watcher read them unconfirmed).
func (s *Store) forgetConfirmed(after int64) {
	s.confirmedMu.Lock()
	defer s.confirmedMu.Unlock()
	for q := range s.confirmed {
		if q <= after {
			delete(s.confirmed, q)
		}
	}
}

// View runs fn in a read-only transaction on one snapshot.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.closedOr(wrap("begin", err))
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		rollback(conn.Conn())
		return s.closedOr(wrap("begin", err))
	}
	ferr := fn(&tx{c: conn.Conn()})
	rollback(conn.Conn())
	return ferr
}

// rollback ends the connection's transaction, even if the caller's context
// is done; a connection left inside a transaction is closed by the pool on
// release.
func rollback(c *pgx.Conn) {
	if c.PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
		c.Close(ctx)
	}
}

func (s *Store) closedOr(err error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return err
}

// Close closes the pool; transactions running finish first, later ones
// fail with store.ErrClosed. Closing again does nothing.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.listenMu.Lock()
	if s.listen != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.listen.Close(ctx)
		cancel()
		s.listen = nil
	}
	s.listenMu.Unlock()
	s.releaseLocks()
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return wrap("ping", s.pool.Ping(ctx))
}
