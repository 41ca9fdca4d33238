// Package kmsfake holds in-process fakes of the three clouds' key-import
// wire APIs, for tests: AWS KMS's JSON 1.1 protocol over HTTP, Cloud KMS's
// gRPC KeyManagementService, and Azure Key Vault through azkeys' fake server
// transport. The real SDKs talk to them unchanged.
//
// Each fake holds the private halves of the wrapping keys it hands out and
// really unwraps every import it receives (RSA-OAEP, then RFC 5649 AES key
// wrap with padding, written here independently of the HSM), checks the
// material against the key's declared type and keeps it, so a test can prove
// the cloud received the HSM's key. They keep versions and enabled state,
// and can be told to fail an operation to test recovery.
package kmsfake

import (
	"crypto"
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// unwrapKWP is RFC 5649 key unwrap (AES key wrap with padding).
func unwrapKWP(kek, ct []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(ct)%8 != 0 || len(ct) < 16 {
		return nil, errors.New("kwp: bad ciphertext length")
	}
	n := len(ct)/8 - 1
	var a []byte
	var p []byte
	if n == 1 {
		b := make([]byte, 16)
		block.Decrypt(b, ct)
		a, p = b[:8], b[8:]
	} else {
		a = append([]byte{}, ct[:8]...)
		r := append([]byte{}, ct[8:]...)
		b := make([]byte, 16)
		for j := 5; j >= 0; j-- {
			for i := n; i >= 1; i-- {
				t := uint64(n*j + i)
				binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(a)^t)
				copy(b[8:], r[(i-1)*8:i*8])
				block.Decrypt(b, b)
				copy(a, b[:8])
				copy(r[(i-1)*8:i*8], b[8:])
			}
		}
		p = r
	}
	if binary.BigEndian.Uint32(a[:4]) != 0xA65959A6 {
		return nil, errors.New("kwp: integrity check failed")
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if mli <= 8*(n-1) || mli > 8*n {
		return nil, errors.New("kwp: bad message length indicator")
	}
	for _, z := range p[mli:] {
		if z != 0 {
			return nil, errors.New("kwp: bad padding")
		}
	}
	return p[:mli], nil
}

// unwrap opens an import blob: OAEP(key) or, hybrid, OAEP(eph) ‖ KWP(key).
func unwrap(priv *rsa.PrivateKey, hash crypto.Hash, hybrid bool, blob []byte) ([]byte, error) {
	if !hybrid {
		return rsa.DecryptOAEP(hash.New(), nil, priv, blob, nil)
	}
	n := priv.Size()
	if len(blob) <= n {
		return nil, errors.New("hybrid blob too short")
	}
	eph, err := rsa.DecryptOAEP(hash.New(), nil, priv, blob[:n], nil)
	if err != nil {
		return nil, fmt.Errorf("oaep: %w", err)
	}
	if len(eph) != 32 {
		return nil, fmt.Errorf("ephemeral key of %d bytes, want 32", len(eph))
	}
	return unwrapKWP(eph, blob[n:])
}

// Material is a private key or secret a fake received, parsed.
type Material struct {
	Raw    []byte // as received: raw secret or PKCS#8 DER
	Public any    // for private keys: the public key
}

// parseMaterial checks material against the kind of key it was imported into:
// "aes256" (32 raw bytes), "rsa-N" or "ec-CURVE" (PKCS#8 DER).
func parseMaterial(kind string, raw []byte) (*Material, error) {
	if kind == "aes256" {
		if len(raw) != 32 {
			return nil, fmt.Errorf("symmetric key material of %d bytes, want 32", len(raw))
		}
		return &Material{Raw: raw}, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("key material is not PKCS#8: %v", err)
	}
	switch p := k.(type) {
	case *rsa.PrivateKey:
		if kind != fmt.Sprintf("rsa-%d", p.N.BitLen()) {
			return nil, fmt.Errorf("an RSA-%d key imported as %s", p.N.BitLen(), kind)
		}
		if err := p.Validate(); err != nil {
			return nil, err
		}
		return &Material{Raw: raw, Public: &p.PublicKey}, nil
	case *ecdsa.PrivateKey:
		if kind != "ec-"+p.Curve.Params().Name {
			return nil, fmt.Errorf("an EC %s key imported as %s", p.Curve.Params().Name, kind)
		}
		return &Material{Raw: raw, Public: &p.PublicKey}, nil
	}
	return nil, fmt.Errorf("unsupported private key %T", k)
}

// wrappingKeys hands out one RSA key per size, generated on first use (a
// real cloud makes one per import; generating 4096-bit keys per call would
// only slow the tests).
type wrappingKeys struct {
	mu   sync.Mutex
	keys map[int]*rsa.PrivateKey
}

func (w *wrappingKeys) get(bits int) *rsa.PrivateKey {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.keys == nil {
		w.keys = map[int]*rsa.PrivateKey{}
	}
	if k := w.keys[bits]; k != nil {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err) // crypto/rand failed: nothing a test can do
	}
	w.keys[bits] = k
	return k
}

// failures makes named operations fail a number of times, before they
// run (FailNext) or after they ran, as if the answer was lost (LoseNext).
type failures struct {
	mu   sync.Mutex
	n    map[string]int
	lost map[string]int
}

// LoseNext makes the next n calls of op run but answer with an error.
func (f *failures) LoseNext(op string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lost == nil {
		f.lost = map[string]int{}
	}
	f.lost[op] += n
}

func (f *failures) lose(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lost[op] > 0 {
		f.lost[op]--
		return true
	}
	return false
}

// FailNext makes the next n calls of op fail.
func (f *failures) FailNext(op string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.n[op] += n
}

func (f *failures) fail(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[op] > 0 {
		f.n[op]--
		return true
	}
	return false
}

// CurveName names a curve as parseMaterial expects.
func curveKind(c elliptic.Curve) string { return "ec-" + c.Params().Name }

func b64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// rsaKind names the RSA key in PKCS#8 material ("" if it is not one).
func rsaKind(raw []byte) string {
	k, err := x509.ParsePKCS8PrivateKey(raw)
	if p, ok := k.(*rsa.PrivateKey); err == nil && ok {
		return fmt.Sprintf("rsa-%d", p.N.BitLen())
	}
	return ""
}
