package hsm

import (
	"context"
	"crypto"
	"crypto/subtle"
	"encoding/binary"
	"hash"

	"github.com/miekg/pkcs11"
)

// OAEPRequest is an RSA-OAEP decryption with any of the parameters PKCS#1
// v2.2 allows: the hash, the MGF1 hash and the label.
type OAEPRequest struct {
	Ciphertext []byte
	Hash       crypto.Hash // 0 means SHA-1
	MGFHash    crypto.Hash // 0 means Hash
	Label      []byte
}

// OAEPPath says how an RSA-OAEP decryption was done, for the audit trail.
type OAEPPath string

const (
	// OAEPInToken is CKM_RSA_PKCS_OAEP: the token decrypts and decodes.
	OAEPInToken OAEPPath = "token-oaep"
	// OAEPRawInToken is CKM_RSA_X_509 (the RSA private-key operation, in the
	// token) followed by the EME-OAEP decoding in Go, for parameters the
	// token's OAEP does not take (SoftHSM2 2.6.1: any hash but SHA-1, any
	// label). The private key never leaves the token; only the encoded
	// message, which holds nothing but the padded plaintext, is read out.
	OAEPRawInToken OAEPPath = "token-rsa-x509+oaep-decode"
)

// DecryptOAEP decrypts RSA-OAEP with a private key in the token. The token's
// own OAEP is used where it takes the parameters (Capabilities.OAEPHashes,
// the same hash for MGF1, no label); otherwise, unless
// Config.TokenOnlyOAEP forbids it, the raw RSA operation runs in the token
// and the OAEP encoding is checked in Go in constant time (RFC 8017
// §7.1.2). Either way a failure of the decryption is one KindIntegrity
// error wrapping ErrDecryption, so nothing tells an attacker which check
// failed (Manger's attack needs that).
func (h *HSM) DecryptOAEP(ctx context.Context, k Key, req OAEPRequest) ([]byte, OAEPPath, error) {
	const op = "decrypt"
	if req.Hash == 0 {
		req.Hash = crypto.SHA1
	}
	if req.MGFHash == 0 {
		req.MGFHash = req.Hash
	}
	for _, hh := range []crypto.Hash{req.Hash, req.MGFHash} {
		if _, ok := hashMechs[hh]; !ok || !hh.Available() {
			return nil, "", errorf(op, KindUnsupported, "hash %v is not supported for OAEP", hh)
		}
	}
	if len(req.Ciphertext) > maxData {
		return nil, "", errorf(op, KindBadInput, "ciphertext larger than %d bytes", maxData)
	}
	path := OAEPRawInToken
	if req.MGFHash == req.Hash && len(req.Label) == 0 && h.caps.OAEP(req.Hash) {
		path = OAEPInToken
	}
	if path == OAEPRawInToken {
		if h.cfg.TokenOnlyOAEP {
			return nil, "", errorf(op, KindUnsupported, "the token does RSA-OAEP only with %v, the same MGF1 hash and no label, and decoding OAEP outside the token is switched off", h.caps.OAEPHashes)
		}
		if !h.caps.HasMechanism(pkcs11.CKM_RSA_X_509) {
			return nil, "", errorf(op, KindUnsupported, "the token does RSA-OAEP only with %v, the same MGF1 hash and no label, and has no raw RSA (CKM_RSA_X_509) to decode it with", h.caps.OAEPHashes)
		}
	}
	var out []byte
	err := h.withKey(ctx, op, k, func(s *session, obj pkcs11.ObjectHandle, b *blob) error {
		if err := needFamily(op, b, RSAOAEP, famRSA); err != nil {
			return err
		}
		size := keySpecs[b.typ].size / 8
		if len(req.Ciphertext) != size {
			return decryptionFailed(op)
		}
		var mech *pkcs11.Mechanism
		if path == OAEPInToken {
			m, err := oaepMechanism(req.Hash)
			if err != nil {
				return err
			}
			mech = m
		} else {
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)
		}
		if err := h.ctx.DecryptInit(s.h, []*pkcs11.Mechanism{mech}, obj); err != nil {
			return err
		}
		pt, err := h.ctx.Decrypt(s.h, req.Ciphertext)
		if err != nil {
			if sessionLost(err) || handleLost(err) {
				return err
			}
			return decryptionFailed(op)
		}
		if path == OAEPRawInToken {
			em := pt
			if len(em) < size {
				em = append(make([]byte, size-len(em)), em...)
			}
			var ok bool
			if pt, ok = decodeOAEP(em, req.Hash, req.MGFHash, req.Label); !ok {
				return decryptionFailed(op)
			}
		}
		out = pt
		return nil
	})
	return out, path, err
}

