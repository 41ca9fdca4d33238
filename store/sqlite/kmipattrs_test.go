package sqlite

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/keyhold/keyhold/store"
)

func TestAttrsColumnRoundTrip(t *testing.T) {
	for _, attrs := range [][]store.KMIPAttribute{
		{},
		{{Name: "Name", Index: 3, Value: []byte{0, 1, 2}, Text: "é", HasText: true}},
		{{Name: "Initial Date", Value: []byte("v"), Number: -1 << 40, HasNumber: true}, {Name: "x-", Index: -2, Value: []byte{}, Text: "", HasText: true, HasNumber: true}},
	} {
		got, err := decodeAttrs(encodeAttrs(attrs))
		if err != nil || !reflect.DeepEqual(got, attrs) {
			t.Fatalf("round trip of %+v: %+v %v", attrs, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {2}, {1, 5}, append(encodeAttrs([]store.KMIPAttribute{{Name: "a"}}), 0)} {
		if _, err := decodeAttrs(bad); err == nil {
			t.Errorf("%x decoded", bad)
		}
	}
}

// FuzzAttrsColumn: decoding never panics, and what decodes encodes back to
// the same bytes.
func FuzzAttrsColumn(f *testing.F) {
	f.Add(encodeAttrs([]store.KMIPAttribute{{Name: "Name", Value: []byte{1}, Text: "n", HasText: true}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		attrs, err := decodeAttrs(b)
		if err != nil {
			return
		}
		if again, err := decodeAttrs(encodeAttrs(attrs)); err != nil || !reflect.DeepEqual(again, attrs) {
			t.Fatalf("re-encoding changed %+v", attrs)
		}
	})
}

// An object written before the attrs column existed (attrs NULL) is read
// from its attribute rows.
func TestKMIPObjectWithoutAttrsColumn(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	o := &store.KMIPObject{Mount: "m", Scope: "s", ID: "old", Type: "SymmetricKey", Value: []byte("v"),
		Attributes: []store.KMIPAttribute{{Name: "Name", Value: []byte("n"), Text: "n", HasText: true}, {Name: "State", Value: []byte{1}, Number: 1, HasNumber: true}}}
	err = s.Update(ctx, func(stx store.Tx) error {
		if err := stx.CreateKMIPObject(ctx, o); err != nil {
			return err
		}
		_, err := stx.(*tx).tx.ExecContext(ctx, `UPDATE kmip_objects SET attrs = NULL WHERE id = 'old'`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var got *store.KMIPObject
	if err := s.View(ctx, func(tx store.Tx) (err error) {
		got, err = tx.GetKMIPObject(ctx, "m", "s", "old")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Attributes, o.Attributes) {
		t.Fatalf("attributes from the rows: %+v", got.Attributes)
	}
}
