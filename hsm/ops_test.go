package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"testing"
)

// genExportable generates a key whose material the test can read, so that
// every token result can be checked against Go's crypto.
func genExportable(t *testing.T, h *HSM, typ KeyType) (Key, []byte) {
	t.Helper()
	ctx := context.Background()
	id := "test/" + string(typ)
	b, err := h.Generate(ctx, GenerateRequest{ID: id, Type: typ, Exportable: true})
	if err != nil {
		t.Fatalf("generate %s: %v", typ, err)
	}
	k := Key{ID: id, Blob: b}
	mat, err := h.Export(ctx, k)
	if err != nil {
		t.Fatalf("export %s: %v", typ, err)
	}
	return k, mat
}

func goAESMode(t *testing.T, key []byte, a Algorithm, iv []byte, decrypt bool, in []byte) []byte {
	t.Helper()
	blk, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(in))
	switch a {
	case AESCBC:
		if decrypt {
			cipher.NewCBCDecrypter(blk, iv).CryptBlocks(out, in)
		} else {
			cipher.NewCBCEncrypter(blk, iv).CryptBlocks(out, in)
		}
	case AESCTR:
		cipher.NewCTR(blk, iv).XORKeyStream(out, in)
	case AESECB:
		for i := 0; i < len(in); i += 16 {
			if decrypt {
				blk.Decrypt(out[i:i+16], in[i:i+16])
			} else {
				blk.Encrypt(out[i:i+16], in[i:i+16])
			}
		}
	default:
		t.Fatalf("no Go reference for %s", a)
	}
	return out
}

func TestAESModesAgainstGo(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	for _, typ := range []KeyType{AES128, AES192, AES256} {
		k, key := genExportable(t, h, typ)
		if len(key) != keySpecs[typ].size {
			t.Fatalf("%s: exported %d bytes", typ, len(key))
		}
		t.Run("ok "+string(typ)+" gcm", func(t *testing.T) {
			pt := []byte("sixty-four bytes of plaintext for the gcm round trip, and more.")
			aad := []byte("associated")
			res, err := h.Encrypt(ctx, k, EncryptRequest{Algorithm: AESGCM, Plaintext: pt, AAD: aad})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.IV) != 12 || len(res.Tag) != 16 || len(res.Ciphertext) != len(pt) {
				t.Fatalf("iv %d tag %d ct %d", len(res.IV), len(res.Tag), len(res.Ciphertext))
			}
			blk, _ := aes.NewCipher(key)
			g, _ := cipher.NewGCM(blk)
			got, err := g.Open(nil, res.IV, append(append([]byte{}, res.Ciphertext...), res.Tag...), aad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Go cannot open the token's GCM output: %v", err)
			}
			// Go seals, the token opens.
			iv := make([]byte, 12)
			rand.Read(iv)
			sealed := g.Seal(nil, iv, pt, aad)
			back, err := h.Decrypt(ctx, k, DecryptRequest{Algorithm: AESGCM, Ciphertext: sealed[:len(pt)], Tag: sealed[len(pt):], IV: iv, AAD: aad})
			if err != nil || !bytes.Equal(back, pt) {
				t.Fatalf("token cannot open Go's GCM output: %v", err)
			}
			// A wrong AAD or tag fails, and says nothing more.
			_, err = h.Decrypt(ctx, k, DecryptRequest{Algorithm: AESGCM, Ciphertext: sealed[:len(pt)], Tag: sealed[len(pt):], IV: iv, AAD: []byte("other")})
			mustKind(t, err, ErrIntegrity)
			badTag := append([]byte{}, sealed[len(pt):]...)
			badTag[0] ^= 1
			_, err = h.Decrypt(ctx, k, DecryptRequest{Algorithm: AESGCM, Ciphertext: sealed[:len(pt)], Tag: badTag, IV: iv, AAD: aad})
			mustKind(t, err, ErrIntegrity)
		})
		t.Run("ok "+string(typ)+" gcm short tag", func(t *testing.T) {
			res, err := h.Encrypt(ctx, k, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("x"), TagLength: 12})
			if err != nil {
				t.Fatal(err)
			}
			blk, _ := aes.NewCipher(key)
			g, _ := cipher.NewGCMWithTagSize(blk, 12)
			if _, err := g.Open(nil, res.IV, append(res.Ciphertext, res.Tag...), nil); err != nil {
				t.Fatal(err)
			}
		})
		for _, a := range []Algorithm{AESCBC, AESCTR, AESECB} {
			t.Run("ok "+string(typ)+" "+string(a), func(t *testing.T) {
				pt := bytes.Repeat([]byte("0123456789abcdef"), 4)
				res, err := h.Encrypt(ctx, k, EncryptRequest{Algorithm: a, Plaintext: pt})
				if err != nil {
					t.Fatal(err)
				}
				if got := goAESMode(t, key, a, res.IV, true, res.Ciphertext); !bytes.Equal(got, pt) {
					t.Fatalf("Go decryption of token %s output differs", a)
				}
				iv := make([]byte, ivSizes[a])
				rand.Read(iv)
				ct := goAESMode(t, key, a, iv, false, pt)
				back, err := h.Decrypt(ctx, k, DecryptRequest{Algorithm: a, Ciphertext: ct, IV: iv})
				if err != nil || !bytes.Equal(back, pt) {
					t.Fatalf("token decryption of Go %s output: %v", a, err)
				}
			})
		}
		t.Run("ok "+string(typ)+" cbc pad", func(t *testing.T) {
			pt := []byte("not a multiple of sixteen")
			res, err := h.Encrypt(ctx, k, EncryptRequest{Algorithm: AESCBCPad, Plaintext: pt})
			if err != nil {
				t.Fatal(err)
			}
			raw := goAESMode(t, key, AESCBC, res.IV, true, res.Ciphertext)
			pad := int(raw[len(raw)-1])
			if pad < 1 || pad > 16 || !bytes.Equal(raw[:len(raw)-pad], pt) {
				t.Fatal("PKCS#7 padded output does not decrypt in Go")
			}
			back, err := h.Decrypt(ctx, k, DecryptRequest{Algorithm: AESCBCPad, Ciphertext: res.Ciphertext, IV: res.IV})
			if err != nil || !bytes.Equal(back, pt) {
				t.Fatal(err)
			}
		})
	}
}

