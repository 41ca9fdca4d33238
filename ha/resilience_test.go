package ha_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/ha"
	"github.com/keyhold/keyhold/store"
)

// Failures of the database link and of the callers, seen from the cluster.

// A clean Close gives the leader lease up, so that another node leads at
// once instead of after the lease's ttl.
func TestCloseReleasesTheLeaderLease(t *testing.T) {
	url := schema(t)
	sa := nodeStore(t, url)
	a := ha.New(ha.Options{Store: sa, Name: "a", LeaseTTL: 10 * time.Second})
	ctx := t.Context()
	if err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	a.Run(ctx)
	for deadline := time.Now().Add(5 * time.Second); !a.Leading(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a does not lead")
		}
	}
	a.Close()
	l, err := sa.GetLease(ctx, "leader")
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(l.ExpiresAt); left > time.Second {
		t.Fatalf("after a clean Close the leader lease runs %v more", left.Round(time.Millisecond))
	}
}

// A handler runs to its end even when the request whose Sync handed it a
// change goes away meanwhile: the change is not handed over again.
func TestChangeAppliedWhenTheSyncCallerGoesAway(t *testing.T) {
	url := schema(t)
	sa, sb := nodeStore(t, url), nodeStore(t, url)
	b := ha.New(ha.Options{Store: sb, Name: "b"})
	var mu sync.Mutex
	applied := map[string]bool{}
	var cancelCaller context.CancelFunc
	// As the mount table's handler does: read the store with the context given.
	b.Subscribe("kv:sys/mounts/", func(ctx context.Context, paths []string) error {
		mu.Lock()
		if cancelCaller != nil {
			cancelCaller() // the REST client disconnects now
		}
		mu.Unlock()
		err := sb.View(ctx, func(tx store.Tx) error { _, err := tx.List(ctx, "sys/mounts/"); return err })
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Logf("reload of %q failed: %v", paths, err)
			return err
		}
		for _, p := range paths {
			applied[p] = true
		}
		return nil
	})
	ctx := t.Context()
	startNode(t, b)
	put(t, sa, "sys/mounts/one")
	caller, cancel := context.WithCancel(ctx)
	mu.Lock()
	cancelCaller = cancel
	mu.Unlock()
	_ = b.Sync(caller)
	mu.Lock()
	cancelCaller = nil
	mu.Unlock()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		ok := applied["kv:sys/mounts/one"]
		mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the change was never applied: its handler failed with the caller's cancelled context")
		}
	}
}

// A Sync before the node is ready (its listeners come up before every
// handler is subscribed) must not read changes that no handler would get.
func TestSyncBeforeRunReadsNothing(t *testing.T) {
	url := schema(t)
	sa, sb := nodeStore(t, url), nodeStore(t, url)
	b := ha.New(ha.Options{Store: sb, Name: "b"})
	ctx := t.Context()
	if err := b.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	put(t, sa, "kmip/m/revoked/1234") // another node revokes a certificate
	if err := b.Sync(ctx); err == nil {
		t.Fatal("a Sync before the node was ready succeeded")
	}
	rb := newRecorder()
	b.Subscribe("kv:kmip/", rb.handle)
	b.Run(ctx)
	t.Cleanup(b.Close)
	select {
	case <-rb.ch:
	case <-time.After(2 * time.Second):
		t.Fatal("the revocation never reached the handler: the early Sync consumed it")
	}
}

// blackhole forwards TCP to the database until frozen; then it forwards
// nothing and closes nothing, as when a node's host dies or is cut off
// (no FIN, no RST reaches the database).
type blackhole struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen chan struct{}
	conns  []net.Conn
	closed bool
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, frozen: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			b.mu.Lock()
			if b.closed { // accepted while close ran
				b.mu.Unlock()
				c.Close()
				d.Close()
				return
			}
			b.conns = append(b.conns, c, d)
			b.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					select {
					case <-b.frozen:
						return // swallow, keep both sockets open
					default:
					}
					if n > 0 {
						dst.Write(buf[:n])
					}
					if err != nil {
						dst.Close()
						return
					}
				}
			}
			go pipe(d, c)
			go pipe(c, d)
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *blackhole) freeze() { close(b.frozen) }

