package ha

import (
	"context"
	"time"
)

// Prune forgets changes and nodes older than keep (on the database's
// clock): a node that fell further behind than keep drops all it caches,
// and a node gone for longer leaves sys/ha-status. The leader runs it.
func (c *Cluster) Prune(ctx context.Context, keep time.Duration) error {
	if c.log == nil || c.nodes == nil {
		return nil
	}
	nodes, err := c.nodes.ListNodes(ctx)
	if err != nil || len(nodes) == 0 {
		return err
	}
	before := nodes[0].Now.Add(-keep)
	if _, err := c.log.PruneChanges(ctx, before); err != nil {
		return err
	}
	_, err = c.nodes.ForgetNodes(ctx, before)
	return err
}
