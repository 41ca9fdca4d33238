package api

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/keyhold/keyhold/fault"
)

func (s *Server) haRoutes() {
	s.handle("sys/ha-status", Fields{}, map[Operation]HandlerFunc{OpRead: s.haStatus})
}

// haStatus lists the nodes sharing the store (Vault's sys/ha-status shape:
// nodes with hostname, api_address, active_node, last_echo, version), which
// one leads the background jobs, their health, and this node's jobs.
func (s *Server) haStatus(ctx context.Context, req *Request) (*Response, error) {
	if s.d.Cluster == nil {
		return nil, fault.New(fault.Unsupported, "this appliance runs without cluster membership")
	}
	st, err := s.d.Cluster.Status(ctx)
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, err, "cannot read the cluster's state")
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	var data map[string]any
	if err := json.Unmarshal(b, &data); err != nil {
		return nil, err
	}
	data["staleness_ms"] = st.Staleness.Milliseconds()
	return &Response{Data: data}, nil
}

// healthHA adds this node's cluster state to a health answer and says
// whether the node may serve: with several nodes, a node that cannot catch
// up with the change log answers 503 so a load balancer routes around it.
// listener, if set, names a kmip or xks mount (its path) whose listener must
// be up on this node for a 200.
func (s *Server) healthHA(ctx context.Context, body map[string]any, listener string) (ok bool, problems []string) {
	ok = true
	if c := s.d.Cluster; c != nil {
		h := map[string]any{
			"enabled":      c.Shared(),
			"node_id":      c.ID(),
			"hostname":     c.Name(),
			"active_node":  c.Leading(),
			"staleness_ms": c.Staleness().Milliseconds(),
		}
		if c.Shared() {
			if err := c.Guard(ctx); err != nil {
				ok = false
				problems = append(problems, "cluster: this node is behind the other nodes' changes")
			}
		}
		body["ha"] = h
	}
	listeners := map[string]any{}
	for _, m := range s.mounts.list() {
		var addrs []string
		switch {
		case m.Type == "kmip" && s.d.KMIP != nil:
			addrs = s.d.KMIP.Addrs(m.UUID)
		case m.Type == "xks" && s.d.XKS != nil:
			addrs = s.d.XKS.Addrs(m.UUID)
		default:
			continue
		}
		listeners[m.Path] = map[string]any{"type": m.Type, "addresses": addrs, "up": len(addrs) > 0}
	}
	body["listeners"] = listeners
	if listener != "" {
		// By the mount's name, as sys/mounts lists it (kmip/) or without
		// the slash.
		l, found := listeners[strings.TrimSuffix(listener, "/")].(map[string]any)
		if !found || l["up"] != true {
			ok = false
			problems = append(problems, "listener: "+listener+" is not up on this node")
		}
	}
	return ok, problems
}