func (b *blackhole) close() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, c := range b.conns {
		c.Close()
	}
}

// withParam adds a run-time parameter to a connection URL.
func withParam(url, name, value string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + name + "=" + value
}

// throughBlackhole returns url going through a link that can be cut.
func throughBlackhole(t *testing.T, url string) (string, *blackhole) {
	port := strconv.Itoa(srv.Port)
	bh := newBlackhole(t, "127.0.0.1:"+port)
	_, bhPort, _ := net.SplitHostPort(bh.ln.Addr().String())
	return strings.Replace(url, ":"+port+"/", ":"+bhPort+"/", 1), bh
}

// A node whose host dies inside an Update (no FIN reaches the database)
// holds the writers' lock only until its idle transaction is ended: the
// store sets idle_in_transaction_session_timeout (30 s by default; 2 s
// here through the URL, which may override it).
func TestDeadHostInsideAnUpdateReleasesTheWriters(t *testing.T) {
	url := schema(t)
	cut, bh := throughBlackhole(t, withParam(url, "idle_in_transaction_session_timeout", "2000"))
	sa := nodeStore(t, cut)
	sb := nodeStore(t, url)
	release := make(chan struct{})
	t.Cleanup(func() { bh.close(); close(release) })
	ctx := t.Context()
	inTx := make(chan struct{})
	go sa.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.Put(ctx, "a", []byte("1")); err != nil {
			return err
		}
		close(inTx)
		<-release // node a's host is gone
		return nil
	})
	<-inTx
	bh.freeze()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	start := time.Now()
	if err := sb.Update(wctx, func(tx store.Tx) error { return tx.Put(wctx, "b", []byte("1")) }); err != nil {
		t.Fatalf("node b could not write for %v while node a's dead host held the writers' lock: %v", time.Since(start).Round(time.Second), err)
	}
}

// When the database stops answering (no RST), the watcher's read is
// bounded and a guarded request fails within its own time instead of
// waiting for the watcher.
func TestGuardIsBoundedWhenTheDatabaseStopsAnswering(t *testing.T) {
	url := schema(t)
	cut, bh := throughBlackhole(t, url)
	sb := nodeStore(t, cut)
	t.Cleanup(bh.close)
	b := ha.New(ha.Options{Store: sb, Name: "b", MaxStaleness: 500 * time.Millisecond})
	ctx := t.Context()
	if err := b.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	b.Run(ctx)
	time.Sleep(300 * time.Millisecond)
	bh.freeze()
	time.Sleep(time.Second) // the watcher is inside a read that gets no answer
	done := make(chan error, 1)
	go func() {
		gctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done <- b.Guard(gctx)
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Guard let a request through without the database")
		}
		if errors.Is(err, context.Canceled) {
			t.Fatalf("Guard: %v", err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("Guard with a 2 s context has not returned after 4 s")
	}
}

// A handler reading from a database that stopped answering does not hold
// shutdown: Close ends the handler's context, and the change stays to be
// handed over again.
func TestCloseIsNotHeldByAHandlerOnASilentDatabase(t *testing.T) {
	url := schema(t)
	cut, bh := throughBlackhole(t, url)
	sa, sb := nodeStore(t, url), nodeStore(t, cut)
	t.Cleanup(bh.close) // before the store closes: its connection is stuck
	b := ha.New(ha.Options{Store: sb, Name: "b", MaxStaleness: 500 * time.Millisecond})
	entered, frozen := make(chan struct{}, 1), make(chan struct{})
	b.Subscribe("kv:sys/mounts/", func(ctx context.Context, paths []string) error {
		entered <- struct{}{}
		<-frozen
		return sb.View(ctx, func(tx store.Tx) error { _, err := tx.List(ctx, "sys/mounts/"); return err })
	})
	ctx := t.Context()
	if err := b.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	b.Run(ctx)
	put(t, sa, "sys/mounts/x")
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler was never called")
	}
	bh.freeze()
	close(frozen)
	closed := make(chan struct{})
	start := time.Now()
	go func() { b.Close(); close(closed) }()
	select {
	case <-closed:
		t.Logf("Close returned after %v", time.Since(start))
	case <-time.After(20 * time.Second):
		// About 6 s are expected: the lease's release and the registry's
		// removal each wait 3 s for the silent database.
		bh.close()
		<-closed
		t.Fatal("Close waited more than 20 s for a handler reading from a silent database")
	}
}

