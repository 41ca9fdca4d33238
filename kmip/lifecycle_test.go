package kmip_test

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/kmip/kmiptest"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// do sends one operation and returns its batch item, failing the test if
// the exchange itself fails.
func do(t *testing.T, c *kmiptest.Client, v kmip.ProtocolVersion, pl kmip.OperationPayload) *kmip.ResponseBatchItem {
	t.Helper()
	it, err := c.Do(v, pl)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

// must fails the test unless a batch item succeeded, and returns its payload.
func must[T kmip.OperationPayload](t *testing.T, it *kmip.ResponseBatchItem) T {
	t.Helper()
	if it.ResultStatus != kmip.ResultStatusSuccess {
		t.Fatalf("%v failed: %v %v %q", it.Operation, it.ResultStatus, it.ResultReason, it.ResultMessage)
	}
	pl, ok := it.ResponsePayload.(T)
	if !ok {
		t.Fatalf("%v: payload %T", it.Operation, it.ResponsePayload)
	}
	return pl
}

// mustFail fails the test unless a batch item failed with the reason.
func mustFail(t *testing.T, it *kmip.ResponseBatchItem, reason kmip.ResultReason) {
	t.Helper()
	if it.ResultStatus != kmip.ResultStatusOperationFailed || it.ResultReason != reason {
		t.Fatalf("%v: got %v %v %q, want Operation Failed %v", it.Operation, it.ResultStatus, it.ResultReason, it.ResultMessage, reason)
	}
}

func aesTemplate(name string, bits int32) kmip.TemplateAttribute {
	return kmip.TemplateAttribute{Attribute: []kmip.Attribute{
		{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
		{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: bits},
		{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt},
		{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: name, NameType: kmip.NameTypeUninterpretedTextString}},
	}}
}

func attrMap(attrs []kmip.Attribute) map[kmip.AttributeName]any {
	m := map[kmip.AttributeName]any{}
	for _, a := range attrs {
		m[a.AttributeName] = a.AttributeValue
	}
	return m
}

func TestSymmetricKeyLifecycle(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "s1", "admin", "all")
	cert, _ := e.Credential(t, "s1", "admin")
	c := e.Dial(t, cert)
	v := kmip.V1_4

	cr := must[*payloads.CreateResponsePayload](t, do(t, c, v, &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: aesTemplate("k1", 256)}))
	id := cr.UniqueIdentifier
	if cr.ObjectType != kmip.ObjectTypeSymmetricKey || id == "" {
		t.Fatalf("create: %+v", cr)
	}
	ga := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id}))
	attrs := attrMap(ga.Attribute)
	if attrs[kmip.AttributeNameState] != kmip.StatePreActive || attrs[kmip.AttributeNameCryptographicLength] != int32(256) ||
		attrs[kmip.AttributeNameFresh] != true || attrs[kmip.AttributeNameExtractable] != true {
		t.Fatalf("attributes: %+v", attrs)
	}

	g := must[*payloads.GetResponsePayload](t, do(t, c, v, &payloads.GetRequestPayload{UniqueIdentifier: id}))
	key, err := g.SymmetricKey()
	if err != nil || len(key) != 32 {
		t.Fatalf("get: %d bytes, %v", len(key), err)
	}
	d := attrs[kmip.AttributeNameDigest].(kmip.Digest)
	if sum := sha256.Sum256(key); !bytes.Equal(sum[:], d.DigestValue) {
		t.Fatalf("digest %x is not the key's %x", d.DigestValue, sum)
	}
	ga = must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: []kmip.AttributeName{kmip.AttributeNameFresh}}))
	if len(ga.Attribute) != 1 || ga.Attribute[0].AttributeValue != false {
		t.Fatalf("fresh after get: %+v", ga.Attribute)
	}

	must[*payloads.ActivateResponsePayload](t, do(t, c, v, &payloads.ActivateRequestPayload{UniqueIdentifier: id}))
	mustFail(t, do(t, c, v, &payloads.DestroyRequestPayload{UniqueIdentifier: id}), kmip.ResultReasonPermissionDenied)
	// A Revocation Reason Code the server does not recognise is an
	// invalid field (KMIP 1.4 §11.21), and leaves the key as it was: one
	// reserved for future KMIP versions, or one of the extension range
	// (0x8XXXXXXX, §9.1.3.2), of which the server defines none; the
	// message says which.
	for _, tt := range []struct {
		code kmip.RevocationReasonCode
		says string
	}{
		{0, "needs a Revocation Reason Code"},
		{8, "0x00000008 is reserved for future KMIP versions"},
		{0x99, "0x00000099 is reserved for future KMIP versions"},
		{0x7FFFFFFF, "0x7FFFFFFF is reserved for future KMIP versions"},
		{0x80000000, "0x80000000 is in the extension range (0x80000000 to 0x8FFFFFFF), and this server defines no extension codes"},
		{0x80000001, "0x80000001 is in the extension range (0x80000000 to 0x8FFFFFFF), and this server defines no extension codes"},
		{0x8FFFFFFF, "0x8FFFFFFF is in the extension range (0x80000000 to 0x8FFFFFFF), and this server defines no extension codes"},
		{0x90000000, "0x90000000 is reserved for future KMIP versions"},
		{0xFFFFFFFF, "0xFFFFFFFF is reserved for future KMIP versions"},
	} {
		it := do(t, c, v, &payloads.RevokeRequestPayload{UniqueIdentifier: id, RevocationReason: kmip.RevocationReason{RevocationReasonCode: tt.code}})
		mustFail(t, it, kmip.ResultReasonInvalidField)
		if !strings.Contains(it.ResultMessage, tt.says) {
			t.Fatalf("code 0x%08X: message %q does not say %q", uint32(tt.code), it.ResultMessage, tt.says)
		}
	}
	ga = must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: []kmip.AttributeName{kmip.AttributeNameState}}))
	if len(ga.Attribute) != 1 || ga.Attribute[0].AttributeValue != kmip.StateActive {
		t.Fatalf("state after refused revocations: %+v", ga.Attribute)
	}
	occurred := time.Unix(6, 0)
	must[*payloads.RevokeResponsePayload](t, do(t, c, v, &payloads.RevokeRequestPayload{UniqueIdentifier: id,
		RevocationReason: kmip.RevocationReason{RevocationReasonCode: kmip.RevocationReasonCodeKeyCompromise}, CompromiseOccurrenceDate: &occurred}))
	must[*payloads.DestroyResponsePayload](t, do(t, c, v, &payloads.DestroyRequestPayload{UniqueIdentifier: id}))
	ga = must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id}))
	attrs = attrMap(ga.Attribute)
	if attrs[kmip.AttributeNameState] != kmip.StateDestroyedCompromised || attrs[kmip.AttributeNameCompromiseOccurrenceDate].(time.Time).Unix() != 6 {
		t.Fatalf("after destroy: %+v", attrs)
	}
	mustFail(t, do(t, c, v, &payloads.GetRequestPayload{UniqueIdentifier: id}), kmip.ResultReasonKeyValueNotPresent)
}
