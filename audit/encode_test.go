package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// The reference the encoder is held to: the event record of an entry,
// encoded by encoding/json (how events were written before appendEvent).

// build makes the event of an entry for a device: sensitive values become
// HMACs under the device's key. Hash, Seq and Prev are set by the sink.
func build(e *Entry, typ string, key []byte, now time.Time) *eventBody {
	ev := &eventBody{
		Time:      now.UTC(),
		Type:      typ,
		RequestID: e.RequestID,
		Interface: e.Interface,
		Auth:      e.Auth,
		Request:   RequestRecord{Operation: e.Operation, Path: e.Path, Objects: e.Objects, Data: merge(e.Data, e.Sensitive, key)},
	}
	if typ == "response" {
		ev.Response = &ResponseRecord{
			Status:           e.Status,
			Error:            e.Error,
			KMIPResultReason: e.KMIPResultReason,
			XKSErrorName:     e.XKSErrorName,
			Data:             merge(e.ResponseData, e.SensitiveResponse, key),
		}
	}
	return ev
}

func merge(plain map[string]any, sensitive map[string][]byte, key []byte) map[string]any {
	if len(plain) == 0 && len(sensitive) == 0 {
		return nil
	}
	out := make(map[string]any, len(plain)+len(sensitive))
	for k, v := range plain {
		out[k] = v
	}
	for k, v := range sensitive {
		out[k] = hmacValue(key, v)
	}
	return out
}