func TestHMACAgainstGo(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	for _, c := range []struct {
		typ  KeyType
		hash crypto.Hash
	}{{HMACSHA1, crypto.SHA1}, {HMACSHA256, crypto.SHA256}, {HMACSHA384, crypto.SHA384}, {HMACSHA512, crypto.SHA512}} {
		t.Run("ok "+string(c.typ), func(t *testing.T) {
			k, key := genExportable(t, h, c.typ)
			data := []byte("message to authenticate")
			mac, err := h.MAC(ctx, k, 0, data)
			if err != nil {
				t.Fatal(err)
			}
			ref := hmac.New(c.hash.New, key)
			ref.Write(data)
			if !hmac.Equal(mac, ref.Sum(nil)) {
				t.Fatal("token HMAC differs from Go's")
			}
			ok, err := h.VerifyMAC(ctx, k, 0, data, mac)
			if err != nil || !ok {
				t.Fatalf("verify own MAC: %v %v", ok, err)
			}
			mac[0] ^= 1
			if ok, _ := h.VerifyMAC(ctx, k, 0, data, mac); ok {
				t.Fatal("altered MAC verified")
			}
		})
	}
}

func TestRSAAgainstGo(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	for _, typ := range []KeyType{RSA2048, RSA3072, RSA4096} {
		t.Run("ok "+string(typ), func(t *testing.T) {
			k, der := genExportable(t, h, typ)
			privAny, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				t.Fatalf("exported key is not PKCS#8: %v", err)
			}
			priv := privAny.(*rsa.PrivateKey)
			pubDER, err := h.PublicKey(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			pubAny, _ := x509.ParsePKIXPublicKey(pubDER)
			pub := pubAny.(*rsa.PublicKey)
			if !pub.Equal(&priv.PublicKey) || pub.N.BitLen() != keySpecs[typ].size {
				t.Fatal("public key does not match the exported private key")
			}
			msg := []byte("sign me")
			digest := sha256.Sum256(msg)
			for _, hash := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
				hh := hash.New()
				hh.Write(msg)
				d := hh.Sum(nil)
				sig, err := h.Sign(ctx, k, SignRequest{Algorithm: RSAPKCS1, Hash: hash, Message: msg})
				if err != nil {
					t.Fatal(err)
				}
				if err := rsa.VerifyPKCS1v15(pub, hash, d, sig); err != nil {
					t.Fatalf("PKCS#1 v1.5 %v signature does not verify in Go: %v", hash, err)
				}
				sig, err = h.Sign(ctx, k, SignRequest{Algorithm: RSAPSS, Hash: hash, Digest: d})
				if err != nil {
					t.Fatal(err)
				}
				if err := rsa.VerifyPSS(pub, hash, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
					t.Fatalf("PSS %v signature does not verify in Go: %v", hash, err)
				}
				ok, err := h.Verify(ctx, k, SignRequest{Algorithm: RSAPSS, Hash: hash, Digest: d}, sig)
				if err != nil || !ok {
					t.Fatalf("layer verify: %v %v", ok, err)
				}
			}
			// Go signs, the layer verifies; a wrong message fails.
			gsig, _ := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, digest[:])
			if ok, err := h.Verify(ctx, k, SignRequest{Algorithm: RSAPKCS1, Hash: crypto.SHA256, Message: msg}, gsig); err != nil || !ok {
				t.Fatalf("verify Go signature: %v %v", ok, err)
			}
			if ok, _ := h.Verify(ctx, k, SignRequest{Algorithm: RSAPKCS1, Hash: crypto.SHA256, Message: []byte("other")}, gsig); ok {
				t.Fatal("signature verified for another message")
			}
			// Encryption: Go encrypts to the public key, the token decrypts.
			secret := []byte("thirty-two byte session key 0123")
			for _, hash := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
				ct, _ := rsa.EncryptOAEP(hash.New(), rand.Reader, pub, secret, nil)
				pt, err := h.Decrypt(ctx, k, DecryptRequest{Algorithm: RSAOAEP, Hash: hash, Ciphertext: ct})
				if h.Capabilities().OAEP(hash) {
					if err != nil || !bytes.Equal(pt, secret) {
						t.Fatalf("OAEP %v decrypt: %v", hash, err)
					}
				} else {
					mustKind(t, err, ErrUnsupported)
				}
			}
			ct, _ := rsa.EncryptPKCS1v15(rand.Reader, pub, secret)
			pt, err := h.Decrypt(ctx, k, DecryptRequest{Algorithm: RSAPKCS1, Ciphertext: ct})
			if err != nil || !bytes.Equal(pt, secret) {
				t.Fatalf("PKCS#1 v1.5 decrypt: %v", err)
			}
			// The layer encrypts (in Go, to the public key), Go's private key decrypts.
			res, err := h.Encrypt(ctx, k, EncryptRequest{Algorithm: RSAOAEP, Plaintext: secret})
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := rsa.DecryptOAEP(crypto.SHA1.New(), nil, priv, res.Ciphertext, nil); err != nil || !bytes.Equal(pt, secret) {
				t.Fatalf("Go cannot decrypt layer OAEP: %v", err)
			}
		})
	}
}

