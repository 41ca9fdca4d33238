package store_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

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
