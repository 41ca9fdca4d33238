package kmip_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	keyholdkmip "github.com/keyhold/keyhold/kmip"
	"github.com/keyhold/keyhold/kmip/kmiptest"
	"github.com/keyhold/keyhold/store"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

func symmetricKey(alg gokmip.CryptographicAlgorithm, m []byte, format gokmip.KeyFormatType) *gokmip.SymmetricKey {
	km := gokmip.KeyMaterial{Bytes: &m}
	if format == gokmip.KeyFormatTypeTransparentSymmetricKey {
		km = gokmip.KeyMaterial{TransparentSymmetricKey: &gokmip.TransparentSymmetricKey{Key: m}}
	}
	return &gokmip.SymmetricKey{KeyBlock: gokmip.KeyBlock{
		KeyFormatType: format, CryptographicAlgorithm: alg, CryptographicLength: int32(len(m) * 8),
		KeyValue: &gokmip.KeyValue{Plain: &gokmip.PlainKeyValue{KeyMaterial: km}},
	}}
}

func secretData(m []byte) *gokmip.SecretData {
	return &gokmip.SecretData{SecretDataType: gokmip.SecretDataTypePassword, KeyBlock: gokmip.KeyBlock{
		KeyFormatType: gokmip.KeyFormatTypeOpaque, KeyValue: &gokmip.KeyValue{Plain: &gokmip.PlainKeyValue{KeyMaterial: gokmip.KeyMaterial{Bytes: &m}}}}}
}

// fill returns n bytes that spell a recognizable pattern, to look for in
// the store file.
func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)*7
	}
	return b
}

