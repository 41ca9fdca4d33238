package xks

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// The spec's Appendix C example: 33 bytes of AAD, 13 of ciphertextMetadata,
// 12 of IV, 12 of ciphertext and a 16-byte tag give this SHA-256.
func TestCDIVSpecVector(t *testing.T) {
	aad := []byte("project=nile,department=marketing")
	meta := must(base64.StdEncoding.DecodeString("a2V5X3ZlcnNpb249MQ=="))
	iv := must(base64.StdEncoding.DecodeString("HMrlRw85cAJUd5Ax"))
	ct := must(base64.StdEncoding.DecodeString("ghxkK1txeDNn3q8Y"))
	tag := must(base64.StdEncoding.DecodeString("vBxN2ncH1oEkR8WVXpmyYQ=="))
	if len(aad) != 33 || len(meta) != 13 || len(iv) != 12 || len(ct) != 12 || len(tag) != 16 {
		t.Fatal("vector sizes differ from the spec's")
	}
	got := cdiv(aad, meta, iv, ct, tag)
	if hex.EncodeToString(got) != "a8703f2260bd8791ec2d15ea0b23e65a0631eedcf2a13a65cc82db3f47cf5ec7" {
		t.Fatalf("cdiv = %x", got)
	}
	if base64.StdEncoding.EncodeToString(got) != "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc=" {
		t.Fatal("cdiv Base64 differs from the spec's")
	}
}

// The AAD given to the HSM carries both lengths, so AAD and metadata cannot
// be shifted into one another (the spec's NOTE under ciphertextMetadata).
func TestGCMAADConstruction(t *testing.T) {
	got := gcmAAD([]byte("ab"), []byte("kh1"))
	want := []byte{0, 2, 'a', 'b', 3, 'k', 'h', '1'}
	if !bytes.Equal(got, want) {
		t.Fatalf("gcmAAD = %x, want %x", got, want)
	}
	if bytes.Equal(gcmAAD(nil, []byte("x")), gcmAAD([]byte("x"), nil)) {
		t.Fatal("AAD and metadata are confusable")
	}
	if !bytes.Equal(gcmAAD(nil, nil), []byte{0, 0, 0}) {
		t.Fatal("absent fields must count as zero lengths")
	}
}

var testLimits = Limits{MaxPlaintext: 4300, MaxAAD: 8192}

