// Package ha makes several appliance nodes that share one store behave as
// one appliance.
//
//   - Cache coherence: every node follows the store's change log (a push
//     from the database, else a poll every 250 ms) and hands what other
//     nodes changed to the subscribers that cache it (policies, mounts, the
//     XKS and KMIP listeners' state, KMIP objects). Guard lets a request
//     through only if the node has caught up with the log within the last
//     second (else it catches up first, or refuses): what any node changed
//     is honoured by every other within one second. Sync catches up before
//     a request that must see revocations at once.
//   - Background work exactly once: one node holds the leader lease (expiry
//     on the database's clock, renewed every fifth of its ttl) and runs the
//     jobs; it stops them before its lease can have expired in the
//     database, and another node takes the lease over when it expires.
//   - A registry of nodes with heartbeats, for sys/ha-status.
//
// A store that is not shared (SQLite) has none of this: the node is alone,
// always fresh and always the leader.
package ha

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold/store"
)

// Defaults of the options.
const (
	DefaultLeaseTTL     = 5 * time.Second
	DefaultPoll         = 250 * time.Millisecond
	DefaultMaxStaleness = time.Second
	DefaultHeartbeat    = time.Second
	leaderLease         = "leader"
)

// Options configure a Cluster.
type Options struct {
	Store   store.Store
	Name    string // this node's name (default: the host name, set by the caller)
	APIAddr string // where clients reach this node's REST API
	Version string
	Logger  *slog.Logger
	// LeaseTTL is how long the leader lease lasts without renewal: a dead
	// leader's jobs move to another node after at most this.
	LeaseTTL time.Duration
	// Poll bounds the wait for a push of the change log.
	Poll time.Duration
	// MaxStaleness is how far behind the change log Guard lets a node be.
	MaxStaleness time.Duration
	// Heartbeat is how often the node records itself alive.
	Heartbeat time.Duration
	// Info, if set, returns what the node publishes about itself (JSON).
	Info func() []byte
}

// Cluster is this node's membership. It is safe for concurrent use.
type Cluster struct {
	o      Options
	id     string
	log    store.ChangeLog // nil: not shared
	leases store.Leases
	nodes  store.Nodes

	subMu sync.RWMutex
	subs  []subscription

	fetchMu chan struct{} // a lock that waiting can give up (lockFetch)
	applied int64         // the last change seen (under fetchMu)
	ready   atomic.Bool   // every handler is subscribed (Ready, Run)
	epoch   time.Time     // when the Cluster was made, with its monotonic reading
	freshAt atomic.Int64  // since epoch (monotonic), the start of the last fetch that caught up
	lagged  atomic.Bool   // the watcher failed its last fetch

	leader leaderState
	jobsMu sync.Mutex
	jobs   []*jobState

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Cluster over the store. Call Begin before loading what the
// subscribers cache, then Run.
func New(o Options) *Cluster {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.MaxStaleness <= 0 {
		o.MaxStaleness = DefaultMaxStaleness
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	c := &Cluster{o: o, fetchMu: make(chan struct{}, 1), epoch: time.Now()}
	c.log, _ = o.Store.(store.ChangeLog)
	c.leases, _ = o.Store.(store.Leases)
	c.nodes, _ = o.Store.(store.Nodes)
	if c.log != nil {
		c.id = c.log.NodeID()
	} else {
		b := make([]byte, 8)
		rand.Read(b)
		c.id = hex.EncodeToString(b)
	}
	c.freshAt.Store(c.mono(time.Now()))
	return c
}

// mono is t on the Cluster's monotonic clock: freshness is measured on it,
// so a step of the wall clock cannot make stale caches look fresh.
func (c *Cluster) mono(t time.Time) int64 { return int64(t.Sub(c.epoch)) }

// ID names this node (its writes in the change log, its leases).
func (c *Cluster) ID() string { return c.id }

// Name is this node's configured name.
func (c *Cluster) Name() string { return c.o.Name }

// Shared reports whether the store is shared by several nodes.
func (c *Cluster) Shared() bool { return c.log != nil }

// Begin notes where the change log stands, before the caller loads what it
// caches, so that no change committed meanwhile is missed.
func (c *Cluster) Begin(ctx context.Context) error {
	if c.log == nil {
		return nil
	}
	start := time.Now()
	seq, err := c.log.LatestChange(ctx)
	if err != nil {
		return err
	}
	if err := c.lockFetch(ctx); err != nil {
		return err
	}
	c.applied = seq
	c.unlockFetch()
	c.freshAt.Store(c.mono(start))
	return nil
}

// lockFetch takes the lock of the change log's reading, or gives up when
// ctx ends (the watcher may be stuck on a database that stopped answering).
func (c *Cluster) lockFetch(ctx context.Context) error {
	select {
	case c.fetchMu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Cluster) unlockFetch() { <-c.fetchMu }

// Ready says that every handler is subscribed: until then Sync and Guard
// refuse to read the change log, since a change read then would reach no
// handler and never be handed over again. Run calls it.
func (c *Cluster) Ready() { c.ready.Store(true) }

// Run starts the watcher, the heartbeat and the leader election; they stop
// when ctx ends or Close is called.
func (c *Cluster) Run(ctx context.Context) {
	ctx, c.cancel = context.WithCancel(ctx)
	c.Ready()
	if c.log != nil {
		c.wg.Go(func() { c.watch(ctx) })
	}
	if c.nodes != nil {
		c.wg.Go(func() { c.heartbeat(ctx) })
	}
	c.wg.Go(func() { c.elect(ctx) })
}

// Close stops the loops, gives the leader lease up and leaves the registry.
func (c *Cluster) Close() {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c.resign(ctx)
	if c.nodes != nil {
		if err := c.nodes.RemoveNode(ctx, c.id); err != nil {
			c.o.Logger.Warn("ha: leaving the node registry failed", "error", err)
		}
	}
}

// heartbeat records the node alive every Heartbeat.
func (c *Cluster) heartbeat(ctx context.Context) {
	t := time.NewTicker(c.o.Heartbeat)
	defer t.Stop()
	failing := false
	for {
		n := &store.Node{ID: c.id, Name: c.o.Name, APIAddr: c.o.APIAddr, Version: c.o.Version}
		if c.o.Info != nil {
			n.Info = c.o.Info()
		}
		hctx, cancel := context.WithTimeout(ctx, c.o.Heartbeat) // a silent database: try again next beat
		err := c.nodes.Heartbeat(hctx, n)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			c.o.Logger.Warn("ha: heartbeat failed", "error", err)
			failing = true
		case err == nil && failing:
			c.o.Logger.Info("ha: heartbeat works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SetAPIAddr sets the REST API address shown to the other nodes, unless
// one was configured; call it before Run.
func (c *Cluster) SetAPIAddr(addr string) {
	if c.o.APIAddr == "" {
		c.o.APIAddr = addr
	}
}

// SetInfo sets what the node publishes about itself; call it before Run.
func (c *Cluster) SetInfo(info func() []byte) { c.o.Info = info }
