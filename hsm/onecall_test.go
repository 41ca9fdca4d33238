package hsm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/miekg/pkcs11"
)

// Key material is read with one call where the module exports
// C_GetAttributeValue (SoftHSM2 does), and comes out the same as through
// miekg/pkcs11's two calls; a value longer than the buffer is refused with
// CKR_BUFFER_TOO_SMALL, which sends the reader to the two calls.
func TestOneCallValueRead(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	if h.value.fn == nil {
		t.Fatal("SoftHSM2's C_GetAttributeValue was not found")
	}
	fn := h.value.fn
	for _, c := range []struct {
		typ KeyType
		n   int
	}{{AES128, 16}, {AES256, 32}, {HMACSHA256, 32}, {HMACSHA512, 64}} {
		mat := make([]byte, c.n)
		rand.Read(mat)
		id := "one-call/" + string(c.typ)
		wrapped, err := h.Import(ctx, ImportRequest{ID: id, Type: c.typ, Material: mat, Exportable: true})
		if err != nil {
			t.Fatalf("import %s: %v", c.typ, err)
		}
		for _, one := range []bool{true, false} {
			h.value.fn = fn
			if !one {
				h.value.fn = nil
			}
			got, err := h.Export(ctx, Key{ID: id, Blob: wrapped})
			if err != nil || !bytes.Equal(got, mat) {
				t.Fatalf("%s (one call: %v): export gave other material (%v)", c.typ, one, err)
			}
		}
		h.value.fn = fn
		// The one call itself, with a buffer of maxSecretKey bytes, as
		// readMaterial gives it, and with one too short.
		var got []byte
		err = h.withKey(ctx, "test", Key{ID: id, Blob: wrapped}, func(s *session, obj pkcs11.ObjectHandle, _ *blob) error {
			buf := make([]byte, maxSecretKey)
			n, err := h.value.read(s.h, obj, pkcs11.CKA_VALUE, buf)
			got = buf[:n]
			return err
		})
		if err != nil || !bytes.Equal(got, mat) {
			t.Fatalf("%s: one call read %d bytes (%v), not the material", c.typ, len(got), err)
		}
		err = h.withKey(ctx, "test", Key{ID: id, Blob: wrapped}, func(s *session, obj pkcs11.ObjectHandle, _ *blob) error {
			_, err := h.value.read(s.h, obj, pkcs11.CKA_VALUE, make([]byte, c.n-1))
			return err
		})
		var p11 pkcs11.Error
		if !errors.As(err, &p11) || p11 != pkcs11.CKR_BUFFER_TOO_SMALL {
			t.Fatalf("%s: a short buffer gave %v", c.typ, err)
		}
	}
}

// New keys are wrapped under the KEK with one C_WrapKey call where the
// module exports it (SoftHSM2 does); the blobs of keys of every family
// unwrap to what was imported, through both paths; a buffer too short for
// the wrap gets CKR_BUFFER_TOO_SMALL.
func TestOneCallWrap(t *testing.T) {
	ctx := context.Background()
	h, _ := openTest(t, Config{})
	if h.wrap.fn == nil {
		t.Fatal("SoftHSM2's C_WrapKey was not found")
	}
	fn := h.wrap.fn
	mat := make([]byte, 32)
	rand.Read(mat)
	for _, one := range []bool{true, false} {
		h.wrap.fn = fn
		if !one {
			h.wrap.fn = nil
		}
		id := fmt.Sprintf("wrap/%v", one)
		blob, err := h.Import(ctx, ImportRequest{ID: id, Type: AES256, Material: mat, Exportable: true})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := h.Export(ctx, Key{ID: id, Blob: blob}); err != nil || !bytes.Equal(got, mat) {
			t.Fatalf("one call %v: the blob gave other material (%v)", one, err)
		}
		for _, typ := range []KeyType{RSA2048, ECP256} {
			if _, err := h.Generate(ctx, GenerateRequest{ID: id + string(typ), Type: typ}); err != nil {
				t.Fatalf("one call %v: generate %s: %v", one, typ, err)
			}
		}
	}
	h.wrap.fn = fn
	// The largest key made here fits the buffer wrapUnderKEK gives.
	big, err := h.Generate(ctx, GenerateRequest{ID: "wrap/rsa4096", Type: RSA4096})
	if err != nil {
		t.Fatal(err)
	}
	err = h.withKey(ctx, "test", Key{ID: "wrap/rsa4096", Blob: big}, func(s *session, obj pkcs11.ObjectHandle, _ *blob) error {
		_, kek, err := h.currentKEK(s)
		if err != nil {
			return err
		}
		_, err = h.wrap.wrap(s.h, pkcs11.CKM_AES_KEY_WRAP_PAD, kek.wrap, obj, make([]byte, maxWrapped))
		return err
	})
	if err != nil {
		t.Fatalf("an RSA-4096 key does not wrap into %d bytes: %v", maxWrapped, err)
	}
	err = h.withKey(ctx, "test", Key{ID: "wrap/direct", Blob: mustImport(t, h, "wrap/direct", mat)}, func(s *session, obj pkcs11.ObjectHandle, _ *blob) error {
		_, kek, err := h.currentKEK(s)
		if err != nil {
			return err
		}
		n, err := h.wrap.wrap(s.h, pkcs11.CKM_AES_KEY_WRAP_PAD, kek.wrap, obj, make([]byte, 64))
		if err != nil || n != 40 {
			t.Fatalf("one call wrapped an AES-256 key into %d bytes (%v), want 40", n, err)
		}
		_, err = h.wrap.wrap(s.h, pkcs11.CKM_AES_KEY_WRAP_PAD, kek.wrap, obj, make([]byte, 39))
		return err
	})
	var p11 pkcs11.Error
	if !errors.As(err, &p11) || p11 != pkcs11.CKR_BUFFER_TOO_SMALL {
		t.Fatalf("a short buffer gave %v", err)
	}
}

func mustImport(t *testing.T, h *HSM, id string, mat []byte) []byte {
	t.Helper()
	blob, err := h.Import(context.Background(), ImportRequest{ID: id, Type: AES256, Material: mat, Exportable: true})
	if err != nil {
		t.Fatal(err)
	}
	return blob
}
