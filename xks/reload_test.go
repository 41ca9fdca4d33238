package xks

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/store"
)

// flakyStore cancels the caller's context once a write is stored (a client
// that went away), or fails reads while failViews is set.
type flakyStore struct {
	store.Store
	cancelAfterUpdate atomic.Pointer[context.CancelFunc]
	failViews         atomic.Bool
	// hold, while set, makes reads wait until it is closed (a store that
	// hangs); held counts the reads waiting.
	hold atomic.Pointer[chan struct{}]
	held atomic.Int32
	// holdAfter does the same once a read has been done: its caller holds
	// what it read while the store moves on.
	holdAfter atomic.Pointer[chan struct{}]
	heldAfter atomic.Int32
}

func (s *flakyStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	err := s.Store.Update(ctx, fn)
	if c := s.cancelAfterUpdate.Swap(nil); c != nil {
		(*c)()
	}
	return err
}

func (s *flakyStore) View(ctx context.Context, fn func(store.Tx) error) error {
	if s.failViews.Load() {
		return errors.New("the store cannot be read")
	}
	wait(ctx, &s.hold, &s.held)
	err := s.Store.View(ctx, fn)
	wait(ctx, &s.holdAfter, &s.heldAfter)
	return err
}

// wait waits, counted in held, until the channel in hold (if any) is closed
// or ctx ends.
func wait(ctx context.Context, hold *atomic.Pointer[chan struct{}], held *atomic.Int32) {
	if h := hold.Load(); h != nil {
		held.Add(1)
		select {
		case <-*h:
		case <-ctx.Done():
		}
		held.Add(-1)
	}
}

// A revocation or a key disabled by an administrator is stored, and the
// data plane must not go on with the old state: not when the caller goes
// away after the write, and not when the reload fails (the mount then
// refuses every request until a reload succeeds).
func TestAdminChangeTakesEffectOrTheMountRefuses(t *testing.T) {
	e, fs := flakyEnv(t)
	bg := context.Background()
	second, err := e.m.GenerateCredential(bg, e.mount, testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	encrypt := func(akid, secret string) (int, []byte) {
		return e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", false), akid, secret)
	}

	t.Run("fail a revoked credential, the caller gone after the write", func(t *testing.T) {
		ctx, cancel := context.WithCancel(bg)
		fs.cancelAfterUpdate.Store(&cancel)
		if err := e.m.RevokeCredential(ctx, e.mount, second.AccessKeyID); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		st, body := encrypt(second.AccessKeyID, second.SecretAccessKey)
		wantError(t, st, body, AuthenticationFailedException)
	})

	t.Run("fail a disabled key while the reload fails, then after it", func(t *testing.T) {
		fs.failViews.Store(true)
		off := false
		if _, err := e.m.UpdateKey(bg, e.mount, "foo", KeyUpdate{Enabled: &off}); err == nil {
			t.Fatal("the update reported success though its reload failed")
		}
		st, body := encrypt(e.akid, e.secret)
		wantError(t, st, body, DependencyTimeoutException)
		fs.failViews.Store(false)
		st, body = untilServed(10*time.Second, func() (int, []byte) { return encrypt(e.akid, e.secret) })
		wantError(t, st, body, InvalidStateException)
	})

	t.Run("ok the key enabled again", func(t *testing.T) {
		on := true
		if _, err := e.m.UpdateKey(bg, e.mount, "foo", KeyUpdate{Enabled: &on}); err != nil {
			t.Fatal(err)
		}
		st, body := encrypt(e.akid, e.secret)
		var out EncryptResponse
		wantOK(t, st, body, &out)
	})
}

// A change another node made (here a revoked credential) that cannot be
// loaded at once, because an administrative call holds the manager, makes
// the mount refuse requests until it is loaded: the old state must not
// serve what the store no longer grants.
func TestOtherNodesChangeWaitsClosed(t *testing.T) {
	e := newTestEnv(t, ConfigInput{})
	ctx := context.Background()
	second, err := e.m.GenerateCredential(ctx, e.mount, testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	// What the other node commits: the credential is gone from the store.
	if err := e.m.o.Store.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, kvPath(e.mount, "cred", second.AccessKeyID)) }); err != nil {
		t.Fatal(err)
	}
	encrypt := func() (int, []byte) {
		return e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", false), second.AccessKeyID, second.SecretAccessKey)
	}
	e.m.mu.Lock() // an administrative call in progress
	e.m.Changed(ctx, []string{"kv:" + kvPath(e.mount, "cred", second.AccessKeyID)})
	st, body := encrypt()
	e.m.mu.Unlock()
	wantError(t, st, body, DependencyTimeoutException)
	st, body = untilServed(10*time.Second, encrypt)
	wantError(t, st, body, AuthenticationFailedException)
}

// While a stale mount's retry waits on a store that hangs, the manager's
// lock stays free for writes, listener changes and other nodes' changes;
// the mount refuses requests meanwhile and recovers once the store answers.
func TestStaleRetryDoesNotHoldTheLock(t *testing.T) {
	e, fs := flakyEnv(t)
	release := staleRetryHeld(t, e, fs, "foo", false)
	done := make(chan []string, 1)
	go func() { done <- e.m.Addrs(e.mount) }()
	select {
	case addrs := <-done:
		if len(addrs) != 1 {
			t.Fatalf("addresses %v", addrs)
		}
	case <-time.After(3 * time.Second):
		close(release)
		t.Fatal("the manager's lock is held while the retry waits for the store")
	}
	st, body := e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", false), e.akid, e.secret)
	wantError(t, st, body, DependencyTimeoutException)
	fs.hold.Store(nil)
	close(release)
	st, body = untilServed(10*time.Second, func() (int, []byte) {
		return e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", false), e.akid, e.secret)
	})
	// The key was disabled by the update the retry caught up with.
	wantError(t, st, body, InvalidStateException)
}