// slowLink forwards TCP to the database, delaying every chunk the database
// sends by what delay holds: a link that can be made slow.
func slowLink(t *testing.T, target string, delay *atomic.Int64) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			pipe := func(dst, src net.Conn, slow bool) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 {
						if slow {
							time.Sleep(time.Duration(delay.Load()))
						}
						dst.Write(buf[:n])
					}
					if err != nil {
						dst.Close()
						return
					}
				}
			}
			go pipe(s, c, false)
			go pipe(c, s, true)
		}
	}()
	return ln.Addr().String()
}

// On a link slower than the guard's staleness bound, the watcher still
// catches the node up: its reads are not held to that bound.
func TestWatcherCatchesUpOverASlowLink(t *testing.T) {
	url := schema(t)
	port := strconv.Itoa(srv.Port)
	var delay atomic.Int64
	addr := slowLink(t, "127.0.0.1:"+port, &delay)
	_, slowPort, _ := net.SplitHostPort(addr)
	sa, sb := nodeStore(t, url), nodeStore(t, strings.Replace(url, ":"+port+"/", ":"+slowPort+"/", 1))
	b := ha.New(ha.Options{Store: sb, Name: "b", MaxStaleness: 200 * time.Millisecond})
	rb := newRecorder()
	b.Subscribe("kv:", rb.handle)
	startNode(t, b)
	t.Cleanup(func() { delay.Store(0) }) // before Close: the link is fast again
	delay.Store(int64(1200 * time.Millisecond))
	put(t, sa, "sys/policy/p")
	start := time.Now()
	defer func() { t.Logf("caught up after %v", time.Since(start)) }()
	select {
	case <-rb.ch:
	case <-time.After(40 * time.Second):
		t.Fatal("the watcher never caught up over a link slower than the staleness bound")
	}
}

// A node cut off from the database (no answer, no FIN) learns that the
// lock it holds can no longer be counted on within about 3 s (a probe a
// second, each given 2 s), without asking; Check and Unlock then return at
// once.
func TestLockLostWhenTheDatabaseStopsAnswering(t *testing.T) {
	cut, bh := throughBlackhole(t, schema(t))
	st := nodeStore(t, cut)
	t.Cleanup(bh.close) // before the store closes: its connections are stuck
	ctx := t.Context()
	held, err := st.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	bh.freeze()
	start := time.Now()
	select {
	case <-held.Lost():
		t.Logf("lost after %v", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("10 s after the database stopped answering, the holder still counts on its lock")
	}
	done := make(chan error, 1)
	go func() {
		err := held.Check(ctx)
		held.Unlock()
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrLockLost) {
			t.Fatalf("check of the lost lock: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Check and Unlock of a lost lock wait for the silent database")
	}
}

// countingHandler counts the log records whose message contains a text.
type countingHandler struct {
	slog.Handler
	text string
	n    *atomic.Int32
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.text) {
		h.n.Add(1)
	}
	return nil
}

// On a database that stops answering, each renewal of the leader lease
// gives up within the campaign's period and the next one tries again,
// instead of the first waiting until TCP gives the link up.
func TestLeaseRenewalIsBoundedWhenTheDatabaseStopsAnswering(t *testing.T) {
	cut, bh := throughBlackhole(t, schema(t))
	st := nodeStore(t, cut)
	t.Cleanup(bh.close) // before the store closes: its connections are stuck
	var renewals atomic.Int32
	log := slog.New(countingHandler{Handler: slog.DiscardHandler, text: "cannot renew the leader lease", n: &renewals})
	a := ha.New(ha.Options{Store: st, Name: "a", LeaseTTL: time.Second, Logger: log})
	startNode(t, a)
	for deadline := time.Now().Add(5 * time.Second); !a.Leading(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a does not lead")
		}
	}
	bh.freeze()
	time.Sleep(1500 * time.Millisecond)
	if n := renewals.Load(); n < 2 {
		t.Fatalf("%d failed renewals in 1.5 s of a silent database, with a renewal due every 200 ms", n)
	}
	if a.Leading() {
		t.Fatal("still leading past the lease's deadline")
	}
}
