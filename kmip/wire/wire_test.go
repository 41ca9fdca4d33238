package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// validRequest is a two-item batch: Create (with a template) and Get.
func validRequest(t testing.TB) []byte {
	t.Helper()
	msg := kmip.NewRequestMessage(kmip.V1_4,
		&payloads.CreateRequestPayload{
			ObjectType: kmip.ObjectTypeSymmetricKey,
			TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{
				{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
				{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
				{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "k\u00e9y", NameType: kmip.NameTypeUninterpretedTextString}},
			}},
		},
		&payloads.GetRequestPayload{UniqueIdentifier: "abc"},
	)
	return ttlv.MarshalTTLV(&msg)
}

// item encodes one TTLV item with an explicit declared length and raw value.
func item(tag int, typ ttlv.Type, length int, value []byte) []byte {
	out := []byte{byte(tag >> 16), byte(tag >> 8), byte(tag), byte(typ)}
	out = binary.BigEndian.AppendUint32(out, uint32(length))
	return append(out, value...)
}

func TestParse(t *testing.T) {
	valid := validRequest(t)
	withByte := func(off int, b byte) []byte {
		m := bytes.Clone(valid)
		m[off] = b
		return m
	}
	nested := func(depth int) []byte {
		inner := item(kmip.TagAttributeValue, ttlv.TypeInteger, 4, make([]byte, 8))
		for range depth {
			inner = item(kmip.TagAttributeValue, ttlv.TypeStructure, len(inner), inner)
		}
		return inner
	}
	tests := []struct {
		name    string
		msg     []byte
		wantErr string
	}{
		{name: "ok batch", msg: valid},
		{name: "ok nesting at the limit", msg: nested(23)},
		{name: "fail empty", msg: nil, wantErr: "truncated item header"},
		{name: "fail truncated", msg: valid[:len(valid)-8], wantErr: "runs past the end"},
		{name: "fail truncated header", msg: valid[:5], wantErr: "truncated item header"},
		{name: "fail trailing bytes", msg: append(bytes.Clone(valid), make([]byte, 8)...), wantErr: "bytes after the message"},
		{name: "fail length past the end", msg: item(kmip.TagRequestMessage, ttlv.TypeStructure, 1<<31, nil), wantErr: "runs past the end"},
		{name: "fail unknown tag", msg: item(0x42FFFF, ttlv.TypeInteger, 4, make([]byte, 8)), wantErr: "unknown tag"},
		{name: "fail tag outside KMIP", msg: item(0x110001, ttlv.TypeInteger, 4, make([]byte, 8)), wantErr: "unknown tag"},
		{name: "ok extension tag", msg: item(0x540001, ttlv.TypeInteger, 4, make([]byte, 8))},
		{name: "fail unknown type", msg: item(kmip.TagBatchCount, 0x0B, 4, make([]byte, 8)), wantErr: "unknown item type"},
		{name: "fail type zero", msg: item(kmip.TagBatchCount, 0, 4, make([]byte, 8)), wantErr: "unknown item type"},
		{name: "fail integer of 0 bytes", msg: item(kmip.TagBatchCount, ttlv.TypeInteger, 0, nil), wantErr: "must be 4 bytes"},
		{name: "fail long integer of 4 bytes", msg: item(kmip.TagBatchCount, ttlv.TypeLongInteger, 4, make([]byte, 8)), wantErr: "must be 8 bytes"},
		{name: "fail bad padding", msg: item(kmip.TagBatchCount, ttlv.TypeInteger, 4, []byte{0, 0, 0, 1, 0, 0, 1, 0}), wantErr: "non-zero padding"},
		{name: "fail text padding", msg: item(kmip.TagUniqueIdentifier, ttlv.TypeTextString, 3, []byte{'a', 'b', 'c', 0, 0, 'x', 0, 0}), wantErr: "non-zero padding"},
		{name: "fail boolean 2", msg: item(kmip.TagBatchOrderOption, ttlv.TypeBoolean, 8, []byte{0, 0, 0, 0, 0, 0, 0, 2}), wantErr: "Boolean must be 0 or 1"},
		{name: "fail big integer of 0 bytes", msg: item(kmip.TagModulus, ttlv.TypeBigInteger, 0, nil), wantErr: "Big Integer"},
		{name: "fail invalid utf-8", msg: item(kmip.TagUniqueIdentifier, ttlv.TypeTextString, 2, []byte{0xff, 0xfe, 0, 0, 0, 0, 0, 0}), wantErr: "UTF-8"},
		{name: "fail deep nesting", msg: nested(40), wantErr: "nested deeper"},
		{name: "fail structure not filled", msg: item(kmip.TagRequestMessage, ttlv.TypeStructure, 4, make([]byte, 8)), wantErr: "truncated item header"},
		{name: "fail child past parent", msg: withByte(7, valid[7]-8), wantErr: "runs past the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.msg, Limits{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var we *Error
			if !errors.As(err, &we) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseItemLimit(t *testing.T) {
	var body []byte
	for range 100 {
		body = append(body, item(kmip.TagBatchCount, ttlv.TypeInteger, 4, make([]byte, 8))...)
	}
	msg := item(kmip.TagRequestMessage, ttlv.TypeStructure, len(body), body)
	if _, err := Parse(msg, Limits{MaxItems: 101}); err != nil {
		t.Fatalf("101 items allowed: %v", err)
	}
	if _, err := Parse(msg, Limits{MaxItems: 100}); err == nil || !strings.Contains(err.Error(), "more than 100 items") {
		t.Fatalf("got %v, want the item limit", err)
	}
}

func TestReadMessage(t *testing.T) {
	valid := validRequest(t)
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    []byte
		wantErr error
		errText string
	}{
		{name: "ok message", in: valid, max: DefaultMaxMessage, want: valid},
		{name: "ok followed by more", in: append(bytes.Clone(valid), valid...), max: DefaultMaxMessage, want: valid},
		{name: "fail closed between messages", in: nil, max: DefaultMaxMessage, wantErr: ErrEmpty},
		{name: "fail truncated header", in: valid[:6], max: DefaultMaxMessage, wantErr: io.ErrUnexpectedEOF},
		{name: "fail truncated body", in: valid[:len(valid)-3], max: DefaultMaxMessage, wantErr: io.ErrUnexpectedEOF},
		{name: "fail 2 GiB declared", in: item(kmip.TagRequestMessage, ttlv.TypeStructure, 1<<31, nil), max: DefaultMaxMessage, errText: "over the limit"},
		{name: "fail 4 GiB declared", in: item(kmip.TagRequestMessage, ttlv.TypeStructure, 1<<32-1, nil), max: DefaultMaxMessage, errText: "over the limit"},
		{name: "fail over a small limit", in: valid, max: 64, errText: "over the limit"},
		{name: "fail not a request", in: item(kmip.TagResponseMessage, ttlv.TypeStructure, 0, nil), max: DefaultMaxMessage, errText: "not a Request Message"},
		{name: "fail length not aligned", in: item(kmip.TagRequestMessage, ttlv.TypeStructure, 12, make([]byte, 16)), max: DefaultMaxMessage, errText: "multiple of 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			firsts := 0
			got, err := ReadMessage(bytes.NewReader(tt.in), tt.max, func() { firsts++ })
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
			case tt.errText != "":
				var fe *FrameError
				if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("got %v, want a framing error containing %q", err, tt.errText)
				}
			default:
				if err != nil || !bytes.Equal(got, tt.want) || firsts != 1 {
					t.Fatalf("got %d bytes, %v, first called %d times", len(got), err, firsts)
				}
			}
		})
	}
}

