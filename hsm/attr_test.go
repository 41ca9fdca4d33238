package hsm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
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
