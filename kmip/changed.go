package kmip

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/keyhold/keyhold/store"
)

// Changed brings this node in line with what another node changed (paths
// of the store's change log; nil: anything). "kv:kmip/<mount>/..." reloads
// the mount's state (CA, scopes, roles, credentials: a revoked serial is
// refused from then on), restarting its listener in the background if its
// configuration changed and stopping it if the configuration is gone;
// "kmip:<mount>/<scope>/<id>" drops the object from the object cache.
func (m *Manager) Changed(ctx context.Context, paths []string) {
	mounts, allMounts := store.ChangedMounts(paths, kvRoot)
	var keys []string
	allObjects := paths == nil
	for _, p := range paths {
		if rest, ok := strings.CutPrefix(p, "kmip:"); ok {
			parts := strings.SplitN(rest, "/", 3)
			if len(parts) == 3 && parts[2] != "" {
				keys = append(keys, cacheKey(parts[0], parts[1], parts[2]))
			} else {
				allObjects = true
			}
		}
	}
	if allObjects {
		m.cache.clearAll()
	} else if len(keys) > 0 {
		m.cache.forget(keys)
	}
	if allMounts {
		for _, id := range m.knownMounts(ctx) {
			mounts[id] = true
		}
	}
	for id := range mounts {
		m.refresh(ctx, id)
	}
}

// knownMounts lists the mounts running here or configured in the store.
func (m *Manager) knownMounts(ctx context.Context) []string {
	m.mu.Lock()
	var ids []string
	for id := range m.mounts {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	stored, err := store.ConfiguredMounts(ctx, m.o.Store, kvRoot)
	if err != nil {
		m.o.Logger.Error("kmip: cannot list the configured mounts", "error", err)
	}
	return append(ids, stored...)
}

// refresh reloads one mount's state from the store. If an administrative
// write or a listener change holds the manager's lock, it may be waiting for
// requests that wait for this change (their Sync): the reload then runs
// once the lock is free, and the write's own reload reads the store after
// its commit anyway.
func (m *Manager) refresh(ctx context.Context, mount string) {
	if m.mu.TryLock() {
		ok := m.refreshLocked(ctx, mount)
		if !ok {
			m.holdRefused(ctx, mount) // before the lock goes: no request sees the old state
		}
		m.mu.Unlock()
		return
	}
	m.holdRefused(ctx, mount)
}

// reloadRetry is how long a mount whose reload failed waits to try again.
var reloadRetry = time.Second

// holdRefused makes the mount refuse requests (reloadPending) until a
// reload of its state has run and succeeded, which it retries in the
// background: its state may still accept a certificate revoked or a role
// changed on another node.
func (m *Manager) holdRefused(ctx context.Context, mount string) {
	done := m.pending.Hold(mount)
	go func() {
		defer done()
		for {
			m.mu.Lock()
			ok := m.refreshLocked(context.WithoutCancel(ctx), mount)
			gone := m.mounts[mount] == nil
			m.mu.Unlock()
			if ok || gone {
				return
			}
			time.Sleep(reloadRetry)
		}
	}()
}

// refreshLocked is refresh with the manager's lock held. It reports whether
// the mount's state is now the store's (or the mount is gone).
func (m *Manager) refreshLocked(ctx context.Context, mount string) bool {
	st, err := readState(ctx, m.o.Store, m.o.HSM, mount)
	if err != nil {
		m.o.Logger.Error("kmip: cannot reload a mount another node changed; it refuses requests until it can", "mount", mount, "error", err)
		return false
	}
	l := m.mounts[mount]
	if st.cfg == nil || st.ca == nil {
		if l != nil {
			delete(m.mounts, mount)
			go l.stop()
		}
		return true
	}
	if l != nil {
		// Credentials, roles and scopes at once, also on a listener about
		// to restart below: it serves until the restart has the lock.
		l.srv.st.Store(st)
	}
	if l != nil && sameConfig(l.cfg, st.cfg) {
		return true
	}
	// A new or changed configuration: restart outside the caller (the
	// change log's watcher), as stopping waits for requests in flight.
	go func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if cur := m.mounts[mount]; cur != nil {
			cur.stop()
			delete(m.mounts, mount)
		}
		if err := m.startMount(context.WithoutCancel(ctx), mount); err != nil {
			m.o.Logger.Error("kmip: listener not restarted after another node changed it", "mount", mount, "error", err)
		}
	}()
	return true
}

// sameConfig reports whether two configurations are the same (any change
// restarts the listener, as a configuration write does).
func sameConfig(a, b *Config) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// sync catches this node up with the other nodes' changes before a request
// is served, so that a certificate revoked anywhere is refused at once.
func (m *Manager) sync(ctx context.Context) error {
	if m.o.Sync == nil {
		return nil
	}
	return m.o.Sync(ctx)
}

// forget drops objects that another node changed; a read that began before
// does not cache what it read (the epoch moves on).
func (c *objectCache) forget(keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	for _, k := range keys {
		delete(c.m, k)
	}
}

// knownAfterSync catches up with the other nodes' changes and reports
// whether the serial is now known: a credential issued through another
// node a moment ago is accepted at its first handshake here.
func (m *Manager) knownAfterSync(serial string, srv *server) bool {
	if m.o.Sync == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := m.o.Sync(ctx); err != nil {
		return false
	}
	return srv.st.Load().creds[serial] != nil
}
