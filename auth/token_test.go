package auth

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/sqlite"
)

// The raw tokens appear nowhere in the SQLite files (database, WAL, shared
// memory), while what is stored beside them (the accessors) does: the scan
// looks at the right bytes.
func TestTokensStoredOnlyAsHashes(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	root, err := a.m.CreateRoot(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	child, ce := a.create(t, a.root, CreateRequest{Policies: []string{"p1"}, NumUses: 5, Meta: map[string]string{"team": "x"}})
	custom, _ := a.create(t, a.root, CreateRequest{ID: "my-custom-token-id-0123456789"})
	if _, err := a.m.Authenticate(ctx, child); err != nil { // a use rewrites the entry
		t.Fatal(err)
	}
	secrets := []string{testRoot, root, child, custom, strings.TrimPrefix(root, "khs."), strings.TrimPrefix(child, "khs.")}

	scan := func(when string) {
		files, _ := filepath.Glob(filepath.Join(a.dir, "keyhold.db*"))
		if len(files) == 0 {
			t.Fatal("no SQLite files to scan")
		}
		var all []byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		for _, s := range secrets {
			if bytes.Contains(all, []byte(s)) {
				t.Errorf("%s: a raw token (%d bytes) is in the SQLite files", when, len(s))
			}
		}
		if !bytes.Contains(all, []byte(ce.Accessor)) {
			t.Errorf("%s: the accessor is not in the files: the scan reads the wrong bytes", when)
		}
	}
	scan("open")
	if err := a.st.Close(); err != nil {
		t.Fatal(err)
	}
	scan("closed")
}

func TestCreateLookupRevoke(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	limited, _ := a.create(t, a.root, CreateRequest{Policies: []string{"p1", "p2"}})
	limitedTok, err := a.m.Authenticate(ctx, limited)
	if err != nil {
		t.Fatal(err)
	}
	useLimited, _ := a.create(t, a.root, CreateRequest{Policies: []string{"p1"}, NumUses: 3})
	useLimitedTok, err := a.m.Authenticate(ctx, useLimited)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		parent   *Token
		req      CreateRequest
		wantKind fault.Kind
		check    func(t *testing.T, e *Token)
	}{
		{name: "ok root child inherits root", parent: a.root, req: CreateRequest{}, check: func(t *testing.T, e *Token) {
			if !e.Root || !slices.Equal(e.Policies, []string{"root"}) || !e.ExpireAt.IsZero() || e.Renewable {
				t.Errorf("root child: %+v", e)
			}
		}},
		{name: "ok policies normalized with default", parent: a.root, req: CreateRequest{Policies: []string{" P2", "p1", "p1"}}, check: func(t *testing.T, e *Token) {
			if !slices.Equal(e.Policies, []string{"default", "p1", "p2"}) {
				t.Errorf("policies %v", e.Policies)
			}
			if e.TTL != DefaultTTL || !e.ExpireAt.Equal(a.clock.now().Add(DefaultTTL)) || !e.Renewable {
				t.Errorf("ttl %v expire %v renewable %v", e.TTL, e.ExpireAt, e.Renewable)
			}
			if e.Orphan || e.Parent != a.root.Accessor || e.DisplayName != "token" {
				t.Errorf("parent %q orphan %v display %q", e.Parent, e.Orphan, e.DisplayName)
			}
		}},
		{name: "ok no default policy", parent: a.root, req: CreateRequest{Policies: []string{"p1"}, NoDefaultPolicy: true}, check: func(t *testing.T, e *Token) {
			if !slices.Equal(e.Policies, []string{"p1"}) {
				t.Errorf("policies %v", e.Policies)
			}
		}},
		// As in Vault, no_default_policy takes default away even when it is
		// named.
		{name: "ok no default policy even named", parent: a.root, req: CreateRequest{Policies: []string{"p1", "default"}, NoDefaultPolicy: true}, check: func(t *testing.T, e *Token) {
			if !slices.Equal(e.Policies, []string{"p1"}) {
				t.Errorf("policies %v", e.Policies)
			}
		}},
		{name: "ok ttl capped at max", parent: a.root, req: CreateRequest{Policies: []string{"p1"}, TTL: 10000 * time.Hour}, check: func(t *testing.T, e *Token) {
			if e.TTL != MaxTTL {
				t.Errorf("ttl %v", e.TTL)
			}
		}},
		{name: "ok ttl capped at explicit max", parent: a.root, req: CreateRequest{Policies: []string{"p1"}, TTL: 2 * time.Hour, ExplicitMaxTTL: time.Hour}, check: func(t *testing.T, e *Token) {
			if e.TTL != time.Hour {
				t.Errorf("ttl %v", e.TTL)
			}
		}},
		{name: "ok not renewable", parent: a.root, req: CreateRequest{Policies: []string{"p1"}, Renewable: new(bool)}, check: func(t *testing.T, e *Token) {
			if e.Renewable {
				t.Error("renewable")
			}
		}},
		{name: "ok display name sanitized", parent: a.root, req: CreateRequest{Policies: []string{"p1"}, DisplayName: "ci job/42!"}, check: func(t *testing.T, e *Token) {
			if e.DisplayName != "token-ci-job-42" {
				t.Errorf("display name %q", e.DisplayName)
			}
		}},
		{name: "ok subset of parent", parent: limitedTok, req: CreateRequest{Policies: []string{"p2"}}, check: func(t *testing.T, e *Token) {
			if !slices.Equal(e.Policies, []string{"default", "p2"}) {
				t.Errorf("policies %v", e.Policies)
			}
		}},
		{name: "ok inherits parent policies", parent: limitedTok, req: CreateRequest{}, check: func(t *testing.T, e *Token) {
			if !slices.Equal(e.Policies, limitedTok.Policies) {
				t.Errorf("policies %v, parent %v", e.Policies, limitedTok.Policies)
			}
		}},
		{name: "ok orphan", parent: limitedTok, req: CreateRequest{Orphan: true}, check: func(t *testing.T, e *Token) {
			if !e.Orphan || e.Parent != "" {
				t.Errorf("orphan %v parent %q", e.Orphan, e.Parent)
			}
		}},
		{name: "fail not a subset", parent: limitedTok, req: CreateRequest{Policies: []string{"p1", "p3"}}, wantKind: fault.Permission},
		{name: "fail root from non-root", parent: limitedTok, req: CreateRequest{Policies: []string{"root"}}, wantKind: fault.Permission},
		{name: "fail use-limited parent", parent: useLimitedTok, req: CreateRequest{Policies: []string{"p1"}}, wantKind: fault.BadInput},
		{name: "fail negative uses", parent: a.root, req: CreateRequest{NumUses: -1}, wantKind: fault.BadInput},
		{name: "fail negative ttl", parent: a.root, req: CreateRequest{TTL: -time.Second}, wantKind: fault.BadInput},
		{name: "fail bad policy name", parent: a.root, req: CreateRequest{Policies: []string{"a/b"}}, wantKind: fault.BadInput},
		{name: "fail custom id with a dot", parent: a.root, req: CreateRequest{ID: "a.b"}, wantKind: fault.BadInput},
		{name: "fail custom id taken", parent: a.root, req: CreateRequest{ID: testRoot}, wantKind: fault.Conflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, e, err := a.m.Create(ctx, tt.parent, tt.req)
			if kindOf(err) != tt.wantKind {
				t.Fatalf("err %v, want kind %q", err, tt.wantKind)
			}
			if err != nil {
				if strings.Contains(err.Error(), tt.req.ID) && tt.req.ID != "" {
					t.Errorf("the error echoes the token: %v", err)
				}
				return
			}
			got, err := a.m.Lookup(ctx, tok)
			if err != nil {
				t.Fatalf("lookup: %v", err)
			}
			if got.Accessor != e.Accessor || !slices.Equal(got.Policies, e.Policies) || !got.ExpireAt.Equal(e.ExpireAt) {
				t.Errorf("lookup %+v, created %+v", got, e)
			}
			byAcc, err := a.m.LookupAccessor(ctx, e.Accessor)
			if err != nil || byAcc.Accessor != e.Accessor {
				t.Errorf("lookup accessor: %v", err)
			}
			tt.check(t, e)
			if err := a.m.Revoke(ctx, tok); err != nil {
				t.Fatal(err)
			}
			if _, err := a.m.Authenticate(ctx, tok); kindOf(err) != fault.Unauthorized {
				t.Errorf("after revoke: %v", err)
			}
			if _, err := a.m.LookupAccessor(ctx, e.Accessor); kindOf(err) != fault.BadInput {
				t.Errorf("lookup accessor after revoke: %v", err)
			}
		})
	}
}

