package conformance

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/ovh/kmip-go/ttlv"
)

// vars are what a run captured: the identifiers the server returned (by n
// of $UNIQUE_IDENTIFIER_n), the other placeholders' raw values, and the
// time the run started, for $NOW.
type vars struct {
	ids    map[int]string
	values map[string][]byte
	start  time.Time
	// last is the last value the server returned for each tag: a
	// placeholder that no expected response binds (the test cases write a
	// literal where the answer carries it, then $MAC_DATA or $DATA_0 in a
	// later request) names the last value of its item's tag.
	last map[int][]byte
	// subst maps a byte string the test case expected (hex, lower case)
	// to the value the server returned in its place, where the value was
	// variable by nature: a later request that sends the expected value
	// back sends the server's.
	subst map[string][]byte
	// generated are the objects whose key the server generated (Create,
	// Create Key Pair, Re-key, Re-key Key Pair), and publicKeys the RSA or
	// EC public keys: what comes out of them differs on every run.
	generated  map[string]bool
	publicKeys map[string]bool
}

func newVars() *vars {
	return &vars{
		ids: map[int]string{}, values: map[string][]byte{}, start: time.Now(), last: map[int][]byte{},
		subst: map[string][]byte{}, generated: map[string]bool{}, publicKeys: map[string]bool{},
	}
}

var (
	tagAttribute      = tagsByName["Attribute"]
	tagAttributeName  = tagsByName["AttributeName"]
	tagAttributeIndex = tagsByName["AttributeIndex"]
	tagAttributeValue = tagsByName["AttributeValue"]
)

// enumAliases are tags whose enumeration is registered under another tag.
var enumAliases = map[int]int{
	tagsByName["MaskGeneratorHashingAlgorithm"]: tagsByName["HashingAlgorithm"],
}

// valueTag is the tag whose enumeration or bit mask names a value uses: its
// own, or for an Attribute Value, the tag named like the attribute.
func valueTag(n *Node, attrName string) int {
	if n.Tag == tagAttributeValue && attrName != "" {
		if t, ok := tagsByName[strings.NewReplacer(" ", "", ".", "_", "#", "_", "-", "").Replace(attrName)]; ok {
			return t
		}
	}
	return n.Tag
}

// attributeName returns the Attribute Name child of an Attribute structure.
func attributeName(n *Node) string {
	for _, c := range n.Children {
		if c.Tag == tagAttributeName {
			return c.Value
		}
	}
	return ""
}

// nowOffset parses $NOW, $NOW-s and $NOW+s.
func nowOffset(v string) (time.Duration, bool) {
	rest, ok := strings.CutPrefix(v, "$NOW")
	if !ok {
		return 0, false
	}
	if rest == "" {
		return 0, true
	}
	s, err := strconv.Atoi(rest)
	if err != nil {
		return 0, false
	}
	return time.Duration(s) * time.Second, true
}