func TestRegisterAndGet(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "r", "all", "all")
	cert, _ := e.Credential(t, "r", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4

	aes, hmacKey, tdes := fill(32, 0x11), fill(32, 0x22), fill(24, 0x33)
	secret, opaque := []byte("s3cr3t-passw0rd-of-the-test-0123"), []byte("opaque-bytes-of-the-test-456789")
	tests := []struct {
		name   string
		typ    gokmip.ObjectType
		obj    gokmip.Object
		want   []byte
		format gokmip.KeyFormatType
	}{
		{"ok AES key held by the HSM", gokmip.ObjectTypeSymmetricKey, symmetricKey(gokmip.CryptographicAlgorithmAES, aes, gokmip.KeyFormatTypeRaw), aes, gokmip.KeyFormatTypeRaw},
		{"ok HMAC key held by the HSM", gokmip.ObjectTypeSymmetricKey, symmetricKey(gokmip.CryptographicAlgorithmHMACSHA256, hmacKey, gokmip.KeyFormatTypeTransparentSymmetricKey), hmacKey, gokmip.KeyFormatTypeRaw},
		{"ok 3DES key sealed", gokmip.ObjectTypeSymmetricKey, symmetricKey(gokmip.CryptographicAlgorithm3DES, tdes, gokmip.KeyFormatTypeRaw), tdes, gokmip.KeyFormatTypeTransparentSymmetricKey},
		{"ok secret data sealed", gokmip.ObjectTypeSecretData, secretData(secret), secret, 0},
		{"ok opaque object sealed", gokmip.ObjectTypeOpaqueObject, &gokmip.OpaqueObject{OpaqueDataType: 0x80000001, OpaqueDataValue: opaque}, opaque, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := must[*payloads.RegisterResponsePayload](t, do(t, c, v, &payloads.RegisterRequestPayload{ObjectType: tt.typ, Object: tt.obj,
				TemplateAttribute: gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{attr(gokmip.AttributeNameName, gokmip.Name{NameValue: tt.name})}}})).UniqueIdentifier
			g := must[*payloads.GetResponsePayload](t, do(t, c, v, &payloads.GetRequestPayload{UniqueIdentifier: id, KeyFormatType: tt.format}))
			var got []byte
			switch o := g.Object.(type) {
			case *gokmip.SymmetricKey:
				if tt.format != 0 && o.KeyBlock.KeyFormatType != tt.format {
					t.Fatalf("format %v", o.KeyBlock.KeyFormatType)
				}
				got, _ = o.KeyMaterial()
			case *gokmip.SecretData:
				got, _ = o.Data()
				if o.SecretDataType != gokmip.SecretDataTypePassword || o.KeyBlock.KeyFormatType != gokmip.KeyFormatTypeOpaque {
					t.Fatalf("secret data: %+v", o)
				}
			case *gokmip.OpaqueObject:
				got = o.OpaqueDataValue
				if o.OpaqueDataType != 0x80000001 {
					t.Fatalf("opaque type %x", o.OpaqueDataType)
				}
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %x, want %x", got, tt.want)
			}
			ga := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id,
				AttributeName: []gokmip.AttributeName{gokmip.AttributeNameDigest}}))
			sum := sha256.Sum256(tt.want)
			if len(ga.Attribute) != 1 || !bytes.Equal(ga.Attribute[0].AttributeValue.(gokmip.Digest).DigestValue, sum[:]) {
				t.Fatalf("digest: %+v", ga.Attribute)
			}
		})
	}
	for _, tt := range []struct {
		name   string
		pl     *payloads.RegisterRequestPayload
		reason gokmip.ResultReason
	}{
		{"fail length does not match", &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, Object: func() gokmip.Object {
			k := symmetricKey(gokmip.CryptographicAlgorithmAES, aes, gokmip.KeyFormatTypeRaw)
			k.KeyBlock.CryptographicLength = 128
			return k
		}()}, gokmip.ResultReasonInvalidField},
		{"fail template contradicts the key block", &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey,
			Object:            symmetricKey(gokmip.CryptographicAlgorithmAES, aes, gokmip.KeyFormatTypeRaw),
			TemplateAttribute: gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{attr(gokmip.AttributeNameCryptographicAlgorithm, gokmip.CryptographicAlgorithmHMACSHA256)}}},
			gokmip.ResultReasonInvalidField},
		{"fail wrapped key value", &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, Object: &gokmip.SymmetricKey{KeyBlock: gokmip.KeyBlock{
			KeyFormatType: gokmip.KeyFormatTypeRaw, KeyValue: &gokmip.KeyValue{Wrapped: &aes}, CryptographicAlgorithm: gokmip.CryptographicAlgorithmAES}}},
			gokmip.ResultReasonFeatureNotSupported},
		{"fail a certificate that does not parse", &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypeCertificate,
			Object: &gokmip.Certificate{CertificateType: gokmip.CertificateTypeX_509, CertificateValue: []byte{0x30}}}, gokmip.ResultReasonInvalidField},
		{"fail a PGP certificate", &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypeCertificate,
			Object: &gokmip.Certificate{CertificateType: gokmip.CertificateTypePGP, CertificateValue: []byte{0x99}}}, gokmip.ResultReasonFeatureNotSupported},
	} {
		t.Run(tt.name, func(t *testing.T) { mustFail(t, do(t, c, v, tt.pl), tt.reason) })
	}

	t.Run("ok no key material in the store file", func(t *testing.T) {
		// Checkpoint the WAL into the file, then look for every value.
		e.Store.Close()
		var raw []byte
		for _, f := range []string{"keyhold.db", "keyhold.db-wal"} {
			b, _ := os.ReadFile(filepath.Join(e.Dir, f))
			raw = append(raw, b...)
		}
		if len(raw) == 0 {
			t.Fatal("no store file")
		}
		for name, v := range map[string][]byte{"aes": aes, "hmac": hmacKey, "3des": tdes, "secret": secret, "opaque": opaque} {
			if bytes.Contains(raw, v) || bytes.Contains(raw, v[:12]) {
				t.Errorf("%s material is in the store in the clear", name)
			}
		}
	})
}

