package auth

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store/sqlite"
)

// clock is a time the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testAuth struct {
	m     *Manager
	st    *sqlite.Store
	dir   string
	clock *clock
	root  *Token // the entry of the root token "test-root"
}

const testRoot = "test-root"

// newTestAuth returns a manager over a fresh SQLite file with a moveable
// clock and the root token testRoot.
func newTestAuth(t testing.TB) *testAuth {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	m := New(st)
	m.now = c.now
	ctx := context.Background()
	if err := m.Bootstrap(ctx, testRoot); err != nil {
		t.Fatal(err)
	}
	root, err := m.Authenticate(ctx, testRoot)
	if err != nil {
		t.Fatal(err)
	}
	return &testAuth{m: m, st: st, dir: dir, clock: c, root: root}
}

// create makes a token as a child of parent and fails the test on error.
func (a *testAuth) create(t testing.TB, parent *Token, req CreateRequest) (string, *Token) {
	t.Helper()
	tok, e, err := a.m.Create(context.Background(), parent, req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return tok, e
}

// putPolicy stores a policy and fails the test on error.
func (a *testAuth) putPolicy(t testing.TB, name, text string) {
	t.Helper()
	if _, err := a.m.PutPolicy(context.Background(), name, text); err != nil {
		t.Fatalf("put policy %s: %v", name, err)
	}
}

// kindOf returns the fault kind of err, "" for nil.
func kindOf(err error) fault.Kind {
	if err == nil {
		return ""
	}
	return fault.KindOf(err)
}
