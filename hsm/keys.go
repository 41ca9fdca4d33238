package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"math/big"

	"github.com/miekg/pkcs11"
)

// Key names a wrapped key: its blob and the id the blob is bound to (the
// stored row's identity, e.g. key id + version). Every use checks the binding.
type Key struct {
	ID   string
	Blob []byte
}

// GenerateRequest asks for a new key generated in the token.
type GenerateRequest struct {
	ID         string  // the id the blob is bound to
	Type       KeyType // what to generate
	Exportable bool    // whether its material may ever be read out in the clear
}

// Generate creates a key in the token as a session object, wraps it at once
// under the current KEK and returns the blob. No plaintext leaves the token.
func (h *HSM) Generate(ctx context.Context, req GenerateRequest) ([]byte, error) {
	blob, _, err := h.generate(ctx, "generate", req, 0)
	return blob, err
}

// GenerateDigest is Generate for a secret (AES or HMAC) key that also
// returns the digest of the key's value, computed in the token
// (C_DigestKey): what KMIP's Digest attribute records, without the value
// leaving the token.
func (h *HSM) GenerateDigest(ctx context.Context, req GenerateRequest, hash crypto.Hash) (blob, digest []byte, err error) {
	const op = "generate"
	if !req.Type.Symmetric() {
		return nil, nil, errorf(op, KindBadInput, "the token digests secret keys only, not %s", req.Type)
	}
	m, ok := hashMechs[hash]
	if !ok {
		return nil, nil, errorf(op, KindUnsupported, "no digest mechanism for %v", hash)
	}
	return h.generate(ctx, op, req, m.hash)
}

func (h *HSM) generate(ctx context.Context, op string, req GenerateRequest, digestMech uint) ([]byte, []byte, error) {
	spec, err := req.Type.spec(op)
	if err != nil {
		return nil, nil, err
	}
	if req.ID == "" {
		return nil, nil, errorf(op, KindBadInput, "empty key id")
	}
	var out, sum []byte
	err = h.do(ctx, op, func(s *session) error {
		obj, pub, destroy, err := h.generateObject(s, spec)
		if err != nil {
			return err
		}
		defer destroy()
		if digestMech != 0 {
			if err := h.ctx.DigestInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(digestMech, nil)}); err != nil {
				return err
			}
			if err := h.ctx.DigestKey(s.h, obj); err != nil {
				return err
			}
			if sum, err = h.ctx.DigestFinal(s.h); err != nil {
				return err
			}
		}
		out, err = h.wrapNew(s, req.ID, req.Type, req.Exportable, pub, obj)
		return err
	})
	return out, sum, err
}

// generateObject creates the key as session objects and returns the object
// to wrap (the secret or private key), the PKIX public key for key pairs and
// a function that destroys what was created.
//
// The objects are not CKA_PRIVATE: they live only until wrapped, in sessions
// of this process that are all logged in, and stay CKA_SENSITIVE, so the
// flag would protect nothing; SoftHSM2 would encrypt the value in its memory
// on creation and decrypt it again for the digest and for the wrap (about
// 15 µs of a 60 µs generate-and-wrap of an AES key, BenchmarkGenerateWrap).
func (h *HSM) generateObject(s *session, spec keySpec) (pkcs11.ObjectHandle, []byte, func(), error) {
	base := func(class uint) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		}
	}
	switch spec.fam {
	case famAES, famHMAC:
		mech, kt := uint(pkcs11.CKM_AES_KEY_GEN), uint(pkcs11.CKK_AES)
		if spec.fam == famHMAC {
			mech, kt = pkcs11.CKM_GENERIC_SECRET_KEY_GEN, pkcs11.CKK_GENERIC_SECRET
		}
		t := append(base(pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, kt),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, spec.size))
		obj, err := h.ctx.GenerateKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, t)
		if err != nil {
			return 0, nil, nil, err
		}
		return obj, nil, func() { _ = h.ctx.DestroyObject(s.h, obj) }, nil
	case famRSA:
		pubT := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, spec.size),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		}
		privT := append(base(pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true))
		pubObj, privObj, err := h.ctx.GenerateKeyPair(s.h,
			[]*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)}, pubT, privT)
		if err != nil {
			return 0, nil, nil, err
		}
		destroy := func() {
			_ = h.ctx.DestroyObject(s.h, privObj)
			_ = h.ctx.DestroyObject(s.h, pubObj)
		}
		attrs, err := h.ctx.GetAttributeValue(s.h, pubObj, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			destroy()
			return 0, nil, nil, err
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(attrs[0].Value), E: int(new(big.Int).SetBytes(attrs[1].Value).Int64())}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			destroy()
			return 0, nil, nil, err
		}
		return privObj, der, destroy, nil
	default:
		params, err := asn1.Marshal(spec.oid)
		if err != nil {
			return 0, nil, nil, err
		}
		pubT := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		}
		privT := append(base(pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true))
		pubObj, privObj, err := h.ctx.GenerateKeyPair(s.h,
			[]*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)}, pubT, privT)
		if err != nil {
			return 0, nil, nil, err
		}
		destroy := func() {
			_ = h.ctx.DestroyObject(s.h, privObj)
			_ = h.ctx.DestroyObject(s.h, pubObj)
		}
		attrs, err := h.ctx.GetAttributeValue(s.h, pubObj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
		if err != nil {
			destroy()
			return 0, nil, nil, err
		}
		der, err := ecPublicDER(spec, attrs[0].Value)
		if err != nil {
			destroy()
			return 0, nil, nil, err
		}
		return privObj, der, destroy, nil
	}
}

