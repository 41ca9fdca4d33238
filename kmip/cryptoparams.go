package kmip

import (
	"crypto"
	_ "crypto/sha256" // the hashes the operations name, for crypto.Hash.New
	_ "crypto/sha3"
	_ "crypto/sha512"

	"github.com/keyhold/keyhold/hsm"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// Cryptographic Parameters (KMIP 1.4 §3.6) as the operations read them: the
// request's, else the object's instance with the lowest index; fields the
// operation needs and neither gives have no default unless KMIP or PKCS#1
// gives one (OAEP: SHA-1, its MGF1 hash the OAEP hash, no label; GCM: a
// 16-byte tag; padding: none).

// params returns an operation's Cryptographic Parameters.
func params(o *object, req *kmip.CryptographicParameters) kmip.CryptographicParameters {
	if req != nil {
		return *req
	}
	if as := o.all(kmip.AttributeNameCryptographicParameters); len(as) > 0 {
		if p, ok := as[0].AttributeValue.(kmip.CryptographicParameters); ok {
			return p
		}
	}
	return kmip.CryptographicParameters{}
}

// hashes maps KMIP's hashing algorithms to Go's.
var hashes = map[kmip.HashingAlgorithm]crypto.Hash{
	kmip.HashingAlgorithmSHA_1:       crypto.SHA1,
	kmip.HashingAlgorithmSHA_224:     crypto.SHA224,
	kmip.HashingAlgorithmSHA_256:     crypto.SHA256,
	kmip.HashingAlgorithmSHA_384:     crypto.SHA384,
	kmip.HashingAlgorithmSHA_512:     crypto.SHA512,
	kmip.HashingAlgorithmSHA_512_224: crypto.SHA512_224,
	kmip.HashingAlgorithmSHA_512_256: crypto.SHA512_256,
	kmip.HashingAlgorithmSHA_3_224:   crypto.SHA3_224,
	kmip.HashingAlgorithmSHA_3_256:   crypto.SHA3_256,
	kmip.HashingAlgorithmSHA_3_384:   crypto.SHA3_384,
	kmip.HashingAlgorithmSHA_3_512:   crypto.SHA3_512,
}

// keyHashes are the hashes the token's signature and OAEP mechanisms take.
var keyHashes = map[crypto.Hash]bool{crypto.SHA1: true, crypto.SHA224: true, crypto.SHA256: true, crypto.SHA384: true, crypto.SHA512: true}

// hashOf returns a hashing algorithm as Go's; need names what needs it.
func hashOf(h kmip.HashingAlgorithm, need string) (crypto.Hash, error) {
	if h == 0 {
		return 0, invalidField("%s needs a Hashing Algorithm", need)
	}
	gh, ok := hashes[h]
	if !ok || !gh.Available() {
		return 0, errorf(kmip.ResultReasonFeatureNotSupported, "hashing algorithm %s is not supported", ttlv.EnumStr(h))
	}
	return gh, nil
}

// keyHashOf is hashOf for the hashes of signatures and OAEP.
func keyHashOf(h kmip.HashingAlgorithm, need string) (crypto.Hash, error) {
	gh, err := hashOf(h, need)
	if err == nil && !keyHashes[gh] {
		return 0, errorf(kmip.ResultReasonFeatureNotSupported, "%s with %s is not supported", need, ttlv.EnumStr(h))
	}
	return gh, err
}

// hmacHashes are the hashes of the HMAC algorithms.
var hmacHashes = map[kmip.CryptographicAlgorithm]crypto.Hash{
	kmip.CryptographicAlgorithmHMACSHA1:   crypto.SHA1,
	kmip.CryptographicAlgorithmHMACSHA224: crypto.SHA224,
	kmip.CryptographicAlgorithmHMACSHA256: crypto.SHA256,
	kmip.CryptographicAlgorithmHMACSHA384: crypto.SHA384,
	kmip.CryptographicAlgorithmHMACSHA512: crypto.SHA512,
}

// aesAlgorithm is the AES mode of Cryptographic Parameters: ECB and CBC
// with no padding or PKCS5 (PKCS#7), CTR and GCM.
func aesAlgorithm(p kmip.CryptographicParameters) (hsm.Algorithm, error) {
	pad := p.PaddingMethod
	if pad != 0 && pad != kmip.PaddingMethodNone && pad != kmip.PaddingMethodPKCS5 {
		return "", errorf(kmip.ResultReasonFeatureNotSupported, "padding method %s is not supported with AES", ttlv.EnumStr(pad))
	}
	padded := pad == kmip.PaddingMethodPKCS5
	switch p.BlockCipherMode {
	case kmip.BlockCipherModeECB:
		if padded {
			return hsm.AESECBPad, nil
		}
		return hsm.AESECB, nil
	case kmip.BlockCipherModeCBC:
		if padded {
			return hsm.AESCBCPad, nil
		}
		return hsm.AESCBC, nil
	case kmip.BlockCipherModeCTR, kmip.BlockCipherModeGCM:
		if padded {
			return "", invalidField("%s takes no padding", ttlv.EnumStr(p.BlockCipherMode))
		}
		if p.BlockCipherMode == kmip.BlockCipherModeCTR {
			return hsm.AESCTR, nil
		}
		return hsm.AESGCM, nil
	case 0:
		return "", invalidField("AES needs a Block Cipher Mode in the Cryptographic Parameters (of the request or the key)")
	}
	return "", errorf(kmip.ResultReasonFeatureNotSupported, "block cipher mode %s is not supported (ECB, CBC, CTR, GCM)", ttlv.EnumStr(p.BlockCipherMode))
}

// rsaPadding is how an RSA encryption is padded.
type rsaPadding struct {
	oaep      bool
	hash, mgf crypto.Hash
	label     []byte
}

// rsaEncryption reads the RSA encryption scheme of Cryptographic
// Parameters: OAEP (hash default SHA-1, MGF1 hash default the OAEP hash,
// P Source the label) or PKCS#1 v1.5.
func rsaEncryption(p kmip.CryptographicParameters) (rsaPadding, error) {
	switch p.PaddingMethod {
	case kmip.PaddingMethodPKCS1V1_5:
		return rsaPadding{}, nil
	case kmip.PaddingMethodOAEP:
		out := rsaPadding{oaep: true, hash: crypto.SHA1, label: p.PSource}
		if p.HashingAlgorithm != 0 {
			h, err := keyHashOf(p.HashingAlgorithm, "OAEP")
			if err != nil {
				return out, err
			}
			out.hash = h
		}
		out.mgf = out.hash
		if p.MaskGenerator != 0 && p.MaskGenerator != kmip.MaskGeneratorMGF1 {
			return out, errorf(kmip.ResultReasonFeatureNotSupported, "mask generator %s is not supported", ttlv.EnumStr(p.MaskGenerator))
		}
		if p.MaskGeneratorHashingAlgorithm != 0 {
			h, err := keyHashOf(p.MaskGeneratorHashingAlgorithm, "MGF1")
			if err != nil {
				return out, err
			}
			out.mgf = h
		}
		return out, nil
	case 0:
		return rsaPadding{}, invalidField("RSA encryption needs a Padding Method (OAEP or PKCS1 v1.5) in the Cryptographic Parameters")
	}
	return rsaPadding{}, errorf(kmip.ResultReasonFeatureNotSupported, "padding method %s is not supported with RSA encryption", ttlv.EnumStr(p.PaddingMethod))
}

// signature is a signature scheme.
type signature struct {
	alg  hsm.Algorithm
	hash crypto.Hash
	salt *int32 // RSA-PSS; nil: the hash's size to sign, any to verify
}

// dsaSchemes are the Digital Signature Algorithms the server does.
var dsaSchemes = map[kmip.DigitalSignatureAlgorithm]signature{
	kmip.DigitalSignatureAlgorithmSHA_1WithRSAEncryption:   {alg: hsm.RSAPKCS1, hash: crypto.SHA1},
	kmip.DigitalSignatureAlgorithmSHA_224WithRSAEncryption: {alg: hsm.RSAPKCS1, hash: crypto.SHA224},
	kmip.DigitalSignatureAlgorithmSHA_256WithRSAEncryption: {alg: hsm.RSAPKCS1, hash: crypto.SHA256},
	kmip.DigitalSignatureAlgorithmSHA_384WithRSAEncryption: {alg: hsm.RSAPKCS1, hash: crypto.SHA384},
	kmip.DigitalSignatureAlgorithmSHA_512WithRSAEncryption: {alg: hsm.RSAPKCS1, hash: crypto.SHA512},
	kmip.DigitalSignatureAlgorithmRSASSA_PSS:               {alg: hsm.RSAPSS},
	kmip.DigitalSignatureAlgorithmECDSAWithSHA_1:           {alg: hsm.ECDSA, hash: crypto.SHA1},
	kmip.DigitalSignatureAlgorithmECDSAWithSHA224:          {alg: hsm.ECDSA, hash: crypto.SHA224},
	kmip.DigitalSignatureAlgorithmECDSAWithSHA256:          {alg: hsm.ECDSA, hash: crypto.SHA256},
	kmip.DigitalSignatureAlgorithmECDSAWithSHA384:          {alg: hsm.ECDSA, hash: crypto.SHA384},
	kmip.DigitalSignatureAlgorithmECDSAWithSHA512:          {alg: hsm.ECDSA, hash: crypto.SHA512},
}

// signatureScheme reads the signature scheme of Cryptographic Parameters
// for an RSA or EC key: a Digital Signature Algorithm, or the Padding Method (PSS or
// PKCS1 v1.5; ECDSA for EC keys) with a Hashing Algorithm.
func signatureScheme(p kmip.CryptographicParameters, isRSA, isEC bool) (signature, error) {
	var s signature
	switch {
	case p.DigitalSignatureAlgorithm != 0:
		var ok bool
		if s, ok = dsaSchemes[p.DigitalSignatureAlgorithm]; !ok {
			return s, errorf(kmip.ResultReasonFeatureNotSupported, "digital signature algorithm %s is not supported", ttlv.EnumStr(p.DigitalSignatureAlgorithm))
		}
	case isRSA && p.PaddingMethod == kmip.PaddingMethodPSS:
		s.alg = hsm.RSAPSS
	case isRSA && p.PaddingMethod == kmip.PaddingMethodPKCS1V1_5:
		s.alg = hsm.RSAPKCS1
	case isRSA && p.PaddingMethod == 0:
		return s, invalidField("an RSA signature needs a Padding Method (PSS or PKCS1 v1.5) or a Digital Signature Algorithm in the Cryptographic Parameters")
	case isRSA:
		return s, errorf(kmip.ResultReasonFeatureNotSupported, "padding method %s is not supported for RSA signatures", ttlv.EnumStr(p.PaddingMethod))
	case isEC:
		s.alg = hsm.ECDSA
	default:
		return s, invalidField("the key cannot sign")
	}
	if (s.alg == hsm.ECDSA) != isEC {
		return s, invalidField("the signature algorithm does not fit the key")
	}
	if p.CryptographicAlgorithm != 0 && p.CryptographicAlgorithm != kmip.CryptographicAlgorithmRSA && !isECAlgorithm(p.CryptographicAlgorithm) {
		return s, invalidField("%s is not a signature algorithm", ttlv.EnumStr(p.CryptographicAlgorithm))
	}
	if s.hash == 0 || p.HashingAlgorithm != 0 {
		h, err := keyHashOf(p.HashingAlgorithm, "a signature")
		if err != nil {
			return s, err
		}
		if s.hash != 0 && s.hash != h {
			return s, invalidField("the Hashing Algorithm differs from the Digital Signature Algorithm's")
		}
		s.hash = h
	}
	if s.alg == hsm.RSAPSS {
		if p.MaskGeneratorHashingAlgorithm != 0 && hashes[p.MaskGeneratorHashingAlgorithm] != s.hash {
			return s, errorf(kmip.ResultReasonFeatureNotSupported, "RSA-PSS with an MGF1 hash other than the signature's is not supported")
		}
		s.salt = p.SaltLength
	}
	return s, nil
}

// keyFamily says whether a key object is an RSA or an EC key, from its
// Cryptographic Algorithm.
func keyFamily(o *object) (isRSA, isEC bool) {
	av, _ := o.get(kmip.AttributeNameCryptographicAlgorithm)
	alg, _ := av.(kmip.CryptographicAlgorithm)
	return alg == kmip.CryptographicAlgorithmRSA, isECAlgorithm(alg)
}
