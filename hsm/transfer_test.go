package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// opensslUnwrap opens a transfer blob the independent way, with the openssl
// CLI: pkeyutl -decrypt (OAEP with hash and MGF1 hash) for the head, then, for
// RSA-AES blobs, enc -d -id-aes256-wrap-pad for the rest.
func opensslUnwrap(t *testing.T, priv *rsa.PrivateKey, hash crypto.Hash, blob []byte, hybrid bool) []byte {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "priv.pem")
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	md := map[crypto.Hash]string{crypto.SHA1: "sha1", crypto.SHA256: "sha256"}[hash]
	n := priv.Size()
	head := blob
	if hybrid {
		if len(blob) <= n {
			t.Fatalf("hybrid blob of %d bytes under a %d-byte key", len(blob), n)
		}
		head = blob[:n]
	}
	headFile := filepath.Join(dir, "head.bin")
	os.WriteFile(headFile, head, 0o600)
	out := runOpenSSL(t, "pkeyutl", "-decrypt", "-inkey", keyFile, "-in", headFile,
		"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:"+md, "-pkeyopt", "rsa_mgf1_md:"+md)
	if !hybrid {
		return out
	}
	if len(out) != 32 {
		t.Fatalf("ephemeral key of %d bytes", len(out))
	}
	tailFile := filepath.Join(dir, "tail.bin")
	os.WriteFile(tailFile, blob[n:], 0o600)
	return runOpenSSL(t, "enc", "-d", "-id-aes256-wrap-pad", "-iv", "A65959A6", "-K", hex.EncodeToString(out), "-in", tailFile)
}

func runOpenSSL(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl %s: %v: %s", strings.Join(args[:2], " "), err, stderr.String())
	}
	return stdout.Bytes()
}

