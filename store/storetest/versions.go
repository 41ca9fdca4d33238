package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/keyhold/keyhold/store"
)

func (s suite) versions(t *testing.T) {
	t.Run("add", s.addVersion)
	t.Run("get", s.getVersion)

	t.Run("ok ascending order", func(t *testing.T) {
		st := s.open(t)
		createKeys(t, st, newKey("m1", "k1", "id-1"), newKey("m1", "k2", "id-2"))
		want := []*store.KeyVersion{newVersion("id-1", 1), newVersion("id-1", 2), newVersion("id-1", 9), newVersion("id-1", 10)}
		addVersions(t, st, want[1], want[3])
		addVersions(t, st, newVersion("id-2", 5))
		addVersions(t, st, want[2], want[0])
		got := versionsOf(t, st, "id-1")
		if nums, wantNums := versionNumbers(got), []int{1, 2, 9, 10}; !slices.Equal(nums, wantNums) {
			t.Fatalf("versions: got %v, want %v", nums, wantNums)
		}
		for i := range got {
			sameVersion(t, &got[i], want[i])
		}
	})

	t.Run("ok no versions", func(t *testing.T) {
		st := s.open(t)
		createKeys(t, st, newKey("m1", "k1", "id-1"))
		if got := versionsOf(t, st, "id-1"); len(got) != 0 {
			t.Fatalf("versions: got %v, want none", versionNumbers(got))
		}
	})

	t.Run("ok round trip", func(t *testing.T) {
		tests := []struct {
			name string
			v    *store.KeyVersion
		}{
			{name: "ok binary blob and public key", v: &store.KeyVersion{Version: 1, Blob: allBytes(), PublicKey: allBytes()[7:300], CreatedAt: base()}},
			{name: "ok no public key", v: &store.KeyVersion{Version: 1, Blob: []byte{0, 1, 2}, CreatedAt: base()}},
			{name: "ok large blob", v: &store.KeyVersion{Version: 1, Blob: slices.Repeat(allBytes(), 256), CreatedAt: base()}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st := s.open(t)
				createKeys(t, st, newKey("m1", "k1", "id-1"))
				tt.v.KeyID = "id-1"
				addVersions(t, st, tt.v)
				got := versionsOf(t, st, "id-1")
				if len(got) != 1 {
					t.Fatalf("versions: got %v, want [1]", versionNumbers(got))
				}
				sameVersion(t, &got[0], tt.v)
				var one *store.KeyVersion
				view(t, st, func(ctx context.Context, tx store.Tx) (err error) {
					one, err = tx.GetKeyVersion(ctx, "id-1", 1)
					return err
				})
				sameVersion(t, one, tt.v)
			})
		}
	})

	t.Run("ok delete key removes versions", func(t *testing.T) {
		st := s.open(t)
		createKeys(t, st, newKey("m1", "k1", "id-1"), newKey("m1", "k2", "id-2"))
		addVersions(t, st, newVersion("id-1", 1), newVersion("id-1", 2), newVersion("id-2", 1))
		update(t, st, func(ctx context.Context, tx store.Tx) error { return tx.DeleteKey(ctx, "m1", "k1") })

		if got := versionsOf(t, st, "id-1"); len(got) != 0 {
			t.Fatalf("versions of deleted key: got %v, want none", versionNumbers(got))
		}
		ctx := t.Context()
		err := st.View(ctx, func(tx store.Tx) error {
			_, err := tx.GetKeyVersion(ctx, "id-1", 1)
			return err
		})
		checkErr(t, "get version of deleted key", err, store.ErrNotFound)
		if got := versionsOf(t, st, "id-2"); !slices.Equal(versionNumbers(got), []int{1}) {
			t.Fatalf("versions of other key: got %v, want [1]", versionNumbers(got))
		}

		// The same ID again starts without versions: adding version 1 works.
		createKeys(t, st, newKey("m1", "k1", "id-1"))
		v := newVersion("id-1", 1)
		v.Blob = []byte("new blob")
		addVersions(t, st, v)
		got := versionsOf(t, st, "id-1")
		if len(got) != 1 {
			t.Fatalf("versions of recreated key: got %v, want [1]", versionNumbers(got))
		}
		sameVersion(t, &got[0], v)
	})
}

func (s suite) addVersion(t *testing.T) {
	tests := []struct {
		name    string
		v       *store.KeyVersion
		wantErr error
	}{
		{name: "ok next version", v: newVersion("id-1", 2)},
		{name: "ok same version of other key", v: newVersion("id-2", 1)},
		{name: "ok gap", v: newVersion("id-1", 5)},
		{name: "fail duplicate version", v: newVersion("id-1", 1), wantErr: store.ErrExists},
		{name: "fail missing key", v: newVersion("id-9", 1), wantErr: store.ErrNotFound},
		{name: "fail key id is case sensitive", v: newVersion("ID-1", 2), wantErr: store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := s.open(t)
			createKeys(t, st, newKey("m1", "k1", "id-1"), newKey("m1", "k2", "id-2"))
			first := newVersion("id-1", 1)
			addVersions(t, st, first)

			v := *tt.v
			v.Blob = []byte("the new blob")
			ctx := t.Context()
			err := st.Update(ctx, func(tx store.Tx) error { return tx.AddKeyVersion(ctx, &v) })
			checkErr(t, "add key version", err, tt.wantErr)

			wantFirst := []*store.KeyVersion{first}
			if tt.wantErr == nil && v.KeyID == "id-1" {
				wantFirst = append(wantFirst, &v)
			}
			got := versionsOf(t, st, "id-1")
			if len(got) != len(wantFirst) {
				t.Fatalf("versions of id-1: got %v, want %d versions", versionNumbers(got), len(wantFirst))
			}
			for i := range got {
				sameVersion(t, &got[i], wantFirst[i])
			}
			if tt.wantErr == store.ErrNotFound {
				if got := versionsOf(t, st, v.KeyID); len(got) != 0 {
					t.Fatalf("versions of missing key: got %v, want none", versionNumbers(got))
				}
			}
		})
	}
}

func (s suite) getVersion(t *testing.T) {
	st := s.open(t)
	createKeys(t, st, newKey("m1", "k1", "id-1"), newKey("m1", "k2", "id-2"))
	addVersions(t, st, newVersion("id-1", 1), newVersion("id-1", 2), newVersion("id-1", 3), newVersion("id-2", 1))

	tests := []struct {
		name    string
		keyID   string
		version int
		wantErr error
	}{
		{name: "ok first", keyID: "id-1", version: 1},
		{name: "ok middle", keyID: "id-1", version: 2},
		{name: "ok other key", keyID: "id-2", version: 1},
		{name: "fail missing version", keyID: "id-1", version: 4, wantErr: store.ErrNotFound},
		{name: "fail version of other key", keyID: "id-2", version: 2, wantErr: store.ErrNotFound},
		{name: "fail version zero", keyID: "id-1", version: 0, wantErr: store.ErrNotFound},
		{name: "fail missing key", keyID: "id-9", version: 1, wantErr: store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *store.KeyVersion
			ctx := t.Context()
			err := st.View(ctx, func(tx store.Tx) (err error) {
				got, err = tx.GetKeyVersion(ctx, tt.keyID, tt.version)
				return err
			})
			checkErr(t, "get key version", err, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			sameVersion(t, got, newVersion(tt.keyID, tt.version))
		})
	}
}
