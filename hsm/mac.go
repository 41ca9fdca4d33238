package hsm

import (
	"context"
	"crypto"
	"crypto/hmac"

	"github.com/miekg/pkcs11"
)

// MACAny computes an HMAC in the token with any secret key: an HMAC key
// (as MAC does; hash 0 is its own hash) or an AES key, because KMIP lets a
// client use one symmetric key for both when its usage mask says so, and
// tokens refuse HMAC mechanisms on CKK_AES objects. An AES key at least as
// long as the hash is unwrapped once more as a generic secret for the call;
// the key never leaves the token. A shorter one (AES-128 with HMAC-SHA-256)
// meets SoftHSM2's minimum HMAC key length (the hash's size,
// CKR_KEY_SIZE_RANGE below it), which RFC 2104 does not have: if the key is
// exportable its value is read from its session object and imported
// zero-extended to 64 bytes, HMAC's own key padding, so the MAC is the one
// of the key itself; its value then passes through memory here, as a Get
// of the exportable key would. A non-exportable short key is refused.
func (h *HSM) MACAny(ctx context.Context, k Key, hash crypto.Hash, data []byte) ([]byte, error) {
	const op = "mac"
	if len(data) > maxData {
		return nil, errorf(op, KindBadInput, "data larger than %d bytes", maxData)
	}
	info, err := h.Inspect(ctx, k)
	if err != nil {
		return nil, err
	}
	spec := keySpecs[info.Type]
	switch spec.fam {
	case famHMAC:
		return h.MAC(ctx, k, hash, data)
	case famAES:
	default:
		return nil, errorf(op, KindBadInput, "a %s key cannot compute an HMAC", info.Type)
	}
	mech, ok := hmacMechs[hash]
	if !ok {
		return nil, errorf(op, KindUnsupported, "HMAC with %v is not supported", hash)
	}
	if spec.size < hash.Size() && !info.Exportable {
		return nil, errorf(op, KindUnsupported, "the token computes HMAC-%v with keys of at least %d bytes; this %s key is not exportable, so it cannot be extended", hash, hash.Size(), info.Type)
	}
	generic := func(extra ...*pkcs11.Attribute) []*pkcs11.Attribute {
		return append([]*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		}, extra...)
	}
	var out []byte
	err = h.withKey(ctx, op, k, func(s *session, aesObj pkcs11.ObjectHandle, b *blob) error {
		var obj pkcs11.ObjectHandle
		if spec.size >= hash.Size() {
			kek, err := h.kek(s, b.kekVersion)
			if err != nil {
				return err
			}
			obj, err = h.ctx.UnwrapKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, kek.wrap, b.wrapped, generic())
			if err != nil {
				return err
			}
		} else {
			m, err := h.readMaterial(s, aesObj, b)
			if err != nil {
				return err
			}
			padded := make([]byte, hmacPaddedKey)
			copy(padded, m)
			clear(m)
			obj, err = h.ctx.CreateObject(s.h, generic(pkcs11.NewAttribute(pkcs11.CKA_VALUE, padded)))
			clear(padded)
			if err != nil {
				return err
			}
		}
		defer h.ctx.DestroyObject(s.h, obj)
		if err := h.ctx.SignInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, obj); err != nil {
			return err
		}
		var err error
		out, err = h.ctx.Sign(s.h, data)
		return err
	})
	return out, err
}

// hmacPaddedKey is the length a short HMAC key is zero-extended to: at
// least every supported hash's size and at most every block size (64 and
// 128 bytes), so HMAC pads it no further than it would pad the key itself.
const hmacPaddedKey = 64

// VerifyMACAny recomputes the HMAC with MACAny and compares in constant time.
func (h *HSM) VerifyMACAny(ctx context.Context, k Key, hash crypto.Hash, data, mac []byte) (bool, error) {
	got, err := h.MACAny(ctx, k, hash, data)
	if err != nil {
		return false, err
	}
	return hmac.Equal(got, mac), nil
}
