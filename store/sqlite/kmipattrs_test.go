package sqlite

import (
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
