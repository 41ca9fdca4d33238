package wrap

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"

	"github.com/keyhold/keyhold/fault"
)

// maxPublicKeyBytes bounds a cloud-supplied public key (a 16384-bit RSA key
// in PEM is under 3 KiB).
const maxPublicKeyBytes = 16 << 10

// ParsePublicKey parses a cloud's RSA wrapping key: DER or PEM, as
// SubjectPublicKeyInfo (AWS's GetParametersForImport, GCP's import job) or
// PKCS#1. Anything else, trailing data included, is refused.
func ParsePublicKey(data []byte) (*rsa.PublicKey, error) {
	if len(data) == 0 {
		return nil, fault.New(fault.BadInput, "the wrapping public key is empty")
	}
	if len(data) > maxPublicKeyBytes {
		return nil, fault.New(fault.BadInput, "the wrapping public key is larger than %d bytes", maxPublicKeyBytes)
	}
	der := data
	if blk, rest := pem.Decode(data); blk != nil {
		if len(trimSpace(rest)) != 0 {
			return nil, fault.New(fault.BadInput, "the wrapping public key has data after its PEM block")
		}
		if blk.Type != "PUBLIC KEY" && blk.Type != "RSA PUBLIC KEY" {
			return nil, fault.New(fault.BadInput, "the wrapping public key is a PEM %q block, not a PUBLIC KEY", blk.Type)
		}
		der = blk.Bytes
	}
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		pub, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fault.New(fault.BadInput, "the wrapping public key is a %s key, not RSA", keyKind(k))
		}
		return pub, checkRSA(pub)
	}
	if pub, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return pub, checkRSA(pub)
	}
	return nil, fault.New(fault.BadInput, "the wrapping public key is not a DER or PEM RSA public key")
}

// ParseJWK builds an RSA wrapping key from a JSON Web Key's modulus and
// exponent (big-endian bytes, as Azure Key Vault returns them).
func ParseJWK(n, e []byte) (*rsa.PublicKey, error) {
	if len(n) == 0 || len(e) == 0 {
		return nil, fault.New(fault.BadInput, "the wrapping key has no RSA modulus or exponent")
	}
	if len(n) > 2048 || len(e) > 8 {
		return nil, fault.New(fault.BadInput, "the wrapping key's modulus or exponent is too long")
	}
	ev := new(big.Int).SetBytes(e)
	if !ev.IsInt64() || ev.Int64() > 1<<31-1 {
		return nil, fault.New(fault.BadInput, "the wrapping key's exponent is out of range")
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(ev.Int64())}
	return pub, checkRSA(pub)
}

// checkRSA refuses keys no cloud issues: under 2048 or over 16384 bits, an
// even or tiny exponent.
func checkRSA(pub *rsa.PublicKey) error {
	if bits := pub.N.BitLen(); bits < 2048 || bits > 16384 {
		return fault.New(fault.BadInput, "the wrapping key has %d bits; at least 2048 are needed", bits)
	}
	if pub.N.Bit(0) == 0 {
		return fault.New(fault.BadInput, "the wrapping key's modulus is even")
	}
	if pub.E < 3 || pub.E%2 == 0 {
		return fault.New(fault.BadInput, "the wrapping key's public exponent %d is invalid", pub.E)
	}
	return nil
}

// CheckWrappingKey refuses a wrapping key whose size the scheme does not take.
func CheckWrappingKey(s Scheme, pub *rsa.PublicKey) error {
	sp, err := Lookup(s)
	if err != nil {
		return err
	}
	if pub == nil || pub.N == nil {
		return fault.New(fault.BadInput, "no wrapping key")
	}
	if err := checkRSA(pub); err != nil {
		return err
	}
	bits := pub.N.BitLen()
	if sp.Bits != 0 && bits != sp.Bits {
		return fault.New(fault.BadInput, "%s needs a %d-bit wrapping key, got %d bits", s, sp.Bits, bits)
	}
	if sp.Bits == 0 && bits != 2048 && bits != 3072 && bits != 4096 {
		return fault.New(fault.BadInput, "%s needs a 2048-, 3072- or 4096-bit wrapping key, got %d bits", s, bits)
	}
	return nil
}

func keyKind(k any) string {
	switch k.(type) {
	case *rsa.PublicKey:
		return "RSA"
	}
	return "non-RSA"
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
