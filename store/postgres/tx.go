package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyhold/keyhold/store"
)

// tx is a store.Tx over one connection inside a transaction.
type tx struct {
	c        *pgx.Conn
	writable bool
	changes  map[string]bool // what an Update touched, for the change log
}

// maxChangePaths bounds the paths of one change-log row; beyond it paths
// are cut to their first segment, which other nodes treat as "everything
// under it".
const maxChangePaths = 256

func (t *tx) canWrite(op string) error {
	if !t.writable {
		return fmt.Errorf("store: %s: %w", op, errReadOnly)
	}
	return nil
}

// changed notes what the transaction touched.
func (t *tx) changed(path string) {
	if t.changes == nil {
		t.changes = map[string]bool{}
	}
	t.changes[path] = true
}

// changePaths returns the touched paths, sorted, coarsened if there are too many.
func (t *tx) changePaths() [][]byte {
	paths := make([]string, 0, len(t.changes))
	for p := range t.changes {
		paths = append(paths, p)
	}
	if len(paths) > maxChangePaths {
		coarse := map[string]bool{}
		for _, p := range paths {
			coarse[coarsen(p)] = true
		}
		paths = paths[:0]
		for p := range coarse {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	out := make([][]byte, len(paths))
	for i, p := range paths {
		out[i] = []byte(p)
	}
	return out
}

// coarsen cuts "kind:a/b/c" to "kind:a/" (and "kind:a" to "kind:").
func coarsen(p string) string {
	kind, rest, _ := strings.Cut(p, ":")
	first, _, found := strings.Cut(rest, "/")
	if !found {
		return kind + ":"
	}
	return kind + ":" + first + "/"
}

// Get returns the value at path, or store.ErrNotFound.
func (t *tx) Get(ctx context.Context, path string) ([]byte, error) {
	var v []byte
	err := t.c.QueryRow(ctx, `SELECT value FROM kv WHERE path = $1`, []byte(path)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("store: get: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap("get", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Put creates or replaces the value at path.
func (t *tx) Put(ctx context.Context, path string, value []byte) error {
	if err := t.canWrite("put"); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	_, err := t.c.Exec(ctx, `INSERT INTO kv (path, value) VALUES ($1, $2)
		ON CONFLICT (path) DO UPDATE SET value = excluded.value`, []byte(path), value)
	if err == nil {
		t.changed("kv:" + path)
	}
	return wrap("put", err)
}

// Delete removes the value at path, if any.
func (t *tx) Delete(ctx context.Context, path string) error {
	if err := t.canWrite("delete"); err != nil {
		return err
	}
	tag, err := t.c.Exec(ctx, `DELETE FROM kv WHERE path = $1`, []byte(path))
	if err == nil && tag.RowsAffected() > 0 {
		t.changed("kv:" + path)
	}
	return wrap("delete", err)
}

// List returns, sorted byte-wise, the paths that start with prefix, with
// the prefix removed: a range of the primary key.
func (t *tx) List(ctx context.Context, prefix string) ([]string, error) {
	var rows pgx.Rows
	var err error
	if end, ok := prefixEnd(prefix); ok {
		rows, err = t.c.Query(ctx, `SELECT path FROM kv WHERE path >= $1 AND path < $2 ORDER BY path`, []byte(prefix), []byte(end))
	} else {
		rows, err = t.c.Query(ctx, `SELECT path FROM kv WHERE path >= $1 ORDER BY path`, []byte(prefix))
	}
	if err != nil {
		return nil, wrap("list", err)
	}
	defer rows.Close()
	paths := []string{}
	for rows.Next() {
		var p []byte
		if err := rows.Scan(&p); err != nil {
			return nil, wrap("list", err)
		}
		if rest, ok := strings.CutPrefix(string(p), prefix); ok {
			paths = append(paths, rest)
		}
	}
	return paths, wrap("list", rows.Err())
}

// prefixEnd returns the least string greater than every string that starts
// with prefix, or false if there is none (prefix empty or all 0xff bytes).
func prefixEnd(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// utc returns t in UTC (pgx returns times in the local zone).
func utc(t time.Time) time.Time { return t.UTC() }