func TestECDSAAgainstGo(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	for _, c := range []struct {
		typ  KeyType
		hash crypto.Hash
	}{{ECP256, crypto.SHA256}, {ECP384, crypto.SHA384}, {ECP521, crypto.SHA512}} {
		t.Run("ok "+string(c.typ), func(t *testing.T) {
			k, der := genExportable(t, h, c.typ)
			privAny, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				t.Fatalf("exported key is not PKCS#8: %v", err)
			}
			priv := privAny.(*ecdsa.PrivateKey)
			pubDER, _ := h.PublicKey(ctx, k)
			pubAny, _ := x509.ParsePKIXPublicKey(pubDER)
			pub := pubAny.(*ecdsa.PublicKey)
			if !pub.Equal(&priv.PublicKey) {
				t.Fatal("public key does not match the exported private key")
			}
			msg := []byte("sign me")
			hh := c.hash.New()
			hh.Write(msg)
			d := hh.Sum(nil)
			for i := 0; i < 3; i++ {
				sig, err := h.Sign(ctx, k, SignRequest{Algorithm: ECDSA, Hash: c.hash, Message: msg})
				if err != nil {
					t.Fatal(err)
				}
				if !ecdsa.VerifyASN1(pub, d, sig) {
					t.Fatal("token ECDSA signature does not verify in Go")
				}
			}
			gsig, _ := ecdsa.SignASN1(rand.Reader, priv, d)
			if ok, err := h.Verify(ctx, k, SignRequest{Algorithm: ECDSA, Hash: c.hash, Digest: d}, gsig); err != nil || !ok {
				t.Fatalf("verify Go signature: %v %v", ok, err)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	aesBlob, err := h.Generate(ctx, GenerateRequest{ID: "a", Type: AES256})
	if err != nil {
		t.Fatal(err)
	}
	ecBlob, err := h.Generate(ctx, GenerateRequest{ID: "e", Type: ECP256})
	if err != nil {
		t.Fatal(err)
	}
	ak, ek := Key{ID: "a", Blob: aesBlob}, Key{ID: "e", Blob: ecBlob}
	cases := []struct {
		name string
		run  func() error
		want *Error
	}{
		{"fail unknown type", func() error {
			_, err := h.Generate(ctx, GenerateRequest{ID: "x", Type: "des"})
			return err
		}, ErrBadInput},
		{"fail empty id", func() error {
			_, err := h.Generate(ctx, GenerateRequest{Type: AES256})
			return err
		}, ErrBadInput},
		{"fail gcm iv size", func() error {
			_, err := h.Encrypt(ctx, ak, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("x"), IV: make([]byte, 8)})
			return err
		}, ErrBadInput},
		{"fail gcm tag size", func() error {
			_, err := h.Encrypt(ctx, ak, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("x"), TagLength: 4})
			return err
		}, ErrBadInput},
		{"fail cbc unaligned", func() error {
			_, err := h.Encrypt(ctx, ak, EncryptRequest{Algorithm: AESCBC, Plaintext: []byte("short")})
			return err
		}, ErrBadInput},
		{"fail aad with cbc", func() error {
			_, err := h.Encrypt(ctx, ak, EncryptRequest{Algorithm: AESCBCPad, Plaintext: []byte("x"), AAD: []byte("a")})
			return err
		}, ErrBadInput},
		{"fail unknown algorithm", func() error {
			_, err := h.Encrypt(ctx, ak, EncryptRequest{Algorithm: "ROT13", Plaintext: []byte("x")})
			return err
		}, ErrUnsupported},
		{"fail ec key for aes", func() error {
			_, err := h.Encrypt(ctx, ek, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("x")})
			return err
		}, ErrBadInput},
		{"fail aes key for ecdsa", func() error {
			_, err := h.Sign(ctx, ak, SignRequest{Algorithm: ECDSA, Hash: crypto.SHA256, Message: []byte("x")})
			return err
		}, ErrBadInput},
		{"fail rsa-pss with ec key", func() error {
			_, err := h.Sign(ctx, ek, SignRequest{Algorithm: RSAPSS, Hash: crypto.SHA256, Message: []byte("x")})
			return err
		}, ErrBadInput},
		{"fail digest size", func() error {
			_, err := h.Sign(ctx, ek, SignRequest{Algorithm: ECDSA, Hash: crypto.SHA256, Digest: []byte("short")})
			return err
		}, ErrBadInput},
		{"fail message and digest", func() error {
			_, err := h.Sign(ctx, ek, SignRequest{Algorithm: ECDSA, Hash: crypto.SHA256})
			return err
		}, ErrBadInput},
		{"fail hmac with aes key", func() error {
			_, err := h.MAC(ctx, ak, 0, []byte("x"))
			return err
		}, ErrBadInput},
		{"fail public key of aes key", func() error {
			_, err := h.PublicKey(ctx, ak)
			return err
		}, ErrBadInput},
		{"fail export of non-exportable key", func() error {
			_, err := h.Export(ctx, ak)
			return err
		}, ErrPermission},
		{"fail malformed blob", func() error {
			_, err := h.Encrypt(ctx, Key{ID: "a", Blob: []byte("KHB1 garbage")}, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("x")})
			return err
		}, ErrIntegrity},
		{"fail nil blob", func() error {
			_, err := h.Decrypt(ctx, Key{ID: "a"}, DecryptRequest{Algorithm: AESGCM})
			return err
		}, ErrIntegrity},
		{"fail import wrong length", func() error {
			_, err := h.Import(ctx, ImportRequest{ID: "i", Type: AES256, Material: make([]byte, 31)})
			return err
		}, ErrBadInput},
		{"fail import garbage private key", func() error {
			_, err := h.Import(ctx, ImportRequest{ID: "i", Material: []byte("not DER")})
			return err
		}, ErrBadInput},
		{"fail random too long", func() error {
			_, err := h.Random(ctx, -1)
			return err
		}, ErrBadInput},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { mustKind(t, c.run(), c.want) })
	}
	// An operation on a well-formed request still works after all that.
	if _, err := h.Encrypt(ctx, ak, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}

func TestErrorMessagesCarryNoSecrets(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	material := bytes.Repeat([]byte{0xA5}, 31)
	_, err := h.Import(ctx, ImportRequest{ID: "i", Type: AES256, Material: material})
	if err == nil || bytes.Contains([]byte(err.Error()), material) || bytes.Contains([]byte(err.Error()), []byte(fmt.Sprintf("%x", material))) {
		t.Fatalf("error %v leaks material", err)
	}
}
