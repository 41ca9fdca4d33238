package ha_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/ha"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/postgres"
	"github.com/keyhold/keyhold/store/postgres/pgtest"
	"github.com/keyhold/keyhold/store/sqlite"
)

var srv *pgtest.Server

func TestMain(m *testing.M) {
	s, err := pgtest.Start(context.Background(), pgtest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	s.Stop()
	os.Exit(code)
}

// nodeStore opens another node's store on the schema at url.
func nodeStore(t *testing.T, url string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), postgres.Config{URL: url, Password: srv.Password, MaxConns: 4})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func schema(t *testing.T) string {
	t.Helper()
	url, err := srv.CreateSchema(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// recorder collects what a handler was told.
type recorder struct {
	mu    sync.Mutex
	calls [][]string
	ch    chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 100)} }

func (r *recorder) handle(_ context.Context, paths []string) error {
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(paths))
	r.mu.Unlock()
	r.ch <- struct{}{}
	return nil
}

func (r *recorder) all() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// startNode begins a node's cluster and runs it until the test ends.
func startNode(t *testing.T, c *ha.Cluster) {
	t.Helper()
	if err := c.Begin(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.Run(t.Context())
	t.Cleanup(c.Close)
}

func put(t *testing.T, st store.Store, path string) {
	t.Helper()
	ctx := t.Context()
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Put(ctx, path, []byte("x")) }); err != nil {
		t.Fatalf("put: %v", err)
	}
}

