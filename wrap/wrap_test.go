package wrap

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
)

// opensslOpen opens a blob the independent way: openssl pkeyutl -decrypt
// with the scheme's OAEP digests, then for hybrid schemes openssl enc -d
// -id-aes256-wrap-pad -iv A65959A6 with the recovered ephemeral key.
func opensslOpen(t *testing.T, priv *rsa.PrivateKey, sp Spec, blob []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyFile := filepath.Join(dir, "kek.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	md := map[crypto.Hash]string{crypto.SHA1: "sha1", crypto.SHA256: "sha256"}[sp.Hash]
	head := blob
	if sp.Hybrid {
		head = blob[:priv.Size()]
	}
	os.WriteFile(filepath.Join(dir, "head"), head, 0o600)
	out := openssl(t, "pkeyutl", "-decrypt", "-inkey", keyFile, "-in", filepath.Join(dir, "head"),
		"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:"+md, "-pkeyopt", "rsa_mgf1_md:"+md)
	if !sp.Hybrid {
		return out
	}
	os.WriteFile(filepath.Join(dir, "tail"), blob[priv.Size():], 0o600)
	return openssl(t, "enc", "-d", "-id-aes256-wrap-pad", "-iv", "A65959A6", "-K", hex.EncodeToString(out), "-in", filepath.Join(dir, "tail"))
}

func openssl(t *testing.T, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("openssl", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl %s: %v: %s", args[0], err, stderr.String())
	}
	return stdout.Bytes()
}

type testKey struct {
	typ hsm.KeyType
	key hsm.Key
	pub []byte // PKIX, for key pairs
}

// proveSame checks that material recovered by a third party is the HSM's
// key: by the HSM's check value for AES, by the public key for key pairs.
func proveSame(t *testing.T, h *hsm.HSM, k testKey, got []byte) {
	t.Helper()
	if k.typ == hsm.AES256 {
		kcv, err := h.KeyCheckValue(context.Background(), k.key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := aes.NewCipher(got)
		if err != nil {
			t.Fatalf("recovered %d bytes: %v", len(got), err)
		}
		mine := make([]byte, 16)
		c.Encrypt(mine, mine)
		if !bytes.Equal(mine, kcv) {
			t.Fatal("check value of the recovered key differs from the HSM's")
		}
		return
	}
	priv, err := x509.ParsePKCS8PrivateKey(got)
	if err != nil {
		t.Fatalf("recovered material is not PKCS#8: %v", err)
	}
	var der []byte
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		der, _ = x509.MarshalPKIXPublicKey(&p.PublicKey)
	case *ecdsa.PrivateKey:
		der, _ = x509.MarshalPKIXPublicKey(&p.PublicKey)
	}
	if !bytes.Equal(der, k.pub) {
		t.Fatal("public key of the recovered private key differs from the appliance's")
	}
}

func TestEverySchemeOpenedByOpenSSL(t *testing.T) {
	ctx := context.Background()
	h := hsmtest.Open(t)
	kek := map[int]*rsa.PrivateKey{}
	for _, bits := range []int{2048, 3072, 4096} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		kek[bits] = k
	}
	var keys []testKey
	for _, typ := range []hsm.KeyType{hsm.AES256, hsm.RSA2048, hsm.ECP384} {
		k := testKey{typ: typ, key: hsm.Key{ID: "wrap-" + string(typ)}}
		var err error
		if k.key.Blob, err = h.Generate(ctx, hsm.GenerateRequest{ID: k.key.ID, Type: typ}); err != nil {
			t.Fatal(err)
		}
		if typ.Asymmetric() {
			if k.pub, err = h.PublicKey(ctx, k.key); err != nil {
				t.Fatal(err)
			}
		}
		keys = append(keys, k)
	}
	for _, s := range Schemes("") {
		sp := specs[s]
		bits := sp.Bits
		if bits == 0 {
			bits = 2048
			if sp.Cloud == Azure {
				bits = 4096
			}
		}
		for _, k := range keys {
			name := string(s) + " " + string(k.typ)
			req := Request{Scheme: s, Key: k.key, KeyType: k.typ, WrappingKey: &kek[bits].PublicKey, AllowSoftwareOAEP: true, KID: "https://v.vault.azure.net/keys/kek/1"}
			if !sp.Hybrid && k.typ.Asymmetric() {
				t.Run("fail cannot carry "+name, func(t *testing.T) {
					_, err := Wrap(ctx, h, req)
					if fault.KindOf(err) != fault.BadInput || !strings.Contains(err.Error(), string(sp.Fallback)) {
						t.Fatalf("got %v", err)
					}
				})
				continue
			}
			if !sp.Hybrid && !h.Capabilities().OAEP(sp.Hash) {
				t.Run("fail token lacks OAEP "+sp.Hash.String()+" "+name, func(t *testing.T) {
					_, err := Wrap(ctx, h, req)
					if fault.KindOf(err) != fault.Unsupported || !strings.Contains(err.Error(), "use "+string(sp.Fallback)) {
						t.Fatalf("got %v", err)
					}
				})
				continue
			}
			t.Run("ok "+name, func(t *testing.T) {
				res, err := Wrap(ctx, h, req)
				if err != nil {
					t.Fatal(err)
				}
				blob := res.Blob
				if sp.BYOK {
					b, ct, err := ParseBYOK(blob)
					if err != nil {
						t.Fatal(err)
					}
					if b.Header.KID != req.KID {
						t.Fatalf("kid %q", b.Header.KID)
					}
					blob = ct
				}
				wantPath := hsm.PathTokenOAEP
				if sp.Hybrid {
					wantPath = hsm.PathTokenComposed
					if !h.Capabilities().OAEP(sp.Hash) {
						wantPath = hsm.PathSoftwareOAEP
					}
				}
				if res.Path != wantPath {
					t.Fatalf("path %s, want %s", res.Path, wantPath)
				}
				proveSame(t, h, k, opensslOpen(t, kek[bits], sp, blob))
			})
		}
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	h := hsmtest.Open(t)
	key := hsm.Key{ID: "r"}
	var err error
	if key.Blob, err = h.Generate(ctx, hsm.GenerateRequest{ID: key.ID, Type: hsm.AES256}); err != nil {
		t.Fatal(err)
	}
	k2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	k1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	k2560, _ := rsa.GenerateKey(rand.Reader, 2560)
	cases := []struct {
		name string
		req  Request
		kind fault.Kind
		msg  string
	}{
		{"fail unknown scheme", Request{Scheme: "ROT13", KeyType: hsm.AES256, WrappingKey: &k2048.PublicKey}, fault.BadInput, "unknown wrapping scheme"},
		{"fail too small wrapping key", Request{Scheme: AWSRSAAESKeyWrapSHA1, KeyType: hsm.AES256, WrappingKey: &k1024.PublicKey}, fault.BadInput, "1024 bits"},
		{"fail odd size for AWS", Request{Scheme: AWSRSAAESKeyWrapSHA1, KeyType: hsm.AES256, WrappingKey: &k2560.PublicKey}, fault.BadInput, "2560 bits"},
		{"fail GCP scheme size", Request{Scheme: GCPRSAOAEP3072SHA1AES256, KeyType: hsm.AES256, WrappingKey: &k2048.PublicKey}, fault.BadInput, "3072-bit"},
		{"fail no wrapping key", Request{Scheme: AWSRSAESOAEPSHA1, KeyType: hsm.AES256}, fault.BadInput, "no wrapping key"},
		{"fail byok without kid", Request{Scheme: AzureRSAAESKeyWrap, KeyType: hsm.AES256, WrappingKey: &k2048.PublicKey}, fault.BadInput, "key id"},
		{"fail unknown key type", Request{Scheme: AzureRSAAESKeyWrap, KeyType: "des", WrappingKey: &k2048.PublicKey}, fault.BadInput, "unknown key type"},
		{"fail direct scheme with EC key", Request{Scheme: GCPRSAOAEP3072SHA256, KeyType: hsm.ECP256}, fault.BadInput, "RSA_OAEP_3072_SHA256_AES_256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.Key = key
			_, err := Wrap(ctx, h, c.req)
			if fault.KindOf(err) != c.kind || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %s containing %q", err, c.kind, c.msg)
			}
		})
	}
	if !h.Capabilities().OAEP(crypto.SHA256) {
		t.Run("fail software OAEP forbidden", func(t *testing.T) {
			_, err := Wrap(ctx, h, Request{Scheme: AWSRSAAESKeyWrapSHA256, Key: key, KeyType: hsm.AES256, WrappingKey: &k2048.PublicKey})
			if fault.KindOf(err) != fault.Unsupported || !errors.Is(err, hsm.ErrUnsupported) || !strings.Contains(err.Error(), "forbid_software_oaep") {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	spki, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pkcs1 := x509.MarshalPKCS1PublicKey(&k.PublicKey)
	ec, _ := ecdsa.GenerateKey(ellipticP256(), rand.Reader)
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallDER, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	ok := map[string][]byte{
		"ok spki der":  spki,
		"ok spki pem":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}),
		"ok pkcs1 der": pkcs1,
		"ok pkcs1 pem": pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1}),
		"ok pem + \\n": append(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}), '\n'),
	}
	for name, in := range ok {
		t.Run(name, func(t *testing.T) {
			pub, err := ParsePublicKey(in)
			if err != nil || !pub.Equal(&k.PublicKey) {
				t.Fatalf("%v", err)
			}
		})
	}
	bad := map[string][]byte{
		"fail empty":           nil,
		"fail EC key":          ecDER,
		"fail 1024 bits":       smallDER,
		"fail trailing data":   append(append([]byte{}, spki...), 0),
		"fail certificate pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: spki}),
		"fail garbage":         []byte("not a key"),
		"fail pem trailer":     append(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}), "junk"...),
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := ParsePublicKey(in); fault.KindOf(err) != fault.BadInput {
				t.Fatalf("got %v", err)
			}
		})
	}
	t.Run("ok jwk", func(t *testing.T) {
		pub, err := ParseJWK(k.N.Bytes(), []byte{1, 0, 1})
		if err != nil || !pub.Equal(&k.PublicKey) {
			t.Fatal(err)
		}
	})
	t.Run("fail jwk even exponent", func(t *testing.T) {
		if _, err := ParseJWK(k.N.Bytes(), []byte{2}); err == nil {
			t.Fatal("accepted")
		}
	})
}

