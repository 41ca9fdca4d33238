package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/store"
)

// ClusterStore is a store that several nodes share.
type ClusterStore interface {
	store.Store
	store.ChangeLog
	store.Leases
	store.Nodes
	store.Locker
}

// RunCluster runs the conformance suite of stores shared by several nodes.
// newLocation returns an opener of a fresh location; each call of the
// opener is another node (its own NodeID and connections) on that location.
func RunCluster(t *testing.T, newLocation func(t *testing.T) func() (ClusterStore, error)) {
	c := cluster{newLocation: newLocation}
	t.Run("ok nodes opening a new location at once", c.concurrentOpen)
	t.Run("ok rotations from two nodes are serialized", c.crossNodeRotations)
	t.Run("change log", c.changeLog)
	t.Run("leases", c.leases)
	t.Run("nodes", c.nodes)
	t.Run("locks", c.locks)
}

type cluster struct {
	newLocation func(t *testing.T) func() (ClusterStore, error)
}

func (c cluster) nodesOn(t *testing.T, open func() (ClusterStore, error), n int) []ClusterStore {
	t.Helper()
	out := make([]ClusterStore, n)
	for i := range out {
		st, err := open()
		if err != nil {
			t.Fatalf("open node %d: %v", i, err)
		}
		t.Cleanup(func() { st.Close() })
		out[i] = st
	}
	return out
}