// A change on one node reaches the other node's subscribers of its prefix
// within a second, not its own node's, and not other prefixes'.
func TestInvalidationAcrossNodes(t *testing.T) {
	url := schema(t)
	sa, sb := nodeStore(t, url), nodeStore(t, url)
	a := ha.New(ha.Options{Store: sa, Name: "a"})
	b := ha.New(ha.Options{Store: sb, Name: "b"})
	ra, rb, rother := newRecorder(), newRecorder(), newRecorder()
	a.Subscribe("kv:sys/policy/", ra.handle)
	b.Subscribe("kv:sys/policy/", rb.handle)
	b.Subscribe("kv:xks/", rother.handle)
	ctx := t.Context()
	for _, c := range []*ha.Cluster{a, b} {
		if err := c.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		c.Run(ctx)
		t.Cleanup(c.Close)
	}
	start := time.Now()
	put(t, sa, "sys/policy/p1")
	select {
	case <-rb.ch:
	case <-time.After(time.Second):
		t.Fatal("node b was not told of node a's change within 1 s")
	}
	t.Logf("node b told after %v", time.Since(start))
	if got := rb.all(); len(got) != 1 || !slices.Equal(got[0], []string{"kv:sys/policy/p1"}) {
		t.Fatalf("node b was told %q", got)
	}
	time.Sleep(300 * time.Millisecond)
	if got := ra.all(); len(got) != 0 {
		t.Errorf("node a was told of its own change: %q", got)
	}
	if got := rother.all(); len(got) != 0 {
		t.Errorf("a subscriber of another prefix was told: %q", got)
	}
	// A coarsened change ("kv:sys/") reaches subscribers of paths inside it.
	if err := sa.Update(ctx, func(tx store.Tx) error {
		for i := range 300 {
			if err := tx.Put(ctx, fmt.Sprintf("sys/policy/bulk%d", i), nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rb.ch:
	case <-time.After(time.Second):
		t.Fatal("a coarsened change was not passed on")
	}
	if got := rb.all(); !slices.Equal(got[1], []string{"kv:sys/"}) {
		t.Fatalf("coarsened change: %q", got[1])
	}
}

// A node's own change is skipped only if its Update returned nil: one
// whose Update failed after the commit went through (here: committed
// through a second store with the node's ID, as if that node's Update had
// returned an error) is handled as another node's would be.
func TestOwnChangeHandledUnlessConfirmed(t *testing.T) {
	url := schema(t)
	open := func() *postgres.Store {
		st, err := postgres.Open(context.Background(), postgres.Config{URL: url, Password: srv.Password, MaxConns: 4, NodeID: "node-a"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	sa, unconfirmed := open(), open()
	a := ha.New(ha.Options{Store: sa, Name: "a"})
	ra := newRecorder()
	a.Subscribe("kv:sys/policy/", ra.handle)
	startNode(t, a)
	put(t, sa, "sys/policy/confirmed")
	put(t, unconfirmed, "sys/policy/unconfirmed")
	select {
	case <-ra.ch:
	case <-time.After(time.Second):
		t.Fatal("the node was not told of its own unconfirmed change within 1 s")
	}
	time.Sleep(300 * time.Millisecond)
	if got := ra.all(); len(got) != 1 || !slices.Equal(got[0], []string{"kv:sys/policy/unconfirmed"}) {
		t.Fatalf("node a was told %q, want only its unconfirmed change", got)
	}
}

// Sync applies what was committed before it, without the watcher; Guard
// does so for a stale node and refuses when the log cannot be read.
func TestSyncAndGuard(t *testing.T) {
	url := schema(t)
	sa, sb := nodeStore(t, url), nodeStore(t, url)
	b := ha.New(ha.Options{Store: sb, Name: "b", MaxStaleness: 200 * time.Millisecond})
	rb := newRecorder()
	b.Subscribe("kv:", rb.handle)
	ctx := t.Context()
	if err := b.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	// b's watcher is not running: only Sync and Guard catch up, once b
	// says its handlers are all subscribed.
	b.Ready()
	put(t, sa, "auth/token/revoked")
	if err := b.Sync(ctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if got := rb.all(); len(got) != 1 || got[0][0] != "kv:auth/token/revoked" {
		t.Fatalf("after sync: %q", got)
	}
	put(t, sa, "xks/m/cred/x")
	if err := b.Guard(ctx); err != nil {
		t.Fatalf("guard of a fresh node: %v", err)
	}
	if got := rb.all(); len(got) != 1 {
		t.Fatalf("a fresh node's guard read the log: %q", got)
	}
	time.Sleep(250 * time.Millisecond)
	if err := b.Guard(ctx); err != nil {
		t.Fatalf("guard of a stale node: %v", err)
	}
	if got := rb.all(); len(got) != 2 || got[1][0] != "kv:xks/m/cred/x" {
		t.Fatalf("after the guard of a stale node: %q", got)
	}
	sb.Close()
	time.Sleep(250 * time.Millisecond)
	err := b.Guard(ctx)
	if fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("guard without a database: got %v, want Unavailable", err)
	}
}

// A change a handler fails to take in is not applied: the node is not
// caught up (Guard refuses once the staleness bound passes), and the change
// is handed over again until the handler takes it.
func TestFailedHandlerKeepsTheChange(t *testing.T) {
	url := schema(t)
	sa, sb := nodeStore(t, url), nodeStore(t, url)
	b := ha.New(ha.Options{Store: sb, Name: "b", MaxStaleness: 200 * time.Millisecond})
	var mu sync.Mutex
	failing := true
	var told [][]string
	b.Subscribe("kv:sys/mounts/", func(_ context.Context, paths []string) error {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, slices.Clone(paths))
		if failing {
			return errors.New("the mount table cannot be read")
		}
		return nil
	})
	ctx := t.Context()
	if err := b.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	b.Ready()
	put(t, sa, "sys/mounts/m1")
	if err := b.Sync(ctx); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("sync with a failing handler: %v, want Unavailable", err)
	}
	time.Sleep(250 * time.Millisecond)
	if err := b.Guard(ctx); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("guard of a node whose handler failed: %v, want Unavailable", err)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	if err := b.Guard(ctx); err != nil {
		t.Fatalf("guard once the handler works: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(told) < 3 || !slices.Equal(told[len(told)-1], []string{"kv:sys/mounts/m1"}) {
		t.Fatalf("the handler was told %q; want the change again until it took it", told)
	}
}

// A change log that goes back (a restore, or a failover to a copy that
// lacked recent commits) makes a node drop everything it caches: the
// sequence numbers it has seen are reused, so its next changes would pass
// unseen.
func TestChangeLogGoingBackDropsEverything(t *testing.T) {
	url := schema(t)
	sa, sb := nodeStore(t, url), nodeStore(t, url)
	b := ha.New(ha.Options{Store: sb, Name: "b"})
	rb := newRecorder()
	b.Subscribe("kv:", rb.handle)
	ctx := t.Context()
	startNode(t, b)
	wait := func(what string) []string {
		t.Helper()
		select {
		case <-rb.ch:
		case <-time.After(2 * time.Second):
			t.Fatalf("node b was not told of %s", what)
		}
		got := rb.all()
		return got[len(got)-1]
	}
	put(t, sa, "sys/policy/p1")
	wait("p1")
	first, err := sa.LatestChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"p2", "p3", "p4"} {
		put(t, sa, "sys/policy/"+p)
		wait(p)
	}
	// The database goes back to just after p1.
	db, err := pgx.Connect(ctx, srv.URLWithPassword("postgres")+"&search_path="+url[strings.LastIndex(url, "search_path=")+len("search_path="):])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, "DELETE FROM changes WHERE seq > $1", first); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "SELECT setval('change_seq', $1)", first); err != nil {
		t.Fatal(err)
	}
	put(t, sa, "sys/policy/p5")
	if got := wait("the log going back"); got != nil {
		t.Fatalf("node b was told %q, want every cache dropped (nil)", got)
	}
	put(t, sa, "sys/policy/p6")
	for {
		if got := wait("p6 after the log went back"); slices.Equal(got, []string{"kv:sys/policy/p6"}) {
			break
		}
	}
}

// interval is one run of a job on a node.
type interval struct {
	node       string
	start, end time.Time
}

// Three nodes campaign: one leads and runs the job; when it dies (its
// database connections gone, no release), another takes over after the
// lease expires; no two nodes ever run the job at once.
func TestLeaderRunsJobsAlone(t *testing.T) {
	url := schema(t)
	const ttl = time.Second
	var mu sync.Mutex
	var runs []interval
	type node struct {
		c      *ha.Cluster
		st     *postgres.Store
		cancel context.CancelFunc
	}
	var nodes []*node
	for _, name := range []string{"a", "b", "c"} {
		st := nodeStore(t, url)
		c := ha.New(ha.Options{Store: st, Name: name, LeaseTTL: ttl})
		c.AddJob(ha.Job{Name: "work", Every: 10 * time.Millisecond, Run: func(ctx context.Context) error {
			iv := interval{node: name, start: time.Now()}
			select { // work that takes a while and stops when the term ends
			case <-time.After(150 * time.Millisecond):
			case <-ctx.Done():
			}
			iv.end = time.Now()
			mu.Lock()
			runs = append(runs, iv)
			mu.Unlock()
			return nil
		}})
		ctx, cancel := context.WithCancel(context.Background())
		if err := c.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		c.Run(ctx)
		nodes = append(nodes, &node{c: c, st: st, cancel: cancel})
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.cancel()
			n.c.Close()
		}
	})
	leader := func() *node {
		var out *node
		for _, n := range nodes {
			if n.c.Leading() {
				if out != nil {
					t.Fatalf("two nodes lead at once")
				}
				out = n
			}
		}
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	var first *node
	for first == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		first = leader()
	}
	if first == nil {
		t.Fatal("no leader after 5 s")
	}
	st, err := first.c.Status(t.Context())
	if err != nil || st.Leader == nil || st.Leader.NodeID != first.c.ID() || len(st.Nodes) != 3 {
		t.Fatalf("status: %+v %v", st, err)
	}
	time.Sleep(time.Second)
	// The leader dies: its store goes away mid-term and it never releases.
	died := time.Now()
	first.st.Close()
	var second *node
	deadline = time.Now().Add(3 * ttl)
	for second == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if n := leader(); n != nil && n != first {
			second = n
		}
	}
	if second == nil {
		t.Fatal("no other node took over")
	}
	t.Logf("took over %v after the leader died", time.Since(died))
	time.Sleep(time.Second)
	first.cancel()
	mu.Lock()
	defer mu.Unlock()
	byNode := map[string]int{}
	for i, x := range runs {
		byNode[x.node]++
		for _, y := range runs[i+1:] {
			if x.node != y.node && x.start.Before(y.end) && y.start.Before(x.end) {
				t.Errorf("runs overlap: %s %v-%v and %s %v-%v", x.node, x.start, x.end, y.node, y.start, y.end)
			}
		}
	}
	if len(byNode) != 2 {
		t.Errorf("runs by node: %v, want the first and the second leader", byNode)
	}
}

