package hsm

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/softhsm"
)

// openTest opens a fresh SoftHSM2 token of the test's own.
func openTest(t testing.TB, cfg Config) (*HSM, *softhsm.Token) {
	t.Helper()
	tok := softhsm.NewTestToken(t)
	cfg.Module, cfg.TokenLabel, cfg.PIN = tok.Module, tok.Label, tok.PIN
	h, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h, tok
}

func mustKind(t *testing.T, err error, want *Error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", want.Kind)
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v (kind %s), want kind %s", err, KindOf(err), want.Kind)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	h, tok := openTest(t, Config{})
	info := h.Info()
	if info.TokenLabel != tok.Label || info.Model == "" || info.Manufacturer == "" {
		t.Fatalf("info = %+v", info)
	}
	caps := h.Capabilities()
	if !caps.HasMechanism(0x1087) /* CKM_AES_GCM */ || len(caps.Mechanisms) == 0 {
		t.Fatalf("capabilities lack CKM_AES_GCM: %v", caps.Mechanisms)
	}
	if len(caps.OAEPHashes) == 0 || caps.OAEPHashes[0] != "SHA-1" {
		t.Fatalf("OAEP hashes = %v, want SHA-1 first", caps.OAEPHashes)
	}
	if h.KEKVersion() != 1 {
		t.Fatalf("KEK version = %d", h.KEKVersion())
	}
	if _, err := h.Random(ctx, 32); err != nil {
		t.Fatal(err)
	}
}

func TestObserveAndPoolStats(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]int{}
	failed := 0
	h, _ := openTest(t, Config{Sessions: 3, Observe: func(op string, d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		seen[op]++
		if err != nil {
			failed++
		}
		if d <= 0 {
			t.Errorf("op %s observed with duration %v", op, d)
		}
	}})
	if size, inUse := h.PoolStats(); size != 3 || inUse != 0 {
		t.Fatalf("pool %d/%d before use", inUse, size)
	}
	b, err := h.Generate(ctx, GenerateRequest{ID: "o", Type: AES256})
	if err != nil {
		t.Fatal(err)
	}
	h.Encrypt(ctx, Key{ID: "o", Blob: b}, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("x")})
	h.Encrypt(ctx, Key{ID: "other", Blob: b}, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("x")})
	s, _ := h.get(ctx)
	if _, inUse := h.PoolStats(); inUse != 1 {
		t.Fatalf("in use %d while one session is out", inUse)
	}
	h.put(s)
	mu.Lock()
	defer mu.Unlock()
	if seen["generate"] != 1 || seen["encrypt"] != 2 || failed != 1 {
		t.Fatalf("observed %v, %d failed", seen, failed)
	}
}

// A panic inside an operation does not take its session out of the pool
// for good: with one session, later calls still get it.
func TestPanicDoesNotLeakSession(t *testing.T) {
	h, _ := openTest(t, Config{Sessions: 1})
	for range 3 {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the panic did not go on up")
				}
			}()
			h.do(context.Background(), "boom", func(s *session) error { panic("bug") })
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.Random(ctx, 16); err != nil {
		t.Fatalf("after panics: %v", err)
	}
	if _, inUse := h.PoolStats(); inUse != 0 {
		t.Fatalf("%d sessions in use after the panics", inUse)
	}
}
