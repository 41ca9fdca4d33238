package hsm

import (
	"context"
	"strings"
	"testing"
)

func TestForget(t *testing.T) {
	h, _ := openTest(t, Config{})
	ctx := context.Background()
	keys := map[string][]byte{}
	for _, id := range []string{"xks/m/key/a/1", "xks/m/key/b/1", "kmip:m:u1"} {
		blob, err := h.Generate(ctx, GenerateRequest{ID: id, Type: AES256})
		if err != nil {
			t.Fatal(err)
		}
		keys[id] = blob
		if _, err := h.Encrypt(ctx, Key{ID: id, Blob: blob}, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	before := h.CacheStats()
	if before.Size != 3 {
		t.Fatalf("cache size %d, want 3", before.Size)
	}
	if n := h.Forget(ctx, func(id string) bool { return strings.HasPrefix(id, "xks/m/key/a/") }); n != 1 {
		t.Fatalf("forgot %d, want 1", n)
	}
	if s := h.CacheStats(); s.Size != 2 {
		t.Fatalf("cache size after forget %d, want 2", s.Size)
	}
	// The forgotten key still works: it is unwrapped again (a miss).
	if _, err := h.Encrypt(ctx, Key{ID: "xks/m/key/a/1", Blob: keys["xks/m/key/a/1"]}, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if s := h.CacheStats(); s.Misses != before.Misses+1 || s.Size != 3 {
		t.Fatalf("after use: %+v (before %+v)", s, before)
	}
	if n := h.Forget(ctx, func(string) bool { return false }); n != 0 {
		t.Fatalf("forgot %d with no match", n)
	}
}
