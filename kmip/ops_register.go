package kmip

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// Register of private keys, public keys and certificates (KMIP 1.4 §4.3);
// symmetric keys, secret data and opaque objects are in ops_create.go.

// defaultMask is the usage mask of a key whose template gives none: what
// its kind of key can do.
func defaultMask(typ kmip.ObjectType, pub crypto.PublicKey) kmip.CryptographicUsageMask {
	_, isRSA := pub.(*rsa.PublicKey)
	switch {
	case typ == kmip.ObjectTypePrivateKey && isRSA:
		return kmip.CryptographicUsageSign | kmip.CryptographicUsageDecrypt
	case typ == kmip.ObjectTypePrivateKey:
		return kmip.CryptographicUsageSign
	case isRSA:
		return kmip.CryptographicUsageVerify | kmip.CryptographicUsageEncrypt
	}
	return kmip.CryptographicUsageVerify
}

// matchAsymmetric sets or checks the algorithm and length an object
// records against its key: the key block's algorithm, if it names one,
// must be of the key's family (EC, ECDSA, ECDH and ECMQV are all EC keys)
// and is the one recorded.
func matchAsymmetric(o *object, kb *kmip.KeyBlock, pub crypto.PublicKey) error {
	alg, bits := keyAlgorithm(pub)
	if alg == 0 {
		return errorf(kmip.ResultReasonFeatureNotSupported, "keys other than RSA and EC are not supported")
	}
	if err := checkRSASize(pub); err != nil {
		return err
	}
	if kb.CryptographicAlgorithm != 0 {
		if (alg == kmip.CryptographicAlgorithmRSA) != (kb.CryptographicAlgorithm == kmip.CryptographicAlgorithmRSA) ||
			(alg == kmip.CryptographicAlgorithmEC && !isECAlgorithm(kb.CryptographicAlgorithm)) {
			return invalidField("the key block says %s but the key is %s", ttlv.EnumStr(kb.CryptographicAlgorithm), ttlv.EnumStr(alg))
		}
		alg = kb.CryptographicAlgorithm
	} else if cur, ok := o.get(kmip.AttributeNameCryptographicAlgorithm); ok {
		if a, _ := cur.(kmip.CryptographicAlgorithm); isECAlgorithm(a) && alg == kmip.CryptographicAlgorithmEC {
			alg = a
		}
	}
	if kb.CryptographicLength != 0 && kb.CryptographicLength != bits {
		return invalidField("the Cryptographic Length is %d bits but the key has %d", kb.CryptographicLength, bits)
	}
	return matchKeyBlock(o, &kmip.KeyBlock{CryptographicAlgorithm: alg}, bits)
}

// maxRSABits bounds the RSA keys a client can register. The server does
// the arithmetic of registered keys in Go (Encrypt, Sign, Signature Verify
// with them), and its cost grows with the square of the modulus and more:
// one Encrypt takes 8 ms with a 16-kbit modulus and 1.9 s with a 256-kbit
// one, so a key of any size would let one client keep the server busy.
const maxRSABits = 8192

// checkRSASize refuses an RSA key over maxRSABits (other keys pass).
func checkRSASize(pub crypto.PublicKey) error {
	if k, ok := pub.(*rsa.PublicKey); ok && k.N.BitLen() > maxRSABits {
		return invalidField("RSA keys of more than %d bits are not supported (this one has %d)", maxRSABits, k.N.BitLen())
	}
	return nil
}

// byteFormat reports whether a key format carries the key as one byte
// string (the formats a Digest can be taken over as registered).
func byteFormat(f kmip.KeyFormatType) bool {
	switch f {
	case kmip.KeyFormatTypePKCS_1, kmip.KeyFormatTypePKCS_8, kmip.KeyFormatTypeX_509, kmip.KeyFormatTypeECPrivateKey:
		return true
	}
	return false
}

func (c *call) registerPrivateKey(ctx context.Context, o *object, kb *kmip.KeyBlock) error {
	priv, err := parsePrivateKey(kb)
	if err != nil {
		return err
	}
	if err := matchAsymmetric(o, kb, priv.Public()); err != nil {
		return err
	}
	format := kb.KeyFormatType
	if !byteFormat(format) {
		format = defaultPrivateFormat(priv.Public())
	}
	d, err := c.setPrivateKey(ctx, o, priv, format)
	if err != nil {
		return err
	}
	setKeyAttributes(o, d, defaultMask(kmip.ObjectTypePrivateKey, priv.Public()), false, c.b.now)
	return nil
}