func TestDecodeRequest(t *testing.T) {
	valid := validRequest(t)
	root, err := Parse(valid, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	req, err := DecodeRequest(valid, root)
	if err != nil {
		t.Fatal(err)
	}
	if v := req.Header.ProtocolVersion; v != kmip.V1_4 {
		t.Errorf("version %v", v)
	}
	if len(req.Items) != 2 || req.Items[0].Operation != kmip.OperationCreate || req.Items[1].Operation != kmip.OperationGet {
		t.Fatalf("items: %+v", req.Items)
	}
	c, ok := req.Items[0].Payload.(*payloads.CreateRequestPayload)
	if !ok || len(c.TemplateAttribute.Attribute) != 3 || c.TemplateAttribute.Attribute[2].AttributeValue.(kmip.Name).NameValue != "k\u00e9y" {
		t.Fatalf("create payload: %#v", req.Items[0].Payload)
	}
	if v, ok := Version(valid, root); !ok || v != kmip.V1_4 {
		t.Errorf("Version: %v %v", v, ok)
	}
	if v, ok := PeekVersion(valid[:60]); !ok || v != kmip.V1_4 {
		t.Errorf("PeekVersion of a truncated request: %v %v", v, ok)
	}
	if _, ok := PeekVersion(item(kmip.TagRequestMessage, ttlv.TypeStructure, 64, make([]byte, 64))); ok {
		t.Error("PeekVersion of zeros")
	}

	// A payload that does not decode fails its item only.
	bad := kmip.NewRequestMessage(kmip.V1_2,
		kmip.NewUnknownPayload(kmip.OperationGet, ttlv.Value{Tag: kmip.TagUniqueIdentifier, Value: int32(7)}),
		&payloads.GetRequestPayload{UniqueIdentifier: "x"})
	raw := ttlv.MarshalTTLV(&bad)
	root, err = Parse(raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	req, err = DecodeRequest(raw, root)
	if err != nil {
		t.Fatal(err)
	}
	if req.Items[0].Err == nil || req.Items[0].Operation != kmip.OperationGet || len(req.Items[0].ID) == 0 {
		t.Errorf("first item: %+v", req.Items[0])
	}
	if req.Items[1].Err != nil {
		t.Errorf("second item: %v", req.Items[1].Err)
	}

	// A wrong batch count fails the message.
	bad.Header.BatchCount = 3
	raw = ttlv.MarshalTTLV(&bad)
	root, _ = Parse(raw, Limits{})
	if _, err := DecodeRequest(raw, root); err == nil || !strings.Contains(err.Error(), "Batch Count") {
		t.Errorf("batch count: %v", err)
	}
}

// TestRepeatedField checks KMIP 1.4 §11.1: a field a request structure
// holds once per the specification, given twice, is Invalid Message (the
// batch item's, or the message's when it is in the header), and fields the
// specification lets repeat, or vendor-defined content, are taken.
func TestRepeatedField(t *testing.T) {
	type v = ttlv.Value
	type st = ttlv.Struct
	text := func(tag int, s string) v { return v{Tag: tag, Value: s} }
	enum := func(tag int, e uint32) v { return v{Tag: tag, Value: ttlv.Enum(e)} }
	attribute := func(name string, value any) v {
		return v{Tag: kmip.TagAttribute, Value: st{text(kmip.TagAttributeName, name), {Tag: kmip.TagAttributeValue, Value: value}}}
	}
	tpl := func(fields ...v) v { return v{Tag: kmip.TagTemplateAttribute, Value: st(fields)} }
	aes := []v{attribute("Cryptographic Algorithm", ttlv.Enum(kmip.CryptographicAlgorithmAES)), attribute("Cryptographic Length", int32(128))}
	name := func(s string) v {
		return v{Tag: kmip.TagName, Value: st{text(kmip.TagNameValue, s), enum(kmip.TagNameType, uint32(kmip.NameTypeUninterpretedTextString))}}
	}
	create := func(fields ...v) kmip.OperationPayload {
		return kmip.NewUnknownPayload(kmip.OperationCreate, append([]v{enum(kmip.TagObjectType, uint32(kmip.ObjectTypeSymmetricKey))}, fields...)...)
	}
	tests := []struct {
		name    string
		payload kmip.OperationPayload
		wantErr string
	}{
		{name: "ok one of each", payload: kmip.NewUnknownPayload(kmip.OperationGetAttributes, text(kmip.TagUniqueIdentifier, "a"))},
		{name: "fail unique identifier twice", wantErr: "RequestPayload holds UniqueIdentifier more than once",
			payload: kmip.NewUnknownPayload(kmip.OperationGetAttributes, text(kmip.TagUniqueIdentifier, "a"), text(kmip.TagUniqueIdentifier, "b"), text(kmip.TagAttributeName, "State"))},
		{name: "ok attribute names", payload: kmip.NewUnknownPayload(kmip.OperationGetAttributes, text(kmip.TagAttributeName, "State"), text(kmip.TagAttributeName, "Name"))},
		{name: "ok query functions", payload: kmip.NewUnknownPayload(kmip.OperationQuery, enum(kmip.TagQueryFunction, 1), enum(kmip.TagQueryFunction, 2))},
		{name: "ok protocol versions", payload: kmip.NewUnknownPayload(kmip.OperationDiscoverVersions,
			v{Tag: kmip.TagProtocolVersion, Value: st{{Tag: kmip.TagProtocolVersionMajor, Value: int32(1)}, {Tag: kmip.TagProtocolVersionMinor, Value: int32(4)}}},
			v{Tag: kmip.TagProtocolVersion, Value: st{{Tag: kmip.TagProtocolVersionMajor, Value: int32(1)}, {Tag: kmip.TagProtocolVersionMinor, Value: int32(2)}}})},
		{name: "ok locate attributes", payload: kmip.NewUnknownPayload(kmip.OperationLocate, aes...)},
		{name: "fail locate maximum items twice", wantErr: "MaximumItems more than once",
			payload: kmip.NewUnknownPayload(kmip.OperationLocate, v{Tag: kmip.TagMaximumItems, Value: int32(1)}, v{Tag: kmip.TagMaximumItems, Value: int32(9)})},
		{name: "fail attributes outside a locate", wantErr: "RequestPayload holds Attribute more than once",
			payload: kmip.NewUnknownPayload(kmip.OperationAddAttribute, text(kmip.TagUniqueIdentifier, "a"), aes[0], aes[1])},
		{name: "ok template attributes and names", payload: create(tpl(append([]v{name("n1"), name("n2")}, aes...)...))},
		{name: "fail template-attribute twice", wantErr: "RequestPayload holds TemplateAttribute more than once", payload: create(tpl(aes...), tpl())},
		{name: "fail attribute value twice", wantErr: "Attribute holds AttributeValue more than once",
			payload: create(tpl(v{Tag: kmip.TagAttribute, Value: st{text(kmip.TagAttributeName, "Cryptographic Length"), {Tag: kmip.TagAttributeValue, Value: int32(128)}, {Tag: kmip.TagAttributeValue, Value: int32(256)}}}))},
		{name: "fail name value twice", wantErr: "Name holds NameValue more than once",
			payload: create(tpl(v{Tag: kmip.TagName, Value: st{text(kmip.TagNameValue, "a"), text(kmip.TagNameValue, "b")}}))},
		{name: "ok custom attribute value", payload: create(tpl(attribute("x-mine", st{text(kmip.TagNameValue, "a"), text(kmip.TagNameValue, "b")})))},
		{name: "fail standard attribute value", wantErr: "AttributeValue holds NameValue more than once",
			payload: create(tpl(attribute("Name", st{text(kmip.TagNameValue, "a"), text(kmip.TagNameValue, "b")})))},
		{name: "ok extension fields", payload: kmip.NewUnknownPayload(kmip.OperationGetAttributes, text(0x540001, "a"), text(0x540001, "b"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := kmip.NewRequestMessage(kmip.V1_4, tt.payload, &payloads.GetRequestPayload{UniqueIdentifier: "x"})
			raw := ttlv.MarshalTTLV(&m)
			root, err := Parse(raw, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			req, err := DecodeRequest(raw, root)
			if err != nil {
				t.Fatal(err)
			}
			if req.Items[1].Err != nil {
				t.Fatalf("the other item failed: %v", req.Items[1].Err)
			}
			err = req.Items[0].Err
			var de *DecodeError
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want a decode error containing %q", err, tt.wantErr)
			}
		})
	}

	// In the header, the whole message fails.
	m := kmip.NewRequestMessage(kmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: "x"})
	m.Header.MaximumResponseSize = 4096
	raw := ttlv.MarshalTTLV(&m)
	at := bytes.Index(raw, []byte{0x42, 0x00, 0x50, byte(ttlv.TypeInteger), 0, 0, 0, 4}) // Maximum Response Size
	if at < 0 {
		t.Fatal("no Maximum Response Size in the request")
	}
	field := raw[at : at+16]
	dup := append(append(append([]byte(nil), raw[:at+16]...), field...), raw[at+16:]...)
	grow := func(off, by int) {
		binary.BigEndian.PutUint32(dup[off+4:], binary.BigEndian.Uint32(dup[off+4:])+uint32(by))
	}
	grow(0, 16) // the Request Message
	grow(8, 16) // the Request Header
	root, err := Parse(dup, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeRequest(dup, root); err == nil || !strings.Contains(err.Error(), "RequestHeader holds MaximumResponseSize more than once") {
		t.Fatalf("a header with Maximum Response Size twice: %v", err)
	}
}

func TestRenderRedacts(t *testing.T) {
	secret := []byte("0123456789abcdef-very-secret-key")
	msg := kmip.NewRequestMessage(kmip.V1_4, &payloads.RegisterRequestPayload{
		ObjectType: kmip.ObjectTypeSymmetricKey,
		Object: &kmip.SymmetricKey{KeyBlock: kmip.KeyBlock{
			KeyFormatType: kmip.KeyFormatTypeRaw,
			KeyValue:      &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &secret}}},
		}},
	})
	raw := ttlv.MarshalTTLV(&msg)
	root, err := Parse(raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out := Render(raw, root)
	if strings.Contains(out, "secret") || strings.Contains(out, "3031323334") {
		t.Fatalf("key material in the rendering:\n%s", out)
	}
	if !strings.Contains(out, "KeyValue (Structure): <redacted") || !strings.Contains(out, "Register") {
		t.Fatalf("rendering:\n%s", out)
	}
}

// The Digest attribute's value is computed from the object's material: a
// Locate by Digest, as a debug log renders it, shows its algorithm but not
// its value.
func TestRenderRedactsDigest(t *testing.T) {
	value := []byte("digest-of-a-password-0123456789ab")
	msg := kmip.NewRequestMessage(kmip.V1_4, &payloads.LocateRequestPayload{
		Attribute: []kmip.Attribute{{AttributeName: kmip.AttributeNameDigest, AttributeValue: kmip.Digest{
			HashingAlgorithm: kmip.HashingAlgorithmSHA_256, DigestValue: value, KeyFormatType: kmip.KeyFormatTypeOpaque,
		}}},
	})
	raw := ttlv.MarshalTTLV(&msg)
	root, err := Parse(raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out := Render(raw, root)
	if strings.Contains(out, hex.EncodeToString(value)) || strings.Contains(strings.ToLower(out), "6469676573742d") {
		t.Fatalf("the digest value in the rendering:\n%s", out)
	}
	if !strings.Contains(out, "DigestValue (ByteString): <redacted, 33 bytes>") || !strings.Contains(out, "SHA_256") {
		t.Fatalf("rendering:\n%s", out)
	}
}

// An authenticated encryption tag is a MAC of the data under the key, as
// MAC Data is: a Decrypt rendered for a debug log shows its length only,
// while the IV, public by design, stays readable.
func TestRenderRedactsAuthenticationTag(t *testing.T) {
	iv := []byte("iv-0123456789")
	tag := []byte("gcm-tag-fedcba98")
	msg := kmip.NewRequestMessage(kmip.V1_4, &payloads.DecryptRequestPayload{
		UniqueIdentifier: "1", Data: []byte("ciphertext"), IVCounterNonce: iv, AuthenticatedEncryptionTag: tag,
	})
	raw := ttlv.MarshalTTLV(&msg)
	root, err := Parse(raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out := Render(raw, root)
	if strings.Contains(out, hex.EncodeToString(tag)) {
		t.Fatalf("the tag in the rendering:\n%s", out)
	}
	if !strings.Contains(out, "AuthenticatedEncryptionTag (ByteString): <redacted, 16 bytes>") || !strings.Contains(out, hex.EncodeToString(iv)) {
		t.Fatalf("rendering:\n%s", out)
	}
}

// FuzzDecoder feeds arbitrary bytes to the whole decoding path: framing,
// Parse, DecodeRequest, Version and Render. None may panic, and a message
// that Parse accepts must lie exactly within the input.
func FuzzDecoder(f *testing.F) {
	valid := validRequest(f)
	f.Add(valid)
	f.Add(valid[:40])
	f.Add(item(kmip.TagRequestMessage, ttlv.TypeStructure, 1<<31, nil))
	f.Add(item(kmip.TagRequestMessage, ttlv.TypeStructure, 16, item(kmip.TagBatchCount, ttlv.TypeInteger, 0, nil)))
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := ReadMessage(bytes.NewReader(data), 1<<16, nil)
		if err != nil {
			return
		}
		if len(msg) > len(data) {
			t.Fatalf("framed %d bytes out of %d", len(msg), len(data))
		}
		root, err := Parse(msg, Limits{})
		if err != nil {
			return
		}
		if root.Start != 0 || root.End != len(msg) {
			t.Fatalf("root spans %d..%d of %d", root.Start, root.End, len(msg))
		}
		_ = Render(msg, root)
		_, _ = PeekVersion(msg)
		_, _ = Version(msg, root)
		if req, err := DecodeRequest(msg, root); err == nil {
			resp := kmip.ResponseMessage{Header: kmip.ResponseHeader{ProtocolVersion: req.Header.ProtocolVersion}}
			if _, err := EncodeResponse(&resp); err != nil {
				t.Fatal(err)
			}
		}
	})
}
