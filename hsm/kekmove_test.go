package hsm

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/softhsm"
	"github.com/miekg/pkcs11"
)

// twoTokens makes two tokens ("sender" and "receiver") in one SoftHSM2
// configuration; this process opens one at a time.
func twoTokens(t *testing.T) (a, b *softhsm.Token) {
	t.Helper()
	dir := t.TempDir()
	var toks []*softhsm.Token
	for _, label := range []string{"sender", "receiver"} {
		pin, _ := softhsm.RandomPIN()
		so, _ := softhsm.RandomPIN()
		tok, err := softhsm.CreateToken(dir, label, pin, so)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	t.Setenv(softhsm.ConfEnv, toks[0].ConfPath)
	return toks[0], toks[1]
}

func cfgOf(tok *softhsm.Token) Config {
	return Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN}
}

// with opens the token of cfg, runs fn and closes it.
func with(t *testing.T, cfg Config, fn func(h *HSM)) {
	t.Helper()
	h, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.TokenLabel, err)
	}
	defer h.Close()
	fn(h)
}

// The KEK ceremony moves every KEK version and MAC key from one token to
// another, never in the clear: the receiver then opens and uses the
// sender's blobs, and each token's KEKs are sensitive and leave it only
// under a trusted key.
func TestKEKCeremony(t *testing.T) {
	ctx := context.Background()
	sender, receiver := twoTokens(t)
	sc, rc := cfgOf(sender), cfgOf(receiver)
	rc.NoCreateKEK = true

	// The sender: two KEK versions, a blob under each.
	type made struct {
		id   string
		blob []byte
		ct   *EncryptResult
	}
	var blobs []made
	plaintext := []byte("sealed under the sender's KEKs")
	with(t, sc, func(h *HSM) {
		for v := 1; v <= 2; v++ {
			if v == 2 {
				if _, err := h.RotateKEK(ctx); err != nil {
					t.Fatal(err)
				}
			}
			id := "key-under-v" + string(rune('0'+v))
			blob, err := h.Generate(ctx, GenerateRequest{ID: id, Type: AES256})
			if err != nil {
				t.Fatal(err)
			}
			ct, err := h.Encrypt(ctx, Key{ID: id, Blob: blob}, EncryptRequest{Algorithm: AESGCM, Plaintext: plaintext})
			if err != nil {
				t.Fatal(err)
			}
			blobs = append(blobs, made{id: id, blob: blob, ct: ct})
		}
		checkKEKAttributes(t, h, true)
	})

	// 1. The receiver makes its transport key (its token has no KEK yet).
	var transport *rsa.PublicKey
	with(t, rc, func(h *HSM) {
		if h.KEKVersion() != 0 {
			t.Fatalf("a token opened with NoCreateKEK has KEK version %d", h.KEKVersion())
		}
		if _, err := h.Generate(ctx, GenerateRequest{ID: "x", Type: AES256}); KindOf(err) != KindNotFound {
			t.Fatalf("generate without a KEK: %v", err)
		}
		var err error
		if transport, err = h.NewKEKTransportKey(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("fail export before the security officer trusts the key", func(t *testing.T) {
		with(t, sc, func(h *HSM) {
			if _, err := h.ExportKEKs(ctx, transport); KindOf(err) != KindNotFound {
				t.Fatalf("got %v, want NotFound", err)
			}
		})
	})
	t.Run("fail export under an untrusted key", func(t *testing.T) {
		with(t, sc, func(h *HSM) {
			// A user can make a public key with the label, but not a trusted one.
			err := h.do(ctx, "test", func(s *session) error {
				tmpl := append(rsaPublicTemplate(transport),
					pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.trustedLabel()),
					pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(TransportKeyID(transport))))
				for i, a := range tmpl {
					if a.Type == pkcs11.CKA_TOKEN {
						tmpl[i] = pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)
					}
				}
				if _, err := h.ctx.CreateObject(s.h, append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_TRUSTED, true))); err == nil {
					t.Error("a user set CKA_TRUSTED")
				}
				_, err := h.ctx.CreateObject(s.h, tmpl)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.ExportKEKs(ctx, transport); KindOf(err) != KindPermission {
				t.Fatalf("export under an untrusted key: got %v, want Permission (CKR_KEY_NOT_WRAPPABLE)", err)
			}
			if err := h.do(ctx, "test", func(s *session) error {
				return h.destroyLabelled(s, h.trustedLabel(), pkcs11.CKO_PUBLIC_KEY)
			}); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("fail a wrong SO PIN", func(t *testing.T) {
		if err := TrustTransportKey(ctx, sc, "not-the-so-pin", transport); KindOf(err) != KindPermission {
			t.Fatalf("got %v", err)
		}
	})

	// 2. The security officer trusts the transport key; the user exports.
	if err := TrustTransportKey(ctx, sc, sender.SOPIN, transport); err != nil {
		t.Fatal(err)
	}
	var bundle *KEKBundle
	with(t, sc, func(h *HSM) {
		var err error
		if bundle, err = h.ExportKEKs(ctx, transport); err != nil {
			t.Fatal(err)
		}
	})
	if err := UntrustTransportKey(ctx, sc, sender.SOPIN); err != nil {
		t.Fatal(err)
	}
	with(t, sc, func(h *HSM) {
		if _, err := h.ExportKEKs(ctx, transport); KindOf(err) != KindNotFound {
			t.Fatalf("export after the trusted key went: %v", err)
		}
	})
	if bundle.Current != 2 || len(bundle.Versions) != 2 {
		t.Fatalf("bundle: current %d, %d versions", bundle.Current, len(bundle.Versions))
	}
	raw, _ := json.Marshal(bundle)
	t.Run("ok the bundle holds no key in the clear", func(t *testing.T) {
		for _, w := range bundle.Versions {
			if len(w.KEK) != 384 || len(w.MAC) != 384 {
				t.Fatalf("wrapped sizes %d %d, want RSA-3072 blocks", len(w.KEK), len(w.MAC))
			}
		}
	})

	// 3. The receiver imports, then opens and uses the sender's blobs.
	t.Run("fail a bundle for another transport key", func(t *testing.T) {
		other := *bundle
		other.TransportKey = strings.Repeat("0", 64)
		with(t, rc, func(h *HSM) {
			if err := h.ImportKEKs(ctx, &other); KindOf(err) != KindBadInput {
				t.Fatalf("got %v", err)
			}
		})
	})
	var back KEKBundle
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	with(t, rc, func(h *HSM) {
		if err := h.ImportKEKs(ctx, &back); err != nil {
			t.Fatalf("import: %v", err)
		}
		if h.KEKVersion() != 2 {
			t.Fatalf("receiver's KEK version %d", h.KEKVersion())
		}
		for _, b := range blobs {
			pt, err := h.Decrypt(ctx, Key{ID: b.id, Blob: b.blob}, DecryptRequest{Algorithm: AESGCM, Ciphertext: b.ct.Ciphertext, IV: b.ct.IV, Tag: b.ct.Tag})
			if err != nil || !bytes.Equal(pt, plaintext) {
				t.Fatalf("the receiver decrypts %s: %q, %v", b.id, pt, err)
			}
			if _, err := h.Inspect(ctx, Key{ID: b.id + "-moved", Blob: b.blob}); KindOf(err) != KindIntegrity {
				t.Fatalf("a blob moved to another id opened on the receiver: %v", err)
			}
		}
		checkKEKAttributes(t, h, true)
		// The transport key went with the import.
		err := h.do(ctx, "test", func(s *session) error {
			if o, err := h.findOne(s, h.transportLabel(), pkcs11.CKO_PRIVATE_KEY); err != nil || o != 0 {
				t.Errorf("transport key after the import: %v %v", o, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// What the receiver makes, the sender opens.
		id := "made-on-receiver"
		blob, err := h.Generate(ctx, GenerateRequest{ID: id, Type: AES256})
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, made{id: id, blob: blob})
	})
	with(t, sc, func(h *HSM) {
		if _, err := h.Inspect(ctx, Key{ID: "made-on-receiver", Blob: blobs[len(blobs)-1].blob}); err != nil {
			t.Fatalf("the sender opens the receiver's blob: %v", err)
		}
	})
	t.Run("fail a bundle made for an earlier transport key", func(t *testing.T) {
		with(t, rc, func(h *HSM) {
			if _, err := h.NewKEKTransportKey(ctx); err != nil {
				t.Fatal(err)
			}
			err := h.ImportKEKs(ctx, &back)
			if KindOf(err) != KindBadInput { // the bundle was made for the old transport key
				t.Fatalf("re-import: %v", err)
			}
		})
	})
}

// A token with KEKs of its own refuses a bundle; KEKs made with
// KEKNonExtractable never leave the token.
func TestKEKCeremonyRefusals(t *testing.T) {
	ctx := context.Background()
	sender, receiver := twoTokens(t)
	sc, rc := cfgOf(sender), cfgOf(receiver)
	sc.KEKNonExtractable = true
	var transport *rsa.PublicKey
	with(t, rc, func(h *HSM) { // the receiver made its own KEK at its first start
		var err error
		if transport, err = h.NewKEKTransportKey(ctx); err != nil {
			t.Fatal(err)
		}
	})
	with(t, sc, func(h *HSM) { checkKEKAttributes(t, h, false) })
	if err := TrustTransportKey(ctx, sc, sender.SOPIN, transport); err != nil {
		t.Fatal(err)
	}
	with(t, sc, func(h *HSM) {
		_, err := h.ExportKEKs(ctx, transport)
		if KindOf(err) != KindUnsupported {
			t.Fatalf("export of a non-extractable KEK: %v", err)
		}
	})
	// A well-formed bundle from a third token, refused by a token with KEKs.
	sc.KEKNonExtractable = false
	third, err := softhsm.CreateToken(sender.Dir, "third", sender.PIN, sender.SOPIN)
	if err != nil {
		t.Fatal(err)
	}
	tc := cfgOf(third)
	if err := TrustTransportKey(ctx, tc, third.SOPIN, transport); err != nil {
		t.Fatal(err)
	}
	var b *KEKBundle
	with(t, tc, func(h *HSM) {
		if b, err = h.ExportKEKs(ctx, transport); err != nil {
			t.Fatal(err)
		}
	})
	with(t, rc, func(h *HSM) {
		// Same version number, other keys: the proof does not open.
		if err := h.ImportKEKs(ctx, b); KindOf(err) != KindIntegrity || !strings.Contains(err.Error(), "other keys") {
			t.Fatalf("import into a token with a KEK of its own: %v", err)
		}
		// A newer version than the token's: refused before anything is unwrapped.
		newer := *b
		newer.Current, newer.Versions = 2, append(append([]WrappedKEK{}, b.Versions...), WrappedKEK{Version: 2, KEK: b.Versions[0].KEK, MAC: b.Versions[0].MAC})
		if err := h.ImportKEKs(ctx, &newer); KindOf(err) != KindBadInput || !strings.Contains(err.Error(), "KEKs of its own") {
			t.Fatalf("import of more versions into a token with a KEK of its own: %v", err)
		}
		if h.KEKVersion() != 1 {
			t.Fatalf("the receiver's KEK version after refusals: %d", h.KEKVersion())
		}
	})
	if _, err := ParseTransportKey([]byte("not pem")); err == nil {
		t.Fatal("a bad transport key parsed")
	}
}

// checkKEKAttributes reads each KEK's and MAC key's attributes: sensitive,
// the value unreadable, and extractable only under a trusted key (or never).
func checkKEKAttributes(t *testing.T, h *HSM, extractable bool) {
	t.Helper()
	err := h.do(context.Background(), "test", func(s *session) error {
		keks, _, err := h.kekSet(s)
		if err != nil {
			return err
		}
		for v, p := range keks {
			for _, o := range []pkcs11.ObjectHandle{p.wrap, p.mac} {
				attrs, err := h.ctx.GetAttributeValue(s.h, o, []*pkcs11.Attribute{
					pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
					pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
					pkcs11.NewAttribute(pkcs11.CKA_WRAP_WITH_TRUSTED, nil),
				})
				if err != nil {
					return err
				}
				sens, ext, wwt := attrs[0].Value[0] == 1, attrs[1].Value[0] == 1, attrs[2].Value[0] == 1
				if !sens || ext != extractable || (extractable && !wwt) {
					t.Errorf("KEK v%d: sensitive %v extractable %v wrap_with_trusted %v", v, sens, ext, wwt)
				}
				if _, err := h.ctx.GetAttributeValue(s.h, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); err == nil {
					t.Errorf("KEK v%d: its value was read", v)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