func TestParseRequest(t *testing.T) {
	md := `"requestMetadata":{"awsPrincipalArn":"p","kmsKeyArn":"k","kmsOperation":"Encrypt","kmsRequestId":"r"}`
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	enc := func(extra string) string { return `{` + md + `,"encryptionAlgorithm":"AES_GCM"` + extra + `}` }
	dec := func(extra string) string {
		return `{` + md + `,"encryptionAlgorithm":"AES_GCM","ciphertext":"` + b64(10) + `","initializationVector":"` + b64(12) + `"` + extra + `}`
	}
	tag := `,"authenticationTag":"` + b64(16) + `"`
	cases := []struct {
		name string
		op   Operation
		body string
		want Name // "" for ok
	}{
		{"ok health minimal", OpHealth, `{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"x"}}`, ""},
		{"ok unknown fields ignored", OpHealth, `{"x":1,"requestMetadata":{"kmsOperation":"K","kmsRequestId":"x","newField":"v"}}`, ""},
		{"ok metadata without key arn", OpMetadata, `{"requestMetadata":{"awsPrincipalArn":"p","kmsOperation":"CreateKey","kmsRequestId":"r"}}`, ""},
		{"ok encrypt 4300 B and 8192 B AAD", OpEncrypt, enc(`,"plaintext":"` + b64(4300) + `","additionalAuthenticatedData":"` + b64(8192) + `"`), ""},
		{"ok encrypt with CDIV", OpEncrypt, enc(`,"plaintext":"` + b64(1) + `","ciphertextDataIntegrityValueAlgorithm":"SHA_256"`), ""},
		{"ok decrypt", OpDecrypt, dec(tag + `,"ciphertextMetadata":"` + b64(20) + `"`), ""},
		{"fail not an object", OpHealth, `[]`, ValidationException},
		{"fail empty body", OpHealth, ``, ValidationException},
		{"fail malformed", OpHealth, `{"requestMetadata":`, ValidationException},
		{"fail no metadata", OpHealth, `{}`, ValidationException},
		{"fail null metadata", OpHealth, `{"requestMetadata":null}`, ValidationException},
		{"fail health no request id", OpHealth, `{"requestMetadata":{"kmsOperation":"K"}}`, ValidationException},
		{"fail metadata no principal", OpMetadata, `{"requestMetadata":{"kmsOperation":"K","kmsRequestId":"r"}}`, ValidationException},
		{"fail encrypt no key arn", OpEncrypt, `{"requestMetadata":{"awsPrincipalArn":"p","kmsOperation":"K","kmsRequestId":"r"},"plaintext":"AA==","encryptionAlgorithm":"AES_GCM"}`, ValidationException},
		{"fail wrong type", OpEncrypt, enc(`,"plaintext":5`), ValidationException},
		{"fail overlong metadata field", OpHealth, `{"requestMetadata":{"kmsOperation":"K","kmsRequestId":"` + strings.Repeat("r", maxFieldLen+1) + `"}}`, ValidationException},
		{"fail no plaintext", OpEncrypt, enc(``), ValidationException},
		{"fail bad base64", OpEncrypt, enc(`,"plaintext":"@@@"`), ValidationException},
		{"fail no algorithm", OpEncrypt, `{` + md + `,"plaintext":"AA=="}`, ValidationException},
		{"fail other algorithm", OpEncrypt, `{` + md + `,"plaintext":"AA==","encryptionAlgorithm":"AES_CBC"}`, UnsupportedOperationException},
		{"fail other CDIV algorithm", OpEncrypt, enc(`,"plaintext":"AA==","ciphertextDataIntegrityValueAlgorithm":"MD5"`), UnsupportedOperationException},
		{"fail plaintext over limit", OpEncrypt, enc(`,"plaintext":"` + b64(4301) + `"`), UnsupportedOperationException},
		{"fail AAD over limit", OpEncrypt, enc(`,"plaintext":"AA==","additionalAuthenticatedData":"` + b64(8193) + `"`), UnsupportedOperationException},
		{"fail decrypt no tag", OpDecrypt, dec(``), ValidationException},
		{"fail decrypt metadata over 20 B", OpDecrypt, dec(tag + `,"ciphertextMetadata":"` + b64(21) + `"`), ValidationException},
		{"fail decrypt short tag", OpDecrypt, dec(`,"authenticationTag":"` + b64(12) + `"`), InvalidCiphertextException},
		{"fail decrypt IV of 13 B", OpDecrypt, strings.Replace(dec(tag), b64(12), b64(13), 1), InvalidCiphertextException},
		// However long, a wrong IV or tag is a ciphertext this proxy did
		// not make, not a limit of the implementation.
		// Names as the spec spells them, each once: encoding/json would take
		// "PLAINTEXT" for plaintext, and the last of two.
		{"fail a member in another case", OpEncrypt, enc(`,"PLAINTEXT":"AA=="`), ValidationException},
		{"fail a member twice", OpEncrypt, enc(`,"plaintext":"AA==","plaintext":"AQ=="`), ValidationException},
		{"fail a member twice in two cases", OpEncrypt, enc(`,"plaintext":"AA==","PlainText":"AQ=="`), ValidationException},
		{"fail a metadata member twice", OpHealth, `{"requestMetadata":{"kmsOperation":"K","kmsRequestId":"x","kmsRequestId":"y"}}`, ValidationException},
		{"fail a member twice, one escaped", OpEncrypt, enc(`,"plaintext":"AA==","\u0070laintext":"AQ=="`), ValidationException},
		{"fail a member twice after many others", OpEncrypt, enc(`,"plaintext":"AA==",` + manyMembers(100) + `,"Plaintext":"AQ=="`), ValidationException},
		{"ok many other members", OpEncrypt, enc(`,"plaintext":"AA==",` + manyMembers(100)), ""},
		{"fail a metadata member in another case", OpMetadata, `{"requestMetadata":{"AwsPrincipalArn":"p","kmsOperation":"K","kmsRequestId":"r"}}`, ValidationException},
		{"fail decrypt IV of 65 B", OpDecrypt, strings.Replace(dec(tag), b64(12), b64(65), 1), InvalidCiphertextException},
		{"fail decrypt tag of 65 B", OpDecrypt, dec(`,"authenticationTag":"` + b64(65) + `"`), InvalidCiphertextException},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRequest(c.op, []byte(c.body), testLimits)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("want ok, got %v", err)
			case c.want != "" && (err == nil || err.Name != c.want):
				t.Fatalf("want %s, got %v", c.want, err)
			}
		})
	}
}

