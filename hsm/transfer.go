package hsm

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"math/big"

	"github.com/miekg/pkcs11"
)

// Key transfer (BYOK): a managed key leaves the token only wrapped under a
// cloud's RSA public key, in one of two shapes every cloud import spec uses:
//
//   - OAEP(key): the key wrapped directly with CKM_RSA_PKCS_OAEP (secret keys
//     that fit in one OAEP block);
//   - OAEP(eph) ‖ KWP(key): RSA-AES key wrap. A one-time AES-256 key wraps the
//     target with CKM_AES_KEY_WRAP_PAD (RFC 5649) and is itself wrapped with
//     RSA-OAEP. The token does this with CKM_RSA_AES_KEY_WRAP where it has the
//     mechanism; otherwise it is composed in the token from the two steps.
//
// The target key is wrapped by the token in every path and is never in the
// clear outside it. Where the token cannot do the OAEP hash a scheme needs
// (SoftHSM2 2.6.1 does SHA-1 only), the hybrid shape may read out the
// ephemeral key alone and OAEP-encrypt it in Go, if the caller allows it; the
// direct shape has no such fallback (it would expose the target) and is
// refused.

// TransferPath says how a transfer blob was made; callers record it in the
// audit trail.
type TransferPath string

// The transfer paths.
const (
	// PathTokenOAEP: the target was wrapped directly with CKM_RSA_PKCS_OAEP in the token.
	PathTokenOAEP TransferPath = "token:rsa-oaep"
	// PathTokenRSAAES: the token's own CKM_RSA_AES_KEY_WRAP made the whole blob.
	PathTokenRSAAES TransferPath = "token:rsa-aes-key-wrap"
	// PathTokenComposed: ephemeral AES key, CKM_AES_KEY_WRAP_PAD and
	// CKM_RSA_PKCS_OAEP, all in the token.
	PathTokenComposed TransferPath = "token:aes-key-wrap-pad+rsa-oaep"
	// PathSoftwareOAEP: the target was wrapped in the token with
	// CKM_AES_KEY_WRAP_PAD under an ephemeral key; the ephemeral key (only)
	// was read out and OAEP-encrypted in Go.
	PathSoftwareOAEP TransferPath = "token:aes-key-wrap-pad+software:rsa-oaep"
)

// minTransferRSABits is the smallest wrapping key accepted (every cloud uses
// 2048 bits or more; anything smaller is not a safe transport key).
const minTransferRSABits = 2048

// TransferRequest asks for a managed key wrapped under a cloud's public key.
type TransferRequest struct {
	Key         Key            // the managed key to transfer
	WrappingKey *rsa.PublicKey // the cloud's wrapping (import) key
	Hash        crypto.Hash    // the OAEP hash, with MGF1 over the same hash
	// AllowSoftwareOAEP lets RSA-AES transfers OAEP-encrypt the one-time
	// ephemeral key in Go when the token cannot do Hash. Ignored by WrapOAEP.
	AllowSoftwareOAEP bool
}

// Transfer is a wrapped key ready for a cloud's import call.
type Transfer struct {
	Blob []byte
	Path TransferPath
}

func (r *TransferRequest) check(op string) (*pkcs11.Mechanism, error) {
	if r.WrappingKey == nil || r.WrappingKey.N == nil {
		return nil, errorf(op, KindBadInput, "no wrapping key")
	}
	if bits := r.WrappingKey.N.BitLen(); bits < minTransferRSABits || bits > 16384 {
		return nil, errorf(op, KindBadInput, "the wrapping key has %d bits; at least %d are needed", bits, minTransferRSABits)
	}
	if e := r.WrappingKey.E; e < 3 || e%2 == 0 {
		return nil, errorf(op, KindBadInput, "the wrapping key's public exponent %d is invalid", e)
	}
	return oaepMechanism(r.Hash)
}

// rsaPublicTemplate is a session object for a cloud's wrapping key: it may
// only wrap.
func rsaPublicTemplate(pub *rsa.PublicKey) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, pub.N.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(pub.E)).Bytes()),
	}
}

