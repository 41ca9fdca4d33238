// Package sqlite implements store.Store on one SQLite file, the embedded
// default for a single node.
//
// The file is in WAL mode with synchronous=FULL, so an Update that returned
// nil survives a crash. Writes go through one connection that begins with
// BEGIN IMMEDIATE, so writers queue up instead of failing as busy; View uses a
// pool of query-only connections, each transaction reading one snapshot.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"

	"github.com/keyhold/keyhold/store"
)

// busyTimeoutMS is how long a connection waits for a lock held by another
// process before failing; writers of this process queue in database/sql.
const busyTimeoutMS = 10000

// stmtCacheSize is how many prepared statements each connection keeps, so
// that the statements a request runs every time (the inserts of a KMIP
// Create, the reads of a Get) are not compiled again for every call.
const stmtCacheSize = 64

// Store is a store.Store kept in one SQLite file. It is safe for concurrent use.
type Store struct {
	path   string
	write  *sql.DB  // one connection; transactions begin IMMEDIATE
	read   *sql.DB  // query-only connections for View
	lock   *os.File // held (flock) while the store is open: one process per file
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open opens the store in the file at path, creating the file (mode 0600) and
// its folder (mode 0700) if missing, and brings its schema up to date.
func Open(path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if err := createFile(abs); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	lock, err := lockFile(abs + ".lock")
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	s := &Store{path: path, lock: lock}
	defer func() {
		if s.write == nil || s.read == nil {
			lock.Close()
		}
	}()
	name := (&url.URL{Scheme: "file", Path: abs}).String()

	s.write, err = openDB(name, url.Values{
		"_journal_mode":    {"WAL"},
		"_synchronous":     {"FULL"},
		"_foreign_keys":    {"on"},
		"_busy_timeout":    {fmt.Sprint(busyTimeoutMS)},
		"_txlock":          {"immediate"},
		"_stmt_cache_size": {fmt.Sprint(stmtCacheSize)},
	}, 1)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if err := migrate(context.Background(), s.write); err != nil {
		s.write.Close()
		return nil, err
	}
	s.read, err = openDB(name, url.Values{
		"_query_only":      {"on"},
		"_synchronous":     {"FULL"},
		"_foreign_keys":    {"on"},
		"_busy_timeout":    {fmt.Sprint(busyTimeoutMS)},
		"_txlock":          {"deferred"},
		"_stmt_cache_size": {fmt.Sprint(stmtCacheSize)},
	}, max(4, runtime.GOMAXPROCS(0)))
	if err != nil {
		s.write.Close()
		return nil, fmt.Errorf("store: open: %w", err)
	}
	return s, nil
}

// createFile creates the folder and the database file with private modes
// before SQLite opens it (SQLite would create it world-readable, and gives
// the -wal and -shm files the mode of the database file).
func createFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Make the new directory entry durable.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// openDB opens a pool of at most conns connections to the SQLite URI name
// and checks that one connection can be made.
func openDB(name string, params url.Values, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite3", name+"?"+params.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Path returns the path of the database file, as given to Open.
func (s *Store) Path() string { return s.path }

// Update runs fn in a read-write transaction and commits it if fn returns nil.
// Updates run one at a time; fn must not call Update itself.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.run(ctx, s.write, true, fn)
}

// View runs fn in a read-only transaction that sees one snapshot.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.run(ctx, s.read, false, fn)
}

func (s *Store) run(ctx context.Context, db *sql.DB, writable bool, fn func(store.Tx) error) (err error) {
	if s.closed.Load() {
		return store.ErrClosed
	}
	sqlTx, err := db.BeginTx(ctx, nil)
	if err != nil {
		if s.closed.Load() {
			return store.ErrClosed
		}
		return fmt.Errorf("store: begin: %w", err)
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		if rbErr := sqlTx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) && err == nil {
			err = fmt.Errorf("store: rollback: %w", rbErr)
		}
	}()
	if err := fn(&tx{tx: sqlTx, writable: writable}); err != nil {
		return err
	}
	if !writable {
		return nil // the deferred rollback ends the read
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	committed = true
	return nil
}

// Close closes the store. Transactions already running may finish; later
// ones fail with store.ErrClosed. Closing again does nothing.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	// Readers first, so that the writer's close checkpoints the WAL.
	rerr := s.read.Close()
	werr := s.write.Close()
	s.lock.Close() // after the writer's close has checkpointed the WAL
	if err := errors.Join(rerr, werr); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}
