package ha

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/keyhold/keyhold/store"
)

// NodeStatus is one node as sys/ha-status shows it.
type NodeStatus struct {
	ID         string          `json:"node_id"`
	Name       string          `json:"hostname"`
	APIAddr    string          `json:"api_address"`
	Version    string          `json:"version"`
	ActiveNode bool            `json:"active_node"` // leads the background jobs
	Healthy    bool            `json:"healthy"`     // heartbeat recent and the node says it is healthy
	LastEcho   time.Time       `json:"last_echo"`   // last heartbeat (database clock)
	StartedAt  time.Time       `json:"started_at"`
	Info       json.RawMessage `json:"info,omitempty"`
}

// LeaderStatus is the leader lease as the database holds it.
type LeaderStatus struct {
	NodeID    string    `json:"node_id"`
	Name      string    `json:"hostname,omitempty"`
	Epoch     int64     `json:"epoch"`
	Since     time.Time `json:"since"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Status is the cluster as this node sees it.
type Status struct {
	Shared    bool          `json:"ha_enabled"`
	NodeID    string        `json:"node_id"`
	Name      string        `json:"hostname"`
	Leading   bool          `json:"active_node"`
	Staleness time.Duration `json:"-"`
	Leader    *LeaderStatus `json:"leader,omitempty"`
	Nodes     []NodeStatus  `json:"nodes"`
	Jobs      []JobStatus   `json:"jobs"`
}

// Status reads the registry and the leader lease. A node is healthy if its
// last heartbeat is at most three heartbeats old and it reported itself
// healthy (info "healthy": true, or no such field).
func (c *Cluster) Status(ctx context.Context) (*Status, error) {
	s := &Status{Shared: c.Shared(), NodeID: c.id, Name: c.o.Name, Leading: c.Leading(), Staleness: c.Staleness(), Jobs: c.Jobs(), Nodes: []NodeStatus{}}
	if c.nodes == nil || c.leases == nil {
		s.Nodes = append(s.Nodes, NodeStatus{ID: c.id, Name: c.o.Name, APIAddr: c.o.APIAddr, Version: c.o.Version,
			ActiveNode: s.Leading, Healthy: true, LastEcho: time.Now().UTC()})
		if s.Leading {
			s.Leader = &LeaderStatus{NodeID: c.id, Name: c.o.Name, Epoch: 1}
		}
		return s, nil
	}
	nodes, err := c.nodes.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	l, err := c.leases.GetLease(ctx, leaderLease)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	var now time.Time
	for _, n := range nodes {
		now = n.Now
		ns := NodeStatus{ID: n.ID, Name: n.Name, APIAddr: n.APIAddr, Version: n.Version, LastEcho: n.SeenAt, StartedAt: n.StartedAt}
		if len(n.Info) > 0 && json.Valid(n.Info) {
			ns.Info = json.RawMessage(n.Info)
		}
		var self struct {
			Healthy *bool `json:"healthy"`
		}
		_ = json.Unmarshal(n.Info, &self)
		ns.Healthy = n.Now.Sub(n.SeenAt) <= 3*c.o.Heartbeat && (self.Healthy == nil || *self.Healthy)
		ns.ActiveNode = l != nil && l.Holder == n.ID && l.ExpiresAt.After(n.Now)
		s.Nodes = append(s.Nodes, ns)
	}
	if l != nil && (now.IsZero() || l.ExpiresAt.After(now)) {
		s.Leader = &LeaderStatus{NodeID: l.Holder, Epoch: l.Epoch, Since: l.AcquiredAt, ExpiresAt: l.ExpiresAt}
		for _, n := range nodes {
			if n.ID == l.Holder {
				s.Leader.Name = n.Name
			}
		}
	}
	return s, nil
}
