package kmip

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"math/big"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// The key formats of asymmetric keys (KMIP 1.4 §2.1.3, §9.1.3.2.3): what a
// client may register and ask Get for, and the conversions between them.
// Inside the server a public key is PKIX DER and a private key PKCS#8 DER;
// the format a key came in (or, for generated keys, PKCS#1 for RSA and
// PKCS#8/X.509 for EC) is the one its Digest describes and Get answers by
// default.

// curves maps KMIP's Recommended Curves to Go's, for the curves Go has.
var curves = map[kmip.RecommendedCurve]elliptic.Curve{
	kmip.RecommendedCurveP_224: elliptic.P224(),
	kmip.RecommendedCurveP_256: elliptic.P256(),
	kmip.RecommendedCurveP_384: elliptic.P384(),
	kmip.RecommendedCurveP_521: elliptic.P521(),
}

func curveOf(c elliptic.Curve) kmip.RecommendedCurve {
	for rc, gc := range curves {
		if gc == c {
			return rc
		}
	}
	return 0
}

// keyMaterial returns a key block's plain material; wrapped and
// compressed values are refused.
func keyMaterial(kb *kmip.KeyBlock) (kmip.KeyMaterial, error) {
	if kb.KeyWrappingData != nil || (kb.KeyValue != nil && kb.KeyValue.Wrapped != nil) {
		return kmip.KeyMaterial{}, errorf(kmip.ResultReasonFeatureNotSupported, "registering wrapped key values is not supported")
	}
	if kb.KeyCompressionType != 0 && kb.KeyCompressionType != kmip.KeyCompressionTypeECPublicKeyTypeUncompressed {
		return kmip.KeyMaterial{}, errorf(kmip.ResultReasonKeyCompressionTypeNotSupported, "compressed keys are not supported")
	}
	if kb.KeyValue == nil || kb.KeyValue.Plain == nil {
		return kmip.KeyMaterial{}, invalidField("the key block has no key value")
	}
	return kb.KeyValue.Plain.KeyMaterial, nil
}

// keyBytes returns a key block's material for the formats that carry a
// byte string.
func keyBytes(kb *kmip.KeyBlock) ([]byte, error) {
	km, err := keyMaterial(kb)
	if err != nil {
		return nil, err
	}
	if km.Bytes == nil || len(*km.Bytes) == 0 {
		return nil, invalidField("the key block has no key material")
	}
	return *km.Bytes, nil
}

func badKey(format kmip.KeyFormatType) error {
	return invalidField("the key material is not a valid %s key", ttlv.EnumStr(format))
}

// parsePublicKey reads a registered public key.
func parsePublicKey(kb *kmip.KeyBlock) (crypto.PublicKey, error) {
	switch kb.KeyFormatType {
	case kmip.KeyFormatTypePKCS_1:
		b, err := keyBytes(kb)
		if err != nil {
			return nil, err
		}
		k, err := x509.ParsePKCS1PublicKey(b)
		if err != nil {
			return nil, badKey(kb.KeyFormatType)
		}
		return k, nil
	case kmip.KeyFormatTypeX_509:
		b, err := keyBytes(kb)
		if err != nil {
			return nil, err
		}
		k, err := x509.ParsePKIXPublicKey(b)
		if err != nil {
			return nil, badKey(kb.KeyFormatType)
		}
		switch k.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
			return k, nil
		}
		return nil, errorf(kmip.ResultReasonFeatureNotSupported, "public keys other than RSA and EC are not supported")
	case kmip.KeyFormatTypeTransparentRSAPublicKey:
		km, err := keyMaterial(kb)
		if err != nil {
			return nil, err
		}
		t := km.TransparentRSAPublicKey
		if t == nil || t.Modulus.Sign() <= 0 || !t.PublicExponent.IsInt64() || t.PublicExponent.Int64() < 3 || t.PublicExponent.Int64() > 1<<31-1 {
			return nil, badKey(kb.KeyFormatType)
		}
		return &rsa.PublicKey{N: new(big.Int).Set(&t.Modulus), E: int(t.PublicExponent.Int64())}, nil
	case kmip.KeyFormatTypeTransparentECPublicKey, kmip.KeyFormatTypeTransparentECDSAPublicKey:
		km, err := keyMaterial(kb)
		if err != nil {
			return nil, err
		}
		t := km.TransparentECPublicKey
		if kb.KeyFormatType == kmip.KeyFormatTypeTransparentECDSAPublicKey && km.TransparentECDSAPublicKey != nil {
			t = (*kmip.TransparentECPublicKey)(km.TransparentECDSAPublicKey)
		}
		if t == nil {
			return nil, badKey(kb.KeyFormatType)
		}
		c, ok := curves[t.RecommendedCurve]
		if !ok {
			return nil, errorf(kmip.ResultReasonFeatureNotSupported, "curve %s is not supported", ttlv.EnumStr(t.RecommendedCurve))
		}
		k, err := ecdsa.ParseUncompressedPublicKey(c, t.QString)
		if err != nil {
			return nil, badKey(kb.KeyFormatType)
		}
		return k, nil
	}
	return nil, errorf(kmip.ResultReasonKeyFormatTypeNotSupported, "a public key is registered as PKCS#1, X.509 or a Transparent RSA or EC public key, not %s", ttlv.EnumStr(kb.KeyFormatType))
}

