package hsm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/keyhold/keyhold/softhsm"
	"github.com/miekg/pkcs11"
)

func TestGenerateEveryType(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	for _, typ := range KeyTypes {
		t.Run("ok "+string(typ), func(t *testing.T) {
			id := "gen/" + string(typ)
			b, err := h.Generate(ctx, GenerateRequest{ID: id, Type: typ})
			if err != nil {
				t.Fatal(err)
			}
			info, err := h.Inspect(ctx, Key{ID: id, Blob: b})
			if err != nil {
				t.Fatal(err)
			}
			if info.Type != typ || info.Exportable || info.KEKVersion != 1 {
				t.Fatalf("info = %+v", info)
			}
			if typ.Asymmetric() != (len(info.PublicKey) > 0) {
				t.Fatalf("%s: public key present = %v", typ, len(info.PublicKey) > 0)
			}
		})
	}
}

func TestBlobBinding(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	b, err := h.Generate(ctx, GenerateRequest{ID: "key-1/v1", Type: AES256})
	if err != nil {
		t.Fatal(err)
	}
	enc := func(k Key) error {
		_, err := h.Encrypt(ctx, k, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("x")})
		return err
	}
	if err := enc(Key{ID: "key-1/v1", Blob: b}); err != nil {
		t.Fatal(err)
	}
	t.Run("fail blob moved to another id", func(t *testing.T) {
		mustKind(t, enc(Key{ID: "key-2/v1", Blob: b}), ErrIntegrity)
		mustKind(t, enc(Key{ID: "key-1/v2", Blob: b}), ErrIntegrity)
	})
	t.Run("fail any byte altered", func(t *testing.T) {
		for i := 0; i < len(b); i++ {
			c := bytes.Clone(b)
			c[i] ^= 0x01
			if err := enc(Key{ID: "key-1/v1", Blob: c}); err == nil {
				t.Fatalf("blob with byte %d altered was accepted", i)
			}
		}
	})
	t.Run("fail export flag flipped", func(t *testing.T) {
		p, _, err := parseBlob(b)
		if err != nil {
			t.Fatal(err)
		}
		p.exportable = true
		_, err = h.Export(ctx, Key{ID: "key-1/v1", Blob: p.marshal()})
		mustKind(t, err, ErrIntegrity)
	})
	t.Run("fail truncated", func(t *testing.T) {
		mustKind(t, enc(Key{ID: "key-1/v1", Blob: b[:len(b)-1]}), ErrIntegrity)
	})
	t.Run("fail unknown kek version", func(t *testing.T) {
		c := bytes.Clone(b)
		binary.BigEndian.PutUint32(c[4:], 99)
		mustKind(t, enc(Key{ID: "key-1/v1", Blob: c}), ErrNotFound)
	})
}

func TestImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	aesKey := make([]byte, 32)
	rand.Read(aesKey)
	cases := []struct {
		name string
		req  ImportRequest
		typ  KeyType
	}{
		{"ok aes", ImportRequest{Type: AES256, Material: aesKey}, AES256},
		{"ok rsa pkcs8", ImportRequest{Material: rsaDER}, RSA2048},
		{"ok rsa pkcs1", ImportRequest{Material: x509.MarshalPKCS1PrivateKey(rsaKey)}, RSA2048},
		{"ok ec pkcs8", ImportRequest{Material: ecDER, Type: ECP384}, ECP384},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.ID, c.req.Exportable = "imp/"+c.name, true
			b, err := h.Import(ctx, c.req)
			if err != nil {
				t.Fatal(err)
			}
			k := Key{ID: c.req.ID, Blob: b}
			info, err := h.Inspect(ctx, k)
			if err != nil || info.Type != c.typ {
				t.Fatalf("inspect: %+v %v", info, err)
			}
			got, err := h.Export(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			switch c.typ {
			case AES256:
				if !bytes.Equal(got, aesKey) {
					t.Fatal("exported AES key differs from the imported one")
				}
			case RSA2048:
				p, err := x509.ParsePKCS8PrivateKey(got)
				if err != nil || !p.(*rsa.PrivateKey).Equal(rsaKey) {
					t.Fatalf("exported RSA key differs: %v", err)
				}
			case ECP384:
				p, err := x509.ParsePKCS8PrivateKey(got)
				if err != nil || !p.(*ecdsa.PrivateKey).Equal(ecKey) {
					t.Fatalf("exported EC key differs: %v", err)
				}
			}
		})
	}
	t.Run("fail type mismatch", func(t *testing.T) {
		_, err := h.Import(ctx, ImportRequest{ID: "x", Type: RSA4096, Material: rsaDER})
		mustKind(t, err, ErrBadInput)
	})
	t.Run("fail unsupported rsa size", func(t *testing.T) {
		small, _ := rsa.GenerateKey(rand.Reader, 1024)
		der, _ := x509.MarshalPKCS8PrivateKey(small)
		_, err := h.Import(ctx, ImportRequest{ID: "x", Material: der})
		mustKind(t, err, ErrUnsupported)
	})
}