// decodeOAEP is EME-OAEP decoding (RFC 8017 §7.1.2 step 3) of an encoded
// message em of the modulus's length, in time that depends only on the
// lengths.
func decodeOAEP(em []byte, hh, mgf crypto.Hash, label []byte) ([]byte, bool) {
	hLen := hh.Size()
	k := len(em)
	if k < 2*hLen+2 {
		return nil, false
	}
	lh := hh.New()
	lh.Write(label)
	lHash := lh.Sum(nil)
	em = append([]byte(nil), em...)
	firstByteIsZero := subtle.ConstantTimeByteEq(em[0], 0)
	seed, db := em[1:hLen+1], em[hLen+1:]
	mgf1XOR(seed, mgf.New(), db)
	mgf1XOR(db, mgf.New(), seed)
	lHashGood := subtle.ConstantTimeCompare(lHash, db[:hLen])
	// The message follows the first 0x01 after lHash; only zeros may come
	// before it.
	lookingForIndex, index, invalid := 1, 0, 0
	rest := db[hLen:]
	for i := range rest {
		equals0 := subtle.ConstantTimeByteEq(rest[i], 0)
		equals1 := subtle.ConstantTimeByteEq(rest[i], 1)
		index = subtle.ConstantTimeSelect(lookingForIndex&equals1, i, index)
		lookingForIndex = subtle.ConstantTimeSelect(equals1, 0, lookingForIndex)
		invalid = subtle.ConstantTimeSelect(lookingForIndex&^equals0, 1, invalid)
	}
	if firstByteIsZero&lHashGood&^invalid&^lookingForIndex != 1 {
		return nil, false
	}
	return rest[index+1:], true
}

// mgf1XOR XORs out with MGF1(seed) (RFC 8017 B.2.1).
func mgf1XOR(out []byte, h hash.Hash, seed []byte) {
	var counter [4]byte
	done := 0
	for done < len(out) {
		h.Reset()
		h.Write(seed)
		h.Write(counter[:])
		digest := h.Sum(nil)
		for i := 0; i < len(digest) && done < len(out); i++ {
			out[done] ^= digest[i]
			done++
		}
		binary.BigEndian.PutUint32(counter[:], binary.BigEndian.Uint32(counter[:])+1)
	}
}

// DecryptPKCS1v15 decrypts RSA PKCS#1 v1.5 in the token (CKM_RSA_PKCS).
// Every failure of the decryption itself is the same KindIntegrity error
// wrapping ErrDecryption (Bleichenbacher's attack needs to tell them apart).
func (h *HSM) DecryptPKCS1v15(ctx context.Context, k Key, ciphertext []byte) ([]byte, error) {
	const op = "decrypt"
	if len(ciphertext) > maxData {
		return nil, errorf(op, KindBadInput, "ciphertext larger than %d bytes", maxData)
	}
	var out []byte
	err := h.withKey(ctx, op, k, func(s *session, obj pkcs11.ObjectHandle, b *blob) error {
		if err := needFamily(op, b, RSAPKCS1, famRSA); err != nil {
			return err
		}
		if err := h.ctx.DecryptInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}, obj); err != nil {
			return err
		}
		pt, err := h.ctx.Decrypt(s.h, ciphertext)
		if err != nil {
			if sessionLost(err) || handleLost(err) {
				return err
			}
			return decryptionFailed(op)
		}
		out = pt
		return nil
	})
	return out, err
}
