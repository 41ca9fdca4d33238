package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"testing"
)

func TestGenerateDigest(t *testing.T) {
	h, _ := openTest(t, Config{})
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		typ  KeyType
		hash crypto.Hash
		sum  func([]byte) []byte
	}{
		{"ok AES-256 SHA-256", AES256, crypto.SHA256, func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
		{"ok AES-128 SHA-512", AES128, crypto.SHA512, func(b []byte) []byte { s := sha512.Sum512(b); return s[:] }},
		{"ok HMAC key SHA-256", HMACSHA256, crypto.SHA256, func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			blob, sum, err := h.GenerateDigest(ctx, GenerateRequest{ID: "d-" + tt.name, Type: tt.typ, Exportable: true}, tt.hash)
			if err != nil {
				t.Fatal(err)
			}
			m, err := h.Export(ctx, Key{ID: "d-" + tt.name, Blob: blob})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sum, tt.sum(m)) {
				t.Fatalf("digest %x is not the key's %x", sum, tt.sum(m))
			}
			// Exporting again reads the cached object: same material.
			again, err := h.Export(ctx, Key{ID: "d-" + tt.name, Blob: blob})
			if err != nil || !bytes.Equal(again, m) {
				t.Fatalf("second export: %v", err)
			}
		})
	}
	if _, _, err := h.GenerateDigest(ctx, GenerateRequest{ID: "d-rsa", Type: RSA2048}, crypto.SHA256); !errors.Is(err, ErrBadInput) {
		t.Fatalf("a key pair: %v", err)
	}
	if _, _, err := h.GenerateDigest(ctx, GenerateRequest{ID: "d-md5", Type: AES256}, crypto.MD5); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("md5: %v", err)
	}
	// A key that is not exportable is still refused, from the cache too.
	blob, _, err := h.GenerateDigest(ctx, GenerateRequest{ID: "d-sealed", Type: AES256}, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := h.Export(ctx, Key{ID: "d-sealed", Blob: blob}); !errors.Is(err, ErrPermission) {
			t.Fatalf("export of a non-exportable key: %v", err)
		}
	}
}