func TestReopenKeepsKEKAndBlobs(t *testing.T) {
	ctx := context.Background()
	tok := softhsm.NewTestToken(t)
	cfg := Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN}
	h, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Generate(ctx, GenerateRequest{ID: "k", Type: AES256})
	if err != nil {
		t.Fatal(err)
	}
	k := Key{ID: "k", Blob: b}
	res, err := h.Encrypt(ctx, k, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("persist")})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	h, err = Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.KEKVersion() != 1 {
		t.Fatalf("reopen made a new KEK: version %d", h.KEKVersion())
	}
	pt, err := h.Decrypt(ctx, k, DecryptRequest{Algorithm: AESGCM, Ciphertext: res.Ciphertext, Tag: res.Tag, IV: res.IV})
	if err != nil || string(pt) != "persist" {
		t.Fatalf("after reopen: %q %v", pt, err)
	}
}

func TestRotateKEKAndRewrap(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	b1, err := h.Generate(ctx, GenerateRequest{ID: "k", Type: ECP256, Exportable: true})
	if err != nil {
		t.Fatal(err)
	}
	k1 := Key{ID: "k", Blob: b1}
	before, _ := h.Export(ctx, k1)
	v, err := h.RotateKEK(ctx)
	if err != nil || v != 2 || h.KEKVersion() != 2 {
		t.Fatalf("rotate: %d %v", v, err)
	}
	// The old blob still works; a rewrap moves it to version 2 with the same key inside.
	if _, err := h.Sign(ctx, k1, SignRequest{Algorithm: ECDSA, Hash: 5 /* SHA-256 */, Message: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	b2, err := h.Rewrap(ctx, k1)
	if err != nil {
		t.Fatal(err)
	}
	k2 := Key{ID: "k", Blob: b2}
	info, err := h.Inspect(ctx, k2)
	if err != nil || info.KEKVersion != 2 || info.Type != ECP256 || !info.Exportable {
		t.Fatalf("rewrapped info %+v %v", info, err)
	}
	after, err := h.Export(ctx, k2)
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("rewrap changed the key: %v", err)
	}
	if _, err := h.Rewrap(ctx, Key{ID: "other", Blob: b1}); err == nil {
		t.Fatal("rewrap accepted a blob under another id")
	}
	// New keys are wrapped under version 2, and a reopen finds both versions.
	b3, _ := h.Generate(ctx, GenerateRequest{ID: "n", Type: AES128})
	if info, _ := h.Inspect(ctx, Key{ID: "n", Blob: b3}); info.KEKVersion != 2 {
		t.Fatalf("new blob under KEK %d", info.KEKVersion)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	tok := softhsm.NewTestToken(t)
	good := Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN}
	cases := []struct {
		name string
		mod  func(c *Config)
		want *Error
		text string
	}{
		{"fail wrong pin", func(c *Config) { c.PIN = "0000" }, ErrPermission, "PIN is incorrect"},
		{"fail missing module", func(c *Config) { c.Module = filepath.Join(t.TempDir(), "nope.so") }, ErrUnavailable, "cannot load PKCS#11 module"},
		{"fail not a module", func(c *Config) {
			p := filepath.Join(t.TempDir(), "junk.so")
			os.WriteFile(p, []byte("junk"), 0o600)
			c.Module = p
		}, ErrUnavailable, "cannot load PKCS#11 module"},
		{"fail unknown label", func(c *Config) { c.TokenLabel = "no-such-token" }, ErrNotFound, `no token labelled "no-such-token"`},
		{"fail no pin", func(c *Config) { c.PIN = "" }, ErrBadInput, "no PIN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.mod(&cfg)
			h, err := Open(ctx, cfg)
			if err == nil {
				h.Close()
			}
			mustKind(t, err, c.want)
			if !bytes.Contains([]byte(err.Error()), []byte(c.text)) {
				t.Fatalf("error %q does not say %q", err, c.text)
			}
			if cfg.PIN != "" && bytes.Contains([]byte(err.Error()), []byte(cfg.PIN)) {
				t.Fatal("error shows the PIN")
			}
		})
	}
	// After the failures the module opens normally.
	h, err := Open(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
}

func TestSecondOpenOfModuleIsRefused(t *testing.T) {
	ctx := context.Background()
	h, tok := openTest(t, Config{})
	_, err := Open(ctx, Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN})
	mustKind(t, err, ErrUnavailable)
	if _, err := h.Random(ctx, 8); err != nil {
		t.Fatalf("first HSM broken by refused second open: %v", err)
	}
}