// ecPublicDER turns a CKA_EC_POINT (a DER OCTET STRING holding the
// uncompressed point; some tokens give the bare point) into PKIX DER.
func ecPublicDER(spec keySpec, point []byte) ([]byte, error) {
	var raw []byte
	if rest, err := asn1.Unmarshal(point, &raw); err != nil || len(rest) != 0 {
		raw = point
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(spec.curve, raw)
	if err != nil {
		return nil, errorf("ec public key", KindInternal, "token returned an invalid EC point")
	}
	return x509.MarshalPKIXPublicKey(pub)
}

// maxWrapped is the buffer wrapUnderKEK wraps into at once.
const maxWrapped = 4096

// wrapUnderKEK wraps obj under the KEK kek with AES key wrap with padding,
// in one call where the module allows it: the wrap of every key type made
// here fits in 4 KiB (an RSA-4096 private key's is about 2.4 KiB); a longer
// one would be wrapped again through miekg/pkcs11.
func (h *HSM) wrapUnderKEK(s *session, kek, obj pkcs11.ObjectHandle) ([]byte, error) {
	if h.wrap.fn != nil {
		buf := make([]byte, maxWrapped)
		n, err := h.wrap.wrap(s.h, pkcs11.CKM_AES_KEY_WRAP_PAD, kek, obj, buf)
		if c, _ := ckr(err); c != pkcs11.CKR_BUFFER_TOO_SMALL {
			return bytes.Clone(buf[:n]), err
		}
	}
	return h.ctx.WrapKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, kek, obj)
}

// wrapNew wraps obj under the current KEK and seals the blob to id.
func (h *HSM) wrapNew(s *session, id string, t KeyType, exportable bool, pub []byte, obj pkcs11.ObjectHandle) ([]byte, error) {
	v, kek, err := h.currentKEK(s)
	if err != nil {
		return nil, err
	}
	wrapped, err := h.wrapUnderKEK(s, kek.wrap, obj)
	if err != nil {
		return nil, err
	}
	b := &blob{kekVersion: v, typ: t, exportable: exportable, public: pub, wrapped: wrapped}
	body := b.body()
	if err := h.ctx.SignInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}, kek.mac); err != nil {
		return nil, err
	}
	mac, err := h.ctx.Sign(s.h, macInput(id, body))
	if err != nil {
		return nil, err
	}
	b.mac = mac
	return b.marshal(), nil
}

