package keymgmt

import (
	"context"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
)

// RetryAfter is how long a distribution must have been left unfinished
// without an error before the retry job takes it for abandoned (the node
// doing it died); one that recorded a failure is retried at once.
const RetryAfter = 2 * time.Minute

// Retried says what one retry pass did.
type Retried struct {
	Tried, Done int
	Errors      []string // "mount/kms/key: message" of those still failing
}

// RetryDistributions resumes every distribution that a failure (or a node's
// death) left unfinished: imports still "distributing" are synced again,
// removals still "removing" are finished. It is background work that must
// run on one node at a time (the cluster's leader); each key is also locked
// against the other nodes while its cloud is changed.
func (m *Manager) RetryDistributions(ctx context.Context) (*Retried, error) {
	type pending struct{ mount, kms, key, status string }
	var todo []pending
	now := time.Now()
	err := m.st.View(ctx, func(tx store.Tx) error {
		paths, err := tx.List(ctx, "keymgmt/")
		if err != nil {
			return err
		}
		for _, p := range paths {
			parts := strings.Split(p, "/")
			if len(parts) != 4 || parts[1] != "dist" {
				continue
			}
			var r distRecord
			if err := store.GetJSON(ctx, tx, "keymgmt/"+p, &r); err != nil {
				return err
			}
			if r.Status == StatusDistributed || (r.Error == "" && now.Sub(r.UpdatedAt) < RetryAfter) {
				continue
			}
			todo = append(todo, pending{mount: parts[0], kms: parts[2], key: parts[3], status: r.Status})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := &Retried{}
	for _, p := range todo {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		out.Tried++
		var err error
		if p.status == StatusRemoving {
			err = m.RemoveDistribution(ctx, p.mount, p.kms, p.key)
		} else {
			err = m.resume(ctx, p.mount, p.kms, p.key)
		}
		if err != nil {
			out.Errors = append(out.Errors, p.mount+"/"+p.kms+"/"+p.key+": "+errorText(err))
			continue
		}
		out.Done++
	}
	return out, nil
}

// resume syncs one distribution under its key's lock, if it still needs it.
func (m *Manager) resume(ctx context.Context, mount, kms, keyName string) error {
	var r *distRecord
	var kr *kmsRecord
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		if r, err = m.getDist(ctx, tx, mount, kms, keyName); err != nil {
			return err
		}
		kr, err = m.getKMS(ctx, tx, mount, kms)
		return err
	})
	if fault.KindOf(err) == fault.NotFound {
		return nil // removed meanwhile
	}
	if err != nil {
		return err
	}
	prov, err := m.providerFor(ctx, mount, kr)
	if err != nil {
		return err
	}
	defer closeProvider(prov)
	ctx, unlock, err := m.lock(ctx, r.KeyID)
	if err != nil {
		return err
	}
	defer unlock()
	// Under the lock: an operator's write may have finished it meanwhile.
	var cur *distRecord
	err = m.st.View(ctx, func(tx store.Tx) error {
		var err error
		cur, err = m.getDist(ctx, tx, mount, kms, keyName)
		return err
	})
	if fault.KindOf(err) == fault.NotFound || err == nil && cur.Status != StatusDistributing {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = m.sync(ctx, mount, kms, keyName, prov)
	return err
}