// sessionObjects counts the session (non-token) objects the layer left in the token.
// sessionObjects counts the session objects in the token other than the
// session copies of the KEK pairs (which stay for the session generation).
func sessionObjects(t *testing.T, h *HSM) int {
	t.Helper()
	var n int
	err := h.do(context.Background(), "count", func(s *session) error {
		keks, _, err := h.kekSet(s)
		if err != nil {
			return err
		}
		copies := map[pkcs11.ObjectHandle]bool{}
		for _, p := range keks {
			if p.wrap == p.tokWrap || p.mac == p.tokMac {
				return errors.New("a KEK pair is used through its token objects")
			}
			copies[p.wrap], copies[p.mac] = true, true
		}
		if err := h.ctx.FindObjectsInit(s.h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)}); err != nil {
			return err
		}
		objs, _, err := h.ctx.FindObjects(s.h, 10000)
		h.ctx.FindObjectsFinal(s.h)
		n = len(objs)
		for _, o := range objs {
			if copies[o] {
				n--
			}
		}
		if len(objs)-n != len(copies) {
			return fmt.Errorf("%d of the %d session copies of KEK pairs are in the token", len(objs)-n, len(copies))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCacheIsBoundedAndHits(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{CacheSize: 3})
	var keys []Key
	for i := range 8 {
		id := fmt.Sprintf("k%d", i)
		b, err := h.Generate(ctx, GenerateRequest{ID: id, Type: AES256})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, Key{ID: id, Blob: b})
	}
	if n := sessionObjects(t, h); n != 0 {
		t.Fatalf("generation left %d session objects", n)
	}
	enc := func(k Key) {
		if _, err := h.Encrypt(ctx, k, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys {
		enc(k)
	}
	st := h.CacheStats()
	if st.Size != 3 || st.Misses != 8 || st.Hits != 0 {
		t.Fatalf("after 8 distinct keys: %+v", st)
	}
	if n := sessionObjects(t, h); n != 3 {
		t.Fatalf("%d session objects with a cache of 3: evicted keys were not destroyed", n)
	}
	for range 10 {
		enc(keys[7])
	}
	st = h.CacheStats()
	if st.Hits != 10 || st.Misses != 8 {
		t.Fatalf("repeated use of a cached key: %+v", st)
	}
}

func TestSessionRecovery(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{Sessions: 4})
	b, err := h.Generate(ctx, GenerateRequest{ID: "k", Type: AES256})
	if err != nil {
		t.Fatal(err)
	}
	k := Key{ID: "k", Blob: b}
	use := func() error {
		res, err := h.Encrypt(ctx, k, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("p")})
		if err != nil {
			return err
		}
		if _, err = h.Decrypt(ctx, k, DecryptRequest{Algorithm: AESGCM, Ciphertext: res.Ciphertext, Tag: res.Tag, IV: res.IV}); err != nil {
			return err
		}
		// A new key is wrapped and sealed under the session copies of the
		// KEK pair, which go with the session that made them.
		b, err := h.Generate(ctx, GenerateRequest{ID: "n", Type: AES256})
		if err != nil {
			return err
		}
		_, err = h.Encrypt(ctx, Key{ID: "n", Blob: b}, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("p")})
		return err
	}
	// Warm every pooled session and the cache.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); use() }()
	}
	wg.Wait()
	for round := range 3 {
		// Close every session under the layer, as a token reset would.
		if err := h.ctx.CloseAllSessions(h.slot); err != nil {
			t.Fatal(err)
		}
		for i := range 6 {
			if err := use(); err != nil {
				t.Fatalf("round %d use %d after sessions were closed: %v", round, i, err)
			}
		}
	}
	// Close the pool's sessions one at a time, so that one of them is the
	// session that made the KEK copies.
	for n := range 4 {
		var held []*session
		for range 4 {
			s, err := h.get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, s)
		}
		h.ctx.CloseSession(held[n].h)
		for _, s := range held {
			h.put(s)
		}
		for i := range 6 {
			if err := use(); err != nil {
				t.Fatalf("use %d after pool session %d was closed: %v", i, n, err)
			}
		}
	}
	if _, err := h.Generate(ctx, GenerateRequest{ID: "k2", Type: RSA2048}); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{Sessions: 4, CacheSize: 2})
	var keys []Key
	for i := range 5 {
		id := fmt.Sprintf("k%d", i)
		b, err := h.Generate(ctx, GenerateRequest{ID: id, Type: AES256})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, Key{ID: id, Blob: b})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				k := keys[(g+i)%len(keys)]
				pt := []byte(fmt.Sprintf("goroutine %d op %d", g, i))
				res, err := h.Encrypt(ctx, k, EncryptRequest{Algorithm: AESGCM, Plaintext: pt, AAD: []byte(k.ID)})
				if err != nil {
					errs <- err
					return
				}
				got, err := h.Decrypt(ctx, k, DecryptRequest{Algorithm: AESGCM, Ciphertext: res.Ciphertext, Tag: res.Tag, IV: res.IV, AAD: []byte(k.ID)})
				if err != nil || !bytes.Equal(got, pt) {
					errs <- fmt.Errorf("round trip: %v", err)
					return
				}
				if g == 0 && i%10 == 0 {
					if _, err := h.Generate(ctx, GenerateRequest{ID: "extra", Type: ECP256}); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := sessionObjects(t, h); n > 2 {
		t.Fatalf("%d session objects left with a cache of 2", n)
	}
}

