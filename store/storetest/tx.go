package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/keyhold/keyhold/store"
)

var errBoom = errors.New("storetest: boom")

// seed writes the state that the transaction tests start from: a value at
// "keep", key m/k0 with version 1 and key m/k2 with version 1.
func seed(t *testing.T, st store.Store) {
	t.Helper()
	update(t, st, put("keep", []byte("v0")))
	createKeys(t, st, newKey("m", "k0", "id-0"), newKey("m", "k2", "id-2"))
	addVersions(t, st, newVersion("id-0", 1), newVersion("id-2", 1))
}

// checkSeed fails t unless the state is exactly what seed wrote.
func checkSeed(t *testing.T, st store.Store) {
	t.Helper()
	var paths, keys []string
	view(t, st, func(ctx context.Context, tx store.Tx) (err error) {
		if paths, err = tx.List(ctx, ""); err != nil {
			return err
		}
		keys, err = tx.ListKeys(ctx, "m")
		return err
	})
	if want := []string{"keep"}; !slices.Equal(paths, want) {
		t.Errorf("paths: got %q, want %q", paths, want)
	}
	if want := []string{"k0", "k2"}; !slices.Equal(keys, want) {
		t.Errorf("keys: got %q, want %q", keys, want)
	}
	v, err := getValue(t, st, "keep")
	checkErr(t, "get keep", err, nil)
	if string(v) != "v0" {
		t.Errorf("keep: got %q, want %q", v, "v0")
	}
	for _, k := range []*store.Key{newKey("m", "k0", "id-0"), newKey("m", "k2", "id-2")} {
		got, err := getKey(t, st, k.Mount, k.Name)
		checkErr(t, "get key", err, nil)
		sameKey(t, got, k)
		vs := versionsOf(t, st, k.ID)
		if len(vs) != 1 {
			t.Fatalf("versions of %s: got %v, want [1]", k.ID, versionNumbers(vs))
		}
		sameVersion(t, &vs[0], newVersion(k.ID, 1))
	}
	for _, id := range []string{"id-1", "id-9"} {
		if vs := versionsOf(t, st, id); len(vs) != 0 {
			t.Errorf("versions of %s: got %v, want none", id, versionNumbers(vs))
		}
	}
}

// writeAll makes one write of each kind to the seeded state.
func writeAll(ctx context.Context, tx store.Tx) error {
	if err := tx.Put(ctx, "new", []byte("x")); err != nil {
		return err
	}
	if err := tx.Put(ctx, "keep", []byte("changed")); err != nil {
		return err
	}
	if err := tx.CreateKey(ctx, newKey("m", "k1", "id-1")); err != nil {
		return err
	}
	if err := tx.AddKeyVersion(ctx, newVersion("id-1", 1)); err != nil {
		return err
	}
	if err := tx.AddKeyVersion(ctx, newVersion("id-0", 2)); err != nil {
		return err
	}
	k0 := newKey("m", "k0", "id-0")
	k0.LatestVersion = 2
	if err := tx.UpdateKey(ctx, k0); err != nil {
		return err
	}
	if err := tx.DeleteKey(ctx, "m", "k2"); err != nil {
		return err
	}
	return tx.Delete(ctx, "keep")
}

