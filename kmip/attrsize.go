package kmip

import (
	"reflect"
	"time"

	"github.com/ovh/kmip-go"
)

// Bounds on what clients may store in attributes: a message may carry a
// few MiB, and every attribute is kept, cached, indexed and answered again.
const (
	maxAttributeBytes       = 64 << 10 // one attribute value, encoded
	maxObjectAttributes     = 1024     // attribute instances of one object
	maxObjectAttributeBytes = 1 << 20  // all of one object's attribute values
)

// attrOverhead is what an attribute adds to an answer besides its value's
// own bytes: its name, index and the TTLV headers.
const attrOverhead = 64

// valueSize is about how many bytes an attribute value takes encoded: the
// length of its text or bytes, plus its headers.
func valueSize(v any) int {
	switch x := v.(type) {
	case string:
		return len(x) + 8
	case []byte:
		return len(x) + 8
	case kmip.Name:
		return len(x.NameValue) + 32
	case kmip.Link:
		return len(x.LinkedObjectIdentifier) + 32
	case time.Time:
		return 16
	case kmip.Digest:
		return len(x.DigestValue) + 48
	}
	// Numbers, booleans and enumerations (named integer types) are 16
	// bytes; other structures are measured by encoding them.
	switch reflect.ValueOf(v).Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return 16
	}
	return len(encodeValue(v))
}

// attrsSize is what a list of attributes adds to an answer.
func attrsSize(attrs []kmip.Attribute) int {
	n := 0
	for _, a := range attrs {
		n += attrOverhead + valueSize(a.AttributeValue)
	}
	return n
}

// checkRoom refuses an attribute value that would make o's attributes
// exceed their bounds (the value itself, their number, their bytes). used
// is attrsSize(o.attrs), which checkRoom returns with v counted: a caller
// setting several attributes keeps it instead of summing them again. old
// is the value v replaces (Modify Attribute, or a single-instance
// attribute set again), nil if v is added.
func checkRoom(o *object, used int, name kmip.AttributeName, v, old any) (int, error) {
	size := valueSize(v)
	if size > maxAttributeBytes {
		return used, invalidField("the value of attribute %q is %d bytes; at most %d", name, size, maxAttributeBytes)
	}
	total := used + size
	if old != nil {
		total -= valueSize(old)
	} else {
		if len(o.attrs) >= maxObjectAttributes {
			return used, invalidField("an object holds at most %d attributes", maxObjectAttributes)
		}
		total += attrOverhead
	}
	if total > maxObjectAttributeBytes {
		return used, invalidField("an object's attributes hold at most %d bytes", maxObjectAttributeBytes)
	}
	return total, nil
}
