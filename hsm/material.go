package hsm

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"math/big"

	"github.com/miekg/pkcs11"
)

// ImportRequest brings existing plaintext key material under the KEK.
type ImportRequest struct {
	ID   string
	Type KeyType // required for secret keys; for private keys derived from the material (and checked if set)
	// Material is the raw key for AES and HMAC keys, and a PKCS#8 (or PKCS#1
	// RSA / SEC1 EC) DER private key for key pairs.
	Material   []byte
	Exportable bool
}

// Import creates a session object from the material, wraps it under the
// current KEK and returns the blob. The material is not kept.
func (h *HSM) Import(ctx context.Context, req ImportRequest) ([]byte, error) {
	const op = "import"
	if req.ID == "" {
		return nil, errorf(op, KindBadInput, "empty key id")
	}
	t, tmpl, pub, err := importTemplate(req)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = h.do(ctx, op, func(s *session) error {
		obj, err := h.ctx.CreateObject(s.h, tmpl)
		if err != nil {
			return err
		}
		defer h.ctx.DestroyObject(s.h, obj)
		out, err = h.wrapNew(s, req.ID, t, req.Exportable, pub, obj)
		return err
	})
	return out, err
}

func importTemplate(req ImportRequest) (KeyType, []*pkcs11.Attribute, []byte, error) {
	const op = "import"
	if req.Type != "" {
		if _, err := req.Type.spec(op); err != nil {
			return "", nil, nil, err
		}
	}
	if req.Type.Symmetric() {
		spec := keySpecs[req.Type]
		if len(req.Material) != spec.size {
			return "", nil, nil, errorf(op, KindBadInput, "a %s key is %d bytes, got %d", req.Type, spec.size, len(req.Material))
		}
		kt := uint(pkcs11.CKK_AES)
		if spec.fam == famHMAC {
			kt = pkcs11.CKK_GENERIC_SECRET
		}
		return req.Type, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, kt),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, req.Material),
		}, nil, nil
	}
	priv, err := parsePrivateKey(req.Material)
	if err != nil {
		return "", nil, nil, err
	}
	var t KeyType
	var tmpl []*pkcs11.Attribute
	var pubKey any
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		switch k.N.BitLen() {
		case 2048:
			t = RSA2048
		case 3072:
			t = RSA3072
		case 4096:
			t = RSA4096
		default:
			return "", nil, nil, errorf(op, KindUnsupported, "RSA keys of %d bits are not supported (2048, 3072, 4096)", k.N.BitLen())
		}
		if len(k.Primes) != 2 {
			return "", nil, nil, errorf(op, KindUnsupported, "multi-prime RSA keys are not supported")
		}
		tmpl, pubKey = rsaPrivateTemplate(k, false), &k.PublicKey
	case *ecdsa.PrivateKey:
		for kt, spec := range keySpecs {
			if spec.fam == famEC && spec.curve == k.Curve {
				t = kt
			}
		}
		if t == "" {
			return "", nil, nil, errorf(op, KindUnsupported, "EC curve %s is not supported (P-256, P-384, P-521)", k.Curve.Params().Name)
		}
		params, err := asn1.Marshal(keySpecs[t].oid)
		if err != nil {
			return "", nil, nil, wrapErr(op, err)
		}
		d, err := k.Bytes()
		if err != nil {
			return "", nil, nil, errorf(op, KindBadInput, "invalid EC private key")
		}
		tmpl = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, d),
		}
		pubKey = &k.PublicKey
	default:
		return "", nil, nil, errorf(op, KindUnsupported, "private keys of type %T are not supported", priv)
	}
	if req.Type != "" && req.Type != t {
		return "", nil, nil, errorf(op, KindBadInput, "the material is a %s key, not %s", t, req.Type)
	}
	pub, err := x509.MarshalPKIXPublicKey(pubKey)
	if err != nil {
		return "", nil, nil, wrapErr(op, err)
	}
	return t, tmpl, pub, nil
}

func parsePrivateKey(der []byte) (any, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errorf("import", KindBadInput, "the material is not a PKCS#8, PKCS#1 or SEC1 DER private key")
}

// Export returns the plaintext material of an exportable key: raw bytes for
// AES and HMAC keys, PKCS#8 DER for private keys. A key generated or imported
// without Exportable is refused with KindPermission. The material is read
// from the key's cached session object (an exportable key's is not
// sensitive), so repeated exports cost no unwrap.
func (h *HSM) Export(ctx context.Context, k Key) ([]byte, error) {
	const op = "export"
	var out []byte
	err := h.withKey(ctx, op, k, func(s *session, obj pkcs11.ObjectHandle, b *blob) error {
		if !b.exportable {
			return errorf(op, KindPermission, "the key is not exportable")
		}
		var err error
		out, err = h.readMaterial(s, obj, b)
		return err
	})
	return out, err
}

// maxSecretKey is the buffer a secret key's value is read into at once
// (AES keys are at most 32 bytes); a longer one is read in two calls.
const maxSecretKey = 64

func (h *HSM) readMaterial(s *session, obj pkcs11.ObjectHandle, b *blob) ([]byte, error) {
	get := func(types ...uint) ([]*pkcs11.Attribute, error) {
		q := make([]*pkcs11.Attribute, len(types))
		for i, t := range types {
			q[i] = pkcs11.NewAttribute(t, nil)
		}
		return h.ctx.GetAttributeValue(s.h, obj, q)
	}
	spec := keySpecs[b.typ]
	switch spec.fam {
	case famAES, famHMAC:
		if h.value.fn != nil {
			buf := make([]byte, maxSecretKey)
			n, err := h.value.read(s.h, obj, pkcs11.CKA_VALUE, buf)
			if c, _ := ckr(err); c != pkcs11.CKR_BUFFER_TOO_SMALL {
				return buf[:n], err
			}
		}
		a, err := get(pkcs11.CKA_VALUE)
		if err != nil {
			return nil, err
		}
		return a[0].Value, nil
	case famRSA:
		a, err := get(pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT, pkcs11.CKA_PRIVATE_EXPONENT,
			pkcs11.CKA_PRIME_1, pkcs11.CKA_PRIME_2)
		if err != nil {
			return nil, err
		}
		n := func(i int) *big.Int { return new(big.Int).SetBytes(a[i].Value) }
		k := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: n(0), E: int(n(1).Int64())},
			D:         n(2),
			Primes:    []*big.Int{n(3), n(4)},
		}
		k.Precompute()
		if err := k.Validate(); err != nil {
			return nil, errorf("export", KindInternal, "token returned an inconsistent RSA key")
		}
		return x509.MarshalPKCS8PrivateKey(k)
	default:
		a, err := get(pkcs11.CKA_VALUE)
		if err != nil {
			return nil, err
		}
		d := a[0].Value
		size := (spec.curve.Params().BitSize + 7) / 8
		if len(d) < size {
			d = append(make([]byte, size-len(d)), d...)
		}
		k, err := ecdsa.ParseRawPrivateKey(spec.curve, d)
		if err != nil {
			return nil, errorf("export", KindInternal, "token returned an invalid EC private key")
		}
		return x509.MarshalPKCS8PrivateKey(k)
	}
}
