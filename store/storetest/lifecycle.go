package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/keyhold/keyhold/store"
)

func (s suite) lifecycle(t *testing.T) {
	t.Run("ok data persists across close and reopen", func(t *testing.T) {
		open := s.newLocation(t)
		st := mustOpen(t, open)
		seed(t, st)
		if err := st.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}

		st = mustOpen(t, open)
		checkSeed(t, st)
		update(t, st, put("second", []byte("2")))
		if err := st.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}

		st = mustOpen(t, open)
		v, err := getValue(t, st, "second")
		checkErr(t, "get after second reopen", err, nil)
		if string(v) != "2" {
			t.Fatalf("get after second reopen: got %q, want %q", v, "2")
		}
		update(t, st, del("second"))
		checkSeed(t, st)
	})

	t.Run("ok rolled back writes do not persist", func(t *testing.T) {
		open := s.newLocation(t)
		st := mustOpen(t, open)
		seed(t, st)
		ctx := t.Context()
		err := st.Update(ctx, func(tx store.Tx) error {
			if err := writeAll(ctx, tx); err != nil {
				t.Errorf("writes: %v", err)
			}
			return errBoom
		})
		checkErr(t, "update", err, errBoom)
		if err := st.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		checkSeed(t, mustOpen(t, open))
	})

	t.Run("fail transactions after close", func(t *testing.T) {
		tests := []struct {
			name string
			run  func(st store.Store, ctx context.Context, fn func(store.Tx) error) error
		}{
			{name: "fail update after close", run: store.Store.Update},
			{name: "fail view after close", run: store.Store.View},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st := s.open(t)
				update(t, st, put("a", []byte("x")))
				if err := st.Close(); err != nil {
					t.Fatalf("close: %v", err)
				}
				called := false
				err := tt.run(st, t.Context(), func(tx store.Tx) error {
					called = true
					return nil
				})
				if !errors.Is(err, store.ErrClosed) {
					t.Errorf("got %v, want ErrClosed", err)
				}
				if called {
					t.Error("fn was called after close")
				}
			})
		}
	})
}