func TestBYOKRoundTrip(t *testing.T) {
	b, err := MarshalBYOK("https://v.vault.azure.net/keys/kek/abc", []byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	p, ct, err := ParseBYOK(b)
	if err != nil || !bytes.Equal(ct, []byte{1, 2, 3}) || p.Header.Alg != "dir" || p.Header.Enc != "CKM_RSA_AES_KEY_WRAP" || p.SchemaVersion != "1.0.0" {
		t.Fatalf("%v %+v", err, p)
	}
	for name, in := range map[string]string{
		"fail wrong enc":     `{"schema_version":"1.0.0","header":{"kid":"k","alg":"dir","enc":"A256GCM"},"ciphertext":"AQID","generator":"x"}`,
		"fail unknown field": `{"schema_version":"1.0.0","header":{"kid":"k","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},"ciphertext":"AQID","generator":"x","x":1}`,
		"fail padded b64":    `{"schema_version":"1.0.0","header":{"kid":"k","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},"ciphertext":"AQI=","generator":"x"}`,
		"fail two objects":   `{"schema_version":"1.0.0","header":{"kid":"k","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},"ciphertext":"AQID","generator":"x"}{}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := ParseBYOK([]byte(in)); fault.KindOf(err) != fault.BadInput {
				t.Fatalf("got %v", err)
			}
		})
	}
}