func TestRekey(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "k", "all", "all")
	cert, _ := e.Credential(t, "k", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	req := createAES("rotating")
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	req.TemplateAttribute.Attribute = append(req.TemplateAttribute.Attribute,
		attr(gokmip.AttributeNameActivationDate, past), attr(gokmip.AttributeNameObjectGroup, "g"))
	old := must[*payloads.CreateResponsePayload](t, do(t, c, v, req)).UniqueIdentifier
	offset := 2 * time.Hour
	// An Offset sets the new key's dates from the old key's Activation
	// Date (KMIP 1.4 §4.4): not with dates of the template's own, and not
	// for a key without an Activation Date (which would make the new key
	// Active with no Activate).
	withDate := &gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{attr(gokmip.AttributeNameActivationDate, past)}}
	mustFail(t, do(t, c, v, &payloads.RekeyRequestPayload{UniqueIdentifier: old, Offset: &offset, TemplateAttribute: withDate}), gokmip.ResultReasonInvalidMessage)
	undated := must[*payloads.CreateResponsePayload](t, do(t, c, v, createAES("undated"))).UniqueIdentifier
	zero := time.Duration(0)
	mustFail(t, do(t, c, v, &payloads.RekeyRequestPayload{UniqueIdentifier: undated, Offset: &zero}), gokmip.ResultReasonIllegalOperation)
	nk := must[*payloads.RekeyResponsePayload](t, do(t, c, v, &payloads.RekeyRequestPayload{UniqueIdentifier: old, Offset: &offset})).UniqueIdentifier
	if nk == old || nk == "" {
		t.Fatalf("new key %q", nk)
	}
	get := func(id string) map[gokmip.AttributeName][]any {
		r := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id}))
		m := map[gokmip.AttributeName][]any{}
		for _, a := range r.Attribute {
			m[a.AttributeName] = append(m[a.AttributeName], a.AttributeValue)
		}
		return m
	}
	oa, na := get(old), get(nk)
	if len(oa[gokmip.AttributeNameName]) != 0 || len(na[gokmip.AttributeNameName]) != 1 || na[gokmip.AttributeNameName][0].(gokmip.Name).NameValue != "rotating" {
		t.Fatalf("names: old %v new %v", oa[gokmip.AttributeNameName], na[gokmip.AttributeNameName])
	}
	if l := oa[gokmip.AttributeNameLink]; len(l) != 1 || l[0].(gokmip.Link).LinkType != gokmip.LinkTypeReplacementObjectLink || l[0].(gokmip.Link).LinkedObjectIdentifier != nk {
		t.Fatalf("old key's link: %v", l)
	}
	if l := na[gokmip.AttributeNameLink]; len(l) != 1 || l[0].(gokmip.Link).LinkType != gokmip.LinkTypeReplacedObjectLink || l[0].(gokmip.Link).LinkedObjectIdentifier != old {
		t.Fatalf("new key's link: %v", l)
	}
	act := na[gokmip.AttributeNameActivationDate][0].(time.Time)
	if d := time.Until(act); d < offset-time.Minute || d > offset+time.Minute {
		t.Fatalf("new activation date %v is not now+offset", act)
	}
	if na[gokmip.AttributeNameState][0] != gokmip.StatePreActive || na[gokmip.AttributeNameObjectGroup][0] != "g" {
		t.Fatalf("new key: %v", na)
	}
	if bytes.Equal(na[gokmip.AttributeNameDigest][0].(gokmip.Digest).DigestValue, oa[gokmip.AttributeNameDigest][0].(gokmip.Digest).DigestValue) {
		t.Fatal("the new key has the old key's material")
	}
	// The placeholder is the new key.
	resp, err := c.Send(batch(v, 0, &payloads.RekeyRequestPayload{UniqueIdentifier: nk}, &payloads.GetAttributeListRequestPayload{}))
	if err != nil {
		t.Fatal(err)
	}
	if gl := resp.BatchItem[1].ResponsePayload.(*payloads.GetAttributeListResponsePayload); gl.UniqueIdentifier == nk || gl.UniqueIdentifier == "" {
		t.Fatalf("placeholder after re-key: %q", gl.UniqueIdentifier)
	}
	var n int
	e.Store.View(context.Background(), func(tx store.Tx) (err error) {
		n, err = tx.CountKMIPObjects(context.Background(), e.Mount, "k")
		return err
	})
	if n != 4 || strings.Contains(nk, " ") { // the old key, two new ones and the undated key
		t.Fatalf("%d objects", n)
	}
}

