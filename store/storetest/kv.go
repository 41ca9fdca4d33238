package storetest

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/keyhold/keyhold/store"
)

// allBytes returns every byte value, twice, including NUL and invalid UTF-8.
func allBytes() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

type kvOp func(ctx context.Context, tx store.Tx) error

func put(path string, value []byte) kvOp {
	return func(ctx context.Context, tx store.Tx) error { return tx.Put(ctx, path, value) }
}

func del(path string) kvOp {
	return func(ctx context.Context, tx store.Tx) error { return tx.Delete(ctx, path) }
}

func (s suite) kv(t *testing.T) {
	tests := []struct {
		name    string
		ops     []kvOp // each in its own Update, which must succeed
		path    string
		want    []byte
		wantErr error
	}{
		{name: "ok get after put", ops: []kvOp{put("a/b", []byte("v1"))}, path: "a/b", want: []byte("v1")},
		{name: "ok put replaces", ops: []kvOp{put("a", []byte("v1")), put("a", []byte("second value"))}, path: "a", want: []byte("second value")},
		{name: "ok put shorter value replaces", ops: []kvOp{put("a", []byte("long value")), put("a", []byte("v"))}, path: "a", want: []byte("v")},
		{name: "ok binary value", ops: []kvOp{put("bin", allBytes())}, path: "bin", want: allBytes()},
		{name: "ok empty value", ops: []kvOp{put("e", []byte{})}, path: "e", want: []byte{}},
		{name: "ok nil value reads as empty", ops: []kvOp{put("n", nil)}, path: "n", want: []byte{}},
		{name: "ok unicode path", ops: []kvOp{put("mounts/clé 1", []byte("x"))}, path: "mounts/clé 1", want: []byte("x")},
		{name: "ok sibling untouched by delete", ops: []kvOp{put("a/1", []byte("1")), put("a/2", []byte("2")), del("a/1")}, path: "a/2", want: []byte("2")},
		{name: "ok delete missing", ops: []kvOp{put("a", []byte("x")), del("missing")}, path: "a", want: []byte("x")},
		{name: "ok put after delete", ops: []kvOp{put("a", []byte("x")), del("a"), put("a", []byte("y"))}, path: "a", want: []byte("y")},
		{name: "fail get missing", path: "missing", wantErr: store.ErrNotFound},
		{name: "fail get after delete", ops: []kvOp{put("d", []byte("x")), del("d")}, path: "d", wantErr: store.ErrNotFound},
		{name: "fail get parent of stored path", ops: []kvOp{put("p/c", []byte("x"))}, path: "p", wantErr: store.ErrNotFound},
		{name: "fail get prefix of stored path", ops: []kvOp{put("abc", []byte("x"))}, path: "ab", wantErr: store.ErrNotFound},
		{name: "fail get is case sensitive", ops: []kvOp{put("abc", []byte("x"))}, path: "ABC", wantErr: store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := s.open(t)
			for _, op := range tt.ops {
				update(t, st, op)
			}
			got, err := getValue(t, st, tt.path)
			checkErr(t, "get", err, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			if got == nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("get: got %q (nil: %v), want %q", got, got == nil, tt.want)
			}
		})
	}

	t.Run("ok value is copied on put", func(t *testing.T) {
		st := s.open(t)
		v := []byte("original")
		update(t, st, func(ctx context.Context, tx store.Tx) error {
			err := tx.Put(ctx, "a", v)
			v[0] = 'X'
			return err
		})
		got, err := getValue(t, st, "a")
		checkErr(t, "get", err, nil)
		if string(got) != "original" {
			t.Fatalf("get: got %q, want %q", got, "original")
		}
	})

	t.Run("ok value is copied on get", func(t *testing.T) {
		st := s.open(t)
		update(t, st, put("a", []byte("original")))
		got, err := getValue(t, st, "a")
		checkErr(t, "get", err, nil)
		got[0] = 'X'
		again, err := getValue(t, st, "a")
		checkErr(t, "get", err, nil)
		if string(again) != "original" {
			t.Fatalf("get: got %q, want %q", again, "original")
		}
	})
}

func (s suite) list(t *testing.T) {
	stored := []string{
		"a", "a/x", "a/b", "a/b/c", "a/Z", "ab", "b/y", "A/q",
		"k/z", "k/é", "p%x", "pax", "p_y", "pby", "deleted/1",
	}
	tests := []struct {
		name   string
		prefix string
		want   []string
	}{
		{name: "ok prefix with slash", prefix: "a/", want: []string{"Z", "b", "b/c", "x"}},
		{name: "ok prefix without slash", prefix: "a", want: []string{"", "/Z", "/b", "/b/c", "/x", "b"}},
		{name: "ok exact path", prefix: "a/b/c", want: []string{""}},
		{name: "ok empty prefix lists all", prefix: "", want: []string{
			"A/q", "a", "a/Z", "a/b", "a/b/c", "a/x", "ab", "b/y", "k/z", "k/é", "p%x", "p_y", "pax", "pby",
		}},
		{name: "ok sorted byte-wise", prefix: "k/", want: []string{"z", "é"}},
		{name: "ok case sensitive", prefix: "A", want: []string{"/q"}},
		{name: "ok percent is literal", prefix: "p%", want: []string{"x"}},
		{name: "ok underscore is literal", prefix: "p_", want: []string{"y"}},
		{name: "ok deleted path not listed", prefix: "deleted/", want: nil},
		{name: "ok no match", prefix: "zz", want: nil},
		{name: "ok prefix after all paths", prefix: "\U0010FFFF", want: nil},
	}
	st := s.open(t)
	update(t, st, func(ctx context.Context, tx store.Tx) error {
		for _, p := range stored {
			if err := tx.Put(ctx, p, []byte("v "+p)); err != nil {
				return err
			}
		}
		return tx.Delete(ctx, "deleted/1")
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			view(t, st, func(ctx context.Context, tx store.Tx) (err error) {
				got, err = tx.List(ctx, tt.prefix)
				return err
			})
			if !slices.Equal(got, tt.want) {
				t.Fatalf("list %q:\n got %q\nwant %q", tt.prefix, got, tt.want)
			}
		})
	}

	t.Run("ok list sees writes of its transaction", func(t *testing.T) {
		st := s.open(t)
		update(t, st, put("t/old", []byte("x")))
		update(t, st, func(ctx context.Context, tx store.Tx) error {
			if err := tx.Put(ctx, "t/new", []byte("y")); err != nil {
				return err
			}
			if err := tx.Delete(ctx, "t/old"); err != nil {
				return err
			}
			got, err := tx.List(ctx, "t/")
			if err != nil {
				return err
			}
			if want := []string{"new"}; !slices.Equal(got, want) {
				t.Errorf("list in update: got %q, want %q", got, want)
			}
			return nil
		})
	})
}
