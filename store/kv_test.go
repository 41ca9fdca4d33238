package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/sqlite"
)

func TestConfiguredMounts(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	err = st.Update(ctx, func(tx store.Tx) error {
		for _, p := range []string{"kmip/m1/config", "kmip/m1/ca", "kmip/m2/config", "kmip/m3/ca", "kmip/m4/scope/s/config", "xks/m5/config"} {
			if err := tx.Put(ctx, p, []byte("{}")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.ConfiguredMounts(ctx, st, "kmip/")
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("kmip mounts %v, %v; want m1 and m2 (m3 has no config, m4's is a scope's)", got, err)
	}
}

func TestJSONRecords(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	type rec struct {
		N int    `json:"n"`
		S string `json:"s"`
	}
	err = st.Update(ctx, func(tx store.Tx) error {
		if err := store.PutJSON(ctx, tx, "x/good", rec{N: 7, S: "seven"}); err != nil {
			return err
		}
		return tx.Put(ctx, "x/bad", []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.View(ctx, func(tx store.Tx) error {
		var r rec
		if err := store.GetJSON(ctx, tx, "x/good", &r); err != nil || r != (rec{7, "seven"}) {
			t.Errorf("round trip: %+v, %v", r, err)
		}
		if err := store.GetJSON(ctx, tx, "x/missing", &r); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing record: %v", err)
		}
		if err := store.GetJSON(ctx, tx, "x/bad", &r); err == nil || !strings.Contains(err.Error(), "x/bad") || fault.KindOf(err) != fault.Internal {
			t.Errorf("corrupt record: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
