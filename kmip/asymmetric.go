package kmip

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"

	"github.com/keyhold/keyhold/hsm"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// How asymmetric keys and certificates are held:
//
//   - a private key the token can hold (RSA 2048/3072/4096, EC P-256/384/
//     521) is an HSM blob, generated in the token (Create Key Pair) or
//     imported into it (Register), exportable because KMIP clients may Get
//     it; every operation with it (Sign, Decrypt) runs in the token;
//   - another private key is kept sealed (PKCS#8) and can be registered and
//     fetched but not used: the server does no private-key operation
//     outside the token;
//   - a public key is sealed PKIX DER, a certificate its sealed DER; the
//     operations on them (Encrypt, Signature Verify) need no secret and run
//     in Go.

// tokenPairType returns the HSM key type of a key pair, if the token holds
// such keys.
func tokenPairType(pub crypto.PublicKey) (hsm.KeyType, bool) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return hsm.RSA2048, true
		case 3072:
			return hsm.RSA3072, true
		case 4096:
			return hsm.RSA4096, true
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return hsm.ECP256, true
		case elliptic.P384():
			return hsm.ECP384, true
		case elliptic.P521():
			return hsm.ECP521, true
		}
	}
	return "", false
}

// setPrivateKey gives a new private key object its value (an HSM blob if
// the token holds such keys, else sealed) and returns its Digest, in the
// format the key is recorded in.
func (c *call) setPrivateKey(ctx context.Context, o *object, priv crypto.Signer, format kmip.KeyFormatType) (kmip.Digest, error) {
	vals := c.b.st.vals
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return kmip.Digest{}, invalidField("the private key cannot be encoded")
	}
	c.sensitive["key_material"] = p8
	if kt, ok := tokenPairType(priv.Public()); ok {
		blob, err := vals.h.Import(ctx, hsm.ImportRequest{ID: vals.hsmID(o.id()), Type: kt, Material: p8, Exportable: true})
		if err != nil {
			return kmip.Digest{}, err
		}
		o.rec.Value = blob
	} else {
		v, err := vals.sealValue(ctx, o.id(), sealMeta{format: format}, p8)
		if err != nil {
			return kmip.Digest{}, err
		}
		o.rec.Value = v
	}
	return keyDigest(priv, format)
}

// keyDigest is the Digest of a key (public or private) over its encoding
// in format.
func keyDigest(key any, format kmip.KeyFormatType) (kmip.Digest, error) {
	var km kmip.KeyMaterial
	var err error
	switch k := key.(type) {
	case crypto.Signer:
		km, err = encodePrivateKey(k, format)
	default:
		km, err = encodePublicKey(k, format)
	}
	if err != nil {
		return kmip.Digest{}, err
	}
	if km.Bytes == nil {
		return kmip.Digest{}, invalidField("no digest for the %s format", ttlv.EnumStr(format))
	}
	return digest(*km.Bytes, format), nil
}

// setPublicKey gives a new public key object its sealed value and returns
// its Digest.
func (c *call) setPublicKey(ctx context.Context, o *object, pub crypto.PublicKey, format kmip.KeyFormatType) (kmip.Digest, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return kmip.Digest{}, invalidField("the public key cannot be encoded")
	}
	v, err := c.b.st.vals.sealValue(ctx, o.id(), sealMeta{format: format}, der)
	if err != nil {
		return kmip.Digest{}, err
	}
	o.rec.Value = v
	return keyDigest(pub, format)
}

// recordedFormat is the Key Format Type an asymmetric key is recorded in:
// its Digest's.
func recordedFormat(o *object) kmip.KeyFormatType {
	if v, ok := o.get(kmip.AttributeNameDigest); ok {
		if d, ok := v.(kmip.Digest); ok {
			return d.KeyFormatType
		}
	}
	return 0
}

// privateKey returns the private key of an object in the clear, for Get:
// an exportable blob's material (read from the token) or the sealed value.
func (c *call) privateKey(ctx context.Context, o *object) (crypto.Signer, error) {
	_, m, err := c.b.st.vals.material(ctx, o.id(), o.rec.Value)
	if err != nil {
		return nil, err
	}
	c.respSensitive["key_material"] = m
	k, err := x509.ParsePKCS8PrivateKey(m)
	if err != nil {
		return nil, errorf(kmip.ResultReasonGeneralFailure, "the stored private key of %s does not parse", o.id())
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errorf(kmip.ResultReasonGeneralFailure, "the stored private key of %s is of an unknown type", o.id())
	}
	if err := checkRSASize(s.Public()); err != nil { // registered before the limit
		return nil, err
	}
	return s, nil
}

