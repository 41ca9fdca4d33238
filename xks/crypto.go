package xks

import (
	"crypto/sha256"
	"encoding/binary"
)

// ciphertextMetadata is what Encrypt returns in ciphertextMetadata: the
// format version of this proxy's AAD construction ("kh" + version 1), so a
// later change of construction can still decrypt old ciphertexts. It is
// authenticated by the tag like the AAD.
var ciphertextMetadata = []byte("kh1")

// gcmAAD is the AAD given to AES-GCM in the HSM, as the spec prescribes:
// 2-byte big-endian length of the AAD || AAD || 1-byte length of the
// ciphertextMetadata || ciphertextMetadata. Absent fields count as empty.
// aad is at most 65535 bytes and meta at most 20 (checked by the parser and
// the configuration).
func gcmAAD(aad, meta []byte) []byte {
	out := make([]byte, 0, 3+len(aad)+len(meta))
	out = binary.BigEndian.AppendUint16(out, uint16(len(aad)))
	out = append(out, aad...)
	out = append(out, byte(len(meta)))
	return append(out, meta...)
}

// cdiv is the ciphertext data integrity value (spec Appendix C): SHA-256 over
// AAD || ciphertextMetadata || IV || ciphertext || tag, without lengths.
func cdiv(aad, meta, iv, ct, tag []byte) []byte {
	h := sha256.New()
	for _, b := range [][]byte{aad, meta, iv, ct, tag} {
		h.Write(b)
	}
	return h.Sum(nil)
}