// concurrentOpen has several nodes open (and so migrate) one new location
// at the same moment: every open succeeds and the data is usable by all.
func (c cluster) concurrentOpen(t *testing.T) {
	open := c.newLocation(t)
	const n = 6
	stores := make([]ClusterStore, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = open()
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("node %d: open: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if t.Failed() {
		return
	}
	update(t, stores[0], put("a", []byte("1")))
	for i, st := range stores {
		v, err := getValue(t, st, "a")
		if err != nil || string(v) != "1" {
			t.Errorf("node %d: get: %q, %v", i, v, err)
		}
	}
}

// crossNodeRotations has writers on two nodes add the next version of one
// key: the database serializes them, so no version is lost or duplicated.
func (c cluster) crossNodeRotations(t *testing.T) {
	nodes := c.nodesOn(t, c.newLocation(t), 2)
	k := newKey("m", "k", "id")
	k.LatestVersion, k.MinEnabledVersion = 0, 0
	createKeys(t, nodes[0], k)
	const perNode = 15
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 2*perNode)
	for n, st := range nodes {
		for i := range perNode {
			wg.Go(func() {
				err := st.Update(ctx, func(tx store.Tx) error {
					k, err := tx.GetKey(ctx, "m", "k")
					if err != nil {
						return err
					}
					next := k.LatestVersion + 1
					v := newVersion(k.ID, next)
					v.Blob = fmt.Appendf(nil, "node %d writer %d", n, i)
					if err := tx.AddKeyVersion(ctx, v); err != nil {
						return err
					}
					k.LatestVersion = next
					return tx.UpdateKey(ctx, k)
				})
				if err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("rotation: %v", err)
	}
	vs := versionsOf(t, nodes[1], "id")
	want := make([]int, 2*perNode)
	for i := range want {
		want[i] = i + 1
	}
	if got := versionNumbers(vs); !slices.Equal(got, want) {
		t.Fatalf("versions: got %v, want 1..%d", got, 2*perNode)
	}
}

func (c cluster) changeLog(t *testing.T) {
	nodes := c.nodesOn(t, c.newLocation(t), 2)
	a, b := nodes[0], nodes[1]
	ctx := t.Context()
	if a.NodeID() == b.NodeID() {
		t.Fatalf("two nodes share the id %q", a.NodeID())
	}
	start, err := b.LatestChange(ctx)
	checkErr(t, "latest change", err, nil)

	t.Run("ok a read-only or failed update logs nothing", func(t *testing.T) {
		update(t, a, func(ctx context.Context, tx store.Tx) error { _, err := tx.List(ctx, ""); return err })
		_ = a.Update(ctx, func(tx store.Tx) error {
			if err := tx.Put(ctx, "never", []byte("x")); err != nil {
				return err
			}
			return errBoom
		})
		got, _, _, err := b.ChangesSince(ctx, start, 0)
		checkErr(t, "changes since", err, nil)
		if len(got) != 0 {
			t.Fatalf("changes: got %+v, want none", got)
		}
	})

	// b waits for a push while a commits.
	woke := make(chan error, 1)
	go func() { woke <- b.WaitChange(ctx, 20*time.Second) }()
	time.Sleep(200 * time.Millisecond) // let b listen first
	update(t, a, func(ctx context.Context, tx store.Tx) error {
		if err := tx.Put(ctx, "sys/policy/p", []byte("x")); err != nil {
			return err
		}
		k := newKey("m1", "k1", "id-1")
		if err := tx.CreateKey(ctx, k); err != nil {
			return err
		}
		return tx.CreateKMIPObject(ctx, kmipObject("m2", "s", "o1"))
	})
	t.Run("ok a commit wakes a waiting node", func(t *testing.T) {
		select {
		case err := <-woke:
			checkErr(t, "wait change", err, nil)
		case <-time.After(10 * time.Second):
			t.Fatal("no wake-up 10 s after a commit")
		}
	})
	update(t, a, del("sys/policy/p"))
	update(t, b, put("other", []byte("y")))

	t.Run("ok changes in commit order with their paths and node", func(t *testing.T) {
		got, oldest, _, err := b.ChangesSince(ctx, start, 0)
		checkErr(t, "changes since", err, nil)
		if len(got) != 3 {
			t.Fatalf("changes: got %d (%+v), want 3", len(got), got)
		}
		if oldest <= 0 || oldest > got[0].Seq {
			t.Errorf("oldest %d, first %d", oldest, got[0].Seq)
		}
		want := []struct {
			node  string
			paths []string
		}{
			{a.NodeID(), []string{"key:m1/k1", "kmip:m2/s/o1", "kv:sys/policy/p"}},
			{a.NodeID(), []string{"kv:sys/policy/p"}},
			{b.NodeID(), []string{"kv:other"}},
		}
		for i, w := range want {
			g := got[i]
			if i > 0 && g.Seq <= got[i-1].Seq {
				t.Errorf("change %d: seq %d after %d", i, g.Seq, got[i-1].Seq)
			}
			if g.Node != w.node || !slices.Equal(g.Paths, w.paths) {
				t.Errorf("change %d: got node %s paths %q, want node %s paths %q", i, g.Node, g.Paths, w.node, w.paths)
			}
		}
		latest, err := a.LatestChange(ctx)
		checkErr(t, "latest change", err, nil)
		if latest != got[2].Seq {
			t.Errorf("latest change %d, want %d", latest, got[2].Seq)
		}
		page, _, _, err := b.ChangesSince(ctx, got[0].Seq, 1)
		checkErr(t, "changes since with limit", err, nil)
		if len(page) != 1 || page[0].Seq != got[1].Seq {
			t.Errorf("page after first: %+v", page)
		}
	})

	t.Run("ok many paths are coarsened", func(t *testing.T) {
		before, err := b.LatestChange(ctx)
		checkErr(t, "latest change", err, nil)
		update(t, a, func(ctx context.Context, tx store.Tx) error {
			for i := range 1000 {
				if err := tx.Put(ctx, fmt.Sprintf("bulk/%d", i), nil); err != nil {
					return err
				}
			}
			return tx.Put(ctx, "sys/mounts/x", nil)
		})
		got, _, _, err := b.ChangesSince(ctx, before, 0)
		checkErr(t, "changes since", err, nil)
		if len(got) != 1 || !slices.Equal(got[0].Paths, []string{"kv:bulk/", "kv:sys/"}) {
			t.Fatalf("changes: %+v", got)
		}
	})

	t.Run("ok pruning leaves the newer changes", func(t *testing.T) {
		latest, err := b.LatestChange(ctx)
		checkErr(t, "latest change", err, nil)
		time.Sleep(20 * time.Millisecond)
		cut := time.Now()
		time.Sleep(20 * time.Millisecond)
		update(t, a, put("after-cut", nil))
		n, err := a.PruneChanges(ctx, cut)
		checkErr(t, "prune", err, nil)
		if n < 4 {
			t.Errorf("pruned %d changes, want at least 4", n)
		}
		got, oldest, _, err := b.ChangesSince(ctx, start, 0)
		checkErr(t, "changes since", err, nil)
		if len(got) != 1 || oldest != got[0].Seq || oldest <= latest {
			t.Fatalf("after prune: oldest %d, changes %+v", oldest, got)
		}
	})

	t.Run("ok pruning keeps the newest change, so a node behind still sees that it missed changes", func(t *testing.T) {
		latest, err := b.LatestChange(ctx)
		checkErr(t, "latest change", err, nil)
		time.Sleep(20 * time.Millisecond)
		if _, err := a.PruneChanges(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		got, oldest, _, err := b.ChangesSince(ctx, start, 0)
		checkErr(t, "changes since", err, nil)
		if len(got) != 1 || got[0].Seq != latest || oldest != latest || oldest <= start+1 {
			t.Fatalf("after pruning everything old: oldest %d, changes %+v; want the newest, %d", oldest, got, latest)
		}
		if l, err := b.LatestChange(ctx); err != nil || l != latest {
			t.Fatalf("latest change: %d %v, want %d", l, err, latest)
		}
	})
}

func (c cluster) leases(t *testing.T) {
	nodes := c.nodesOn(t, c.newLocation(t), 2)
	a, b := nodes[0], nodes[1]
	ctx := t.Context()
	const ttl = 600 * time.Millisecond

	_, err := a.GetLease(ctx, "job")
	checkErr(t, "get lease never taken", err, store.ErrNotFound)
	before := time.Now()
	la, err := a.AcquireLease(ctx, "job", "node-a", ttl)
	checkErr(t, "a acquires", err, nil)
	if la.Epoch != 1 || la.Holder != "node-a" || !la.Deadline.After(before) || !la.Deadline.Before(before.Add(ttl)) {
		t.Fatalf("lease: %+v", la)
	}
	if _, err := b.AcquireLease(ctx, "job", "node-b", ttl); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("b acquires a held lease: got %v, want ErrLeaseHeld", err)
	}
	again, err := a.AcquireLease(ctx, "job", "node-a", ttl)
	checkErr(t, "a acquires again", err, nil)
	if again.Epoch != la.Epoch {
		t.Errorf("reacquire by the holder changed the epoch: %d -> %d", la.Epoch, again.Epoch)
	}
	// Renewals keep it past its first expiry.
	for range 4 {
		time.Sleep(ttl / 3)
		if la, err = a.RenewLease(ctx, la, ttl); err != nil {
			t.Fatalf("renew: %v", err)
		}
	}
	if _, err := b.AcquireLease(ctx, "job", "node-b", ttl); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("b acquires a renewed lease: got %v, want ErrLeaseHeld", err)
	}
	// Expiry hands it over, with a higher epoch; the old holder's renewal fails.
	time.Sleep(ttl + 100*time.Millisecond)
	lb, err := b.AcquireLease(ctx, "job", "node-b", ttl)
	checkErr(t, "b acquires an expired lease", err, nil)
	if lb.Epoch != la.Epoch+1 {
		t.Errorf("epoch after takeover: got %d, want %d", lb.Epoch, la.Epoch+1)
	}
	if _, err := a.RenewLease(ctx, la, ttl); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("renew a lost lease: got %v, want ErrLeaseLost", err)
	}
	checkErr(t, "release a lost lease", a.ReleaseLease(ctx, la), nil)
	got, err := a.GetLease(ctx, "job")
	checkErr(t, "get lease", err, nil)
	if got.Holder != "node-b" || got.Epoch != lb.Epoch {
		t.Fatalf("lease after a's release of a lost lease: %+v", got)
	}
	// A release hands it over at once.
	checkErr(t, "b releases", b.ReleaseLease(ctx, lb), nil)
	la2, err := a.AcquireLease(ctx, "job", "node-a", ttl)
	checkErr(t, "a acquires a released lease", err, nil)
	if la2.Epoch != lb.Epoch+1 {
		t.Errorf("epoch after release: got %d, want %d", la2.Epoch, lb.Epoch+1)
	}
	if _, err := a.AcquireLease(ctx, "other", "node-a", 0); err == nil {
		t.Error("a lease with ttl 0 was granted")
	}
}

func (c cluster) nodes(t *testing.T) {
	nodes := c.nodesOn(t, c.newLocation(t), 2)
	a, b := nodes[0], nodes[1]
	ctx := t.Context()
	checkErr(t, "heartbeat a", a.Heartbeat(ctx, &store.Node{ID: a.NodeID(), Name: "a", APIAddr: "https://a:8200", Version: "v1", Info: []byte(`{"x":1}`)}), nil)
	checkErr(t, "heartbeat b", b.Heartbeat(ctx, &store.Node{ID: b.NodeID(), Name: "b", APIAddr: "https://b:8200", Version: "v1"}), nil)
	list, err := b.ListNodes(ctx)
	checkErr(t, "list", err, nil)
	if len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" || string(list[0].Info) != `{"x":1}` || list[0].APIAddr != "https://a:8200" {
		t.Fatalf("nodes: %+v", list)
	}
	first := list[0].SeenAt
	if list[0].Now.Before(first) || list[0].StartedAt.After(first) {
		t.Errorf("times: %+v", list[0])
	}
	time.Sleep(20 * time.Millisecond)
	checkErr(t, "heartbeat a again", a.Heartbeat(ctx, &store.Node{ID: a.NodeID(), Name: "a", APIAddr: "https://a:8200", Version: "v2"}), nil)
	list, err = b.ListNodes(ctx)
	checkErr(t, "list", err, nil)
	if !list[0].SeenAt.After(first) || list[0].Version != "v2" {
		t.Errorf("after a second heartbeat: %+v", list[0])
	}
	n, err := a.ForgetNodes(ctx, list[0].SeenAt)
	checkErr(t, "forget", err, nil)
	if n != 1 {
		t.Errorf("forgot %d nodes, want 1 (b)", n)
	}
	checkErr(t, "remove a", a.RemoveNode(ctx, a.NodeID()), nil)
	list, err = b.ListNodes(ctx)
	checkErr(t, "list", err, nil)
	if len(list) != 0 {
		t.Errorf("nodes left: %+v", list)
	}
}

// locks: a named lock excludes the other nodes until it is released or its
// holder's store goes away (the process died).
func (c cluster) locks(t *testing.T) {
	nodes := c.nodesOn(t, c.newLocation(t), 3)
	a, b, d := nodes[0], nodes[1], nodes[2]
	ctx := t.Context()
	unlockA, err := a.Lock(ctx, "k")
	checkErr(t, "a locks", err, nil)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = b.Lock(short, "k")
	cancel()
	if err == nil {
		t.Fatal("b took a lock that a holds")
	}
	other, err := b.Lock(ctx, "other")
	checkErr(t, "b locks another name", err, nil)
	other.Unlock()
	got := make(chan store.HeldLock, 1)
	go func() {
		u, err := b.Lock(ctx, "k")
		if err != nil {
			t.Errorf("b waits for the lock: %v", err)
			close(got)
			return
		}
		got <- u
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-got:
		t.Fatal("b got the lock before a released it")
	default:
	}
	unlockA.Unlock()
	unlockB, ok := <-got
	if !ok {
		t.FailNow()
	}
	_ = unlockB // b dies holding it
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u, err := d.Lock(wait, "k")
	checkErr(t, "d locks after b died holding the lock", err, nil)
	u.Unlock()
}
