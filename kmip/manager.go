package kmip

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsmca"
	"github.com/keyhold/keyhold/metrics"
	"github.com/keyhold/keyhold/store"
)

// Options are what a Manager needs.
type Options struct {
	HSM     *hsm.HSM
	Store   store.Store
	Audit   *audit.Broker    // nil: requests are not audited
	Metrics *metrics.Metrics // nil: no metrics
	Logger  *slog.Logger
	Version string
	// Getenv reads the KMIP_*_DEBUGGING variables; os.Getenv if nil.
	Getenv func(string) string
	// Now is the server's clock; time.Now if nil.
	Now func() time.Time
	// Sync, if set, is called before each request message is served: with
	// several nodes it applies the other nodes' changes first (ha.Cluster.Sync),
	// so that a certificate revoked on any node is refused at once.
	Sync func(ctx context.Context) error
}

// Manager runs the KMIP listener of every configured kmip mount and carries
// out the administration the REST API asks for. An administrative write
// takes effect at once: the mount's state is swapped atomically, and a
// configuration write restarts its listener. It is safe for concurrent use.
type Manager struct {
	o      Options
	dbg    debug
	commit *committer
	cache  *objectCache
	// streams are the streamed Encrypt and Decrypt operations in progress.
	streams *streams
	mu      sync.Mutex // serializes administrative writes and listener changes
	mounts  map[string]*listener
	// pending: reloads of other nodes' changes not run yet; the mount
	// refuses requests meanwhile (its state may accept a revoked
	// certificate or a removed role).
	pending store.PendingReloads
}

// New returns a Manager; Start brings up the configured listeners.
func New(o Options) *Manager {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Manager{o: o, dbg: newDebug(o.Logger, o.Getenv), commit: newCommitter(o.Store),
		cache: newObjectCache(objectCacheTTL, objectCacheSize), streams: newStreams(o.Now), mounts: map[string]*listener{}}
}

// Start starts the listener of every configured kmip mount. A mount that
// cannot start is logged and skipped, so the rest of the appliance (and the
// REST API to fix it) still comes up.
func (m *Manager) Start(ctx context.Context) error {
	ids, err := store.ConfiguredMounts(ctx, m.o.Store, kvRoot)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		if err := m.startMount(ctx, id); err != nil {
			m.o.Logger.Error("kmip: listener not started", "mount", id, "error", err)
		}
	}
	return nil
}

// startMount renews a server certificate close to expiry, reads the state
// and listens. Callers hold m.mu.
func (m *Manager) startMount(ctx context.Context, id string) error {
	st, err := readState(ctx, m.o.Store, m.o.HSM, id)
	if err != nil {
		return err
	}
	if st.cfg == nil || st.ca == nil {
		return fault.New(fault.NotFound, "the kmip mount is not configured")
	}
	if hsmca.ExpiresWithin(st.cfg.ServerCertPEM, hsmca.RenewWithin) {
		if err := m.issueServer(ctx, id, st.ca, st.cfg); err != nil {
			return err
		}
		if err := m.o.Store.Update(ctx, func(tx store.Tx) error { return store.PutJSON(ctx, tx, kvPath(id, "config"), st.cfg) }); err != nil {
			return err
		}
	}
	l, err := m.listen(ctx, st)
	if err != nil {
		return err
	}
	m.mounts[id] = l
	return nil
}

// Close stops every listener (requests in flight finish) and the group
// committer. Closing again does nothing.
func (m *Manager) Close() error {
	m.mu.Lock()
	for id, l := range m.mounts {
		l.stop()
		delete(m.mounts, id)
	}
	m.mu.Unlock()
	m.streams.close()
	m.commit.close()
	return nil
}

// Stop stops a mount's listener (the mount is being disabled).
func (m *Manager) Stop(mount string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.mounts[mount]; l != nil {
		l.stop()
		delete(m.mounts, mount)
	}
}

// Addrs returns the addresses a mount's listener is bound to.
func (m *Manager) Addrs(mount string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addrs(mount)
}

func (m *Manager) addrs(mount string) []string {
	l := m.mounts[mount]
	if l == nil {
		return []string{}
	}
	return l.addrs()
}

// reload re-reads a running mount's state after an administrative write.
// Callers hold m.mu.
func (m *Manager) reload(ctx context.Context, mount string) error {
	l := m.mounts[mount]
	if l == nil {
		return nil
	}
	st, err := readState(ctx, m.o.Store, m.o.HSM, mount)
	if err != nil {
		return err
	}
	l.srv.st.Store(st)
	return nil
}

// Purge deletes, in tx, everything a mount keeps, for the mount being
// disabled. Without force it refuses while the mount holds objects.
func (m *Manager) Purge(ctx context.Context, tx store.Tx, mount string, force bool) error {
	n, err := tx.CountKMIPObjects(ctx, mount, "")
	if err != nil {
		return err
	}
	if n > 0 && !force {
		return fault.New(fault.Conflict, "the kmip mount still holds %d object(s); disable it with force=true to destroy them", n)
	}
	if _, err := tx.DeleteKMIPObjects(ctx, mount, ""); err != nil {
		return err
	}
	m.cache.clearAll()
	paths, err := tx.List(ctx, kvPath(mount, ""))
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := tx.Delete(ctx, kvPath(mount, p)); err != nil {
			return err
		}
	}
	return nil
}