// The Digest of Secret Data (or an Opaque Object, or a symmetric key
// shorter than 128 bits or registered by a client) is a SHA-256 of the
// value:
// a role that may not Get the value does not see it, nor Locate by it,
// which would test guesses of a password offline or through the server.
func TestSecretDigestNeedsGet(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "s", "owner", "all")
	if _, err := e.Manager.PutRole(context.Background(), e.Mount, "s", "lister", keyholdkmip.RoleInput{Ops: map[string]bool{
		"get_attributes": true, "get_attribute_list": true, "locate": true}}); err != nil {
		t.Fatal(err)
	}
	ownerCert, _ := e.Credential(t, "s", "owner")
	listerCert, _ := e.Credential(t, "s", "lister")
	owner, lister := e.Dial(t, ownerCert), e.Dial(t, listerCert)
	v := gokmip.V1_4
	password := []byte("correct horse battery staple")
	secret := must[*payloads.RegisterResponsePayload](t, do(t, owner, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypeSecretData, Object: secretData(password)})).UniqueIdentifier
	key := must[*payloads.RegisterResponsePayload](t, do(t, owner, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, Object: symmetricKey(gokmip.CryptographicAlgorithmAES, fill(32, 0x44), gokmip.KeyFormatTypeRaw)})).UniqueIdentifier

	hasDigest := func(c *kmiptest.Client, id string) (inAttrs, inList bool) {
		attrs := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id}))
		for _, a := range attrs.Attribute {
			inAttrs = inAttrs || a.AttributeName == gokmip.AttributeNameDigest
		}
		named := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: []gokmip.AttributeName{gokmip.AttributeNameDigest}}))
		inAttrs = inAttrs || len(named.Attribute) > 0
		list := must[*payloads.GetAttributeListResponsePayload](t, do(t, c, v, &payloads.GetAttributeListRequestPayload{UniqueIdentifier: id}))
		for _, n := range list.AttributeName {
			inList = inList || n == gokmip.AttributeNameDigest
		}
		return inAttrs, inList
	}
	if a, l := hasDigest(owner, secret); !a || !l {
		t.Fatalf("a role that may get sees the secret's digest: %v %v, want both", a, l)
	}
	if a, l := hasDigest(lister, secret); a || l {
		t.Fatalf("a role that may not get sees the secret's digest: attributes %v, list %v", a, l)
	}
	// A key a client registered may be a passphrase: its digest is hidden
	// too; one the token generated, of 128 bits (createAES) and so out of a
	// brute force's reach, is listed.
	if a, l := hasDigest(lister, key); a || l {
		t.Fatalf("a role that may not get sees a registered key's digest: attributes %v, list %v", a, l)
	}
	created := must[*payloads.CreateResponsePayload](t, do(t, owner, v, createAES("made-in-the-token"))).UniqueIdentifier
	if a, l := hasDigest(lister, created); !a || !l {
		t.Fatalf("the created key's digest: %v %v, want it listed", a, l)
	}
	// A key shorter than 128 bits can be found from its digest by brute force.
	short := must[*payloads.RegisterResponsePayload](t, do(t, owner, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, Object: symmetricKey(gokmip.CryptographicAlgorithmHMACSHA256, fill(8, 0x45), gokmip.KeyFormatTypeRaw)})).UniqueIdentifier
	if a, l := hasDigest(owner, short); !a || !l {
		t.Fatalf("a role that may get sees the short key's digest: %v %v, want both", a, l)
	}
	if a, l := hasDigest(lister, short); a || l {
		t.Fatalf("a role that may not get sees the 64-bit key's digest: attributes %v, list %v", a, l)
	}
	sum := sha256.Sum256(password)
	byDigest := &payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{attr(gokmip.AttributeNameDigest, gokmip.Digest{HashingAlgorithm: gokmip.HashingAlgorithmSHA_256, DigestValue: sum[:], KeyFormatType: gokmip.KeyFormatTypeOpaque})}}
	mustFail(t, do(t, lister, v, byDigest), gokmip.ResultReasonPermissionDenied)
	found := must[*payloads.LocateResponsePayload](t, do(t, owner, v, byDigest))
	if len(found.UniqueIdentifier) != 1 || found.UniqueIdentifier[0] != secret {
		t.Fatalf("the owner's Locate by digest found %v, want [%s]", found.UniqueIdentifier, secret)
	}
}