// maxPrivateKeyDER bounds the DER of a registered private key: an RSA key
// of maxRSABits takes about 4.8 KiB in PKCS#8.
const maxPrivateKeyDER = 8 << 10

// parsePrivateKey reads a registered private key.
func parsePrivateKey(kb *kmip.KeyBlock) (crypto.Signer, error) {
	switch kb.KeyFormatType {
	case kmip.KeyFormatTypePKCS_1, kmip.KeyFormatTypePKCS_8, kmip.KeyFormatTypeECPrivateKey:
		b, err := keyBytes(kb)
		if err != nil {
			return nil, err
		}
		// Parsing checks the key, which for a huge RSA key is long work:
		// refuse what cannot be a key of at most maxRSABits first.
		if len(b) > maxPrivateKeyDER {
			return nil, invalidField("the private key is larger than a key of %d bits can be", maxRSABits)
		}
		var k any
		switch kb.KeyFormatType {
		case kmip.KeyFormatTypePKCS_1:
			k, err = x509.ParsePKCS1PrivateKey(b)
		case kmip.KeyFormatTypePKCS_8:
			k, err = x509.ParsePKCS8PrivateKey(b)
		default:
			k, err = x509.ParseECPrivateKey(b)
		}
		if err != nil {
			return nil, badKey(kb.KeyFormatType)
		}
		switch s := k.(type) {
		case *rsa.PrivateKey:
			return s, nil
		case *ecdsa.PrivateKey:
			return s, nil
		}
		return nil, errorf(kmip.ResultReasonFeatureNotSupported, "private keys other than RSA and EC are not supported")
	case kmip.KeyFormatTypeTransparentRSAPrivateKey:
		km, err := keyMaterial(kb)
		if err != nil {
			return nil, err
		}
		t := km.TransparentRSAPrivateKey
		if t == nil || t.PrivateExponent == nil || t.PublicExponent == nil || t.P == nil || t.Q == nil || !t.PublicExponent.IsInt64() {
			return nil, invalidField("a Transparent RSA Private Key needs the modulus, both exponents and both primes")
		}
		if t.Modulus.BitLen() > maxRSABits {
			return nil, invalidField("RSA keys of more than %d bits are not supported (this one has %d)", maxRSABits, t.Modulus.BitLen())
		}
		k := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: new(big.Int).Set(&t.Modulus), E: int(t.PublicExponent.Int64())},
			D:         new(big.Int).Set(t.PrivateExponent),
			Primes:    []*big.Int{new(big.Int).Set(t.P), new(big.Int).Set(t.Q)},
		}
		if err := k.Validate(); err != nil {
			return nil, badKey(kb.KeyFormatType)
		}
		k.Precompute()
		return k, nil
	case kmip.KeyFormatTypeTransparentECPrivateKey, kmip.KeyFormatTypeTransparentECDSAPrivateKey:
		km, err := keyMaterial(kb)
		if err != nil {
			return nil, err
		}
		t := km.TransparentECPrivateKey
		if kb.KeyFormatType == kmip.KeyFormatTypeTransparentECDSAPrivateKey && km.TransparentECDSAPrivateKey != nil {
			t = (*kmip.TransparentECPrivateKey)(km.TransparentECDSAPrivateKey)
		}
		if t == nil {
			return nil, badKey(kb.KeyFormatType)
		}
		c, ok := curves[t.RecommendedCurve]
		if !ok {
			return nil, errorf(kmip.ResultReasonFeatureNotSupported, "curve %s is not supported", ttlv.EnumStr(t.RecommendedCurve))
		}
		size := (c.Params().BitSize + 7) / 8
		d := t.D.Bytes()
		if len(d) > size {
			return nil, badKey(kb.KeyFormatType)
		}
		k, err := ecdsa.ParseRawPrivateKey(c, append(make([]byte, size-len(d)), d...))
		if err != nil {
			return nil, badKey(kb.KeyFormatType)
		}
		return k, nil
	}
	return nil, errorf(kmip.ResultReasonKeyFormatTypeNotSupported, "a private key is registered as PKCS#1, PKCS#8, EC Private Key or a Transparent RSA or EC private key, not %s", ttlv.EnumStr(kb.KeyFormatType))
}

// keyAlgorithm is the Cryptographic Algorithm and Length of a key.
func keyAlgorithm(pub crypto.PublicKey) (kmip.CryptographicAlgorithm, int32) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return kmip.CryptographicAlgorithmRSA, int32(k.N.BitLen())
	case *ecdsa.PublicKey:
		return kmip.CryptographicAlgorithmEC, int32(k.Curve.Params().BitSize)
	}
	return 0, 0
}

// isECAlgorithm reports whether an algorithm names an EC key.
func isECAlgorithm(a kmip.CryptographicAlgorithm) bool {
	return a == kmip.CryptographicAlgorithmEC || a == kmip.CryptographicAlgorithmECDSA ||
		a == kmip.CryptographicAlgorithmECDH || a == kmip.CryptographicAlgorithmECMQV
}

