package postgres

import (
	"context"
	"time"

	"github.com/keyhold/keyhold/store"
)

// Heartbeat records a node as alive now, on the database's clock.
func (s *Store) Heartbeat(ctx context.Context, n *store.Node) error {
	info := n.Info
	if info == nil {
		info = []byte("{}")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO nodes (id, name, api_addr, version, info) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, api_addr = excluded.api_addr,
			version = excluded.version, info = excluded.info, seen_at = now()`,
		n.ID, n.Name, n.APIAddr, n.Version, info)
	return s.closedOr(wrap("heartbeat", err))
}

// ListNodes returns the registered nodes, sorted by name then ID, with the
// database's clock.
func (s *Store) ListNodes(ctx context.Context) ([]store.Node, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, api_addr, version, info, started_at, seen_at, now()
		FROM nodes ORDER BY name, id`)
	if err != nil {
		return nil, s.closedOr(wrap("list nodes", err))
	}
	defer rows.Close()
	var out []store.Node
	for rows.Next() {
		var n store.Node
		if err := rows.Scan(&n.ID, &n.Name, &n.APIAddr, &n.Version, &n.Info, &n.StartedAt, &n.SeenAt, &n.Now); err != nil {
			return nil, wrap("list nodes", err)
		}
		n.StartedAt, n.SeenAt, n.Now = utc(n.StartedAt), utc(n.SeenAt), utc(n.Now)
		out = append(out, n)
	}
	return out, wrap("list nodes", rows.Err())
}

// ForgetNodes removes the nodes not seen since before (database clock).
func (s *Store) ForgetNodes(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM nodes WHERE seen_at < $1`, before)
	if err != nil {
		return 0, s.closedOr(wrap("forget nodes", err))
	}
	return int(tag.RowsAffected()), nil
}

// RemoveNode removes a node that stops cleanly.
func (s *Store) RemoveNode(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM nodes WHERE id = $1`, id)
	return s.closedOr(wrap("remove node", err))
}