func (s suite) tx(t *testing.T) {
	t.Run("ok update commits all writes", func(t *testing.T) {
		st := s.open(t)
		seed(t, st)
		update(t, st, writeAll)
		var paths, keys []string
		view(t, st, func(ctx context.Context, tx store.Tx) (err error) {
			if paths, err = tx.List(ctx, ""); err != nil {
				return err
			}
			keys, err = tx.ListKeys(ctx, "m")
			return err
		})
		if want := []string{"new"}; !slices.Equal(paths, want) {
			t.Errorf("paths: got %q, want %q", paths, want)
		}
		if want := []string{"k0", "k1"}; !slices.Equal(keys, want) {
			t.Errorf("keys: got %q, want %q", keys, want)
		}
		if got := versionNumbers(versionsOf(t, st, "id-0")); !slices.Equal(got, []int{1, 2}) {
			t.Errorf("versions of id-0: got %v, want [1 2]", got)
		}
		if got := versionNumbers(versionsOf(t, st, "id-2")); len(got) != 0 {
			t.Errorf("versions of deleted id-2: got %v, want none", got)
		}
	})

	t.Run("fail update rolls back all writes", func(t *testing.T) {
		st := s.open(t)
		seed(t, st)
		ctx := t.Context()
		err := st.Update(ctx, func(tx store.Tx) error {
			if err := writeAll(ctx, tx); err != nil {
				t.Errorf("writes: %v", err)
			}
			return errBoom
		})
		checkErr(t, "update", err, errBoom)
		checkSeed(t, st)
	})

	t.Run("fail update rolls back after a store error", func(t *testing.T) {
		st := s.open(t)
		seed(t, st)
		ctx := t.Context()
		err := st.Update(ctx, func(tx store.Tx) error {
			if err := tx.Put(ctx, "new", []byte("x")); err != nil {
				return err
			}
			if err := tx.CreateKey(ctx, newKey("m", "k1", "id-1")); err != nil {
				return err
			}
			return tx.CreateKey(ctx, newKey("m", "k0", "id-3"))
		})
		checkErr(t, "update", err, store.ErrExists)
		checkSeed(t, st)
	})

	t.Run("ok transaction usable after a store error", func(t *testing.T) {
		st := s.open(t)
		seed(t, st)
		ctx := t.Context()
		err := st.Update(ctx, func(tx store.Tx) error {
			if err := tx.Put(ctx, "before", []byte("x")); err != nil {
				return err
			}
			if err := tx.CreateKey(ctx, newKey("m", "k0", "id-3")); !errors.Is(err, store.ErrExists) {
				t.Errorf("create duplicate key: got %v, want ErrExists", err)
			}
			if err := tx.AddKeyVersion(ctx, newVersion("id-0", 1)); !errors.Is(err, store.ErrExists) {
				t.Errorf("add duplicate version: got %v, want ErrExists", err)
			}
			if err := tx.AddKeyVersion(ctx, newVersion("id-9", 1)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("add version of missing key: got %v, want ErrNotFound", err)
			}
			if err := tx.UpdateKey(ctx, newKey("m", "k9", "id-9")); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("update missing key: got %v, want ErrNotFound", err)
			}
			return tx.Put(ctx, "after", []byte("y"))
		})
		checkErr(t, "update", err, nil)
		for _, p := range []string{"before", "after"} {
			_, err := getValue(t, st, p)
			checkErr(t, "get "+p, err, nil)
		}
	})

	t.Run("ok reads see writes of their transaction", func(t *testing.T) {
		st := s.open(t)
		seed(t, st)
		update(t, st, func(ctx context.Context, tx store.Tx) error {
			if err := writeAll(ctx, tx); err != nil {
				return err
			}
			if _, err := tx.Get(ctx, "keep"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("get deleted path: got %v, want ErrNotFound", err)
			}
			if v, err := tx.Get(ctx, "new"); err != nil || string(v) != "x" {
				t.Errorf("get new path: got %q, %v, want %q", v, err, "x")
			}
			if _, err := tx.GetKey(ctx, "m", "k2"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("get deleted key: got %v, want ErrNotFound", err)
			}
			if k, err := tx.GetKey(ctx, "m", "k0"); err != nil || k.LatestVersion != 2 {
				t.Errorf("get updated key: got %+v, %v, want latest version 2", k, err)
			}
			if n, err := tx.CountKeys(ctx, "m"); err != nil || n != 2 {
				t.Errorf("count keys: got %d, %v, want 2", n, err)
			}
			if vs, err := tx.KeyVersions(ctx, "id-1"); err != nil || len(vs) != 1 {
				t.Errorf("versions of new key: got %d, %v, want 1", len(vs), err)
			}
			if _, err := tx.GetKeyVersion(ctx, "id-0", 2); err != nil {
				t.Errorf("get new version: %v", err)
			}
			return nil
		})
	})

	t.Run("fail update returns the error of fn", func(t *testing.T) {
		st := s.open(t)
		err := st.Update(t.Context(), func(store.Tx) error { return errBoom })
		checkErr(t, "update", err, errBoom)
	})

	t.Run("fail view returns the error of fn", func(t *testing.T) {
		st := s.open(t)
		err := st.View(t.Context(), func(store.Tx) error { return errBoom })
		checkErr(t, "view", err, errBoom)
	})

	t.Run("fail update with canceled context", func(t *testing.T) {
		st := s.open(t)
		seed(t, st)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := st.Update(ctx, func(tx store.Tx) error { return writeAll(ctx, tx) })
		if err == nil {
			t.Fatal("update with canceled context: got nil error")
		}
		checkSeed(t, st)
	})

	s.writesInView(t)
}

func (s suite) writesInView(t *testing.T) {
	tests := []struct {
		name  string
		write func(ctx context.Context, tx store.Tx) error
	}{
		{name: "fail put in view", write: put("new", []byte("x"))},
		{name: "fail put existing in view", write: put("keep", []byte("changed"))},
		{name: "fail delete in view", write: del("keep")},
		{name: "fail create key in view", write: func(ctx context.Context, tx store.Tx) error {
			return tx.CreateKey(ctx, newKey("m", "k1", "id-1"))
		}},
		{name: "fail update key in view", write: func(ctx context.Context, tx store.Tx) error {
			k := newKey("m", "k0", "id-0")
			k.LatestVersion = 2
			return tx.UpdateKey(ctx, k)
		}},
		{name: "fail delete key in view", write: func(ctx context.Context, tx store.Tx) error {
			return tx.DeleteKey(ctx, "m", "k2")
		}},
		{name: "fail add key version in view", write: func(ctx context.Context, tx store.Tx) error {
			return tx.AddKeyVersion(ctx, newVersion("id-0", 2))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := s.open(t)
			seed(t, st)
			ctx := t.Context()
			var writeErr error
			err := st.View(ctx, func(tx store.Tx) error {
				writeErr = tt.write(ctx, tx)
				return nil
			})
			if writeErr == nil {
				t.Error("write in view: got nil error")
			}
			if err != nil {
				t.Logf("view: %v", err)
			}
			checkSeed(t, st)
		})
	}
}
