package hsm

import (
	"encoding/binary"
	"errors"
)

// Blob layout (all integers big-endian):
//
//	"KHB1" | kek version u32 | type len u8 | type | flags u8 |
//	public key len u32 | public key (PKIX DER) | wrapped len u32 | wrapped | mac [32]
//
// The MAC is HMAC-SHA256, computed in the token with the MAC key of the KEK
// version, over "keyhold-blob\x00" | id len u32 | id | everything before the mac.
// So the type, the export policy and the public key cannot be changed, and the
// blob cannot be moved to another id, without the token noticing.

const (
	blobMagic   = "KHB1"
	macSize     = 32
	flagExport  = 1 << 0
	maxBlobSize = 1 << 16
)

type blob struct {
	kekVersion int
	typ        KeyType
	exportable bool
	public     []byte
	wrapped    []byte
	mac        []byte
}

// body is the blob without its MAC.
func (b *blob) body() []byte {
	out := make([]byte, 0, 4+4+1+len(b.typ)+1+4+len(b.public)+4+len(b.wrapped)+macSize)
	out = append(out, blobMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(b.kekVersion))
	out = append(out, byte(len(b.typ)))
	out = append(out, b.typ...)
	var flags byte
	if b.exportable {
		flags |= flagExport
	}
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.public)))
	out = append(out, b.public...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.wrapped)))
	out = append(out, b.wrapped...)
	return out
}

func (b *blob) marshal() []byte { return append(b.body(), b.mac...) }

// macInput is what the MAC covers: the id the blob is bound to and the body.
func macInput(id string, body []byte) []byte {
	out := make([]byte, 0, 13+4+len(id)+len(body))
	out = append(out, "keyhold-blob\x00"...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(id)))
	out = append(out, id...)
	return append(out, body...)
}

var errBlob = errors.New("malformed key blob")

func parseBlob(data []byte) (*blob, []byte, error) {
	if len(data) > maxBlobSize || len(data) < len(blobMagic)+4+1+1+4+4+macSize || string(data[:4]) != blobMagic {
		return nil, nil, errBlob
	}
	body := data[:len(data)-macSize]
	b := &blob{mac: data[len(data)-macSize:]}
	r := body[4:]
	b.kekVersion = int(binary.BigEndian.Uint32(r))
	r = r[4:]
	n := int(r[0])
	r = r[1:]
	if len(r) < n+1+4 {
		return nil, nil, errBlob
	}
	b.typ = KeyType(r[:n])
	r = r[n:]
	if r[0]&^flagExport != 0 {
		return nil, nil, errBlob
	}
	b.exportable = r[0]&flagExport != 0
	r = r[1:]
	var ok bool
	if b.public, r, ok = lenPrefixed(r); !ok {
		return nil, nil, errBlob
	}
	if b.wrapped, r, ok = lenPrefixed(r); !ok || len(r) != 0 || len(b.wrapped) == 0 {
		return nil, nil, errBlob
	}
	if _, ok := keySpecs[b.typ]; !ok {
		return nil, nil, errBlob
	}
	return b, body, nil
}

func lenPrefixed(r []byte) (field, rest []byte, ok bool) {
	if len(r) < 4 {
		return nil, nil, false
	}
	n := binary.BigEndian.Uint32(r)
	r = r[4:]
	if uint64(n) > uint64(len(r)) {
		return nil, nil, false
	}
	return r[:n], r[n:], true
}
