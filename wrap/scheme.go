// Package wrap builds the key-import blobs of the cloud KMSs (BYOK): AWS
// KMS's four wrapping algorithms, Azure Key Vault's CKM_RSA_AES_KEY_WRAP
// `.byok` transfer blob and GCP Cloud KMS's six import methods.
//
// It is pure functions over the HSM's transfer primitives: the target key is
// always wrapped by the token (hsm.WrapOAEP, hsm.WrapRSAAES), never read out.
// Each cloud's plaintext format is the token's: raw bytes for secret keys,
// PKCS#8 DER for RSA and EC private keys. What the clouds send us (wrapping
// public keys as DER, PEM or JWK, and .byok files) is parsed here, strictly,
// and refused with a clear error when it is invalid, too small for the scheme
// or unable to carry the key type.
package wrap

import (
	"crypto"
	"sort"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
)

// Scheme is a cloud's name for a key-import wrapping method. Stored as its string.
type Scheme string

// The schemes, under each cloud's own names.
const (
	AWSRSAESOAEPSHA1       Scheme = "RSAES_OAEP_SHA_1"
	AWSRSAESOAEPSHA256     Scheme = "RSAES_OAEP_SHA_256"
	AWSRSAAESKeyWrapSHA1   Scheme = "RSA_AES_KEY_WRAP_SHA_1"
	AWSRSAAESKeyWrapSHA256 Scheme = "RSA_AES_KEY_WRAP_SHA_256"

	AzureRSAAESKeyWrap Scheme = "CKM_RSA_AES_KEY_WRAP"

	GCPRSAOAEP3072SHA1AES256   Scheme = "RSA_OAEP_3072_SHA1_AES_256"
	GCPRSAOAEP4096SHA1AES256   Scheme = "RSA_OAEP_4096_SHA1_AES_256"
	GCPRSAOAEP3072SHA256AES256 Scheme = "RSA_OAEP_3072_SHA256_AES_256"
	GCPRSAOAEP4096SHA256AES256 Scheme = "RSA_OAEP_4096_SHA256_AES_256"
	GCPRSAOAEP3072SHA256       Scheme = "RSA_OAEP_3072_SHA256"
	GCPRSAOAEP4096SHA256       Scheme = "RSA_OAEP_4096_SHA256"
)

// The clouds.
const (
	AWS   = "aws"
	Azure = "azure"
	GCP   = "gcp"
)

// Spec says what a scheme is.
type Spec struct {
	Cloud string
	// Hybrid schemes are OAEP(ephemeral AES-256) ‖ KWP(key); the others OAEP(key).
	Hybrid bool
	Hash   crypto.Hash // OAEP hash and MGF1 hash
	// Bits is the wrapping key size the scheme requires; 0 means any of
	// 2048, 3072 and 4096.
	Bits int
	// BYOK: the blob is Azure's .byok JSON around the hybrid ciphertext.
	BYOK bool
	// Fallback is the hybrid scheme to suggest when the token cannot do a
	// direct scheme's hash.
	Fallback Scheme
}

var specs = map[Scheme]Spec{
	AWSRSAESOAEPSHA1:       {Cloud: AWS, Hash: crypto.SHA1, Fallback: AWSRSAAESKeyWrapSHA1},
	AWSRSAESOAEPSHA256:     {Cloud: AWS, Hash: crypto.SHA256, Fallback: AWSRSAAESKeyWrapSHA256},
	AWSRSAAESKeyWrapSHA1:   {Cloud: AWS, Hybrid: true, Hash: crypto.SHA1},
	AWSRSAAESKeyWrapSHA256: {Cloud: AWS, Hybrid: true, Hash: crypto.SHA256},

	AzureRSAAESKeyWrap: {Cloud: Azure, Hybrid: true, Hash: crypto.SHA1, BYOK: true},

	GCPRSAOAEP3072SHA1AES256:   {Cloud: GCP, Hybrid: true, Hash: crypto.SHA1, Bits: 3072},
	GCPRSAOAEP4096SHA1AES256:   {Cloud: GCP, Hybrid: true, Hash: crypto.SHA1, Bits: 4096},
	GCPRSAOAEP3072SHA256AES256: {Cloud: GCP, Hybrid: true, Hash: crypto.SHA256, Bits: 3072},
	GCPRSAOAEP4096SHA256AES256: {Cloud: GCP, Hybrid: true, Hash: crypto.SHA256, Bits: 4096},
	GCPRSAOAEP3072SHA256:       {Cloud: GCP, Hash: crypto.SHA256, Bits: 3072, Fallback: GCPRSAOAEP3072SHA256AES256},
	GCPRSAOAEP4096SHA256:       {Cloud: GCP, Hash: crypto.SHA256, Bits: 4096, Fallback: GCPRSAOAEP4096SHA256AES256},
}

// Lookup returns a scheme's spec.
func Lookup(s Scheme) (Spec, error) {
	sp, ok := specs[s]
	if !ok {
		return Spec{}, fault.New(fault.BadInput, "unknown wrapping scheme %q", string(s))
	}
	return sp, nil
}

// Schemes lists the schemes of a cloud (all clouds for ""), sorted.
func Schemes(cloud string) []Scheme {
	var out []Scheme
	for s, sp := range specs {
		if cloud == "" || sp.Cloud == cloud {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// CanCarry reports whether the scheme can carry a key of the type: direct
// OAEP schemes carry only secret keys (a private key does not fit one OAEP
// block, and the clouds refuse it).
func CanCarry(s Scheme, t hsm.KeyType) error {
	sp, err := Lookup(s)
	if err != nil {
		return err
	}
	if !t.Symmetric() && !t.Asymmetric() {
		return fault.New(fault.BadInput, "unknown key type %q", string(t))
	}
	if !sp.Hybrid && !t.Symmetric() {
		return fault.New(fault.BadInput, "%s wraps the key with RSA-OAEP alone and cannot carry a %s private key; use %s", s, t, sp.Fallback)
	}
	return nil
}
