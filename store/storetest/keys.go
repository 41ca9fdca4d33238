package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/keyhold/keyhold/store"
)

func (s suite) keys(t *testing.T) {
	t.Run("create", s.createKey)
	t.Run("get", s.getKey)
	t.Run("update", s.updateKey)
	t.Run("delete", s.deleteKey)
	t.Run("list and count", s.listKeys)
}

func (s suite) createKey(t *testing.T) {
	existing := newKey("m1", "k1", "id-1")
	tests := []struct {
		name    string
		k       *store.Key
		wantErr error
	}{
		{name: "ok other name", k: newKey("m1", "k2", "id-2")},
		{name: "ok same name in other mount", k: newKey("m2", "k1", "id-2")},
		{name: "ok name differs in case", k: newKey("m1", "K1", "id-2")},
		{name: "ok zero fields", k: &store.Key{Mount: "m1", Name: "k2", ID: "id-2"}},
		{name: "fail duplicate name", k: newKey("m1", "k1", "id-2"), wantErr: store.ErrExists},
		{name: "fail duplicate id in other mount", k: newKey("m2", "k2", "id-1"), wantErr: store.ErrExists},
		{name: "fail duplicate id and name", k: newKey("m1", "k1", "id-1"), wantErr: store.ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := s.open(t)
			createKeys(t, st, existing)
			ctx := t.Context()
			err := st.Update(ctx, func(tx store.Tx) error { return tx.CreateKey(ctx, tt.k) })
			checkErr(t, "create key", err, tt.wantErr)

			got, err := getKey(t, st, existing.Mount, existing.Name)
			checkErr(t, "get existing key", err, nil)
			sameKey(t, got, existing)
			got, err = getKey(t, st, tt.k.Mount, tt.k.Name)
			if tt.wantErr == nil {
				checkErr(t, "get created key", err, nil)
				sameKey(t, got, tt.k)
				return
			}
			if tt.k.Mount != existing.Mount || tt.k.Name != existing.Name {
				checkErr(t, "get refused key", err, store.ErrNotFound)
			}
		})
	}
}

func (s suite) getKey(t *testing.T) {
	k1 := newKey("m1", "k1", "id-1")
	k2 := newKey("m2", "k1", "id-2")
	k2.Type, k2.LatestVersion, k2.MinEnabledVersion, k2.DeletionAllowed = "rsa-2048", 7, 3, false
	k2.CreatedAt, k2.UpdatedAt = base().Add(-48*time.Hour), base().Add(time.Second)
	st := s.open(t)
	createKeys(t, st, k1, k2)

	tests := []struct {
		name        string
		mount, key  string
		want        *store.Key
		wantErr     error
		wantMissing bool
	}{
		{name: "ok get", mount: "m1", key: "k1", want: k1},
		{name: "ok same name in other mount", mount: "m2", key: "k1", want: k2},
		{name: "fail missing name", mount: "m1", key: "k9", wantErr: store.ErrNotFound},
		{name: "fail missing mount", mount: "m3", key: "k1", wantErr: store.ErrNotFound},
		{name: "fail mount is not a prefix", mount: "m", key: "k1", wantErr: store.ErrNotFound},
		{name: "fail name is case sensitive", mount: "m1", key: "K1", wantErr: store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := getKey(t, st, tt.mount, tt.key)
			checkErr(t, "get key", err, tt.wantErr)
			if tt.wantErr == nil {
				sameKey(t, got, tt.want)
			}
		})
	}
}

func (s suite) updateKey(t *testing.T) {
	tests := []struct {
		name    string
		change  func(k *store.Key)
		want    func(k *store.Key) // the expected key after the update, from the original
		wantErr error
	}{
		{
			name: "ok mutable fields replaced",
			change: func(k *store.Key) {
				k.LatestVersion, k.MinEnabledVersion, k.DeletionAllowed = 5, 2, false
				k.UpdatedAt = base().Add(72 * time.Hour)
			},
			want: func(k *store.Key) {
				k.LatestVersion, k.MinEnabledVersion, k.DeletionAllowed = 5, 2, false
				k.UpdatedAt = base().Add(72 * time.Hour)
			},
		},
		{
			name:   "ok deletion allowed set again",
			change: func(k *store.Key) { k.DeletionAllowed = true },
			want:   func(k *store.Key) { k.DeletionAllowed = true },
		},
		{
			name: "ok id and created at kept",
			change: func(k *store.Key) {
				k.ID, k.CreatedAt, k.LatestVersion = "other-id", base().Add(time.Hour), 9
			},
			want: func(k *store.Key) { k.LatestVersion = 9 },
		},
		{name: "fail missing name", change: func(k *store.Key) { k.Name, k.LatestVersion = "k9", 9 }, wantErr: store.ErrNotFound},
		{name: "fail other mount", change: func(k *store.Key) { k.Mount, k.LatestVersion = "m3", 9 }, wantErr: store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := s.open(t)
			orig := newKey("m1", "k1", "id-1")
			orig.DeletionAllowed = false
			other := newKey("m2", "k1", "id-2")
			createKeys(t, st, orig, other)

			k := *orig
			tt.change(&k)
			ctx := t.Context()
			err := st.Update(ctx, func(tx store.Tx) error { return tx.UpdateKey(ctx, &k) })
			checkErr(t, "update key", err, tt.wantErr)

			want := *orig
			if tt.want != nil {
				tt.want(&want)
			}
			got, err := getKey(t, st, "m1", "k1")
			checkErr(t, "get updated key", err, nil)
			sameKey(t, got, &want)
			got, err = getKey(t, st, "m2", "k1")
			checkErr(t, "get other key", err, nil)
			sameKey(t, got, other)
			if tt.wantErr != nil {
				_, err = getKey(t, st, k.Mount, k.Name)
				checkErr(t, "get missing key", err, store.ErrNotFound)
			}
		})
	}
}

