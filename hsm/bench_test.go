package hsm

import (
	"context"
	"fmt"
	"testing"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// The raw sub-benchmarks make the same PKCS#11 calls directly through
// miekg/pkcs11 on one session, so each pair shows the layer's overhead in
// one run: go test -run '^$' -bench . -count 6 ./hsm | benchstat

func benchKey(b *testing.B, h *HSM, id string, t KeyType) Key {
	blob, err := h.Generate(context.Background(), GenerateRequest{ID: id, Type: t})
	if err != nil {
		b.Fatal(err)
	}
	return Key{ID: id, Blob: blob}
}

// rawSession opens a session and unwraps k into it, as a caller of
// miekg/pkcs11 without the layer would hold it.
func rawSession(b *testing.B, h *HSM, k Key) (pkcs11.SessionHandle, pkcs11.ObjectHandle) {
	sh, err := h.ctx.OpenSession(h.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.ctx.CloseSession(sh) })
	s := &session{h: sh, gen: h.gen.Load()}
	bl, err := h.openBlob(s, "bench", k)
	if err != nil {
		b.Fatal(err)
	}
	obj, err := h.unwrap(s, bl, false)
	if err != nil {
		b.Fatal(err)
	}
	return sh, obj
}

// kekSession opens a session outside the pool (closed when b ends) and
// returns it with the current KEK pair.
func kekSession(b *testing.B, h *HSM) (*session, kekPair) {
	sh, err := h.ctx.OpenSession(h.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.ctx.CloseSession(sh) })
	s := &session{h: sh, gen: h.gen.Load()}
	_, kek, err := h.currentKEK(s)
	if err != nil {
		b.Fatal(err)
	}
	return s, kek
}

