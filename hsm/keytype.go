package hsm

import (
	"crypto/elliptic"
	"encoding/asn1"

	"github.com/miekg/pkcs11"
)

// KeyType names a kind of key the layer generates. Stored as its string.
type KeyType string

// The key types.
const (
	AES128     KeyType = "aes-128"
	AES192     KeyType = "aes-192"
	AES256     KeyType = "aes-256"
	HMACSHA1   KeyType = "hmac-sha1"
	HMACSHA256 KeyType = "hmac-sha256"
	HMACSHA384 KeyType = "hmac-sha384"
	HMACSHA512 KeyType = "hmac-sha512"
	RSA2048    KeyType = "rsa-2048"
	RSA3072    KeyType = "rsa-3072"
	RSA4096    KeyType = "rsa-4096"
	ECP256     KeyType = "ec-p256"
	ECP384     KeyType = "ec-p384"
	ECP521     KeyType = "ec-p521"
)

// KeyTypes lists every key type, in a stable order.
var KeyTypes = []KeyType{AES128, AES192, AES256, HMACSHA1, HMACSHA256, HMACSHA384, HMACSHA512,
	RSA2048, RSA3072, RSA4096, ECP256, ECP384, ECP521}

type family int

const (
	famAES family = iota + 1
	famHMAC
	famRSA
	famEC
)

type keySpec struct {
	fam   family
	size  int // bytes for secret keys, bits for RSA
	curve elliptic.Curve
	oid   asn1.ObjectIdentifier
	mac   uint // HMAC mechanism for famHMAC
}

var (
	oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521 = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
)

var keySpecs = map[KeyType]keySpec{
	AES128:     {fam: famAES, size: 16},
	AES192:     {fam: famAES, size: 24},
	AES256:     {fam: famAES, size: 32},
	HMACSHA1:   {fam: famHMAC, size: 20, mac: pkcs11.CKM_SHA_1_HMAC},
	HMACSHA256: {fam: famHMAC, size: 32, mac: pkcs11.CKM_SHA256_HMAC},
	HMACSHA384: {fam: famHMAC, size: 48, mac: pkcs11.CKM_SHA384_HMAC},
	HMACSHA512: {fam: famHMAC, size: 64, mac: pkcs11.CKM_SHA512_HMAC},
	RSA2048:    {fam: famRSA, size: 2048},
	RSA3072:    {fam: famRSA, size: 3072},
	RSA4096:    {fam: famRSA, size: 4096},
	ECP256:     {fam: famEC, curve: elliptic.P256(), oid: oidP256},
	ECP384:     {fam: famEC, curve: elliptic.P384(), oid: oidP384},
	ECP521:     {fam: famEC, curve: elliptic.P521(), oid: oidP521},
}

func (t KeyType) spec(op string) (keySpec, error) {
	s, ok := keySpecs[t]
	if !ok {
		return keySpec{}, errorf(op, KindBadInput, "unknown key type %q", string(t))
	}
	return s, nil
}

// Symmetric reports whether the type is a secret (AES or HMAC) key.
func (t KeyType) Symmetric() bool {
	s := keySpecs[t]
	return s.fam == famAES || s.fam == famHMAC
}

// Asymmetric reports whether the type is an RSA or EC key pair.
func (t KeyType) Asymmetric() bool {
	s := keySpecs[t]
	return s.fam == famRSA || s.fam == famEC
}

// unwrapTemplate is the template of the session object a blob of this type
// is unwrapped into: sensitive, and extractable only so that it can be
// wrapped again (under a new KEK, or for BYOK transfer). With clear, the
// object is not sensitive: the objects of exportable keys, whose material
// Export reads. The object is not CKA_PRIVATE, for the reason
// generateObject's are not: it lives only in this process's sessions, all
// logged in, and SoftHSM2 would decrypt a private object's value at every
// use (an encryption, a signature, an Export).
func (s keySpec) unwrapTemplate(clear bool) []*pkcs11.Attribute {
	common := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, !clear),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	}
	switch s.fam {
	case famAES:
		return append(common,
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true))
	case famHMAC:
		return append(common,
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true))
	case famRSA:
		return append(common,
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true))
	default:
		return append(common,
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true))
	}
}
