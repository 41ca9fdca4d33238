package ha

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
)

// Handler is told what other nodes changed under its prefix: the change
// log's paths (see store.Change), or nil when the node lost track of the
// log and must drop everything it caches. It runs on the watcher's
// goroutine, in commit order, and must not call Sync or Guard. An error
// says the node could not take the change in (a reload failed): the change
// is not applied, the node stops counting as caught up (guarded requests
// are refused once that lasts past MaxStaleness), and the change is handed
// over again, to every handler of its prefixes, at the next read of the log.
type Handler func(ctx context.Context, paths []string) error

type subscription struct {
	prefix string
	fn     Handler
}

// Subscribe calls fn with the paths of other nodes' changes that start
// with prefix (e.g. "kv:sys/policy/", "kmip:").
func (c *Cluster) Subscribe(prefix string, fn Handler) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.subs = append(c.subs, subscription{prefix: prefix, fn: fn})
}

// watch follows the change log until ctx ends.
func (c *Cluster) watch(ctx context.Context) {
	failing := false
	for ctx.Err() == nil {
		werr := c.log.WaitChange(ctx, c.o.Poll)
		if ctx.Err() != nil {
			return
		}
		err := c.fetch(ctx)
		switch {
		case err != nil && !failing:
			c.o.Logger.Warn("ha: cannot read the change log or take a change in; caches may go stale and guarded requests are refused after "+c.o.MaxStaleness.String(), "error", err)
			failing = true
		case err == nil && failing:
			c.o.Logger.Info("ha: up to date with the change log again")
			failing = false
		}
		if werr != nil || err != nil {
			select { // no push channel: poll
			case <-ctx.Done():
			case <-time.After(c.o.Poll):
			}
		}
	}
}

// fetch applies every change committed so far. Callers must not hold fetchMu.
func (c *Cluster) fetch(ctx context.Context) error {
	if err := c.lockFetch(ctx); err != nil {
		return err
	}
	defer c.unlockFetch()
	return c.fetchLocked(ctx, time.Now(), watchReadTimeout)
}

// watchReadTimeout bounds the watcher's reads of the change log. It is
// long: the watcher is what catches a node up after all, and a page of
// large changes on a slow link may take seconds; guarded requests do not
// wait for it (they give the lock up with their own context).
const watchReadTimeout = 30 * time.Second