func FuzzParseBlob(f *testing.F) {
	f.Add([]byte("KHB1"))
	good := (&blob{kekVersion: 1, typ: AES256, wrapped: make([]byte, 40), mac: make([]byte, 32)}).marshal()
	f.Add(good)
	f.Add((&blob{kekVersion: 3, typ: RSA2048, exportable: true, public: []byte{1, 2, 3}, wrapped: []byte{9}, mac: make([]byte, 32)}).marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		b, body, err := parseBlob(data)
		if err != nil {
			return
		}
		if !bytes.Equal(b.marshal(), data) || !bytes.Equal(b.body(), body) {
			t.Fatal("parse/marshal does not round-trip")
		}
	})
}

// endGeneration does what a call that finds its session lost does.
func endGeneration(t *testing.T, h *HSM) {
	t.Helper()
	s, err := h.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.lost(s)
	h.release(nil)
}

// The session that made the KEK copies closes while the generation goes on:
// a wrap or unwrap under a dead copy fails with the wrapping key's own
// code, which must count as a lost handle, so the next attempt copies again.
func TestKEKCopiesRecoverWhenTheirSessionCloses(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{Sessions: 4})
	b, err := h.Generate(ctx, GenerateRequest{ID: "k", Type: AES256})
	if err != nil {
		t.Fatal(err)
	}
	endGeneration(t, h)
	var holder pkcs11.SessionHandle
	if err := h.do(ctx, "copy", func(s *session) error {
		_, _, err := h.kekSet(s)
		holder = s.h
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h.ctx.CloseSession(holder)
	for i := range 3 {
		if _, err := h.Generate(ctx, GenerateRequest{ID: "n", Type: AES256}); err != nil {
			t.Fatalf("generate %d after the copies' session closed: %v", i, err)
		}
	}
	// An unwrap under a dead copy recovers as well.
	if err := h.do(ctx, "copy", func(s *session) error {
		_, _, err := h.kekSet(s)
		holder = s.h
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h.ctx.CloseSession(holder)
	h.cache.clear(nil)
	if _, err := h.Encrypt(ctx, Key{ID: "k", Blob: b}, EncryptRequest{Algorithm: AESGCM, Plaintext: []byte("p")}); err != nil {
		t.Fatalf("encrypt after the copies' session closed: %v", err)
	}
}

// A stream has its own session, closed when the stream ends: KEK copies
// made there would die with it. Streams and generation keep working after
// a loss, and after every session of the token was closed.
func TestStreamsAfterALoss(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{Sessions: 2})
	b, err := h.Generate(ctx, GenerateRequest{ID: "k", Type: AES256})
	if err != nil {
		t.Fatal(err)
	}
	k := Key{ID: "k", Blob: b}
	stream := func(what string) {
		t.Helper()
		st, err := h.OpenStream(ctx, k, StreamRequest{Algorithm: AESCBC, IV: make([]byte, 16)})
		if err != nil {
			t.Fatalf("stream %s: %v", what, err)
		}
		st.Close()
	}
	for round, loss := range []func(){
		func() { endGeneration(t, h) },
		func() { h.ctx.CloseAllSessions(h.slot) },
	} {
		loss()
		stream(fmt.Sprintf("first after loss %d", round))
		gen := h.gen.Load()
		for i := range 3 {
			if _, err := h.Generate(ctx, GenerateRequest{ID: "n", Type: AES256}); err != nil {
				t.Fatalf("generate %d after a stream (loss %d): %v", i, round, err)
			}
		}
		stream(fmt.Sprintf("second after loss %d", round))
		if g := h.gen.Load(); g != gen {
			t.Fatalf("loss %d: KEK copies made in the first stream's session died with it (generation %d -> %d)", round, gen, g)
		}
	}
}

// RotateKEK that waits for the KEK lock while a loss ends its session's
// generation must not store copies made in its stale session.
func TestRotateKEKInAStaleSession(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{Sessions: 2})
	rotateKEKPause = func() {
		endGeneration(t, h)
		// A session of the new generation finds the KEKs and copies them.
		if err := h.do(ctx, "refresh", func(s *session) error {
			_, _, err := h.kekSet(s)
			return err
		}); err != nil {
			t.Error(err)
		}
	}
	defer func() { rotateKEKPause = nil }()
	if _, err := h.RotateKEK(ctx); err != nil {
		t.Fatal(err)
	}
	gen := h.gen.Load()
	for i := range 3 {
		if _, err := h.Generate(ctx, GenerateRequest{ID: "n", Type: AES256}); err != nil {
			t.Fatalf("generate %d after the rotation: %v", i, err)
		}
	}
	if g := h.gen.Load(); g != gen {
		t.Fatalf("the rotation's stale copy cost a session loss (generation %d -> %d)", gen, g)
	}
}
