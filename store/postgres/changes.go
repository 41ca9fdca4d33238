package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyhold/keyhold/store"
)

// ChangesSince returns up to limit changes after a sequence number, in
// commit order, and the oldest sequence number the log holds.
func (s *Store) ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, int64, int64, error) {
	if s.closed.Load() {
		return nil, 0, 0, store.ErrClosed
	}
	if limit <= 0 {
		limit = 1000
	}
	// The list is read before the oldest number, each statement with its
	// own snapshot: a prune between them makes the oldest number larger,
	// so the caller drops everything rather than miss the pruned changes
	// (the other order would hide a prune that came first).
	b := &pgx.Batch{}
	b.Queue(`SELECT seq, node, paths FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	b.Queue(`SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM changes`)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, 0, 0, s.closedOr(wrap("changes", err))
	}
	s.forgetConfirmed(after)
	var out []store.Change
	for rows.Next() {
		var c store.Change
		var paths [][]byte
		if err := rows.Scan(&c.Seq, &c.Node, &paths); err != nil {
			rows.Close()
			return nil, 0, 0, wrap("changes", err)
		}
		c.Paths = make([]string, len(paths))
		for i, p := range paths {
			c.Paths[i] = string(p)
		}
		if c.Node == s.node {
			ok, err := s.confirmedOnce(ctx, c.Seq)
			if err != nil {
				rows.Close()
				return nil, 0, 0, wrap("changes", err)
			}
			c.Confirmed = ok
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, 0, s.closedOr(wrap("changes", err))
	}
	var oldest, newest int64
	if err := br.QueryRow().Scan(&oldest, &newest); err != nil {
		return nil, 0, 0, s.closedOr(wrap("changes", err))
	}
	return out, oldest, newest, nil
}

// LatestChange returns the newest change's sequence number, 0 if none.
func (s *Store) LatestChange(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&seq)
	return seq, s.closedOr(wrap("latest change", err))
}

// WaitChange waits for a notification of a commit on a connection of its
// own that LISTENs, for at most d. Only one call may run at a time.
func (s *Store) WaitChange(ctx context.Context, d time.Duration) error {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.closed.Load() {
		return store.ErrClosed
	}
	if s.listen == nil {
		c, err := pgx.ConnectConfig(ctx, s.connCfg.Copy())
		if err != nil {
			return wrap("listen", err)
		}
		if _, err := c.Exec(ctx, "LISTEN "+s.channel); err != nil {
			c.Close(ctx)
			return wrap("listen", err)
		}
		s.listen = c
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, err := s.listen.WaitForNotification(wctx)
	if err == nil {
		return nil
	}
	if wctx.Err() != nil && ctx.Err() == nil && !s.listen.IsClosed() {
		return nil // d passed
	}
	cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
	s.listen.Close(cctx)
	ccancel()
	s.listen = nil
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return wrap("listen", err)
}

// PruneChanges forgets changes committed before a time.
func (s *Store) PruneChanges(ctx context.Context, before time.Time) (int, error) {
	// The newest change stays, however old: a node behind an empty log
	// could not tell that it missed changes (sequence numbers have gaps, so
	// the sequence itself cannot tell either).
	tag, err := s.pool.Exec(ctx, `DELETE FROM changes WHERE at < $1 AND seq < (SELECT MAX(seq) FROM changes)`, before)
	if err != nil {
		return 0, wrap("prune changes", err)
	}
	return int(tag.RowsAffected()), nil
}

func noRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
