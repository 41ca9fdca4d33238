package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"testing"
)

// The operations added for the KMIP profiles (aes.go, oaep.go, stream.go,
// mac.go), each checked against Go's crypto.

func TestEncryptAESAgainstGo(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	k, key := genExportable(t, h, AES128)
	blk, _ := aes.NewCipher(key)
	pt := []byte("sixty bytes of plaintext, which is not a multiple of sixteen")
	for _, ivLen := range []int{1, 8, 12, 16, 60, 128} {
		iv := bytes.Repeat([]byte{byte(ivLen)}, ivLen)
		for _, tagLen := range []int{12, 16} {
			res, err := h.EncryptAES(ctx, k, AESRequest{Algorithm: AESGCM, Data: pt, IV: iv, AAD: []byte("aad"), TagLength: tagLen})
			if err != nil {
				t.Fatalf("ok GCM iv %d tag %d: %v", ivLen, tagLen, err)
			}
			g, _ := cipher.NewGCMWithNonceSize(blk, ivLen)
			if tagLen != 16 {
				g, _ = cipher.NewGCMWithTagSize(blk, tagLen)
				if ivLen != 12 {
					continue // Go has no GCM with both a short tag and another IV size; 16-byte tags cover those IVs
				}
			}
			want := g.Seal(nil, iv, pt, []byte("aad"))
			if got := append(append([]byte{}, res.Ciphertext...), res.Tag...); !bytes.Equal(got, want) {
				t.Fatalf("GCM iv %d tag %d differs from Go", ivLen, tagLen)
			}
			back, err := h.DecryptAES(ctx, k, AESRequest{Algorithm: AESGCM, Data: res.Ciphertext, IV: iv, AAD: []byte("aad"), Tag: res.Tag})
			if err != nil || !bytes.Equal(back, pt) {
				t.Fatalf("GCM iv %d round trip: %v", ivLen, err)
			}
			bad := append([]byte{}, res.Tag...)
			bad[0] ^= 1
			_, err = h.DecryptAES(ctx, k, AESRequest{Algorithm: AESGCM, Data: res.Ciphertext, IV: iv, AAD: []byte("aad"), Tag: bad})
			if !errors.Is(err, ErrDecryption) || KindOf(err) != KindIntegrity {
				t.Fatalf("fail GCM wrong tag: %v", err)
			}
		}
	}
	for _, tagLen := range []int{1, 11, 17, 32} {
		_, err := h.EncryptAES(ctx, k, AESRequest{Algorithm: AESGCM, Data: pt, TagLength: tagLen})
		mustKind(t, err, ErrBadInput)
	}
	if _, err := h.EncryptAES(ctx, k, AESRequest{Algorithm: AESGCM, Data: pt, IV: make([]byte, 129)}); KindOf(err) != KindBadInput {
		t.Fatalf("fail 129-byte IV: %v", err)
	}

	// ECB with PKCS#7 padding: the block cipher in the token, the padding in Go.
	for _, n := range []int{0, 1, 15, 16, 33} {
		msg := bytes.Repeat([]byte{7}, n)
		res, err := h.EncryptAES(ctx, k, AESRequest{Algorithm: AESECBPad, Data: msg})
		if err != nil {
			t.Fatal(err)
		}
		padded := append(append([]byte{}, msg...), bytes.Repeat([]byte{byte(16 - n%16)}, 16-n%16)...)
		want := make([]byte, len(padded))
		for i := 0; i < len(padded); i += 16 {
			blk.Encrypt(want[i:], padded[i:i+16])
		}
		if !bytes.Equal(res.Ciphertext, want) || len(res.IV) != 0 {
			t.Fatalf("ECB-PAD of %d bytes differs from Go", n)
		}
		back, err := h.DecryptAES(ctx, k, AESRequest{Algorithm: AESECBPad, Data: res.Ciphertext})
		if err != nil || !bytes.Equal(back, msg) {
			t.Fatalf("ECB-PAD round trip of %d bytes: %v", n, err)
		}
	}
	// A last block whose padding is wrong fails like any decryption.
	junk := make([]byte, 16)
	blk.Encrypt(junk, bytes.Repeat([]byte{0x11}, 16))
	if _, err := h.DecryptAES(ctx, k, AESRequest{Algorithm: AESECBPad, Data: junk}); !errors.Is(err, ErrDecryption) {
		t.Fatalf("fail bad padding: %v", err)
	}
	// CBC with a client IV, and a token IV when there is none.
	iv := bytes.Repeat([]byte{9}, 16)
	res, err := h.EncryptAES(ctx, k, AESRequest{Algorithm: AESCBCPad, Data: pt, IV: iv})
	if err != nil {
		t.Fatal(err)
	}
	dec := make([]byte, len(res.Ciphertext))
	cipher.NewCBCDecrypter(blk, iv).CryptBlocks(dec, res.Ciphertext)
	if !bytes.Equal(dec[:len(pt)], pt) {
		t.Fatal("CBC-PAD differs from Go")
	}
	res, err = h.EncryptAES(ctx, k, AESRequest{Algorithm: AESCBC, Data: pt[:48]})
	if err != nil || len(res.IV) != 16 {
		t.Fatalf("CBC with a token IV: %v", err)
	}
}

