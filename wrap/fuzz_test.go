package wrap

import (
	"bytes"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/keyhold/keyhold/fault"
)

func ellipticP256() elliptic.Curve { return elliptic.P256() }

// The parsers of cloud-supplied input: wrapping public keys (DER, PEM, JWK)
// and .byok blobs. Each must refuse bad input with a BadInput fault, never
// panic, and what it accepts must round-trip.

func FuzzParsePublicKey(f *testing.F) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	spki, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	f.Add(spki)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
	f.Add(x509.MarshalPKCS1PublicKey(&k.PublicKey))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		pub, err := ParsePublicKey(in)
		if err != nil {
			if fault.KindOf(err) != fault.BadInput {
				t.Fatalf("error of kind %s: %v", fault.KindOf(err), err)
			}
			return
		}
		if checkRSA(pub) != nil {
			t.Fatal("accepted a key checkRSA refuses")
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParsePublicKey(der)
		if err != nil || !again.Equal(pub) {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

func FuzzParseJWK(f *testing.F) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	f.Add(k.N.Bytes(), []byte{1, 0, 1})
	f.Add([]byte{}, []byte{3})
	f.Fuzz(func(t *testing.T, n, e []byte) {
		pub, err := ParseJWK(n, e)
		if err != nil {
			if fault.KindOf(err) != fault.BadInput {
				t.Fatalf("error of kind %s", fault.KindOf(err))
			}
			return
		}
		if pub.N.BitLen() < 2048 || pub.E%2 == 0 {
			t.Fatalf("accepted %d bits, e=%d", pub.N.BitLen(), pub.E)
		}
	})
}

func FuzzParseBYOK(f *testing.F) {
	b, _ := MarshalBYOK("https://v.vault.azure.net/keys/kek/1", []byte("ciphertext"))
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"schema_version":"1.0.0","header":{"kid":"k","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},"ciphertext":"","generator":""}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, ct, err := ParseBYOK(in)
		if err != nil {
			if fault.KindOf(err) != fault.BadInput {
				t.Fatalf("error of kind %s", fault.KindOf(err))
			}
			return
		}
		out, err := MarshalBYOK(p.Header.KID, ct)
		if err != nil {
			t.Fatal(err)
		}
		_, ct2, err := ParseBYOK(out)
		if err != nil || !bytes.Equal(ct, ct2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