func referenceEvent(t testing.TB, e *Entry, typ string, key []byte, hmacAccessor bool, now time.Time) []byte {
	t.Helper()
	// Accessor fields: HMACs where the principal's accessor is one, else
	// plain values (a sensitive field of the same name wins).
	c := *e
	c.Data, c.Sensitive = addAccessors(e.Data, e.Sensitive, e.Accessors, hmacAccessor)
	c.ResponseData, c.SensitiveResponse = addAccessors(e.ResponseData, e.SensitiveResponse, e.ResponseAccessors, hmacAccessor)
	ev := build(&c, typ, key, now)
	if hmacAccessor && ev.Auth.TokenAccessor != "" {
		ev.Auth.TokenAccessor = hmacValue(key, []byte(ev.Auth.TokenAccessor))
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func addAccessors(plain map[string]any, sensitive map[string][]byte, acc map[string]string, hmacAccessor bool) (map[string]any, map[string][]byte) {
	if len(acc) == 0 {
		return plain, sensitive
	}
	p, s := map[string]any{}, map[string][]byte{}
	for k, v := range plain {
		p[k] = v
	}
	for k, v := range sensitive {
		s[k] = v
	}
	for k, v := range acc {
		_, isSensitive := sensitive[k]
		switch {
		case isSensitive:
		case hmacAccessor:
			s[k] = []byte(v)
			delete(p, k)
		default:
			p[k] = v
		}
	}
	return p, s
}

// awkward holds the characters encoding/json escapes: quotes, backslash,
// every control character, HTML's three, the two line separators of
// JavaScript, invalid UTF-8 (a stray continuation byte, a cut sequence) and
// plain multi-byte text.
var awkward = func() string {
	var b strings.Builder
	b.WriteString(`quote " backslash \ html <a href="x">&amp;</a> `)
	for c := range 0x20 {
		b.WriteByte(byte(c))
	}
	b.WriteString("\x7f \u2028 \u2029 \xff \xe2\x82 Grüße 鍵 🔑 ")
	return b.String()
}()

type point struct {
	X int     `json:"x"`
	Y float64 `json:"y"`
}

func encodeCases() map[string]*Entry {
	return map[string]*Entry{
		"rest": {
			RequestID: "req-1", Interface: REST, Operation: "update", Path: "keymgmt/key/k",
			Auth:      Principal{TokenAccessor: "acc-1", Policies: []string{"default", "admin"}, RemoteAddr: "127.0.0.1:5000"},
			Objects:   []string{"k"},
			Data:      map[string]any{"type": "aes256-gcm96", "exportable": true, "min": 3, "ttl": 1.5, "deep": map[string]any{"b": []any{1, "two", nil, false}, "a": json.Number("12")}},
			Sensitive: map[string][]byte{"plaintext": []byte("secret")},
			Status:    200, ResponseData: map[string]any{"keys": []string{"a", "b"}, "none": []string(nil), "empty": map[string]any{}, "at": time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), "p": point{1, 2.5}},
			SensitiveResponse: map[string][]byte{"ciphertext": {1, 2, 3}},
		},
		"kmip": {
			RequestID: "kmip-7", Interface: KMIP, Operation: "Get",
			Auth:    Principal{CertSerial: "0a:0b", Scope: "s", Role: "r"},
			Objects: []string{"0194-uid"},
			Data:    map[string]any{"protocol_version": "1.4", "batch_item": 0, "mount": "kmip", "i64": int64(-5), "u64": uint64(1 << 63), "i32": int32(7), "u32": uint32(9)},
			Status:  200, KMIPResultReason: "", ResponseData: map[string]any{"result_status": "Success"},
			SensitiveResponse: map[string][]byte{"key_material": make([]byte, 32)},
		},
		"xks failure": {
			RequestID: "kms-1", Interface: XKS, Operation: "encrypt", Path: "/example/kms/xks/v1",
			Auth:      Principal{AccessKeyID: "AKIA", PrincipalARN: "arn:aws:iam::1:role/x"},
			Data:      map[string]any{"kmsOperation": "Encrypt"},
			Sensitive: map[string][]byte{"plaintext": []byte("p"), "additionalAuthenticatedData": nil},
			Status:    400, Error: "bad", XKSErrorName: "ValidationException",
		},
		"empty": {},
		"sensitive overrides plain": {
			Data:      map[string]any{"secret": "in the clear", "other": 1},
			Sensitive: map[string][]byte{"secret": []byte("x")},
		},
		"awkward strings": {
			RequestID: awkward, Interface: awkward, Operation: awkward, Path: awkward,
			Auth:    Principal{TokenAccessor: awkward, Policies: []string{awkward, ""}, Scope: awkward},
			Objects: []string{awkward},
			Data:    map[string]any{awkward: awkward, "nested": map[string]any{awkward: []any{awkward}}},
			Error:   awkward, KMIPResultReason: awkward,
			ResponseData: map[string]any{"x": awkward},
		},
		"response with data only": {
			ResponseData: map[string]any{"a": 1},
		},
		"response with sensitive data only": {
			SensitiveResponse: map[string][]byte{"b": []byte("x")},
		},
		"nil and typed nil values": {
			Data: map[string]any{"map": map[string]any(nil), "list": []any(nil), "ptr": (*point)(nil), "bytes": []byte(nil),
				"raw": json.RawMessage(nil), "named": map[string]string{"k": "v"}, "mixed": []any{[]string{}, map[string]any{}, float32(1.5), int8(-1), uint(2), uint8(3)}},
		},
		"keys that need escaping": {
			Data:      map[string]any{"": 0, `"q"`: 1, "<tag>": 2, "line sep": 3, "badÿþ": 4},
			Sensitive: map[string][]byte{"&amp;": []byte("v")},
		},
		"token accessors": {
			Auth:              Principal{TokenAccessor: "acc-caller"},
			Data:              map[string]any{"ttl": "1h"},
			Accessors:         map[string]string{"accessor": "acc-target"},
			ResponseData:      map[string]any{"policies": []string{"default"}},
			SensitiveResponse: map[string][]byte{"auth.client_token": []byte("tok")},
			ResponseAccessors: map[string]string{"auth.accessor": "acc-new", "auth.client_token": "a sensitive field wins"},
		},
		"only accessors": {
			Accessors: map[string]string{"accessor": "acc-only"}, ResponseAccessors: map[string]string{"accessor": "acc-only"},
		},
		"deeply nested": {
			Data: map[string]any{"d": deep(maxDirect * 2)},
		},
		"empty collections": {
			Objects: []string{}, Auth: Principal{Policies: []string{}}, Data: map[string]any{}, Sensitive: map[string][]byte{},
			ResponseData: map[string]any{}, SensitiveResponse: map[string][]byte{},
		},
	}
}

func TestAppendEventMatchesEncodingJSON(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 11, 27, 19, 0, 0, 123456789, time.FixedZone("x", 3600))
	for name, e := range encodeCases() {
		for _, typ := range []string{"request", "response"} {
			for _, hmacAcc := range []bool{false, true} {
				want := referenceEvent(t, e, typ, key, hmacAcc, now)
				got, err := appendEvent([]byte("prefix"), e, typ, key, hmacAcc, now)
				if err != nil {
					t.Fatalf("%s %s: %v", name, typ, err)
				}
				if !bytes.Equal(got[len("prefix"):], want) {
					t.Errorf("%s %s hmac_accessor=%v:\n got %s\nwant %s", name, typ, hmacAcc, got[len("prefix"):], want)
				}
				// The same event written with the request section of the
				// request event (what a RequestFixed entry's response
				// event gets) is the same bytes.
				reqEv, at, err := appendEventReusing(nil, e, "request", key, hmacAcc, now, nil)
				if err != nil {
					t.Fatal(err)
				}
				again, _, err := appendEventReusing([]byte("prefix"), e, typ, key, hmacAcc, now, reqEv[at[0]:at[1]])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(again, got) {
					t.Errorf("%s %s hmac_accessor=%v with the request section reused:\n got %s\nwant %s", name, typ, hmacAcc, again, got)
				}
			}
		}
	}
}