func TestTransferOpenedByOpenSSL(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	cloud, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []KeyType{AES256, HMACSHA256, RSA2048, ECP256, ECP521} {
		key := Key{ID: "transfer-" + string(typ)}
		key.Blob, err = h.Generate(ctx, GenerateRequest{ID: key.ID, Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		info, err := h.Inspect(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		// check proves that the material openssl recovered is this key.
		check := func(t *testing.T, got []byte) {
			t.Helper()
			switch {
			case typ == AES256:
				kcv, err := h.KeyCheckValue(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				c, err := aes.NewCipher(got)
				if err != nil {
					t.Fatal(err)
				}
				mine := make([]byte, 16)
				c.Encrypt(mine, make([]byte, 16))
				if !bytes.Equal(mine, kcv) {
					t.Fatal("the recovered AES key's check value differs from the HSM's")
				}
			case typ.Symmetric():
				if len(got) != keySpecs[typ].size {
					t.Fatalf("recovered %d bytes for %s", len(got), typ)
				}
				// An HMAC over the same data, in the token and in Go.
				mac, err := h.MAC(ctx, key, 0, []byte("kcv"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(mac, hmacSHA256(got, []byte("kcv"))) {
					t.Fatal("the recovered HMAC key differs from the HSM's")
				}
			default:
				priv, err := x509.ParsePKCS8PrivateKey(got)
				if err != nil {
					t.Fatalf("recovered material is not PKCS#8: %v", err)
				}
				var pub any
				switch p := priv.(type) {
				case *rsa.PrivateKey:
					pub = &p.PublicKey
				case *ecdsa.PrivateKey:
					pub = &p.PublicKey
				}
				der, _ := x509.MarshalPKIXPublicKey(pub)
				if !bytes.Equal(der, info.PublicKey) {
					t.Fatal("the recovered private key's public key differs from the appliance's")
				}
			}
		}
		for _, hash := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
			t.Run("ok rsa-aes "+string(typ)+" "+hash.String(), func(t *testing.T) {
				tr, err := h.WrapRSAAES(ctx, TransferRequest{Key: key, WrappingKey: &cloud.PublicKey, Hash: hash, AllowSoftwareOAEP: true})
				if err != nil {
					t.Fatal(err)
				}
				want := PathTokenComposed
				if !h.caps.OAEP(hash) {
					want = PathSoftwareOAEP
				}
				if tr.Path != want {
					t.Fatalf("path %s, want %s", tr.Path, want)
				}
				check(t, opensslUnwrap(t, cloud, hash, tr.Blob, true))
			})
		}
		if typ.Symmetric() {
			t.Run("ok oaep "+string(typ)+" SHA-1", func(t *testing.T) {
				tr, err := h.WrapOAEP(ctx, TransferRequest{Key: key, WrappingKey: &cloud.PublicKey, Hash: crypto.SHA1})
				if err != nil {
					t.Fatal(err)
				}
				if tr.Path != PathTokenOAEP || len(tr.Blob) != cloud.Size() {
					t.Fatalf("path %s, %d bytes", tr.Path, len(tr.Blob))
				}
				check(t, opensslUnwrap(t, cloud, crypto.SHA1, tr.Blob, false))
			})
		} else {
			t.Run("fail oaep of a private key "+string(typ), func(t *testing.T) {
				_, err := h.WrapOAEP(ctx, TransferRequest{Key: key, WrappingKey: &cloud.PublicKey, Hash: crypto.SHA1})
				mustKind(t, err, ErrBadInput)
			})
		}
	}
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

func TestTransferRefusals(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	key := Key{ID: "refusals"}
	var err error
	if key.Blob, err = h.Generate(ctx, GenerateRequest{ID: key.ID, Type: AES256}); err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	cloud, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("fail too small a wrapping key", func(t *testing.T) {
		_, err := h.WrapRSAAES(ctx, TransferRequest{Key: key, WrappingKey: &small.PublicKey, Hash: crypto.SHA1})
		mustKind(t, err, ErrBadInput)
		if !strings.Contains(err.Error(), "1024 bits") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("fail no wrapping key", func(t *testing.T) {
		_, err := h.WrapOAEP(ctx, TransferRequest{Key: key, Hash: crypto.SHA1})
		mustKind(t, err, ErrBadInput)
	})
	t.Run("fail even exponent", func(t *testing.T) {
		bad := cloud.PublicKey
		bad.E = 4
		_, err := h.WrapOAEP(ctx, TransferRequest{Key: key, WrappingKey: &bad, Hash: crypto.SHA1})
		mustKind(t, err, ErrBadInput)
	})
	if !h.caps.OAEP(crypto.SHA256) {
		t.Run("fail direct oaep-sha256 on a token without it", func(t *testing.T) {
			_, err := h.WrapOAEP(ctx, TransferRequest{Key: key, WrappingKey: &cloud.PublicKey, Hash: crypto.SHA256})
			mustKind(t, err, ErrUnsupported)
			if !strings.Contains(err.Error(), "RSA-AES") {
				t.Fatalf("the error does not name a scheme that works: %v", err)
			}
		})
		t.Run("fail software oaep forbidden", func(t *testing.T) {
			_, err := h.WrapRSAAES(ctx, TransferRequest{Key: key, WrappingKey: &cloud.PublicKey, Hash: crypto.SHA256})
			mustKind(t, err, ErrUnsupported)
		})
	}
	t.Run("fail check value of a non-AES key", func(t *testing.T) {
		ec := Key{ID: "ec"}
		if ec.Blob, err = h.Generate(ctx, GenerateRequest{ID: ec.ID, Type: ECP256}); err != nil {
			t.Fatal(err)
		}
		_, err := h.KeyCheckValue(ctx, ec)
		mustKind(t, err, ErrBadInput)
	})
	t.Run("fail blob bound to another id", func(t *testing.T) {
		_, err := h.WrapRSAAES(ctx, TransferRequest{Key: Key{ID: "other", Blob: key.Blob}, WrappingKey: &cloud.PublicKey, Hash: crypto.SHA1})
		mustKind(t, err, ErrIntegrity)
	})
	t.Run("ok no session objects left behind", func(t *testing.T) {
		// One use caches the unwrapped key; only that object may stay.
		if _, err := h.KeyCheckValue(ctx, key); err != nil {
			t.Fatal(err)
		}
		before := sessionObjects(t, h)
		for range 3 {
			if _, err := h.WrapRSAAES(ctx, TransferRequest{Key: key, WrappingKey: &cloud.PublicKey, Hash: crypto.SHA256, AllowSoftwareOAEP: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.WrapOAEP(ctx, TransferRequest{Key: key, WrappingKey: &cloud.PublicKey, Hash: crypto.SHA1}); err != nil {
				t.Fatal(err)
			}
		}
		if after := sessionObjects(t, h); after != before {
			t.Fatalf("%d session objects before, %d after", before, after)
		}
	})
}

// TestTransferNativeMechanismIsChosen: where the token lists
// CKM_RSA_AES_KEY_WRAP (and does the hash), WrapRSAAES asks the token for it
// instead of composing. SoftHSM2 2.6.1 has no such mechanism, so the
// capability is pretended here and the token's refusal shows that the native
// call (with its CK_RSA_AES_KEY_WRAP_PARAMS) was made; no token at hand can
// show the native blob itself.
func TestTransferNativeMechanismIsChosen(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	if h.caps.RSAAESKeyWrap {
		t.Skip("this token has CKM_RSA_AES_KEY_WRAP; TestTransferOpenedByOpenSSL covers it")
	}
	key := Key{ID: "native"}
	var err error
	if key.Blob, err = h.Generate(ctx, GenerateRequest{ID: key.ID, Type: AES256}); err != nil {
		t.Fatal(err)
	}
	cloud, _ := rsa.GenerateKey(rand.Reader, 2048)
	h.caps.RSAAESKeyWrap = true
	_, err = h.WrapRSAAES(ctx, TransferRequest{Key: key, WrappingKey: &cloud.PublicKey, Hash: crypto.SHA1})
	h.caps.RSAAESKeyWrap = false
	if c, ok := ckr(err); !ok || c != 0x70 /* CKR_MECHANISM_INVALID */ {
		t.Fatalf("got %v, want the token's CKR_MECHANISM_INVALID for CKM_RSA_AES_KEY_WRAP", err)
	}
	tr, err := h.WrapRSAAES(ctx, TransferRequest{Key: key, WrappingKey: &cloud.PublicKey, Hash: crypto.SHA1})
	if err != nil || tr.Path != PathTokenComposed {
		t.Fatalf("composed: %v %v", tr, err)
	}
}
