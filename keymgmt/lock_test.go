package keymgmt

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keyhold/keyhold/store"
)

// lossyLocks gives a single-node store the locks of a shared one, and lets
// a test take the held locks away, as PostgreSQL does when it ends the
// session that holds one (store/postgres tests that part on a real server).
type lossyLocks struct {
	store.Store
	mu   sync.Mutex
	held map[*lossyLock]bool

	lost        atomic.Bool  // a lock was taken away
	writesAfter atomic.Int32 // writes committed after that
}

func (s *lossyLocks) Update(ctx context.Context, fn func(store.Tx) error) error {
	err := s.Store.Update(ctx, fn)
	if err == nil && s.lost.Load() {
		s.writesAfter.Add(1)
	}
	return err
}

func (s *lossyLocks) Lock(ctx context.Context, name string) (store.HeldLock, error) {
	l := &lossyLock{s: s, lost: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = map[*lossyLock]bool{}
	}
	s.held[l] = true
	return l, nil
}

// loseAll takes away every lock held now.
func (s *lossyLocks) loseAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range s.held {
		l.once.Do(func() { close(l.lost) })
	}
	s.lost.Store(true)
}

type lossyLock struct {
	s    *lossyLocks
	lost chan struct{}
	once sync.Once
}

func (l *lossyLock) Lost() <-chan struct{} { return l.lost }

func (l *lossyLock) Check(ctx context.Context) error {
	select {
	case <-l.lost:
		return store.ErrLockLost
	default:
		return nil
	}
}

func (l *lossyLock) Unlock() {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	delete(l.s.held, l)
}

// losingAWS puts between the appliance and c a proxy that takes the held
// locks away while the first import after arm is on its way, and notes the
// cloud calls made after that.
func losingAWS(t *testing.T, c *cloud, locks *lossyLocks) (arm func(), afterLoss func() []string) {
	target, err := url.Parse(c.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	fwd := httputil.NewSingleHostReverseProxy(target)
	fwd.ErrorLog = log.New(io.Discard, "", 0) // the import cut short when the lock goes
	var armed, lost atomic.Bool
	var mu sync.Mutex
	var calls []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := r.Header.Get("X-Amz-Target")
		if lost.Load() {
			mu.Lock()
			calls = append(calls, op[strings.LastIndexByte(op, '.')+1:])
			mu.Unlock()
		}
		if strings.HasSuffix(op, ".ImportKeyMaterial") && armed.CompareAndSwap(true, false) {
			locks.loseAll()
			lost.Store(true)
		}
		fwd.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	c.endpoint = proxy.URL
	return func() { armed.Store(true) }, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(calls)
	}
}

// lossyEnv is newEnv whose manager takes its cross-node locks from a
// lossyLocks over the env's store, with losingAWS between it and c.
func lossyEnv(t *testing.T, c *cloud) (e *testEnv, locks *lossyLocks, arm func(), afterLoss func() []string) {
	locks = &lossyLocks{}
	arm, afterLoss = losingAWS(t, c, locks)
	o := Options{Providers: providers(c)}
	e = newEnv(t, o)
	locks.Store = e.st
	e.m = NewWithOptions(e.h, locks, o)
	return e, locks, arm, afterLoss
}

// noChangesAfterLoss fails the test for a cloud change or a store write
// made after the key's lock was taken away.
func noChangesAfterLoss(t *testing.T, locks *lossyLocks, calls []string) {
	t.Helper()
	for _, name := range calls {
		if !strings.HasPrefix(name, "Describe") && !strings.HasPrefix(name, "List") && !strings.HasPrefix(name, "Get") {
			t.Errorf("%s reached the cloud after the key's lock was lost", name)
		}
	}
	if n := locks.writesAfter.Load(); n != 0 {
		t.Errorf("%d store writes after the key's lock was lost", n)
	}
}

// A node that loses the key's lock part-way through a distribution makes
// no further change in the cloud and does not write the distribution's
// record, since another node may hold the lock now; the retry job later
// finishes the distribution.
func TestDistributionStopsWhenTheKeyLockIsLost(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e, locks, arm, afterLoss := lossyEnv(t, c)
	c.write(t, ctx, e.m, mount, "aws", nil)
	if _, err := e.m.Create(ctx, mount, "k", "aes256-gcm96"); err != nil {
		t.Fatal(err)
	}
	arm()
	_, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "aws", Key: "k", Purposes: []string{"encrypt", "decrypt"}})
	if !errors.Is(err, errLockLost) {
		t.Fatalf("a distribution that lost the key's lock part-way: %v, want the lock's loss", err)
	}
	noChangesAfterLoss(t, locks, afterLoss())
	d, err := e.m.ReadDistribution(ctx, mount, "aws", "k")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != StatusDistributing || len(d.Versions) != 1 || d.Versions[0].Imported {
		t.Fatalf("the record after the loss: %+v (want it as saved before the import)", d)
	}
	// Left without an error, as by a node that died: the retry job takes it
	// once RetryAfter has passed.
	ageDistributions(t, e, RetryAfter)
	if r, err := e.m.RetryDistributions(ctx); err != nil || r.Done != 1 {
		t.Fatalf("retry pass: %+v, %v", r, err)
	}
	e.expect(t, c, "aws", "k", map[int]bool{1: true}, 1)
}

// A rotation's push that loses the key's lock while it syncs the first of
// the key's clouds leaves the others alone: no cloud call, no record
// written (the rotation marked them all for the retry job).
func TestRotationPushStopsWhenTheKeyLockIsLost(t *testing.T) {
	ctx := context.Background()
	a, b := awsCloud(t), awsCloud(t)
	e, locks, arm, afterLoss := lossyEnv(t, a)
	a.write(t, ctx, e.m, mount, "a", nil)
	b.write(t, ctx, e.m, mount, "b", nil)
	distributeAES(t, e, "a", "k")
	if _, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "b", Key: "k", Purposes: []string{"encrypt", "decrypt"}}); err != nil {
		t.Fatal(err)
	}
	bCalls := b.awsFake.Calls()
	arm()
	_, err := e.m.Rotate(ctx, mount, "k")
	if !errors.Is(err, errLockLost) {
		t.Fatalf("a rotation whose push lost the key's lock: %v, want the lock's loss", err)
	}
	noChangesAfterLoss(t, locks, afterLoss())
	if n := b.awsFake.Calls() - bCalls; n != 0 {
		t.Errorf("%d calls reached the second cloud after the key's lock was lost", n)
	}
	ageDistributions(t, e, RetryAfter)
	if r, err := e.m.RetryDistributions(ctx); err != nil || r.Done != 2 {
		t.Fatalf("retry pass: %+v, %v", r, err)
	}
	e.expect(t, a, "a", "k", map[int]bool{1: true, 2: true}, 2)
	e.expect(t, b, "b", "k", map[int]bool{1: true, 2: true}, 2)
}