// placeholderID parses $UNIQUE_IDENTIFIER_n.
func placeholderID(v string) (int, bool) {
	rest, ok := strings.CutPrefix(v, "$UNIQUE_IDENTIFIER_")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// rawValue encodes the value of a leaf node as the bytes of a TTLV value
// (without padding), substituting placeholders from vs.
func rawValue(n *Node, attrName string, vs *vars) ([]byte, error) {
	v := n.Value
	if strings.HasPrefix(v, "$") {
		if i, ok := placeholderID(v); ok {
			id, known := vs.ids[i]
			if !known {
				return nil, fmt.Errorf("%s used before the server returned it", v)
			}
			return []byte(id), nil
		}
		if off, ok := nowOffset(v); ok {
			return binary.BigEndian.AppendUint64(nil, uint64(time.Now().Add(off).Unix())), nil
		}
		if b, ok := vs.values[v]; ok {
			return b, nil
		}
		if b, ok := vs.last[n.Tag]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("%s used before the server returned it", v)
	}
	if n.Type == ttlv.TypeByteString {
		if b, ok := vs.subst[strings.ToLower(v)]; ok {
			return b, nil
		}
	}
	tag := valueTag(n, attrName)
	switch n.Type {
	case ttlv.TypeInteger:
		i, err := parseInteger(v, tag)
		return binary.BigEndian.AppendUint32(nil, uint32(i)), err
	case ttlv.TypeLongInteger:
		i, err := strconv.ParseInt(v, 0, 64)
		return binary.BigEndian.AppendUint64(nil, uint64(i)), err
	case ttlv.TypeEnumeration:
		var e uint64
		var err error
		if strings.HasPrefix(v, "0x") {
			e, err = strconv.ParseUint(v[2:], 16, 32)
		} else if e, err = strconv.ParseUint(v, 10, 32); err != nil {
			var x uint32
			if x, err = ttlv.EnumByName(tag, v); err != nil && enumAliases[tag] != 0 {
				x, err = ttlv.EnumByName(enumAliases[tag], v)
			}
			e = uint64(x)
		}
		return binary.BigEndian.AppendUint32(nil, uint32(e)), err
	case ttlv.TypeBoolean:
		b, err := strconv.ParseBool(v)
		out := make([]byte, 8)
		if b {
			out[7] = 1
		}
		return out, err
	case ttlv.TypeTextString:
		return []byte(v), nil
	case ttlv.TypeByteString:
		return hex.DecodeString(v)
	case ttlv.TypeBigInteger:
		b, err := hex.DecodeString(strings.TrimPrefix(v, "0x"))
		if err != nil {
			return nil, err
		}
		return bigBytes(new(big.Int).SetBytes(b)), nil
	case ttlv.TypeDateTime:
		t, err := time.Parse(time.RFC3339, v)
		return binary.BigEndian.AppendUint64(nil, uint64(t.Unix())), err
	case ttlv.TypeInterval:
		s, err := strconv.ParseUint(v, 10, 32)
		return binary.BigEndian.AppendUint32(nil, uint32(s)), err
	}
	return nil, fmt.Errorf("cannot encode a %s value", n.Type)
}

// parseInteger reads a decimal or hex integer, or bit mask names separated
// by spaces or '|'.
func parseInteger(v string, tag int) (int32, error) {
	if i, err := strconv.ParseInt(v, 0, 32); err == nil {
		return int32(i), nil
	}
	var out int32
	for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '|' }) {
		if i, err := strconv.ParseInt(part, 0, 32); err == nil {
			out |= int32(i)
			continue
		}
		b, err := ttlv.BitmaskByStr(tag, part)
		if err != nil {
			return 0, err
		}
		out |= b
	}
	return out, nil
}

// bigBytes is a non-negative big integer as TTLV wants it: big-endian,
// sign-padded to a multiple of 8 bytes.
func bigBytes(i *big.Int) []byte {
	b := i.Bytes()
	pad := 8 - len(b)%8
	if pad == 8 && len(b) > 0 && b[0]&0x80 == 0 {
		pad = 0
	}
	if len(b) == 0 {
		pad = 8
	}
	return append(make([]byte, pad), b...)
}

// encode writes a node (a whole request) as binary TTLV.
func encode(n *Node, attrName string, vs *vars) ([]byte, error) {
	var val []byte
	if n.Type == ttlv.TypeStructure {
		name := attrName
		if n.Tag == tagAttribute {
			name = attributeName(n)
		}
		for _, c := range n.Children {
			b, err := encode(c, name, vs)
			if err != nil {
				return nil, err
			}
			val = append(val, b...)
		}
	} else {
		var err error
		if val, err = rawValue(n, attrName, vs); err != nil {
			return nil, fmt.Errorf("%s: %w", ttlv.TagString(n.Tag), err)
		}
	}
	out := []byte{byte(n.Tag >> 16), byte(n.Tag >> 8), byte(n.Tag), byte(n.Type)}
	out = binary.BigEndian.AppendUint32(out, uint32(len(val)))
	out = append(out, val...)
	if r := len(val) % 8; r != 0 {
		out = append(out, make([]byte, 8-r)...)
	}
	return out, nil
}
