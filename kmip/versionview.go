package kmip

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"

	"github.com/ovh/kmip-go"
)

// Objects are stored with the attributes and values of KMIP 1.4. A client
// of an older version is shown them as its version has them:
//
//   - before 1.2 there is no Cryptographic Algorithm EC; an EC key is
//     shown as ECDSA, the 1.0 and 1.1 name of an EC signing key;
//   - KMIP 1.0 has Certificate Identifier, Certificate Subject and
//     Certificate Issuer, which 1.1 replaced by their X.509 forms with
//     DER-encoded names; at 1.0 a certificate's X.509 attributes are shown
//     as the 1.0 ones, with the names as text (RFC 2253) and the serial
//     number in decimal.

// inVersionView returns an attribute as protocol version v shows it, and
// false if it cannot be shown in v.
func inVersionView(a kmip.Attribute, v kmip.ProtocolVersion) (kmip.Attribute, bool) {
	ver := versionNumber(v)
	switch val := a.AttributeValue.(type) {
	case kmip.CryptographicAlgorithm:
		a.AttributeValue = algorithmInVersion(val, v)
	case kmip.X_509CertificateIdentifier:
		if ver == 10 {
			issuer, ok := dnText(val.IssuerDistinguishedName)
			if !ok {
				return a, false
			}
			a.AttributeName = kmip.AttributeNameCertificateIdentifier
			a.AttributeValue = kmip.CertificateIdentifier{Issuer: issuer, SerialNumber: new(big.Int).SetBytes(val.CertificateSerialNumber).String()}
		}
	case kmip.X_509CertificateSubject:
		if ver == 10 {
			subject, ok := dnText(val.SubjectDistinguishedName)
			if !ok {
				return a, false
			}
			a.AttributeName = kmip.AttributeNameCertificateSubject
			a.AttributeValue = kmip.CertificateSubject{CertificateSubjectDistinguishedName: subject}
		}
	case kmip.X_509CertificateIssuer:
		if ver == 10 {
			issuer, ok := dnText(val.IssuerDistinguishedName)
			if !ok {
				return a, false
			}
			a.AttributeName = kmip.AttributeNameCertificateIssuer
			a.AttributeValue = kmip.CertificateIssuer{CertificateIssuerDistinguishedName: issuer}
		}
	}
	return a, true
}

// algorithmInVersion is the Cryptographic Algorithm of a key block as
// protocol version v shows it.
func algorithmInVersion(alg kmip.CryptographicAlgorithm, v kmip.ProtocolVersion) kmip.CryptographicAlgorithm {
	if versionNumber(v) < 12 && alg == kmip.CryptographicAlgorithmEC {
		return kmip.CryptographicAlgorithmECDSA
	}
	return alg
}

// dnText is a DER-encoded distinguished name as RFC 2253 text.
func dnText(der []byte) (string, bool) {
	var seq pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &seq); err != nil || len(rest) != 0 {
		return "", false
	}
	var name pkix.Name
	name.FillFromRDNSequence(&seq)
	return name.String(), true
}
