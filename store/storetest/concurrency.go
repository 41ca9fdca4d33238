package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keyhold/keyhold/store"
)

func (s suite) concurrency(t *testing.T) {
	t.Run("ok concurrent rotations", s.concurrentRotations)
	t.Run("ok concurrent creates of one name", s.concurrentCreates)
}

// concurrentRotations has many writers each add the next version of one key
// while readers check that every snapshot is consistent. Writers are
// serialized, so every Update must succeed without retries, and the versions
// must end up exactly 1..n.
func (s suite) concurrentRotations(t *testing.T) {
	const writers, readers = 40, 4
	st := s.open(t)
	k := newKey("m", "k", "id")
	k.LatestVersion, k.MinEnabledVersion = 0, 0
	createKeys(t, st, k)

	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for i := range writers {
		wg.Go(func() {
			err := st.Update(ctx, func(tx store.Tx) error {
				k, err := tx.GetKey(ctx, "m", "k")
				if err != nil {
					return err
				}
				next := k.LatestVersion + 1
				v := newVersion(k.ID, next)
				v.Blob = fmt.Appendf(nil, "writer %d", i)
				if err := tx.AddKeyVersion(ctx, v); err != nil {
					return err
				}
				k.LatestVersion = next
				return tx.UpdateKey(ctx, k)
			})
			if err != nil {
				errs <- fmt.Errorf("writer %d: %w", i, err)
			}
		})
	}

	var done atomic.Bool
	var rg sync.WaitGroup
	for i := range readers {
		rg.Go(func() {
			for first := true; first || !done.Load(); first = false {
				if err := checkSnapshot(ctx, st); err != nil {
					errs <- fmt.Errorf("reader %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	done.Store(true)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	got, err := getKey(t, st, "m", "k")
	checkErr(t, "get key", err, nil)
	if got.LatestVersion != writers {
		t.Errorf("latest version: got %d, want %d", got.LatestVersion, writers)
	}
	vs := versionsOf(t, st, "id")
	want := make([]int, writers)
	for i := range want {
		want[i] = i + 1
	}
	if nums := versionNumbers(vs); !slices.Equal(nums, want) {
		t.Errorf("versions: got %v, want 1..%d", nums, writers)
	}
	seen := make(map[string]bool)
	for _, v := range vs {
		if seen[string(v.Blob)] {
			t.Errorf("blob %q stored twice", v.Blob)
		}
		seen[string(v.Blob)] = true
	}
	if len(seen) != writers {
		t.Errorf("distinct blobs: got %d, want %d", len(seen), writers)
	}
}

// checkSnapshot reads the key and its versions in one View and reports
// whether they disagree.
func checkSnapshot(ctx context.Context, st store.Store) error {
	return st.View(ctx, func(tx store.Tx) error {
		k, err := tx.GetKey(ctx, "m", "k")
		if err != nil {
			return err
		}
		vs, err := tx.KeyVersions(ctx, k.ID)
		if err != nil {
			return err
		}
		if len(vs) != k.LatestVersion {
			return fmt.Errorf("snapshot: latest version %d but %d versions", k.LatestVersion, len(vs))
		}
		for i, v := range vs {
			if v.Version != i+1 {
				return fmt.Errorf("snapshot: versions %v", versionNumbers(vs))
			}
		}
		return nil
	})
}

// concurrentCreates has many writers create the same name with different IDs:
// exactly one must succeed and the others must get ErrExists.
func (s suite) concurrentCreates(t *testing.T) {
	const writers = 20
	st := s.open(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	var created atomic.Int32
	for i := range writers {
		wg.Go(func() {
			err := st.Update(ctx, func(tx store.Tx) error {
				return tx.CreateKey(ctx, newKey("m", "k", fmt.Sprintf("id-%d", i)))
			})
			switch {
			case err == nil:
				created.Add(1)
			case !errors.Is(err, store.ErrExists):
				t.Errorf("writer %d: got %v, want nil or ErrExists", i, err)
			}
		})
	}
	wg.Wait()
	if n := created.Load(); n != 1 {
		t.Errorf("created %d times, want once", n)
	}
	var n int
	view(t, st, func(ctx context.Context, tx store.Tx) (err error) {
		n, err = tx.CountKeys(ctx, "m")
		return err
	})
	if n != 1 {
		t.Errorf("count keys: got %d, want 1", n)
	}
}