// FuzzParseRequest: the parser never panics, its errors are XKS errors with
// printable ASCII messages under 512 characters, and an accepted request
// re-encoded parses to the same request.
func FuzzParseRequest(f *testing.F) {
	f.Add(0, []byte(`{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"x"}}`))
	f.Add(2, []byte(`{"requestMetadata":{"awsPrincipalArn":"p","kmsKeyArn":"k","kmsOperation":"Encrypt","kmsRequestId":"r"},"plaintext":"SGVsbG8=","additionalAuthenticatedData":"YQ==","encryptionAlgorithm":"AES_GCM","ciphertextDataIntegrityValueAlgorithm":"SHA_256"}`))
	f.Add(3, []byte(`{"requestMetadata":{"awsPrincipalArn":"p","kmsKeyArn":"k","kmsOperation":"Decrypt","kmsRequestId":"r"},"ciphertext":"SGVsbG8=","initializationVector":"AAAAAAAAAAAAAAAA","authenticationTag":"AAAAAAAAAAAAAAAAAAAAAA==","ciphertextMetadata":"a2gx","encryptionAlgorithm":"AES_GCM"}`))
	f.Add(1, []byte(`{"requestMetadata":{}}`))
	f.Add(2, []byte(`{"plaintext":"\u0000"}`))
	ops := []Operation{OpHealth, OpMetadata, OpEncrypt, OpDecrypt}
	f.Fuzz(func(t *testing.T, opi int, body []byte) {
		op := ops[uint(opi)%4]
		req, err := ParseRequest(op, body, testLimits)
		if err != nil {
			if _, ok := statuses[err.Name]; !ok {
				t.Fatalf("unknown error name %q", err.Name)
			}
			if len(err.Msg) >= 512 {
				t.Fatal("error message too long")
			}
			for _, c := range []byte(err.Msg) {
				if c < 0x20 || c > 0x7e {
					t.Fatalf("non-printable error message %q", err.Msg)
				}
			}
			return
		}
		again, err := ParseRequest(op, reencode(op, req), testLimits)
		if err != nil {
			t.Fatalf("re-encoded request refused: %v", err)
		}
		if !equalRequests(req, again) {
			t.Fatalf("round trip changed the request: %+v vs %+v", req, again)
		}
	})
}

func reencode(op Operation, r *Request) []byte {
	m := map[string]any{"requestMetadata": r.Meta}
	put := func(k string, v []byte) {
		if v != nil {
			m[k] = v
		}
	}
	if op == OpEncrypt || op == OpDecrypt {
		m["encryptionAlgorithm"] = "AES_GCM"
	}
	put("plaintext", r.Plaintext)
	put("additionalAuthenticatedData", r.AAD)
	put("ciphertext", r.Ciphertext)
	put("ciphertextMetadata", r.CiphertextMetadata)
	put("initializationVector", r.IV)
	put("authenticationTag", r.Tag)
	if r.CDIV {
		m["ciphertextDataIntegrityValueAlgorithm"] = "SHA_256"
	}
	b, _ := json.Marshal(m)
	return b
}

func equalRequests(a, b *Request) bool {
	return a.Meta == b.Meta && a.CDIV == b.CDIV && bytes.Equal(a.Plaintext, b.Plaintext) && bytes.Equal(a.AAD, b.AAD) &&
		bytes.Equal(a.Ciphertext, b.Ciphertext) && bytes.Equal(a.CiphertextMetadata, b.CiphertextMetadata) &&
		bytes.Equal(a.IV, b.IV) && bytes.Equal(a.Tag, b.Tag)
}

func TestParseRoute(t *testing.T) {
	cases := []struct {
		path string
		ok   bool
		want route
	}{
		{"/kms/xks/v1/health", true, route{Prefix: "", Op: OpHealth}},
		{"//kms/xks/v1/health", true, route{Prefix: "", Op: OpHealth}},
		{"/a/b/kms/xks/v1/keys/k-1.x_/encrypt", true, route{Prefix: "a/b", Op: OpEncrypt, KeyID: "k-1.x_"}},
		{"/a/kms/xks/v1/keys/k/metadata", true, route{Prefix: "a", Op: OpMetadata, KeyID: "k"}},
		{"/kms/xks/v1/kms/xks/v1/keys/k/decrypt", true, route{Prefix: "kms/xks/v1", Op: OpDecrypt, KeyID: "k"}},
		{"/kms/xks/v1/keys/k/sign", false, route{}},
		{"/kms/xks/v1/keys//encrypt", false, route{}},
		{"/kms/xks/v1/keys/a/b/encrypt", false, route{}},
		{"/kms/xks/v1/keys/" + strings.Repeat("k", 129) + "/encrypt", false, route{}},
		{"/kms/xks/v2/health", false, route{}},
		{"/health", false, route{}},
		{"", false, route{}},
	}
	for _, c := range cases {
		got, ok := parseRoute(c.path)
		if ok != c.ok || got != c.want {
			t.Errorf("parseRoute(%q) = %+v, %v; want %+v, %v", c.path, got, ok, c.want, c.ok)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"arn:aws:iam::123456789012:user/*", "arn:aws:iam::123456789012:user/Alice", true},
		{"arn:aws:iam::123456789012:user/*", "arn:aws:iam::999999999999:user/Alice", false},
		{"*", "x", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"Encrypt", "Encrypt", true},
		{"Encrypt", "encrypt", false},
		{"*Key", "GenerateDataKey", true},
	} {
		if glob(c.p, c.s) != c.ok {
			t.Errorf("glob(%q, %q) != %v", c.p, c.s, c.ok)
		}
	}
}

// manyMembers is n members of unknown names, with values of every kind.
func manyMembers(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"x%d":[{"a":"}]\""},1,true,null]`, i))
	}
	return strings.Join(parts, ",")
}
