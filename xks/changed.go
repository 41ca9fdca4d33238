package xks

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold/store"
)

// Changed brings this node's listeners in line with what another node
// changed under xks/ (paths of the store's change log, "kv:xks/<mount>/...";
// nil or a coarser path: every mount). Credentials, keys, rules and limits
// swap the data plane's state at once; a mount whose listener settings
// changed restarts in the background (the old listener's requests finish
// first); a mount whose configuration is gone stops.
func (m *Manager) Changed(ctx context.Context, paths []string) {
	ids, all := store.ChangedMounts(paths, kvRoot)
	if all {
		for _, id := range m.knownMounts(ctx) {
			ids[id] = true
		}
	}
	for id := range ids {
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
		m.o.Logger.Error("xks: cannot list the configured mounts", "error", err)
	}
	return append(ids, stored...)
}

// refresh reloads one mount's state from the store. If an administrative
// write or a listener change holds the manager's lock, it may be waiting for
// requests that wait for this change (their Guard): the reload then runs
// once the lock is free.
func (m *Manager) refresh(ctx context.Context, id string) {
	if !m.mu.TryLock() {
		// Until the reload has run, the mount refuses requests
		// (reloadPending): its state may still grant what was revoked.
		done := m.pending.Hold(id)
		go func() {
			defer done()
			m.mu.Lock()
			defer m.mu.Unlock()
			m.refreshLocked(context.WithoutCancel(ctx), id)
		}()
		return
	}
	defer m.mu.Unlock()
	m.refreshLocked(ctx, id)
}

// refreshLocked is refresh with the manager's lock held.
func (m *Manager) refreshLocked(ctx context.Context, id string) {
	if rt := m.mounts[id]; rt != nil {
		rt.gen++ // a change is stored: a retry's earlier read is out of date
	}
	snap, err := readSnapshot(ctx, m.o.Store, id)
	if err != nil {
		m.markStale(id, fmt.Errorf("reload a change of another node: %w", err))
		return
	}
	rt := m.mounts[id]
	if snap.cfg == nil {
		if rt != nil {
			delete(m.mounts, id)
			go rt.stop()
		}
		return
	}
	if rt != nil {
		// Credentials, keys and rules at once, also on a listener about to
		// restart below: it serves until the restart has the lock.
		same := sameListener(rt.p.st.Load().cfg, snap.cfg)
		if st, err := buildState(ctx, m.o.HSM, id, snap); err != nil {
			m.markStale(id, fmt.Errorf("rebuild a change of another node: %w", err))
		} else {
			rt.p.st.Store(st)
			rt.p.stale.Store(false)
		}
		if same {
			return
		}
	}
	// A new or changed listener: restart it outside the caller (the change
	// log's watcher), as stopping waits for requests in flight.
	go func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if cur := m.mounts[id]; cur != nil {
			cur.stop()
			delete(m.mounts, id)
		}
		if err := m.startMount(context.WithoutCancel(ctx), id); err != nil {
			m.o.Logger.Error("xks: listener not restarted after another node changed it", "mount", id, "error", err)
		}
	}()
}