// publicKey returns the public key an object holds: a public key's sealed
// value, a private key's public half (recorded in its blob, or sealed), or
// a certificate's subject key.
func (c *call) publicKey(ctx context.Context, o *object) (crypto.PublicKey, error) {
	pub, err := c.storedPublicKey(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := checkRSASize(pub); err != nil { // registered before the limit
		return nil, err
	}
	return pub, nil
}

func (c *call) storedPublicKey(ctx context.Context, o *object) (crypto.PublicKey, error) {
	vals := c.b.st.vals
	switch o.typ {
	case kmip.ObjectTypePublicKey:
		_, der, err := vals.material(ctx, o.id(), o.rec.Value)
		if err != nil {
			return nil, err
		}
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return nil, errorf(kmip.ResultReasonGeneralFailure, "the stored public key of %s does not parse", o.id())
		}
		return pub, nil
	case kmip.ObjectTypeCertificate:
		_, der, err := vals.material(ctx, o.id(), o.rec.Value)
		if err != nil {
			return nil, err
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, errorf(kmip.ResultReasonGeneralFailure, "the stored certificate %s does not parse", o.id())
		}
		return cert.PublicKey, nil
	case kmip.ObjectTypePrivateKey:
		if isBlob(o.rec.Value) {
			der, err := vals.h.PublicKey(ctx, hsm.Key{ID: vals.hsmID(o.id()), Blob: o.rec.Value})
			if err != nil {
				return nil, err
			}
			return x509.ParsePKIXPublicKey(der)
		}
		priv, err := c.privateKey(ctx, o)
		if err != nil {
			return nil, err
		}
		return priv.Public(), nil
	}
	return nil, invalidField("a %s has no public key", ttlv.EnumStr(o.typ))
}

// isBlob reports whether a stored value is an HSM blob.
func isBlob(v []byte) bool { return bytes.HasPrefix(v, []byte(blobMagic)) }

// asymmetricValue builds the Public Key, Private Key or Certificate a Get
// returns, in the requested format (0: the recorded one).
func (c *call) asymmetricValue(ctx context.Context, o *object, m []byte, format kmip.KeyFormatType) (kmip.Object, error) {
	if format == 0 {
		format = recordedFormat(o)
	}
	alg, _ := o.get(kmip.AttributeNameCryptographicAlgorithm)
	length, _ := o.get(kmip.AttributeNameCryptographicLength)
	block := func(km kmip.KeyMaterial) kmip.KeyBlock {
		kb := kmip.KeyBlock{KeyFormatType: format, KeyValue: &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: km}}}
		a, _ := alg.(kmip.CryptographicAlgorithm)
		kb.CryptographicAlgorithm = algorithmInVersion(a, c.b.version)
		kb.CryptographicLength, _ = length.(int32)
		return kb
	}
	switch o.typ {
	case kmip.ObjectTypePublicKey:
		pub, err := x509.ParsePKIXPublicKey(m)
		if err != nil {
			return nil, errorf(kmip.ResultReasonGeneralFailure, "the stored public key of %s does not parse", o.id())
		}
		km, err := encodePublicKey(pub, format)
		if err != nil {
			return nil, err
		}
		return &kmip.PublicKey{KeyBlock: block(km)}, nil
	case kmip.ObjectTypePrivateKey:
		k, err := x509.ParsePKCS8PrivateKey(m)
		priv, ok := k.(crypto.Signer)
		if err != nil || !ok {
			return nil, errorf(kmip.ResultReasonGeneralFailure, "the stored private key of %s does not parse", o.id())
		}
		km, err := encodePrivateKey(priv, format)
		if err != nil {
			return nil, err
		}
		return &kmip.PrivateKey{KeyBlock: block(km)}, nil
	case kmip.ObjectTypeCertificate:
		if format != 0 && format != recordedFormat(o) {
			return nil, errorf(kmip.ResultReasonKeyFormatTypeNotSupported, "a certificate has no key format")
		}
		ct, _ := o.get(kmip.AttributeNameCertificateType)
		typ, _ := ct.(kmip.CertificateType)
		return &kmip.Certificate{CertificateType: typ, CertificateValue: m}, nil
	}
	return nil, errorf(kmip.ResultReasonFeatureNotSupported, "Get of a %s is not supported", ttlv.EnumStr(o.typ))
}