// On a store that is not shared the node is alone: it leads, is never
// stale, and its status lists it.
func TestSingleNode(t *testing.T) {
	st, err := sqlite.Open(t.TempDir() + "/k.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ran := make(chan struct{}, 1)
	c := ha.New(ha.Options{Store: st, Name: "solo"})
	c.AddJob(ha.Job{Name: "j", Every: time.Hour, Run: func(context.Context) error {
		select {
		case ran <- struct{}{}:
		default:
		}
		return nil
	}})
	ctx := t.Context()
	if err := c.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	c.Run(ctx)
	defer c.Close()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the job did not run on a single node")
	}
	if !c.Leading() || c.Shared() || c.Guard(ctx) != nil || c.Sync(ctx) != nil {
		t.Fatal("single node: not leading, shared, or guarded")
	}
	s, err := c.Status(ctx)
	if err != nil || len(s.Nodes) != 1 || !s.Nodes[0].ActiveNode {
		t.Fatalf("status: %+v %v", s, err)
	}
}

// A node that fell behind a pruned log (changes while it was cut off, then
// the prune, which keeps only the newest) cannot know what changed: its next
// Sync tells every subscriber to drop everything, once.
func TestLogPrunedPastANodeDropsEverything(t *testing.T) {
	url := schema(t)
	sa, sb := nodeStore(t, url), nodeStore(t, url)
	b := ha.New(ha.Options{Store: sb, Name: "b"})
	rb := newRecorder()
	b.Subscribe("kv:", rb.handle)
	b.Ready() // no watcher: only Sync catches up
	ctx := t.Context()
	if err := b.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	put(t, sa, "sys/policy/first")
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	put(t, sa, "sys/policy/ops") // b is cut off
	put(t, sa, "sys/policy/later")
	time.Sleep(20 * time.Millisecond)
	if _, err := sa.PruneChanges(ctx, time.Now()); err != nil { // keeps the newest
		t.Fatal(err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := rb.all()
	if len(got) != 3 || got[1] != nil || !slices.Equal(got[2], []string{"kv:sys/policy/later"}) {
		t.Fatalf("node b was told %q; want the first change, everything dropped (nil), then the newest", got)
	}
	// Up to date again, it is not told to drop everything on every poll.
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rb.all(); len(got) != 3 {
		t.Fatalf("an up-to-date node was told %q", got[3:])
	}
}