func TestDecryptOAEPEveryParameter(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	k, der := genExportable(t, h, RSA2048)
	privAny, _ := x509.ParsePKCS8PrivateKey(der)
	pub := &privAny.(*rsa.PrivateKey).PublicKey
	msg := []byte("a 28-byte message for OAEP!!")
	cases := []struct {
		name       string
		hash, mgf  crypto.Hash
		label      []byte
		wantInside bool
	}{
		{"ok SHA-1 in the token", crypto.SHA1, crypto.SHA1, nil, true},
		{"ok SHA-256", crypto.SHA256, crypto.SHA256, nil, false},
		{"ok SHA-384 with MGF1-SHA-256", crypto.SHA384, crypto.SHA256, nil, false},
		{"ok SHA-512", crypto.SHA512, crypto.SHA512, nil, false},
		{"ok SHA-1 with a label", crypto.SHA1, crypto.SHA1, []byte("Kilroy was here"), false},
		{"ok SHA-384 with a label", crypto.SHA384, crypto.SHA256, []byte("Kilroy was here"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, pub, msg, &rsa.OAEPOptions{Hash: c.hash, MGFHash: c.mgf, Label: c.label})
			if err != nil {
				t.Fatal(err)
			}
			pt, path, err := h.DecryptOAEP(ctx, k, OAEPRequest{Ciphertext: ct, Hash: c.hash, MGFHash: c.mgf, Label: c.label})
			if err != nil || !bytes.Equal(pt, msg) {
				t.Fatalf("decrypt: %v", err)
			}
			if (path == OAEPInToken) != (c.wantInside && h.Capabilities().OAEP(c.hash)) {
				t.Fatalf("path %s", path)
			}
			// Every kind of damage fails the same way.
			for _, bad := range []OAEPRequest{
				{Ciphertext: flip(ct, 0), Hash: c.hash, MGFHash: c.mgf, Label: c.label},
				{Ciphertext: flip(ct, len(ct)-1), Hash: c.hash, MGFHash: c.mgf, Label: c.label},
				{Ciphertext: ct, Hash: c.hash, MGFHash: c.mgf, Label: []byte("another label")},
				{Ciphertext: ct[1:], Hash: c.hash, MGFHash: c.mgf, Label: c.label},
			} {
				_, _, err := h.DecryptOAEP(ctx, k, bad)
				if !errors.Is(err, ErrDecryption) || err.Error() != "hsm: decrypt: integrity check failed: decryption failed" {
					t.Fatalf("fail damaged ciphertext: %v", err)
				}
			}
		})
	}
	t.Run("ok PKCS#1 v1.5", func(t *testing.T) {
		ct, _ := rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
		pt, err := h.DecryptPKCS1v15(ctx, k, ct)
		if err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("decrypt: %v", err)
		}
		// A damaged ciphertext fails (or, once in a great while, decrypts to
		// other bytes whose padding happens to be valid).
		if pt, err := h.DecryptPKCS1v15(ctx, k, flip(ct, 5)); err == nil && bytes.Equal(pt, msg) || err != nil && !errors.Is(err, ErrDecryption) {
			t.Fatalf("fail damaged: %v", err)
		}
		if _, err := h.DecryptPKCS1v15(ctx, k, ct[1:]); !errors.Is(err, ErrDecryption) {
			t.Fatalf("fail short: %v", err)
		}
	})
	t.Run("fail wrong hash", func(t *testing.T) {
		ct, _ := rsa.EncryptOAEPWithOptions(rand.Reader, pub, msg, &rsa.OAEPOptions{Hash: crypto.SHA256})
		if _, _, err := h.DecryptOAEP(ctx, k, OAEPRequest{Ciphertext: ct, Hash: crypto.SHA384}); !errors.Is(err, ErrDecryption) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("fail an EC key", func(t *testing.T) {
		ek, _ := genExportable(t, h, ECP256)
		_, _, err := h.DecryptOAEP(ctx, ek, OAEPRequest{Ciphertext: make([]byte, 256)})
		mustKind(t, err, ErrBadInput)
	})
}

func TestDecryptOAEPTokenOnly(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{TokenOnlyOAEP: true})
	k, der := genExportable(t, h, RSA2048)
	p, _ := x509.ParsePKCS8PrivateKey(der)
	pub := &p.(*rsa.PrivateKey).PublicKey
	msg := []byte("secret")
	ct, _ := rsa.EncryptOAEPWithOptions(rand.Reader, pub, msg, &rsa.OAEPOptions{Hash: crypto.SHA256})
	_, _, err := h.DecryptOAEP(ctx, k, OAEPRequest{Ciphertext: ct, Hash: crypto.SHA256})
	if h.Capabilities().OAEP(crypto.SHA256) {
		t.Skip("this token does OAEP-SHA-256 itself")
	}
	mustKind(t, err, ErrUnsupported)
	ct, _ = rsa.EncryptOAEP(crypto.SHA1.New(), rand.Reader, pub, msg, nil)
	if pt, path, err := h.DecryptOAEP(ctx, k, OAEPRequest{Ciphertext: ct}); err != nil || !bytes.Equal(pt, msg) || path != OAEPInToken {
		t.Fatalf("SHA-1 in the token: %v %s", err, path)
	}
}

