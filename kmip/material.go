package kmip

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/keyhold/keyhold/hsm"
	"github.com/ovh/kmip-go"
)

// An object's Value (store.KMIPObject.Value) is one of:
//
//   - an HSM blob ("KHB1..."): keys the token can hold and use (AES, HMAC,
//     RSA and EC private keys), generated in the token for Create and
//     Create Key Pair or imported for Register, bound to the object by hsm
//     (id "kmip:<mount>:<uid>");
//   - a sealed value ("KHS1..."): secret data, opaque objects, public keys
//     (PKIX DER), certificates (DER) and keys the token cannot hold (private
//     keys as PKCS#8 DER), encrypted with AES-256-GCM in the token under the
//     mount's seal key, with the mount, the uid and the header as AAD;
//   - empty, once the object is destroyed.
//
// Layout of a sealed value (integers big-endian):
//
//	"KHS1" | subtype u32 | format u32 | iv [12] | tag [16] | ciphertext
//
// subtype is the Secret Data Type, Opaque Data Type or Certificate Type,
// format the Key Format Type the value was registered in.

const (
	blobMagic   = "KHB1" // hsm's blob format
	sealMagic   = "KHS1"
	sealHeader  = 4 + 4 + 4
	sealIVSize  = 12
	sealTagSize = 16
)

// sealMeta is what a sealed value records besides the data.
type sealMeta struct {
	subtype uint32
	format  kmip.KeyFormatType
}

// values seals, unseals, generates and imports the values of one mount's
// objects.
type values struct {
	h     *hsm.HSM
	mount string
	seal  hsm.Key
}

// hsmID is the id HSM blobs of an object are bound to.
func (v values) hsmID(uid string) string { return "kmip:" + v.mount + ":" + uid }

func (v values) sealAAD(uid string, header []byte) []byte {
	aad := []byte("keyhold-kmip-sealed-v1\x00")
	aad = append(aad, v.mount...)
	aad = append(aad, 0)
	aad = append(aad, uid...)
	aad = append(aad, 0)
	return append(aad, header...)
}

// sealValue seals plain for the object uid.
func (v values) sealValue(ctx context.Context, uid string, m sealMeta, plain []byte) ([]byte, error) {
	header := []byte(sealMagic)
	header = binary.BigEndian.AppendUint32(header, m.subtype)
	header = binary.BigEndian.AppendUint32(header, uint32(m.format))
	res, err := v.h.Encrypt(ctx, v.seal, hsm.EncryptRequest{Algorithm: hsm.AESGCM, Plaintext: plain, AAD: v.sealAAD(uid, header)})
	if err != nil {
		return nil, err
	}
	out := append(header, res.IV...)
	out = append(out, res.Tag...)
	return append(out, res.Ciphertext...), nil
}

// unseal opens a sealed value of the object uid.
func (v values) unseal(ctx context.Context, uid string, value []byte) (sealMeta, []byte, error) {
	if len(value) < sealHeader+sealIVSize+sealTagSize || !bytes.HasPrefix(value, []byte(sealMagic)) {
		return sealMeta{}, nil, fmt.Errorf("kmip: object %s: malformed sealed value", uid)
	}
	header := value[:sealHeader]
	m := sealMeta{subtype: binary.BigEndian.Uint32(header[4:]), format: kmip.KeyFormatType(binary.BigEndian.Uint32(header[8:]))}
	iv := value[sealHeader : sealHeader+sealIVSize]
	tag := value[sealHeader+sealIVSize : sealHeader+sealIVSize+sealTagSize]
	ct := value[sealHeader+sealIVSize+sealTagSize:]
	plain, err := v.h.Decrypt(ctx, v.seal, hsm.DecryptRequest{Algorithm: hsm.AESGCM, Ciphertext: ct, IV: iv, Tag: tag, AAD: v.sealAAD(uid, header)})
	if err != nil {
		return sealMeta{}, nil, fmt.Errorf("kmip: object %s: the sealed value does not open: %w", uid, err)
	}
	return m, plain, nil
}

// material returns an object's value in the clear, with the format it has.
func (v values) material(ctx context.Context, uid string, value []byte) (sealMeta, []byte, error) {
	switch {
	case len(value) == 0:
		return sealMeta{}, nil, errorf(kmip.ResultReasonKeyValueNotPresent, "object %s has no key value (it was destroyed)", uid)
	case bytes.HasPrefix(value, []byte(blobMagic)):
		m, err := v.h.Export(ctx, hsm.Key{ID: v.hsmID(uid), Blob: value})
		return sealMeta{format: kmip.KeyFormatTypeRaw}, m, err
	case bytes.HasPrefix(value, []byte(sealMagic)):
		return v.unseal(ctx, uid, value)
	}
	return sealMeta{}, nil, fmt.Errorf("kmip: object %s: unknown value format", uid)
}

// tokenKeyType returns the HSM key type for a symmetric algorithm and
// length in bits, if the token holds such keys.
func tokenKeyType(alg kmip.CryptographicAlgorithm, bits int32) (hsm.KeyType, bool) {
	switch alg {
	case kmip.CryptographicAlgorithmAES:
		switch bits {
		case 128:
			return hsm.AES128, true
		case 192:
			return hsm.AES192, true
		case 256:
			return hsm.AES256, true
		}
	case kmip.CryptographicAlgorithmHMACSHA1:
		return hsm.HMACSHA1, bits == 160
	case kmip.CryptographicAlgorithmHMACSHA256:
		return hsm.HMACSHA256, bits == 256
	case kmip.CryptographicAlgorithmHMACSHA384:
		return hsm.HMACSHA384, bits == 384
	case kmip.CryptographicAlgorithmHMACSHA512:
		return hsm.HMACSHA512, bits == 512
	}
	return "", false
}

// digest is the Digest attribute of material (SHA-256, KMIP 1.4 §3.17).
func digest(material []byte, format kmip.KeyFormatType) kmip.Digest {
	sum := sha256.Sum256(material)
	return kmip.Digest{HashingAlgorithm: kmip.HashingAlgorithmSHA_256, DigestValue: sum[:], KeyFormatType: format}
}