// A stale mount's retry that read the store before a change committed, and
// whose install would follow that change's failed reload, must not install
// what it read: the change (here a revoked credential) would be undone
// until the next reload. It reads again instead.
func TestStaleRetryDropsAReadOlderThanAChange(t *testing.T) {
	e, fs := flakyEnv(t)
	bg := context.Background()
	second, err := e.m.GenerateCredential(bg, e.mount, testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	// The mount goes stale; its retry reads the store (the credential
	// still in it) and is held with what it read.
	release := staleRetryHeld(t, e, fs, "impotent_key", true)
	fs.holdAfter.Store(nil)
	// Meanwhile the credential is revoked, and that reload fails too.
	fs.failViews.Store(true)
	if err := e.m.RevokeCredential(bg, e.mount, second.AccessKeyID); err == nil {
		t.Fatal("the revocation reported success though its reload failed")
	}
	fs.failViews.Store(false)
	close(release)
	st, body := untilServed(10*time.Second, func() (int, []byte) {
		return e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", false), second.AccessKeyID, second.SecretAccessKey)
	})
	wantError(t, st, body, AuthenticationFailedException)
}

// blockingHandler holds the retry at its "reloaded" log line, after it has
// let go of the manager's lock.
type blockingHandler struct {
	slog.Handler
	entered, release chan struct{}
	once             atomic.Bool
}

func (h *blockingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "were reloaded") && h.once.CompareAndSwap(false, true) {
		close(h.entered)
		<-h.release
	}
	return nil
}

func (h *blockingHandler) Enabled(context.Context, slog.Level) bool { return true }

// A reload that fails while the previous retry is on its way out starts a
// retry of its own: the mount does not stay refusing once the store is back.
func TestRetryNotLostWhileTheLastOneExits(t *testing.T) {
	fastRetry(t)
	h := &blockingHandler{Handler: slog.DiscardHandler, entered: make(chan struct{}), release: make(chan struct{})}
	var fs *flakyStore
	e := newTestEnvWith(t, ConfigInput{}, true, func(o *Options) { fs = &flakyStore{Store: o.Store}; o.Store = fs; o.Logger = slog.New(h) })
	bg := context.Background()
	on, off := true, false
	fs.failViews.Store(true)
	if _, err := e.m.UpdateKey(bg, e.mount, "foo", KeyUpdate{Enabled: &off}); err == nil {
		t.Fatal("the update reported success though its reload failed")
	}
	fs.failViews.Store(false)
	<-h.entered // the retry installed the state and is logging, lock released
	fs.failViews.Store(true)
	if _, err := e.m.UpdateKey(bg, e.mount, "foo", KeyUpdate{Enabled: &on}); err == nil {
		t.Fatal("the second update reported success though its reload failed")
	}
	fs.failViews.Store(false)
	close(h.release)
	st, body := untilServed(5*time.Second, func() (int, []byte) {
		return e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", false), e.akid, e.secret)
	})
	wantOK(t, st, body, &EncryptResponse{})
}

// staleRetryHeld disables key with a reload that fails, so the mount goes
// stale, then holds its retry's read of the store: before the read, or
// (after) once done. It returns the channel whose closing lets it go on.
func staleRetryHeld(t *testing.T, e *testEnv, fs *flakyStore, key string, after bool) chan struct{} {
	t.Helper()
	fs.failViews.Store(true)
	off := false
	if _, err := e.m.UpdateKey(context.Background(), e.mount, key, KeyUpdate{Enabled: &off}); err == nil {
		t.Fatal("the update reported success though its reload failed")
	}
	release := make(chan struct{})
	hold, held := &fs.hold, &fs.held
	if after {
		hold, held = &fs.holdAfter, &fs.heldAfter
	}
	hold.Store(&release)
	fs.failViews.Store(false)
	for i := 0; held.Load() == 0; i++ {
		if i == 500 {
			t.Fatal("the retry never read the store")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return release
}

// flakyEnv is a mount over a flakyStore whose stale retries run every 20 ms.
func flakyEnv(t *testing.T) (*testEnv, *flakyStore) {
	fastRetry(t)
	var fs *flakyStore
	e := newTestEnvWith(t, ConfigInput{}, true, func(o *Options) { fs = &flakyStore{Store: o.Store}; o.Store = fs })
	return e, fs
}

// fastRetry makes a stale mount retry its reload every 20 ms for the test.
func fastRetry(t *testing.T) {
	old := reloadRetry
	reloadRetry = 20 * time.Millisecond
	t.Cleanup(func() { reloadRetry = old })
}

// untilServed sends a request until the mount stops refusing it (503) or
// limit has passed, and returns the last answer.
func untilServed(limit time.Duration, send func() (int, []byte)) (int, []byte) {
	deadline := time.Now().Add(limit)
	for {
		st, body := send()
		if st != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return st, body
		}
		time.Sleep(10 * time.Millisecond)
	}
}
