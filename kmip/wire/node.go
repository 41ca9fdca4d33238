// Package wire is the binary TTLV layer of the KMIP server: it frames
// messages on a stream, checks every byte of a message before anything
// decodes it, decodes requests and encodes responses with the message types
// of github.com/ovh/kmip-go, and renders messages for debug logs with key
// material redacted.
//
// Why a check before decoding: kmip-go's decoder trusts the lengths of
// fixed-size items (an Integer declared with 0 bytes makes it index past the
// value) and ignores padding, trailing bytes and unknown tags. Parse rejects
// all of that up front, bounds the nesting depth and the number of items, and
// records where each item lies so that batch items can be decoded one by one
// (a bad payload fails its own batch item, not the whole message).
package wire

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ovh/kmip-go/ttlv"
)

// HeaderSize is the size of a TTLV item's tag, type and length.
const HeaderSize = 8

// Limits bound what Parse accepts.
type Limits struct {
	MaxDepth int // nesting of structures; default 24
	MaxItems int // items in the whole message; default 1<<16
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = 24
	}
	if l.MaxItems <= 0 {
		l.MaxItems = 1 << 16
	}
	return l
}

// Node is one checked TTLV item: where it lies in the message and, for a
// structure, its children.
type Node struct {
	Tag      int
	Type     ttlv.Type
	Start    int // offset of the item's header in the message
	End      int // offset just past the item's padded value
	Length   int // declared value length
	Children []*Node
}

// Value returns the item's value bytes (without padding) in msg.
func (n *Node) Value(msg []byte) []byte {
	return msg[n.Start+HeaderSize : n.Start+HeaderSize+n.Length]
}

// Raw returns the whole encoded item in msg.
func (n *Node) Raw(msg []byte) []byte { return msg[n.Start:n.End] }

// Child returns the first child with the tag, or nil.
func (n *Node) Child(tag int) *Node {
	for _, c := range n.Children {
		if c.Tag == tag {
			return c
		}
	}
	return nil
}

// Error is a structural defect of a message. Its text names the defect and
// the offset, never the bytes.
type Error struct {
	Offset int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("ttlv: %s at byte %d", e.Msg, e.Offset) }

func errAt(off int, format string, args ...any) error {
	return &Error{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// fixedLength is the only length each fixed-size type may declare.
var fixedLength = map[ttlv.Type]int{
	ttlv.TypeInteger:     4,
	ttlv.TypeLongInteger: 8,
	ttlv.TypeEnumeration: 4,
	ttlv.TypeBoolean:     8,
	ttlv.TypeDateTime:    8,
	ttlv.TypeInterval:    4,
}

// KnownTag reports whether a tag is one the server understands: a KMIP 1.x
// tag (0x42xxxx) of the codec's registry, or any extension tag (0x54xxxx).
func KnownTag(tag int) bool {
	switch tag >> 16 {
	case 0x54:
		return true
	case 0x42:
		return !strings.HasPrefix(ttlv.TagString(tag), "0x")
	}
	return false
}

// Parse checks that msg is exactly one well-formed TTLV item and returns its
// tree. Every item must have a known tag and type, a length that fits its
// type and its parent, zero padding to 8 bytes, valid UTF-8 text, and a
// Boolean of 0 or 1; structures must be exactly filled by their children.
func Parse(msg []byte, lim Limits) (*Node, error) {
	lim = lim.withDefaults()
	p := parser{msg: msg, lim: lim}
	n, end, err := p.item(0, len(msg), 1)
	if err != nil {
		return nil, err
	}
	if end != len(msg) {
		return nil, errAt(end, "%d bytes after the message", len(msg)-end)
	}
	return n, nil
}

type parser struct {
	msg   []byte
	lim   Limits
	items int
}

// item parses the item at off, which must end by limit.
func (p *parser) item(off, limit, depth int) (*Node, int, error) {
	if limit-off < HeaderSize {
		return nil, 0, errAt(off, "truncated item header")
	}
	p.items++
	if p.items > p.lim.MaxItems {
		return nil, 0, errAt(off, "more than %d items", p.lim.MaxItems)
	}
	h := p.msg[off : off+HeaderSize]
	tag := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	typ := ttlv.Type(h[3])
	length := int(binary.BigEndian.Uint32(h[4:8]))
	if !KnownTag(tag) {
		return nil, 0, errAt(off, "unknown tag 0x%06X", tag)
	}
	if typ < ttlv.TypeStructure || typ > ttlv.TypeInterval {
		return nil, 0, errAt(off+3, "unknown item type 0x%02X", byte(typ))
	}
	padded := length
	if r := length % 8; r != 0 {
		padded += 8 - r
	}
	valStart := off + HeaderSize
	if padded > limit-valStart {
		return nil, 0, errAt(off+4, "declared length %d runs past the end (%d bytes left)", length, limit-valStart)
	}
	n := &Node{Tag: tag, Type: typ, Start: off, End: valStart + padded, Length: length}
	val := p.msg[valStart : valStart+length]
	if want, ok := fixedLength[typ]; ok && length != want {
		return nil, 0, errAt(off+4, "a %s item must be %d bytes long, not %d", typ, want, length)
	}
	for i := valStart + length; i < n.End; i++ {
		if p.msg[i] != 0 {
			return nil, 0, errAt(i, "non-zero padding")
		}
	}
	switch typ {
	case ttlv.TypeStructure:
		if depth >= p.lim.MaxDepth {
			return nil, 0, errAt(off, "structures nested deeper than %d", p.lim.MaxDepth)
		}
		for c := valStart; c < valStart+length; {
			child, end, err := p.item(c, valStart+length, depth+1)
			if err != nil {
				return nil, 0, err
			}
			n.Children = append(n.Children, child)
			c = end
		}
	case ttlv.TypeBigInteger:
		if length == 0 || length%8 != 0 {
			return nil, 0, errAt(off+4, "a Big Integer must be a non-zero multiple of 8 bytes, not %d", length)
		}
	case ttlv.TypeBoolean:
		if binary.BigEndian.Uint64(val) > 1 {
			return nil, 0, errAt(valStart, "a Boolean must be 0 or 1")
		}
	case ttlv.TypeTextString:
		if !utf8.Valid(val) {
			return nil, 0, errAt(valStart, "a Text String must be UTF-8")
		}
	}
	return n, n.End, nil
}