// defaultPublicFormat and defaultPrivateFormat are the formats of generated
// keys: PKCS#1 for RSA (as the KMIP profiles' test cases have it), X.509
// and PKCS#8 for EC.
func defaultPublicFormat(pub crypto.PublicKey) kmip.KeyFormatType {
	if _, ok := pub.(*rsa.PublicKey); ok {
		return kmip.KeyFormatTypePKCS_1
	}
	return kmip.KeyFormatTypeX_509
}

func defaultPrivateFormat(pub crypto.PublicKey) kmip.KeyFormatType {
	if _, ok := pub.(*rsa.PublicKey); ok {
		return kmip.KeyFormatTypePKCS_1
	}
	return kmip.KeyFormatTypePKCS_8
}

// encodePublicKey returns a public key's material in a format.
func encodePublicKey(pub crypto.PublicKey, format kmip.KeyFormatType) (kmip.KeyMaterial, error) {
	bytesOf := func(b []byte) kmip.KeyMaterial { return kmip.KeyMaterial{Bytes: &b} }
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch format {
		case kmip.KeyFormatTypePKCS_1:
			return bytesOf(x509.MarshalPKCS1PublicKey(k)), nil
		case kmip.KeyFormatTypeTransparentRSAPublicKey:
			t := &kmip.TransparentRSAPublicKey{PublicExponent: *big.NewInt(int64(k.E))}
			t.Modulus.Set(k.N)
			return kmip.KeyMaterial{TransparentRSAPublicKey: t}, nil
		}
	case *ecdsa.PublicKey:
		q, err := k.Bytes()
		if err != nil {
			return kmip.KeyMaterial{}, err
		}
		t := &kmip.TransparentECPublicKey{RecommendedCurve: curveOf(k.Curve), QString: q}
		switch format {
		case kmip.KeyFormatTypeTransparentECPublicKey:
			return kmip.KeyMaterial{TransparentECPublicKey: t}, nil
		case kmip.KeyFormatTypeTransparentECDSAPublicKey:
			return kmip.KeyMaterial{TransparentECDSAPublicKey: (*kmip.TransparentECDSAPublicKey)(t)}, nil
		}
	}
	if format == kmip.KeyFormatTypeX_509 {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return kmip.KeyMaterial{}, err
		}
		return bytesOf(der), nil
	}
	return kmip.KeyMaterial{}, errorf(kmip.ResultReasonKeyFormatTypeNotSupported, "this public key cannot be returned as %s", ttlv.EnumStr(format))
}

// encodePrivateKey returns a private key's material in a format.
func encodePrivateKey(priv crypto.Signer, format kmip.KeyFormatType) (kmip.KeyMaterial, error) {
	bytesOf := func(b []byte) kmip.KeyMaterial { return kmip.KeyMaterial{Bytes: &b} }
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		switch format {
		case kmip.KeyFormatTypePKCS_1:
			return bytesOf(x509.MarshalPKCS1PrivateKey(k)), nil
		case kmip.KeyFormatTypeTransparentRSAPrivateKey:
			k.Precompute()
			t := &kmip.TransparentRSAPrivateKey{
				PrivateExponent: new(big.Int).Set(k.D), PublicExponent: big.NewInt(int64(k.E)),
				P: new(big.Int).Set(k.Primes[0]), Q: new(big.Int).Set(k.Primes[1]),
				PrimeExponentP: new(big.Int).Set(k.Precomputed.Dp), PrimeExponentQ: new(big.Int).Set(k.Precomputed.Dq),
				CRTCoefficient: new(big.Int).Set(k.Precomputed.Qinv),
			}
			t.Modulus.Set(k.N)
			return kmip.KeyMaterial{TransparentRSAPrivateKey: t}, nil
		}
	case *ecdsa.PrivateKey:
		switch format {
		case kmip.KeyFormatTypeECPrivateKey:
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				return kmip.KeyMaterial{}, err
			}
			return bytesOf(der), nil
		case kmip.KeyFormatTypeTransparentECPrivateKey, kmip.KeyFormatTypeTransparentECDSAPrivateKey:
			d, err := k.Bytes()
			if err != nil {
				return kmip.KeyMaterial{}, err
			}
			t := &kmip.TransparentECPrivateKey{RecommendedCurve: curveOf(k.Curve)}
			t.D.SetBytes(d)
			if format == kmip.KeyFormatTypeTransparentECDSAPrivateKey {
				return kmip.KeyMaterial{TransparentECDSAPrivateKey: (*kmip.TransparentECDSAPrivateKey)(t)}, nil
			}
			return kmip.KeyMaterial{TransparentECPrivateKey: t}, nil
		}
	}
	if format == kmip.KeyFormatTypePKCS_8 {
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return kmip.KeyMaterial{}, err
		}
		return bytesOf(der), nil
	}
	return kmip.KeyMaterial{}, errorf(kmip.ResultReasonKeyFormatTypeNotSupported, "this private key cannot be returned as %s", ttlv.EnumStr(format))
}
