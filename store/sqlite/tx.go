package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold/store"
)

// tx is a store.Tx over one SQL transaction.
type tx struct {
	tx       *sql.Tx
	writable bool
}

// canWrite fails in a View.
func (t *tx) canWrite(op string) error {
	if !t.writable {
		return fmt.Errorf("store: %s: %w", op, errReadOnly)
	}
	return nil
}

// Get returns the value at path, or store.ErrNotFound.
func (t *tx) Get(ctx context.Context, path string) ([]byte, error) {
	var v []byte
	err := t.tx.QueryRowContext(ctx, `SELECT value FROM kv WHERE path = ?`, path).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
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
	_, err := t.tx.ExecContext(ctx,
		`INSERT INTO kv (path, value) VALUES (?, ?) ON CONFLICT (path) DO UPDATE SET value = excluded.value`,
		path, nonNil(value))
	return wrap("put", err)
}

// Delete removes the value at path, if any.
func (t *tx) Delete(ctx context.Context, path string) error {
	if err := t.canWrite("delete"); err != nil {
		return err
	}
	_, err := t.tx.ExecContext(ctx, `DELETE FROM kv WHERE path = ?`, path)
	return wrap("delete", err)
}

// List returns, sorted byte-wise, the paths that start with prefix, with the
// prefix removed. It reads a range of the primary key rather than using LIKE,
// whose wildcards and case folding would be wrong for paths.
func (t *tx) List(ctx context.Context, prefix string) ([]string, error) {
	query, args := `SELECT path FROM kv WHERE path >= ? ORDER BY path`, []any{prefix}
	if end, ok := prefixEnd(prefix); ok {
		query, args = `SELECT path FROM kv WHERE path >= ? AND path < ? ORDER BY path`, []any{prefix, end}
	}
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap("list", err)
	}
	defer rows.Close()
	paths := []string{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, wrap("list", err)
		}
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			paths = append(paths, rest)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list", err)
	}
	return paths, nil
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

// nonNil returns b, or an empty slice for nil, which the driver would store as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// micros encodes a time as Unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros decodes Unix microseconds as a UTC time.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