// openBlob parses a blob and checks in the token that it is bound to id.
func (h *HSM) openBlob(s *session, op string, k Key) (*blob, error) {
	b, body, err := parseBlob(k.Blob)
	if err != nil {
		return nil, &Error{Op: "hsm: " + op, Kind: KindIntegrity, Msg: err.Error()}
	}
	kek, err := h.kek(s, b.kekVersion)
	if err != nil {
		return nil, err
	}
	if err := h.ctx.VerifyInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}, kek.mac); err != nil {
		return nil, err
	}
	if err := h.ctx.Verify(s.h, macInput(k.ID, body), b.mac); err != nil {
		if c, ok := ckr(err); ok && (c == pkcs11.CKR_SIGNATURE_INVALID || c == pkcs11.CKR_SIGNATURE_LEN_RANGE) {
			return nil, errorf(op, KindIntegrity, "the key blob is not bound to this id or was altered")
		}
		return nil, err
	}
	return b, nil
}

// unwrap turns a verified blob into a session object.
func (h *HSM) unwrap(s *session, b *blob, clear bool) (pkcs11.ObjectHandle, error) {
	kek, err := h.kek(s, b.kekVersion)
	if err != nil {
		return 0, err
	}
	spec := keySpecs[b.typ]
	return h.ctx.UnwrapKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)},
		kek.wrap, b.wrapped, spec.unwrapTemplate(clear))
}

// withKey runs fn with the session object of k, from the cache or freshly
// unwrapped (and then cached). A cached handle that turns out to be gone
// makes do renew everything and run this once more.
func (h *HSM) withKey(ctx context.Context, op string, k Key, fn func(s *session, obj pkcs11.ObjectHandle, b *blob) error) error {
	return h.do(ctx, op, func(s *session) error {
		e := h.cache.acquire(k.ID, k.Blob, s.gen)
		if e == nil {
			b, err := h.openBlob(s, op, k)
			if err != nil {
				return err
			}
			// An exportable key's material may be read out anyway: its
			// object is not sensitive, so Export reads it from the cache.
			obj, err := h.unwrap(s, b, b.exportable)
			if err != nil {
				return err
			}
			e = h.cache.add(k.ID, k.Blob, obj, b, s.gen, h.destroyer(s))
		}
		defer h.cache.release(e, h.destroyer(s))
		return fn(s, e.obj, e.blob)
	})
}

func (h *HSM) destroyer(s *session) func(pkcs11.ObjectHandle) {
	return func(o pkcs11.ObjectHandle) { _ = h.ctx.DestroyObject(s.h, o) }
}

// KeyInfo describes a blob after its binding was checked.
type KeyInfo struct {
	Type       KeyType
	Exportable bool
	KEKVersion int
	PublicKey  []byte // PKIX DER, for key pairs
}

// Inspect checks the binding of k and says what it holds.
func (h *HSM) Inspect(ctx context.Context, k Key) (*KeyInfo, error) {
	var info *KeyInfo
	err := h.do(ctx, "inspect", func(s *session) error {
		b, err := h.openBlob(s, "inspect", k)
		if err != nil {
			return err
		}
		info = &KeyInfo{Type: b.typ, Exportable: b.exportable, KEKVersion: b.kekVersion, PublicKey: b.public}
		return nil
	})
	return info, err
}

// PublicKey returns the PKIX DER public key of a key pair.
func (h *HSM) PublicKey(ctx context.Context, k Key) ([]byte, error) {
	info, err := h.Inspect(ctx, k)
	if err != nil {
		return nil, err
	}
	if len(info.PublicKey) == 0 {
		return nil, errorf("public key", KindBadInput, "a %s key has no public key", info.Type)
	}
	return info.PublicKey, nil
}

// Rewrap returns k's blob wrapped under the current KEK (unchanged if it already is).
func (h *HSM) Rewrap(ctx context.Context, k Key) ([]byte, error) {
	var out []byte
	err := h.withKey(ctx, "rewrap", k, func(s *session, obj pkcs11.ObjectHandle, b *blob) error {
		v, _, err := h.currentKEK(s)
		if err != nil {
			return err
		}
		if v == b.kekVersion {
			out = k.Blob
			return nil
		}
		out, err = h.wrapNew(s, k.ID, b.typ, b.exportable, b.public, obj)
		return err
	})
	return out, err
}
