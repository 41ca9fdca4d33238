package kmip_test

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"os/exec"
	"testing"

	"github.com/keyhold/keyhold/kmip/kmiptest"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// TestPyKMIPCrypto drives the cryptographic operations with PyKMIP as the
// client (KMIP 1.2 and 1.4) and checks every result with Go's crypto: the
// server's signatures verify with crypto/rsa and crypto/ecdsa, its
// ciphertexts decrypt with crypto/cipher and crypto/rsa, its MAC is
// crypto/hmac's. The keys the checks need are fetched by the test itself.
func TestPyKMIPCrypto(t *testing.T) {
	if err := exec.Command(python, "-c", "import kmip").Run(); err != nil {
		t.Fatalf("PyKMIP is not installed for %s (make deps installs python3-pykmip): %v", python, err)
	}
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "py", "all", "all")
	cert, key, ca, _ := e.WriteCredential(t, "py", "all")
	goCert, _ := e.Credential(t, "py", "all")
	c := e.Dial(t, goCert)
	message := []byte("signed, encrypted and MACed by PyKMIP")
	digest := sha256.Sum256(message)
	known := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	macKey := make([]byte, 32)
	for i := range macKey {
		macKey[i] = byte(32 + i)
	}
	unhex := func(v any) []byte {
		s, _ := v.(string)
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatalf("not hex: %v", v)
		}
		return b
	}

	for _, version := range []string{"1.2", "1.4"} {
		t.Run("ok KMIP "+version, func(t *testing.T) {
			r := ok(t, pykmip(t, e, cert, key, ca, version, "crypto")).(map[string]any)
			rsaR, ecR := r["rsa"].(map[string]any), r["ec"].(map[string]any)

			rsaPub := getPublic(t, c, rsaR["public"].(string), gokmip.KeyFormatTypePKCS_1).(*rsa.PublicKey)
			if err := rsa.VerifyPSS(rsaPub, crypto.SHA256, digest[:], unhex(rsaR["signature"]), nil); err != nil {
				t.Fatalf("crypto/rsa does not verify the RSA-PSS signature: %v", err)
			}
			ecPub := getPublic(t, c, ecR["public"].(string), gokmip.KeyFormatTypeX_509).(*ecdsa.PublicKey)
			if !ecdsa.VerifyASN1(ecPub, digest[:], unhex(ecR["signature"])) {
				t.Fatal("crypto/ecdsa does not verify the ECDSA signature")
			}
			for _, k := range []map[string]any{rsaR, ecR} {
				if k["verified"] != "VALID" || k["tampered"] != "INVALID" {
					t.Fatalf("signature_verify: %v", k)
				}
			}

			g := must[*payloads.GetResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: rsaR["private"].(string)}))
			rsaPriv, err := g.Object.(*gokmip.PrivateKey).RSA()
			if err != nil || !rsaPriv.PublicKey.Equal(rsaPub) {
				t.Fatalf("the private key: %v", err)
			}
			if pt, err := rsa.DecryptOAEP(crypto.SHA1.New(), nil, rsaPriv, unhex(rsaR["ciphertext"]), nil); err != nil || !bytes.Equal(pt, message) {
				t.Fatalf("crypto/rsa does not decrypt the RSA-OAEP ciphertext: %v", err)
			}
			if rsaR["decrypted"] != true {
				t.Fatal("the server does not decrypt its own RSA-OAEP ciphertext")
			}

			a := r["aes"].(map[string]any)
			blk, _ := aes.NewCipher(known)
			for _, tc := range []struct{ ct, iv []byte }{{unhex(a["ciphertext"]), unhex(a["iv"])}, {unhex(a["server_ciphertext"]), unhex(a["server_iv"])}} {
				if len(tc.iv) != 16 || len(tc.ct)%16 != 0 {
					t.Fatalf("AES-CBC: IV %x, %d bytes", tc.iv, len(tc.ct))
				}
				pt := make([]byte, len(tc.ct))
				cipher.NewCBCDecrypter(blk, tc.iv).CryptBlocks(pt, tc.ct)
				if n := int(pt[len(pt)-1]); n < 1 || n > 16 || !bytes.Equal(pt[:len(pt)-n], message) {
					t.Fatal("crypto/cipher does not decrypt the AES-CBC ciphertext to the message")
				}
			}
			if a["returned_iv"] != nil || a["decrypted"] != true || bytes.Equal(unhex(a["server_iv"]), unhex(a["iv"])) {
				t.Fatalf("AES-CBC: %v", a)
			}

			m := r["mac"].(map[string]any)
			h := hmac.New(sha256.New, macKey)
			h.Write(message)
			if !hmac.Equal(unhex(m["mac"]), h.Sum(nil)) || m["uid"] != m["expected_uid"] {
				t.Fatal("the MAC is not crypto/hmac's")
			}
			if r["mask_refusal"] != "PERMISSION_DENIED" {
				t.Fatalf("a key without Encrypt in its mask: %v", r["mask_refusal"])
			}
		})
	}
}