func (s suite) deleteKey(t *testing.T) {
	tests := []struct {
		name        string
		mount, key  string
		wantErr     error
		wantDeleted bool
	}{
		{name: "ok delete", mount: "m1", key: "k1", wantDeleted: true},
		{name: "fail missing name", mount: "m1", key: "k9", wantErr: store.ErrNotFound},
		{name: "fail other mount", mount: "m3", key: "k1", wantErr: store.ErrNotFound},
		{name: "fail name is case sensitive", mount: "m1", key: "K1", wantErr: store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := s.open(t)
			k1 := newKey("m1", "k1", "id-1")
			k2 := newKey("m1", "k2", "id-2")
			k3 := newKey("m2", "k1", "id-3")
			createKeys(t, st, k1, k2, k3)
			ctx := t.Context()
			err := st.Update(ctx, func(tx store.Tx) error { return tx.DeleteKey(ctx, tt.mount, tt.key) })
			checkErr(t, "delete key", err, tt.wantErr)

			got, err := getKey(t, st, "m1", "k1")
			if tt.wantDeleted {
				checkErr(t, "get deleted key", err, store.ErrNotFound)
			} else {
				checkErr(t, "get kept key", err, nil)
				sameKey(t, got, k1)
			}
			for _, k := range []*store.Key{k2, k3} {
				got, err := getKey(t, st, k.Mount, k.Name)
				checkErr(t, "get other key", err, nil)
				sameKey(t, got, k)
			}
		})
	}

	t.Run("ok create again after delete", func(t *testing.T) {
		st := s.open(t)
		createKeys(t, st, newKey("m1", "k1", "id-1"))
		update(t, st, func(ctx context.Context, tx store.Tx) error { return tx.DeleteKey(ctx, "m1", "k1") })
		again := newKey("m1", "k1", "id-1")
		again.Type = "rsa-2048"
		createKeys(t, st, again)
		got, err := getKey(t, st, "m1", "k1")
		checkErr(t, "get key", err, nil)
		sameKey(t, got, again)
	})
}

func (s suite) listKeys(t *testing.T) {
	st := s.open(t)
	createKeys(t, st,
		newKey("m1", "b", "id-1"), newKey("m1", "a", "id-2"), newKey("m1", "c/d", "id-3"),
		newKey("m1", "B", "id-4"), newKey("m1", "gone", "id-5"),
		newKey("m2", "z", "id-6"), newKey("m10", "y", "id-7"),
	)
	update(t, st, func(ctx context.Context, tx store.Tx) error { return tx.DeleteKey(ctx, "m1", "gone") })

	tests := []struct {
		name  string
		mount string
		want  []string
	}{
		{name: "ok sorted names of one mount", mount: "m1", want: []string{"B", "a", "b", "c/d"}},
		{name: "ok other mount", mount: "m2", want: []string{"z"}},
		{name: "ok mount is not a prefix", mount: "m", want: nil},
		{name: "ok longer mount", mount: "m10", want: []string{"y"}},
		{name: "ok empty mount", mount: "m3", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var names []string
			var n int
			view(t, st, func(ctx context.Context, tx store.Tx) (err error) {
				if names, err = tx.ListKeys(ctx, tt.mount); err != nil {
					return err
				}
				n, err = tx.CountKeys(ctx, tt.mount)
				return err
			})
			if !slices.Equal(names, tt.want) {
				t.Errorf("list keys: got %q, want %q", names, tt.want)
			}
			if n != len(tt.want) {
				t.Errorf("count keys: got %d, want %d", n, len(tt.want))
			}
		})
	}
}