func BenchmarkGCMEncrypt64(b *testing.B) {
	ctx := context.Background()
	h, _ := openTest(b, Config{})
	k := benchKey(b, h, "bench", AES256)
	pt := make([]byte, 64)
	iv := make([]byte, 12)
	b.Run("layer", func(b *testing.B) {
		req := EncryptRequest{Algorithm: AESGCM, Plaintext: pt, IV: iv}
		for b.Loop() {
			if _, err := h.Encrypt(ctx, k, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		sh, obj := rawSession(b, h, k)
		for b.Loop() {
			p := pkcs11.NewGCMParams(iv, nil, 128)
			if err := h.ctx.EncryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, p)}, obj); err != nil {
				b.Fatal(err)
			}
			if _, err := h.ctx.Encrypt(sh, pt); err != nil {
				b.Fatal(err)
			}
			p.Free()
		}
	})
	b.Run("layer-token-iv", func(b *testing.B) {
		req := EncryptRequest{Algorithm: AESGCM, Plaintext: pt}
		for b.Loop() {
			if _, err := h.Encrypt(ctx, k, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGenerateWrap(b *testing.B) {
	ctx := context.Background()
	h, _ := openTest(b, Config{})
	for _, t := range []KeyType{AES256, ECP256} {
		b.Run("layer-"+string(t), func(b *testing.B) {
			for b.Loop() {
				if _, err := h.Generate(ctx, GenerateRequest{ID: "g", Type: t}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("raw-"+string(t), func(b *testing.B) {
			s, kek := kekSession(b, h)
			sh := s.h
			wrap := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}
			for b.Loop() {
				obj, _, destroy, err := h.generateObject(s, keySpecs[t])
				if err != nil {
					b.Fatal(err)
				}
				if _, err := h.ctx.WrapKey(sh, wrap, kek.wrap, obj); err != nil {
					b.Fatal(err)
				}
				destroy()
			}
		})
	}
}

func BenchmarkKeyUse(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"cached", "unwrap-each-use"} {
		b.Run(mode, func(b *testing.B) {
			cacheSize := 16
			if mode != "cached" {
				cacheSize = 1 // two keys used in turn: every use misses
			}
			h, _ := openTest(b, Config{CacheSize: cacheSize})
			keys := []Key{benchKey(b, h, "a", AES256), benchKey(b, h, "b", AES256)}
			req := EncryptRequest{Algorithm: AESGCM, Plaintext: make([]byte, 64), IV: make([]byte, 12)}
			i := 0
			for b.Loop() {
				if _, err := h.Encrypt(ctx, keys[i%2], req); err != nil {
					b.Fatal(err)
				}
				i++
			}
			st := h.CacheStats()
			b.ReportMetric(float64(st.Hits)/float64(st.Hits+st.Misses), "hit-ratio")
		})
	}
}

func BenchmarkParallelGCM(b *testing.B) {
	ctx := context.Background()
	h, _ := openTest(b, Config{})
	var keys []Key
	for i := range 8 {
		keys = append(keys, benchKey(b, h, fmt.Sprint(i), AES256))
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		req := EncryptRequest{Algorithm: AESGCM, Plaintext: make([]byte, 64), IV: make([]byte, 12)}
		for pb.Next() {
			if _, err := h.Encrypt(ctx, keys[i%len(keys)], req); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkExport reads an AES key's material (a KMIP Get) with one
// C_GetAttributeValue call and with miekg/pkcs11's two, in one run.
func BenchmarkExport(b *testing.B) {
	ctx := context.Background()
	h, _ := openTest(b, Config{})
	blob, err := h.Generate(ctx, GenerateRequest{ID: "x", Type: AES256, Exportable: true})
	if err != nil {
		b.Fatal(err)
	}
	k := Key{ID: "x", Blob: blob}
	oneCallOrTwo(b, &h.value.fn, "C_GetAttributeValue", func() error {
		_, err := h.Export(ctx, k)
		return err
	})
}

// oneCallOrTwo runs op as two sub-benchmarks: with the one-call function at
// *fn, and without it (miekg/pkcs11's two calls).
func oneCallOrTwo(b *testing.B, fn *unsafe.Pointer, name string, op func() error) {
	one := *fn
	if one == nil {
		b.Fatalf("the module's %s was not found: there is no one-call path to measure", name)
	}
	defer func() { *fn = one }()
	for _, mode := range []string{"one-call", "two-calls"} {
		b.Run(mode, func(b *testing.B) {
			*fn = one
			if mode == "two-calls" {
				*fn = nil
			}
			for b.Loop() {
				if err := op(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWrap wraps a new AES key under the KEK (what every Generate and
// Import does) with one C_WrapKey call and with miekg/pkcs11's two, in one
// run.
func BenchmarkWrap(b *testing.B) {
	h, _ := openTest(b, Config{})
	blob, err := h.Generate(context.Background(), GenerateRequest{ID: "x", Type: AES256})
	if err != nil {
		b.Fatal(err)
	}
	sh, obj := rawSession(b, h, Key{ID: "x", Blob: blob})
	s := &session{h: sh, gen: h.gen.Load()}
	_, kek, err := h.currentKEK(s)
	if err != nil {
		b.Fatal(err)
	}
	oneCallOrTwo(b, &h.wrap.fn, "C_WrapKey", func() error {
		_, err := h.wrapUnderKEK(s, kek.wrap, obj)
		return err
	})
}

// BenchmarkKEKUse wraps a new AES key and computes a blob's HMAC under the
// token objects of the current KEK pair and under their session copies (what
// operations use), side by side in one run.
func BenchmarkKEKUse(b *testing.B) {
	h, _ := openTest(b, Config{})
	s, kek := kekSession(b, h)
	sh := s.h
	if kek.wrap == kek.tokWrap || kek.mac == kek.tokMac {
		b.Fatal("the KEK pair is used through its token objects, not session copies")
	}
	obj, _, destroy, err := h.generateObject(s, keySpecs[AES256])
	if err != nil {
		b.Fatal(err)
	}
	defer destroy()
	input := macInput("bench", make([]byte, 64))
	hmac := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}
	for _, c := range []struct {
		name      string
		wrap, mac pkcs11.ObjectHandle
	}{{"token", kek.tokWrap, kek.tokMac}, {"session-copy", kek.wrap, kek.mac}} {
		b.Run("wrap-"+c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := h.wrapUnderKEK(s, c.wrap, obj); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("hmac-"+c.name, func(b *testing.B) {
			for b.Loop() {
				if err := h.ctx.SignInit(sh, hmac, c.mac); err != nil {
					b.Fatal(err)
				}
				if _, err := h.ctx.Sign(sh, input); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