func TestAuthenticateRefuses(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	for _, tok := range []string{"", "nope", "khs.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "with space", strings.Repeat("x", 2000), "tab\t"} {
		_, err := a.m.Authenticate(ctx, tok)
		if kindOf(err) != fault.Unauthorized {
			t.Errorf("token of %d bytes: %v", len(tok), err)
		}
		if tok != "" && err != nil && strings.Contains(err.Error(), tok) {
			t.Errorf("the error echoes the token")
		}
	}
}

// Revoking a token revokes what it created, recursively, but not orphans;
// revoke-orphan keeps the children and makes them orphans.
func TestChildRevocation(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	auth := func(tok string) *Token {
		t.Helper()
		e, err := a.m.Authenticate(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	parentTok, _ := a.create(t, a.root, CreateRequest{Policies: []string{"p"}})
	parent := auth(parentTok)
	childTok, _ := a.create(t, parent, CreateRequest{})
	grandTok, _ := a.create(t, auth(childTok), CreateRequest{})
	orphanTok, _ := a.create(t, parent, CreateRequest{Orphan: true})
	siblingTok, _ := a.create(t, a.root, CreateRequest{Policies: []string{"p"}})

	if err := a.m.RevokeAccessor(ctx, parent.Accessor); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"parent": parentTok, "child": childTok, "grandchild": grandTok} {
		if _, err := a.m.Authenticate(ctx, tok); kindOf(err) != fault.Unauthorized {
			t.Errorf("%s still works: %v", name, err)
		}
	}
	for name, tok := range map[string]string{"orphan": orphanTok, "sibling": siblingTok, "root": testRoot} {
		if _, err := a.m.Authenticate(ctx, tok); err != nil {
			t.Errorf("%s was revoked: %v", name, err)
		}
	}
	if err := a.m.RevokeAccessor(ctx, parent.Accessor); kindOf(err) != fault.BadInput {
		t.Errorf("revoking a revoked accessor: %v", err)
	}
	if err := a.m.Revoke(ctx, parentTok); err != nil {
		t.Errorf("revoking a revoked token: %v", err)
	}

	// revoke-orphan
	p2Tok, _ := a.create(t, a.root, CreateRequest{Policies: []string{"p"}})
	c2Tok, _ := a.create(t, auth(p2Tok), CreateRequest{})
	g2Tok, _ := a.create(t, auth(c2Tok), CreateRequest{})
	if err := a.m.RevokeOrphan(ctx, p2Tok); err != nil {
		t.Fatal(err)
	}
	if _, err := a.m.Authenticate(ctx, p2Tok); kindOf(err) != fault.Unauthorized {
		t.Errorf("revoked parent still works: %v", err)
	}
	c2 := auth(c2Tok)
	if !c2.Orphan || c2.Parent != "" {
		t.Errorf("the child is not an orphan: %+v", c2)
	}
	auth(g2Tok)
	// The former child is still the parent of the grandchild.
	if err := a.m.Revoke(ctx, c2Tok); err != nil {
		t.Fatal(err)
	}
	if _, err := a.m.Authenticate(ctx, g2Tok); kindOf(err) != fault.Unauthorized {
		t.Errorf("grandchild survived its parent: %v", err)
	}
}

func TestNumUsesCountdown(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	tok, _ := a.create(t, a.root, CreateRequest{Policies: []string{"p"}, NumUses: 2})
	for i, want := range []int{1, 0} {
		e, err := a.m.Authenticate(ctx, tok)
		if err != nil {
			t.Fatalf("use %d: %v", i+1, err)
		}
		if e.NumUses != want || !e.UseLimited {
			t.Errorf("use %d: num_uses %d limited %v, want %d", i+1, e.NumUses, e.UseLimited, want)
		}
	}
	if _, err := a.m.Authenticate(ctx, tok); kindOf(err) != fault.Unauthorized {
		t.Errorf("third use: %v", err)
	}
	// Lookup spends nothing.
	tok2, _ := a.create(t, a.root, CreateRequest{Policies: []string{"p"}, NumUses: 1})
	for range 3 {
		if e, err := a.m.Lookup(ctx, tok2); err != nil || e.NumUses != 1 {
			t.Fatalf("lookup: %v", err)
		}
	}
}

// N requests race for a token with N/2 uses: exactly N/2 get through.
func TestNumUsesConcurrent(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	const n = 24
	tok, _ := a.create(t, a.root, CreateRequest{Policies: []string{"p"}, NumUses: n / 2})
	var ok, denied atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := a.m.Authenticate(ctx, tok)
			switch kindOf(err) {
			case "":
				ok.Add(1)
			case fault.Unauthorized:
				denied.Add(1)
			default:
				t.Errorf("authenticate: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok.Load() != n/2 || denied.Load() != n/2 {
		t.Errorf("%d succeeded and %d were denied, want %d and %d", ok.Load(), denied.Load(), n/2, n/2)
	}
}

func TestTTLExpiry(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	tok, e := a.create(t, a.root, CreateRequest{Policies: []string{"p"}, TTL: time.Hour})
	parent, _ := a.m.Authenticate(ctx, tok)
	childTok, child := a.create(t, parent, CreateRequest{TTL: 10 * time.Hour})
	if !child.ExpireAt.Equal(e.ExpireAt) {
		t.Errorf("the child expires at %v, after its parent (%v)", child.ExpireAt, e.ExpireAt)
	}
	orphanTok, _ := a.create(t, parent, CreateRequest{TTL: 10 * time.Hour, Orphan: true})

	a.clock.add(59 * time.Minute)
	got, err := a.m.Authenticate(ctx, tok)
	if err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	if r := got.Remaining(a.clock.now()); r != time.Minute {
		t.Errorf("remaining %v, want 1m", r)
	}
	a.clock.add(time.Minute)
	for name, tk := range map[string]string{"token": tok, "child": childTok} {
		if _, err := a.m.Authenticate(ctx, tk); kindOf(err) != fault.Unauthorized {
			t.Errorf("%s after expiry: %v", name, err)
		}
		if _, err := a.m.Lookup(ctx, tk); kindOf(err) != fault.Unauthorized {
			t.Errorf("%s lookup after expiry: %v", name, err)
		}
	}
	if _, err := a.m.Authenticate(ctx, orphanTok); err != nil {
		t.Errorf("the orphan outlives its creator: %v", err)
	}
	// Cleaned up: the accessor is gone from the store, not only refused.
	a.m.now = func() time.Time { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }
	if _, err := a.m.LookupAccessor(ctx, e.Accessor); kindOf(err) != fault.BadInput {
		t.Errorf("the expired token is still stored: %v", err)
	}
	if _, err := a.m.LookupAccessor(ctx, child.Accessor); kindOf(err) != fault.BadInput {
		t.Errorf("the expired token's child is still stored: %v", err)
	}
	a.m.now = a.clock.now
}

func TestTidy(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	a.create(t, a.root, CreateRequest{Policies: []string{"p"}, TTL: time.Hour})
	a.create(t, a.root, CreateRequest{Policies: []string{"p"}, TTL: time.Hour})
	live, _ := a.create(t, a.root, CreateRequest{Policies: []string{"p"}, TTL: 3 * time.Hour})
	a.clock.add(2 * time.Hour)
	n, err := a.m.Tidy(ctx)
	if err != nil || n != 2 {
		t.Fatalf("tidy removed %d, %v; want 2", n, err)
	}
	accs, _ := a.m.Accessors(ctx)
	if len(accs) != 2 { // root and live
		t.Errorf("accessors left: %d, want 2", len(accs))
	}
	if _, err := a.m.Authenticate(ctx, live); err != nil {
		t.Error(err)
	}
}

func TestRenew(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	_, e := a.create(t, a.root, CreateRequest{Policies: []string{"p"}, TTL: time.Hour, ExplicitMaxTTL: 3 * time.Hour})
	_, periodic := a.create(t, a.root, CreateRequest{Policies: []string{"p"}, Period: 2 * time.Hour})
	_, fixed := a.create(t, a.root, CreateRequest{Policies: []string{"p"}, TTL: 5 * time.Hour, Renewable: new(bool)})

	a.clock.add(30 * time.Minute)
	tests := []struct {
		name      string
		accessor  string
		increment time.Duration
		advance   time.Duration
		want      time.Duration // remaining after renewal
		wantKind  fault.Kind
	}{
		{name: "ok default increment is the ttl", accessor: e.Accessor, want: time.Hour},
		{name: "ok increment", accessor: e.Accessor, increment: 2 * time.Hour, want: 2 * time.Hour},
		{name: "ok capped at explicit max", accessor: e.Accessor, increment: 5 * time.Hour, advance: time.Hour, want: 90 * time.Minute},
		{name: "ok periodic gets its period", accessor: periodic.Accessor, increment: 5 * time.Hour, want: 2 * time.Hour},
		{name: "fail not renewable", accessor: fixed.Accessor, wantKind: fault.BadInput},
		{name: "fail root has no ttl", accessor: a.root.Accessor, wantKind: fault.BadInput},
		{name: "fail negative", accessor: e.Accessor, increment: -time.Second, wantKind: fault.BadInput},
		{name: "fail unknown accessor", accessor: "nope", wantKind: fault.Unauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.clock.add(tt.advance)
			got, err := a.m.Renew(ctx, tt.accessor, tt.increment)
			if kindOf(err) != tt.wantKind {
				t.Fatalf("err %v, want kind %q", err, tt.wantKind)
			}
			if err == nil && got.Remaining(a.clock.now()) != tt.want {
				t.Errorf("remaining %v, want %v", got.Remaining(a.clock.now()), tt.want)
			}
		})
	}
}

// A store written before initialisation left its mark counts as
// initialised while it holds any token, and gets the mark at the next
// start; a store that never had one is not.
func TestInitializedWithoutTheMark(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := New(st)
	if ok, err := m.Initialized(ctx); err != nil || ok {
		t.Fatalf("a new store: %v %v", ok, err)
	}
	root, err := m.CreateRoot(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Initialized(ctx); err != nil || !ok {
		t.Fatalf("after init: %v %v", ok, err)
	}
	rootTok, err := m.Authenticate(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := m.Create(ctx, rootTok, CreateRequest{Policies: []string{"default"}, Orphan: true})
	if err != nil {
		t.Fatal(err)
	}
	// As an older build left it: no mark.
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, initializedKey) }); err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(ctx, root); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Initialized(ctx); err != nil || !ok {
		t.Fatalf("no mark, no root token, another token: %v %v", ok, err)
	}
	if _, err := m.CreateRoot(ctx, false); !errors.Is(err, ErrRootExists) {
		t.Fatalf("create root on it: %v", err)
	}
	// The start (Bootstrap, with or without a dev root token) writes the
	// mark, so the store stays initialised when its last token is gone.
	if err := m.Bootstrap(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Initialized(ctx); err != nil || !ok {
		t.Fatalf("no token left after the start: %v %v", ok, err)
	}
	if _, err := m.CreateRoot(ctx, false); !errors.Is(err, ErrRootExists) {
		t.Fatalf("create root with no token left: %v", err)
	}
	// A store that never had a token is not initialised, and the start
	// leaves it so.
	st2, err := sqlite.Open(filepath.Join(t.TempDir(), "fresh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	m2 := New(st2)
	if err := m2.Bootstrap(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if ok, err := m2.Initialized(ctx); err != nil || ok {
		t.Fatalf("a fresh store after the start: %v %v", ok, err)
	}
}

func TestBootstrapAndCreateRoot(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	if err := a.m.Bootstrap(ctx, testRoot); err != nil {
		t.Fatal(err)
	}
	again, err := a.m.Authenticate(ctx, testRoot)
	if err != nil || again.Accessor != a.root.Accessor {
		t.Fatalf("bootstrap twice changed the root token: %v", err)
	}
	if _, err := a.m.CreateRoot(ctx, false); !errors.Is(err, ErrRootExists) || kindOf(err) != fault.Conflict {
		t.Errorf("create root with one live: %v", err)
	}
	if err := a.m.Revoke(ctx, testRoot); err != nil {
		t.Fatal(err)
	}
	if err := a.m.Bootstrap(ctx, testRoot); err != nil {
		t.Fatal(err)
	}
	back, err := a.m.Authenticate(ctx, testRoot)
	if err != nil || !back.Root || back.Accessor == a.root.Accessor {
		t.Fatalf("bootstrap did not recreate the revoked dev root token: %v", err)
	}
	if err := a.m.Revoke(ctx, testRoot); err != nil {
		t.Fatal(err)
	}
	// Initialisation is done for good: with no root token left, only a
	// deliberate (forced) act makes another.
	if _, err := a.m.CreateRoot(ctx, false); !errors.Is(err, ErrRootExists) || kindOf(err) != fault.Conflict {
		t.Errorf("create root with none live after initialisation: %v", err)
	}
	root, err := a.m.CreateRoot(ctx, true)
	if err != nil {
		t.Fatalf("forced: %v", err)
	}
	e, err := a.m.Authenticate(ctx, root)
	if err != nil || !e.Root || !e.Orphan || !e.ExpireAt.IsZero() || !strings.HasPrefix(root, "khs.") {
		t.Fatalf("root token %+v: %v", e, err)
	}
	if err := a.m.Bootstrap(ctx, "bad token"); kindOf(err) != fault.BadInput {
		t.Errorf("bootstrap with a space: %v", err)
	}
	if err := a.m.Bootstrap(ctx, ""); err != nil {
		t.Errorf("bootstrap without a dev token: %v", err)
	}
}