func (c *call) registerPublicKey(ctx context.Context, o *object, kb *kmip.KeyBlock) error {
	pub, err := parsePublicKey(kb)
	if err != nil {
		return err
	}
	if err := matchAsymmetric(o, kb, pub); err != nil {
		return err
	}
	format := kb.KeyFormatType
	if !byteFormat(format) {
		format = defaultPublicFormat(pub)
	}
	d, err := c.setPublicKey(ctx, o, pub, format)
	if err != nil {
		return err
	}
	setKeyAttributes(o, d, defaultMask(kmip.ObjectTypePublicKey, pub), false, c.b.now)
	return nil
}

// registerCertificate stores an X.509 certificate and the attributes KMIP
// derives from it (Certificate Type and Length, the X.509 identifier,
// subject and issuer, the signature algorithm, and its key's algorithm and
// length).
func (c *call) registerCertificate(ctx context.Context, o *object, cert *kmip.Certificate) error {
	if cert.CertificateType != kmip.CertificateTypeX_509 {
		return errorf(kmip.ResultReasonFeatureNotSupported, "only X.509 certificates are supported, not %s", ttlv.EnumStr(cert.CertificateType))
	}
	x, err := x509.ParseCertificate(cert.CertificateValue)
	if err != nil {
		return invalidField("the certificate is not a valid X.509 certificate")
	}
	switch x.PublicKey.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		if err := matchAsymmetric(o, &kmip.KeyBlock{}, x.PublicKey); err != nil {
			return err
		}
	}
	v, err := c.b.st.vals.sealValue(ctx, o.id(), sealMeta{subtype: uint32(cert.CertificateType), format: kmip.KeyFormatTypeX_509}, cert.CertificateValue)
	if err != nil {
		return err
	}
	o.rec.Value = v
	o.set(kmip.AttributeNameCertificateType, cert.CertificateType)
	o.set(kmip.AttributeNameCertificateLength, int32(len(cert.CertificateValue)))
	o.set(kmip.AttributeNameX509CertificateIdentifier, kmip.X_509CertificateIdentifier{IssuerDistinguishedName: x.RawIssuer, CertificateSerialNumber: x.SerialNumber.Bytes()})
	o.set(kmip.AttributeNameX509CertificateSubject, kmip.X_509CertificateSubject{SubjectDistinguishedName: x.RawSubject})
	o.set(kmip.AttributeNameX509CertificateIssuer, kmip.X_509CertificateIssuer{IssuerDistinguishedName: x.RawIssuer})
	if dsa, ok := signatureAlgorithms[x.SignatureAlgorithm]; ok {
		o.set(kmip.AttributeNameDigitalSignatureAlgorithm, dsa)
	}
	setKeyAttributes(o, digest(cert.CertificateValue, kmip.KeyFormatTypeX_509), kmip.CryptographicUsageVerify, false, c.b.now)
	return nil
}

// signatureAlgorithms maps Go's certificate signature algorithms to KMIP's.
var signatureAlgorithms = map[x509.SignatureAlgorithm]kmip.DigitalSignatureAlgorithm{
	x509.SHA1WithRSA:      kmip.DigitalSignatureAlgorithmSHA_1WithRSAEncryption,
	x509.SHA256WithRSA:    kmip.DigitalSignatureAlgorithmSHA_256WithRSAEncryption,
	x509.SHA384WithRSA:    kmip.DigitalSignatureAlgorithmSHA_384WithRSAEncryption,
	x509.SHA512WithRSA:    kmip.DigitalSignatureAlgorithmSHA_512WithRSAEncryption,
	x509.SHA256WithRSAPSS: kmip.DigitalSignatureAlgorithmRSASSA_PSS,
	x509.SHA384WithRSAPSS: kmip.DigitalSignatureAlgorithmRSASSA_PSS,
	x509.SHA512WithRSAPSS: kmip.DigitalSignatureAlgorithmRSASSA_PSS,
	x509.ECDSAWithSHA1:    kmip.DigitalSignatureAlgorithmECDSAWithSHA_1,
	x509.ECDSAWithSHA256:  kmip.DigitalSignatureAlgorithmECDSAWithSHA256,
	x509.ECDSAWithSHA384:  kmip.DigitalSignatureAlgorithmECDSAWithSHA384,
	x509.ECDSAWithSHA512:  kmip.DigitalSignatureAlgorithmECDSAWithSHA512,
}
