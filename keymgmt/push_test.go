package keymgmt

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/keymgmt/provider"
	"github.com/keyhold/keyhold/store"
)

// flakyBuild returns providers whose next build fails while failNext is set.
func flakyBuild(c *cloud, failNext *atomic.Bool) map[string]provider.Factory {
	provs := providers(c)
	provs[c.provider] = func(ctx context.Context, cfg provider.Config) (provider.Provider, error) {
		if failNext.Swap(false) {
			return nil, errors.New("the client could not be built")
		}
		return c.factory(ctx, cfg)
	}
	return provs
}

// A rotation is committed but its push cannot start: the distribution says
// so, and the retry job brings the cloud up to date.
func TestRotationPushFailureIsRetried(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	var failNext atomic.Bool
	e := newEnv(t, Options{Providers: flakyBuild(c, &failNext)})
	c.write(t, ctx, e.m, mount, "aws", nil)
	distributeAES(t, e, "aws", "k")
	failNext.Store(true)
	if _, err := e.m.Rotate(ctx, mount, "k"); err == nil {
		t.Fatal("a rotation whose push could not start reported success")
	}
	d, err := e.m.ReadDistribution(ctx, mount, "aws", "k")
	if err != nil || d.Status != StatusDistributing || d.Error == "" {
		t.Fatalf("the distribution after the failed push: %+v, %v", d, err)
	}
	r, err := e.m.RetryDistributions(ctx)
	if err != nil || r.Tried != 1 || r.Done != 1 {
		t.Fatalf("retry pass: %+v, %v", r, err)
	}
	e.expect(t, c, "aws", "k", map[int]bool{1: true, 2: true}, 2)
}

// The same for a raised min_enabled_version: version 1 must end disabled
// in the cloud.
func TestMinEnabledPushFailureIsRetried(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	var failNext atomic.Bool
	e := newEnv(t, Options{Providers: flakyBuild(c, &failNext)})
	c.write(t, ctx, e.m, mount, "aws", nil)
	distributeAES(t, e, "aws", "k")
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	failNext.Store(true)
	if _, err := e.m.UpdateKey(ctx, mount, "k", Update{MinEnabledVersion: intp(2)}); err == nil {
		t.Fatal("an update whose push could not start reported success")
	}
	if r, err := e.m.RetryDistributions(ctx); err != nil || r.Done != 1 {
		t.Fatalf("retry pass: %+v, %v", r, err)
	}
	e.expect(t, c, "aws", "k", map[int]bool{1: false, 2: true}, 2)
}

// The node dies between a rotation's commit and its push: after a restart
// the retry job (once RetryAfter has passed) pushes the new version.
func TestRotationCommittedButNeverPushed(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "aws", nil)
	distributeAES(t, e, "aws", "k")
	var sk *store.Key
	if err := e.st.View(ctx, func(tx store.Tx) error {
		var err error
		sk, err = tx.GetKey(ctx, mount, "k")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Rotate's commit, without the push that follows it.
	if done, err := e.m.rotateFrom(ctx, mount, "k", sk); err != nil || !done {
		t.Fatalf("rotateFrom: %v %v", done, err)
	}
	d, err := e.m.ReadDistribution(ctx, mount, "aws", "k")
	if err != nil || d.Status != StatusDistributing {
		t.Fatalf("the distribution after the commit: %+v, %v", d, err)
	}
	// A restart, and a retry pass once the distribution counts as abandoned.
	m2 := NewWithOptions(e.h, e.st, Options{Providers: providers(c)})
	ageDistributions(t, e, RetryAfter)
	if r, err := m2.RetryDistributions(ctx); err != nil || r.Done != 1 {
		t.Fatalf("retry pass: %+v, %v", r, err)
	}
	e.expect(t, c, "aws", "k", map[int]bool{1: true, 2: true}, 2)
}

// ageDistributions moves every distribution's last update back by d, as if
// that long had passed.
func ageDistributions(t *testing.T, e *testEnv, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	err := e.st.Update(ctx, func(tx store.Tx) error {
		paths, err := tx.List(ctx, "keymgmt/")
		if err != nil {
			return err
		}
		for _, p := range paths {
			if parts := strings.Split(p, "/"); len(parts) != 4 || parts[1] != "dist" {
				continue
			}
			var r distRecord
			if err := store.GetJSON(ctx, tx, "keymgmt/"+p, &r); err != nil {
				return err
			}
			r.UpdatedAt = r.UpdatedAt.Add(-d - time.Second)
			if err := store.PutJSON(ctx, tx, "keymgmt/"+p, &r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A min_enabled_version change waits for the key's lock before it commits:
// a sync that holds the lock would otherwise save its record over the
// change's mark on the distribution.
func TestMinEnabledChangeWaitsForTheKeyLock(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "aws", nil)
	distributeAES(t, e, "aws", "k")
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	var sk *store.Key
	if err := e.st.View(ctx, func(tx store.Tx) error {
		var err error
		sk, err = tx.GetKey(ctx, mount, "k")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_, unlock, err := e.m.lock(ctx, sk.ID)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.m.UpdateKey(ctx, mount, "k", Update{MinEnabledVersion: intp(2)})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if got, err := e.m.Get(ctx, mount, "k"); err != nil || got.MinEnabledVersion != 0 {
		t.Fatalf("while another holds the key's lock: min_enabled_version %d, %v", got.MinEnabledVersion, err)
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.expect(t, c, "aws", "k", map[int]bool{1: false, 2: true}, 2)
}