// fetchLocked reads the log and hands the changes to the handlers. Each
// read is bounded by readTimeout (a database that stopped answering must
// not hold the lock for long). A change counts as applied only once its
// handlers returned with ctx still live: if the caller went away meanwhile
// (a REST request, Guard's deadline, shutdown), a handler may have failed
// for it, and the next fetch hands the change over again (handlers only
// reload or forget, so twice is harmless).
func (c *Cluster) fetchLocked(ctx context.Context, start time.Time, readTimeout time.Duration) error {
	const page = 1000
	for {
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		changes, oldest, newest, err := c.log.ChangesSince(rctx, c.applied, page)
		cancel()
		if err != nil {
			c.lagged.Store(true)
			return err
		}
		if newest < c.applied {
			// The log went back: the database was restored, or failed over
			// to a copy that lacked recent commits. What this node caches
			// may hold writes the database no longer has, and the
			// sequence numbers it has seen are reused.
			c.o.Logger.Warn("ha: the change log went back; dropping every cache", "applied", c.applied, "newest", newest)
			if err := c.dispatchAll(ctx, nil); err != nil {
				c.lagged.Store(true)
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			c.applied = newest
			continue
		}
		if oldest > c.applied+1 {
			// The log was pruned past this node: it cannot know what changed.
			c.o.Logger.Warn("ha: the change log was pruned past this node; dropping every cache", "applied", c.applied, "oldest", oldest)
			if err := c.dispatchAll(ctx, nil); err != nil {
				c.lagged.Store(true)
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		for _, ch := range changes {
			// This node's own writes whose Update returned nil: its caches
			// know. Any other, including its own that failed after the
			// commit went through, is handled.
			if ch.Node != c.id || !ch.Confirmed {
				if err := c.dispatch(ctx, ch.Paths); err != nil {
					c.lagged.Store(true)
					return err
				}
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			c.applied = ch.Seq
		}
		if len(changes) < page {
			break
		}
	}
	c.lagged.Store(false)
	if c.mono(start) > c.freshAt.Load() {
		c.freshAt.Store(c.mono(start))
	}
	return nil
}

// dispatch hands paths to the subscribers whose prefix they fall under. A
// path ending in "/" (everything under it) also reaches subscribers of
// longer prefixes inside it.
// Every subscriber is called, whatever the others return; the first
// error is returned.
func (c *Cluster) dispatch(ctx context.Context, paths []string) error {
	c.subMu.RLock()
	subs := c.subs
	c.subMu.RUnlock()
	var first error
	for _, s := range subs {
		var mine []string
		for _, p := range paths {
			if strings.HasPrefix(p, s.prefix) || (strings.HasSuffix(p, "/") || strings.HasSuffix(p, ":")) && strings.HasPrefix(s.prefix, p) {
				mine = append(mine, p)
			}
		}
		if len(mine) > 0 {
			if err := c.call(ctx, s, mine); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

func (c *Cluster) dispatchAll(ctx context.Context, paths []string) error {
	c.subMu.RLock()
	subs := c.subs
	c.subMu.RUnlock()
	var first error
	for _, s := range subs {
		if err := c.call(ctx, s, paths); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// call runs a handler; a panic in one is logged, not fatal to the watcher,
// and fails the change like an error.
func (c *Cluster) call(ctx context.Context, s subscription, paths []string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.o.Logger.Error("ha: change handler panicked", "prefix", s.prefix, "panic", p)
			err = fmt.Errorf("ha: the change handler of %q panicked: %v", s.prefix, p)
		}
	}()
	if err := s.fn(ctx, paths); err != nil {
		return fmt.Errorf("ha: the change handler of %q: %w", s.prefix, err)
	}
	return nil
}

// Staleness is how long ago the node last caught up with the change log
// (0 for a store that is not shared).
func (c *Cluster) Staleness() time.Duration {
	if c.log == nil {
		return 0
	}
	return time.Duration(c.mono(time.Now()) - c.freshAt.Load())
}

// Sync applies every change committed before it was called, reading the
// log now unless a read that started after the call has done so already.
func (c *Cluster) Sync(ctx context.Context) error {
	if c.log == nil {
		return nil
	}
	if !c.ready.Load() {
		// The handlers are not all subscribed yet: a change read now would
		// reach none of them and never be handed over again.
		return fault.New(fault.Unavailable, "this node is starting; retry")
	}
	called := time.Now()
	if err := c.lockFetch(ctx); err != nil {
		return fault.Wrap(fault.Unavailable, err, "this node cannot read the cluster's change log")
	}
	defer c.unlockFetch()
	if c.freshAt.Load() >= c.mono(called) {
		return nil
	}
	if err := c.fetchLocked(ctx, time.Now(), max(c.o.MaxStaleness, time.Second)); err != nil {
		return fault.Wrap(fault.Unavailable, err, "this node cannot read the cluster's change log")
	}
	return nil
}

// Guard lets a request through if the node has caught up with the change
// log within MaxStaleness, catching up first if it has not; it fails
// (Unavailable) when it cannot, so that nothing is served from caches that
// may miss a revocation.
func (c *Cluster) Guard(ctx context.Context) error {
	if c.log == nil || c.Staleness() < c.o.MaxStaleness {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, c.o.MaxStaleness)
	defer cancel()
	err := c.Sync(sctx)
	if err != nil && errors.Is(sctx.Err(), context.DeadlineExceeded) {
		return fault.New(fault.Unavailable, "this node is behind the cluster's change log")
	}
	return err
}