func flip(b []byte, i int) []byte {
	out := append([]byte{}, b...)
	out[i] ^= 0x40
	return out
}

func TestStreamsMatchOneShot(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	k, key := genExportable(t, h, AES256)
	blk, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCMWithNonceSize(blk, 8)
	iv, aad := []byte("8-byteIV"), []byte("additional data")
	pt := bytes.Repeat([]byte("streamed plaintext "), 10)
	want := g.Seal(nil, iv, pt, aad)

	st, err := h.OpenStream(ctx, k, StreamRequest{Algorithm: AESGCM, IV: iv, AAD: aad})
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, part := range [][]byte{pt[:32], pt[32:33], pt[33:100]} {
		out, err := st.Update(ctx, part)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out...)
	}
	out, tag, err := st.Final(ctx, pt[100:], nil)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, out...)
	if !bytes.Equal(got, want[:len(pt)]) || !bytes.Equal(tag, want[len(pt):]) {
		t.Fatal("streamed GCM differs from Go")
	}
	if _, err := st.Update(ctx, []byte("more")); err == nil {
		t.Fatal("a finished stream took more data")
	}

	// Decryption: the plaintext comes with the checked tag.
	st, err = h.OpenStream(ctx, k, StreamRequest{Decrypt: true, Algorithm: AESGCM, IV: iv, AAD: aad})
	if err != nil {
		t.Fatal(err)
	}
	first, err := st.Update(ctx, got[:50])
	if err != nil {
		t.Fatal(err)
	}
	rest, _, err := st.Final(ctx, got[50:], tag)
	if err != nil || !bytes.Equal(append(first, rest...), pt) {
		t.Fatalf("streamed GCM decryption: %v", err)
	}
	st, _ = h.OpenStream(ctx, k, StreamRequest{Decrypt: true, Algorithm: AESGCM, IV: iv, AAD: aad})
	if _, err := st.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Final(ctx, nil, flip(tag, 3)); !errors.Is(err, ErrDecryption) {
		t.Fatalf("fail streamed GCM with a wrong tag: %v", err)
	}

	// A token IV for CBC, and an abandoned stream frees its session.
	st, err = h.OpenStream(ctx, k, StreamRequest{Algorithm: AESCBCPad})
	if err != nil || len(st.IV()) != 16 {
		t.Fatalf("CBC stream: %v", err)
	}
	a, _ := st.Update(ctx, pt[:20])
	b, _, err := st.Final(ctx, pt[20:], nil)
	if err != nil {
		t.Fatal(err)
	}
	dec := make([]byte, len(a)+len(b))
	cipher.NewCBCDecrypter(blk, st.IV()).CryptBlocks(dec, append(a, b...))
	if !bytes.Equal(dec[:len(pt)], pt) {
		t.Fatal("streamed CBC differs from Go")
	}
	st, _ = h.OpenStream(ctx, k, StreamRequest{Algorithm: AESCTR, IV: make([]byte, 16)})
	st.Close()
	st.Close()
	if _, err := h.OpenStream(ctx, Key{ID: "other", Blob: k.Blob}, StreamRequest{Algorithm: AESGCM}); KindOf(err) != KindIntegrity {
		t.Fatalf("fail a blob of another id: %v", err)
	}
}