// deep nests n maps, every other one in a list.
func deep(n int) map[string]any {
	m := map[string]any{"leaf": true}
	for i := range n {
		if i%2 == 0 {
			m = map[string]any{"m": m}
		} else {
			m = map[string]any{"l": []any{m}}
		}
	}
	return m
}

func TestAppendEventRefusesWhatJSONCannotEncode(t *testing.T) {
	cycle := map[string]any{}
	cycle["self"] = cycle
	list := []any{nil}
	list[0] = list
	for name, v := range map[string]any{"NaN": math.NaN(), "channel": make(chan int), "nested": map[string]any{"f": func() {}},
		"map that holds itself": cycle, "list that holds itself": list} {
		e := &Entry{Data: map[string]any{"v": v}}
		if _, err := appendEvent(nil, e, "request", nil, false, time.Now()); err == nil {
			t.Errorf("%s: encoded", name)
		}
		e = &Entry{ResponseData: map[string]any{"v": v}}
		if _, err := appendEvent(nil, e, "response", nil, false, time.Now()); err == nil {
			t.Errorf("%s in a response: encoded", name)
		}
	}
	if _, err := appendEvent(nil, &Entry{}, "request", nil, false, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil {
		t.Error("a time after the year 9999 was encoded")
	}
}

func FuzzAppendEvent(f *testing.F) {
	f.Add("req", "/path", "value", []byte("secret"), 200, true)
	f.Add(awkward, awkward, awkward, []byte(awkward), -1, false)
	f.Add("", "", "", []byte(nil), 0, false)
	key := []byte("k")
	now := time.Unix(1700000000, 5).UTC()
	f.Fuzz(func(t *testing.T, id, path, value string, secret []byte, status int, hmacAccessor bool) {
		e := &Entry{
			RequestID: id, Interface: REST, Operation: value, Path: path,
			Auth:      Principal{TokenAccessor: value, Policies: []string{id, path}, Role: id},
			Objects:   []string{value, id},
			Data:      map[string]any{value: path, id: []any{value, status}, path: map[string]any{id: value}},
			Sensitive: map[string][]byte{path: secret},
			Status:    status, Error: value, XKSErrorName: id, ResponseData: map[string]any{id: value},
			SensitiveResponse: map[string][]byte{value: secret},
		}
		if status%2 == 0 { // and a sparse entry, whose optional fields are empty
			e = &Entry{RequestID: id, Operation: path, Status: status, Data: map[string]any{id: secret}, ResponseData: map[string]any{value: []string{path}}}
		}
		for _, typ := range []string{"request", "response"} {
			want := referenceEvent(t, e, typ, key, hmacAccessor, now)
			got, err := appendEvent(nil, e, typ, key, hmacAccessor, now)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%v\n got %s\nwant %s", err, got, want)
			}
		}
	})
}

// BenchmarkEncodeEvent: one XKS Encrypt's response event, by the encoder and
// by the encoding/json reference, side by side.
//
//	go test -run '^$' -bench EncodeEvent -count 6 ./audit | benchstat -
func BenchmarkEncodeEvent(b *testing.B) {
	key := []byte("0123456789abcdef0123456789abcdef")
	e := &Entry{
		RequestID: "a4c1f0e2-kms-request-id", Interface: XKS, Operation: "encrypt", Path: "/example/kms/xks/v1",
		Auth:    Principal{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", PrincipalARN: "arn:aws:iam::123456789012:user/Alice", RemoteAddr: "10.0.0.1:443"},
		Objects: []string{"foo"},
		Data: map[string]any{"kmsRequestId": "4112f4d6-db54-4af4-ae30-c55a22a8dfae", "kmsOperation": "GenerateDataKey",
			"kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/5e6a6a1c-2b0f-4a1d-9d39-7c4f0d4bfb0c", "kmsViaService": "ebs"},
		Sensitive:         map[string][]byte{"plaintext": make([]byte, 32), "additionalAuthenticatedData": make([]byte, 64)},
		Status:            200,
		SensitiveResponse: map[string][]byte{"ciphertext": make([]byte, 48)},
	}
	now := time.Now()
	b.Run("append", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = appendEvent(buf[:0], e, "response", key, false, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			referenceEvent(b, e, "response", key, false, now)
		}
	})
}
