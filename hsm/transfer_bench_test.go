package hsm

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

// BenchmarkTransfer: one BYOK blob of an AES-256 key under a 4096-bit
// wrapping key, per path (the key's unwrapped object is cached, as in use).
func BenchmarkTransfer(b *testing.B) {
	ctx := context.Background()
	h, _ := openTest(b, Config{})
	key := Key{ID: "bench-transfer"}
	var err error
	if key.Blob, err = h.Generate(ctx, GenerateRequest{ID: key.ID, Type: AES256}); err != nil {
		b.Fatal(err)
	}
	cloud, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fn   func() (*Transfer, error)
	}{
		{"oaep-sha1", func() (*Transfer, error) {
			return h.WrapOAEP(ctx, TransferRequest{Key: key, WrappingKey: &cloud.PublicKey, Hash: crypto.SHA1})
		}},
		{"rsa-aes-sha1-composed", func() (*Transfer, error) {
			return h.WrapRSAAES(ctx, TransferRequest{Key: key, WrappingKey: &cloud.PublicKey, Hash: crypto.SHA1})
		}},
		{"rsa-aes-sha256-software-oaep", func() (*Transfer, error) {
			return h.WrapRSAAES(ctx, TransferRequest{Key: key, WrappingKey: &cloud.PublicKey, Hash: crypto.SHA256, AllowSoftwareOAEP: true})
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