func TestMACAnyWithAESKey(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	k, key := genExportable(t, h, AES128)
	data := []byte("mac me")
	for _, hash := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		got, err := h.MACAny(ctx, k, hash, data)
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(hash.New, key)
		m.Write(data)
		if !hmac.Equal(got, m.Sum(nil)) {
			t.Fatalf("HMAC-%v with an AES key differs from Go", hash)
		}
		if ok, err := h.VerifyMACAny(ctx, k, hash, data, got); err != nil || !ok {
			t.Fatalf("verify: %v %v", ok, err)
		}
		if ok, _ := h.VerifyMACAny(ctx, k, hash, []byte("other"), got); ok {
			t.Fatal("verified for other data")
		}
	}
	hk, hkey := genExportable(t, h, HMACSHA256)
	got, err := h.MACAny(ctx, hk, 0, data)
	m := hmac.New(crypto.SHA256.New, hkey)
	m.Write(data)
	if err != nil || !hmac.Equal(got, m.Sum(nil)) {
		t.Fatalf("HMAC key: %v", err)
	}
	// A key that is not exportable: in the token when it is long enough,
	// refused when it would have to be extended.
	for _, c := range []struct {
		typ KeyType
		ok  bool
	}{{AES256, true}, {AES128, false}} {
		b, err := h.Generate(ctx, GenerateRequest{ID: "sealed/" + string(c.typ), Type: c.typ})
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.MACAny(ctx, Key{ID: "sealed/" + string(c.typ), Blob: b}, crypto.SHA256, data)
		if c.ok && err != nil {
			t.Fatalf("ok non-exportable %s: %v", c.typ, err)
		}
		if !c.ok {
			mustKind(t, err, ErrUnsupported)
		}
	}
	rk, _ := genExportable(t, h, ECP256)
	_, err = h.MACAny(ctx, rk, crypto.SHA256, data)
	mustKind(t, err, ErrBadInput)
}