// WrapOAEP wraps a secret (AES or HMAC) key directly under the wrapping key
// with CKM_RSA_PKCS_OAEP in the token: the blob is OAEP(raw key bytes). A
// token that cannot do the hash refuses with KindUnsupported; there is no
// software fallback, since it would need the target in the clear.
func (h *HSM) WrapOAEP(ctx context.Context, req TransferRequest) (*Transfer, error) {
	const op = "wrap oaep"
	mech, err := req.check(op)
	if err != nil {
		return nil, err
	}
	if !h.caps.OAEP(req.Hash) {
		return nil, errorf(op, KindUnsupported, "the token cannot do RSA-OAEP with %v (it can with %v); use an RSA-AES key wrap scheme instead", req.Hash, h.caps.OAEPHashes)
	}
	var out []byte
	err = h.withKey(ctx, op, req.Key, func(s *session, obj pkcs11.ObjectHandle, b *blob) error {
		spec := keySpecs[b.typ]
		if spec.fam != famAES && spec.fam != famHMAC {
			return errorf(op, KindBadInput, "a %s key cannot be wrapped with RSA-OAEP alone; use an RSA-AES key wrap scheme", b.typ)
		}
		if max := req.WrappingKey.Size() - 2*req.Hash.Size() - 2; spec.size > max {
			return errorf(op, KindBadInput, "a %s key is too long for RSA-OAEP with %v under a %d-bit key", b.typ, req.Hash, req.WrappingKey.N.BitLen())
		}
		pub, err := h.ctx.CreateObject(s.h, rsaPublicTemplate(req.WrappingKey))
		if err != nil {
			return err
		}
		defer h.ctx.DestroyObject(s.h, pub)
		out, err = h.ctx.WrapKey(s.h, []*pkcs11.Mechanism{mech}, pub, obj)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Transfer{Blob: out, Path: PathTokenOAEP}, nil
}

// WrapRSAAES wraps a managed key (any type) as OAEP(eph) ‖ KWP(key) under the
// wrapping key, with a fresh AES-256 ephemeral key: CKM_RSA_AES_KEY_WRAP where
// the token has it, else composed in the token (see the paths above).
func (h *HSM) WrapRSAAES(ctx context.Context, req TransferRequest) (*Transfer, error) {
	const op = "wrap rsa-aes"
	mech, err := req.check(op)
	if err != nil {
		return nil, err
	}
	tokenOAEP := h.caps.OAEP(req.Hash)
	if !tokenOAEP && !req.AllowSoftwareOAEP {
		return nil, errorf(op, KindUnsupported, "the token cannot do RSA-OAEP with %v (it can with %v) and OAEP of the ephemeral key in software is forbidden by configuration", req.Hash, h.caps.OAEPHashes)
	}
	var res *Transfer
	err = h.withKey(ctx, op, req.Key, func(s *session, obj pkcs11.ObjectHandle, b *blob) error {
		if h.caps.RSAAESKeyWrap && tokenOAEP {
			pub, err := h.ctx.CreateObject(s.h, rsaPublicTemplate(req.WrappingKey))
			if err != nil {
				return err
			}
			defer h.ctx.DestroyObject(s.h, pub)
			hm := hashMechs[req.Hash]
			m := pkcs11.NewMechanism(pkcs11.CKM_RSA_AES_KEY_WRAP, &pkcs11.RSAAESKeyWrapParams{
				AESKeyBits: 256,
				OAEPParams: pkcs11.OAEPParams{HashAlg: hm.hash, MGF: hm.mgf, SourceType: pkcs11.CKZ_DATA_SPECIFIED},
			})
			out, err := h.ctx.WrapKey(s.h, []*pkcs11.Mechanism{m}, pub, obj)
			if err != nil {
				return err
			}
			res = &Transfer{Blob: out, Path: PathTokenRSAAES}
			return nil
		}
		// Composed: the ephemeral key is sensitive unless its OAEP must be
		// done in Go, in which case it (and only it) is readable.
		eph, err := h.ctx.GenerateKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, tokenOAEP),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
				pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
				pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
				pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
			})
		if err != nil {
			return err
		}
		defer h.ctx.DestroyObject(s.h, eph)
		wrapped, err := h.ctx.WrapKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, eph, obj)
		if err != nil {
			return err
		}
		var head []byte
		path := PathTokenComposed
		if tokenOAEP {
			pub, err := h.ctx.CreateObject(s.h, rsaPublicTemplate(req.WrappingKey))
			if err != nil {
				return err
			}
			defer h.ctx.DestroyObject(s.h, pub)
			if head, err = h.ctx.WrapKey(s.h, []*pkcs11.Mechanism{mech}, pub, eph); err != nil {
				return err
			}
		} else {
			a, err := h.ctx.GetAttributeValue(s.h, eph, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
			if err != nil {
				return err
			}
			key := a[0].Value
			head, err = rsa.EncryptOAEP(req.Hash.New(), rand.Reader, req.WrappingKey, key, nil)
			clear(key)
			if err != nil {
				return errorf(op, KindBadInput, "RSA-OAEP of the ephemeral key failed under the wrapping key")
			}
			path = PathSoftwareOAEP
		}
		res = &Transfer{Blob: append(head, wrapped...), Path: path}
		return nil
	})
	return res, err
}

// KeyCheckValue returns AES-ECB of a zero block under an AES key, computed
// in the token: a receiver that decrypts the same block with the key it
// recovered proves it holds this key, without the key being shown.
func (h *HSM) KeyCheckValue(ctx context.Context, k Key) ([]byte, error) {
	const op = "key check value"
	var out []byte
	err := h.withKey(ctx, op, k, func(s *session, obj pkcs11.ObjectHandle, b *blob) error {
		if keySpecs[b.typ].fam != famAES {
			return errorf(op, KindBadInput, "a %s key has no AES check value", b.typ)
		}
		if err := h.ctx.EncryptInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil)}, obj); err != nil {
			return err
		}
		var err error
		out, err = h.ctx.Encrypt(s.h, make([]byte, 16))
		return err
	})
	return out, err
}
