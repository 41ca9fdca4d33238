package sqlite

import (
	"encoding/binary"
	"errors"

	"github.com/keyhold/keyhold/store"
)

// The attrs column of kmip_objects: every attribute of an object in one
// value, so that an object is read in one row. Layout: version byte 1,
// count, then per attribute: name, index, value, flags (1: has text, 2: has
// number), text, number; strings and byte strings are length-prefixed,
// integers are varints.

const attrsVersion = 1

var errAttrs = errors.New("store: corrupt kmip attributes column")

func encodeAttrs(attrs []store.KMIPAttribute) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, a := range attrs {
		n += len(a.Name) + len(a.Value) + len(a.Text) + 5*binary.MaxVarintLen64 + 1
	}
	b := make([]byte, 0, n)
	b = append(b, attrsVersion)
	b = binary.AppendUvarint(b, uint64(len(attrs)))
	bytesField := func(v []byte) {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	for _, a := range attrs {
		bytesField([]byte(a.Name))
		b = binary.AppendVarint(b, int64(a.Index))
		bytesField(a.Value)
		var flags byte
		if a.HasText {
			flags |= 1
		}
		if a.HasNumber {
			flags |= 2
		}
		b = append(b, flags)
		bytesField([]byte(a.Text))
		b = binary.AppendVarint(b, a.Number)
	}
	return b
}

func decodeAttrs(b []byte) ([]store.KMIPAttribute, error) {
	if len(b) < 1 || b[0] != attrsVersion {
		return nil, errAttrs
	}
	b = b[1:]
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	varint := func() (int64, bool) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	bytesField := func() ([]byte, bool) {
		l, ok := uvarint()
		if !ok || l > uint64(len(b)) {
			return nil, false
		}
		v := b[:l:l]
		b = b[l:]
		return v, true
	}
	count, ok := uvarint()
	if !ok || count > uint64(len(b)) {
		return nil, errAttrs
	}
	out := make([]store.KMIPAttribute, 0, count)
	for range count {
		var a store.KMIPAttribute
		name, ok1 := bytesField()
		idx, ok2 := varint()
		value, ok3 := bytesField()
		if !ok1 || !ok2 || !ok3 || len(b) < 1 {
			return nil, errAttrs
		}
		flags := b[0]
		b = b[1:]
		text, ok4 := bytesField()
		num, ok5 := varint()
		if !ok4 || !ok5 {
			return nil, errAttrs
		}
		a.Name, a.Index, a.Value = string(name), int(idx), append([]byte{}, value...)
		a.Text, a.HasText = string(text), flags&1 != 0
		a.Number, a.HasNumber = num, flags&2 != 0
		out = append(out, a)
	}
	if len(b) != 0 {
		return nil, errAttrs
	}
	return out, nil
}
