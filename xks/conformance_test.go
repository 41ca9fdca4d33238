package xks

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
)

// Every case of the AWS conformance client aws-kms-xksproxy-test-client
// (the 35 default ones and the 14 of -a), rebuilt in Go with the same
// request bodies, sent twice: signed by the real curl --aws-sigv4 and by the
// AWS SDK for Go v2 signer. The assertions are stricter than the client's
// (which greps the response): the exact status and errorName, the decrypted
// plaintext, and the CDIV recomputed here.

const (
	tcPrincipal = "arn:aws:iam::123456789012:user/Alice"
	tcKeyArn    = "arn:aws:kms:us-east-2:123456789012:/key/1234abcd-12ab-34cd-56ef-1234567890ab"
	tcPlain     = "cGxhaW50ZXh0Cg=="
	tcPlain2    = "SGVsbG8gV29ybGQh"
	tcAAD       = "cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5n"
	tcAAD2      = "cHJvamVjdD1ibHVlLGRlcGFydG1lbnQ9ZmluYW5jZQ=="
)

// conn is one signer's view of the test proxy, with the client's settings.
type conn struct {
	t      *testing.T
	e      *testEnv
	s      signer
	prefix string
	akid   string
	secret string
}

func (c conn) post(target string, body any) (int, []byte) {
	c.t.Helper()
	b, ok := body.([]byte)
	if !ok {
		b = must(json.Marshal(body))
	}
	return c.s.post(c.t, c.e, c.e.xksURL(c.prefix, target), b, c.akid, c.secret)
}

func meta(op string) map[string]any {
	return map[string]any{"awsPrincipalArn": tcPrincipal, "kmsKeyArn": tcKeyArn, "kmsOperation": op,
		"kmsRequestId": randomID(), "kmsViaService": "ebs"}
}

func healthBody() map[string]any {
	return map[string]any{"requestMetadata": map[string]any{"kmsOperation": "KmsHealthCheck", "kmsRequestId": randomID()}}
}

var emptyMeta = []byte("{\n    \"requestMetadata\": {\n    }\n}")

// encBody is the client's json_body_encrypt: plaintext, aad and cdiv are
// left out when empty.
func encBody(plaintext, aad string, cdivAlg bool) map[string]any {
	b := map[string]any{"requestMetadata": meta("Encrypt"), "encryptionAlgorithm": "AES_GCM"}
	if plaintext != "" {
		b["plaintext"] = plaintext
	}
	if aad != "" {
		b["additionalAuthenticatedData"] = aad
	}
	if cdivAlg {
		b["ciphertextDataIntegrityValueAlgorithm"] = "SHA_256"
	}
	return b
}

// decBody is the client's json_body_decrypt over an Encrypt answer.
func decBody(enc *EncryptResponse, aad string) map[string]any {
	b := map[string]any{"requestMetadata": meta("Decrypt"), "encryptionAlgorithm": "AES_GCM",
		"ciphertext": enc.Ciphertext, "initializationVector": enc.IV, "authenticationTag": enc.Tag}
	if enc.CiphertextMetadata != nil {
		b["ciphertextMetadata"] = enc.CiphertextMetadata
	}
	if aad != "" {
		b["additionalAuthenticatedData"] = aad
	}
	return b
}

func (c conn) encrypt(key, plaintext, aad string, cdivAlg bool) *EncryptResponse {
	c.t.Helper()
	var r EncryptResponse
	st, b := c.post("keys/"+key+"/encrypt", encBody(plaintext, aad, cdivAlg))
	wantOK(c.t, st, b, &r)
	pt := must(base64.StdEncoding.DecodeString(plaintext))
	if len(r.Ciphertext) != len(pt) || len(r.IV) != 12 || len(r.Tag) != 16 || len(r.CiphertextMetadata) > 20 {
		c.t.Fatalf("malformed encrypt answer: ct %d (pt %d), iv %d, tag %d, meta %d", len(r.Ciphertext), len(pt), len(r.IV), len(r.Tag), len(r.CiphertextMetadata))
	}
	if cdivAlg {
		a := must(base64.StdEncoding.DecodeString(aad))
		h := sha256.New()
		for _, x := range [][]byte{a, r.CiphertextMetadata, r.IV, r.Ciphertext, r.Tag} {
			h.Write(x)
		}
		if !bytes.Equal(h.Sum(nil), r.CDIV) {
			c.t.Fatal("CDIV verification failed")
		}
	} else if r.CDIV != nil {
		c.t.Fatal("a CDIV without ciphertextDataIntegrityValueAlgorithm")
	}
	return &r
}

func (c conn) decryptOK(key string, enc *EncryptResponse, aad, plaintext string) {
	c.t.Helper()
	var r DecryptResponse
	st, b := c.post("keys/"+key+"/decrypt", decBody(enc, aad))
	wantOK(c.t, st, b, &r)
	if base64.StdEncoding.EncodeToString(r.Plaintext) != plaintext {
		c.t.Fatal("decrypt gave back other plaintext")
	}
}

func (c conn) wantErr(target string, body any, name Name) {
	c.t.Helper()
	st, b := c.post(target, body)
	wantError(c.t, st, b, name)
}

func (c conn) with(f func(*conn)) conn {
	d := c
	f(&d)
	return d
}

func TestConformanceClientCases(t *testing.T) {
	e := newTestEnv(t, ConfigInput{})
	largeAAD := base64.StdEncoding.EncodeToString(randBytes(8192))
	largePT := base64.StdEncoding.EncodeToString(randBytes(4096))
	for _, s := range signers {
		t.Run(s.name(), func(t *testing.T) {
			n := 0
			run := func(name string, f func(c conn)) {
				n++
				t.Run(name, func(t *testing.T) {
					f(conn{t: t, e: e, s: s, prefix: testPrefix, akid: e.akid, secret: e.secret})
				})
			}
			badID := func(c *conn) { c.akid = "Invalid" + c.akid }
			badSecret := func(c *conn) { c.secret = "Invalid" + c.secret }
			badPrefix := func(c *conn) { c.prefix += "/invalid" }

			// test_get_health_status: 6 cases.
			run("health ok", func(c conn) {
				var r HealthResponse
				st, b := c.post("health", healthBody())
				wantOK(c.t, st, b, &r)
				if r.FleetSize < 1 || len(r.EKMFleet) < 1 || len(r.EKMFleet) > 10 || r.EKMFleet[0].HealthStatus != "ACTIVE" || r.ProxyVendor == "" || r.EKMVendor == "" {
					t.Fatalf("bad health answer %s", b)
				}
			})
			run("health fail without requestMetadata", func(c conn) { c.wantErr("health", []byte("{}"), ValidationException) })
			run("health fail with empty requestMetadata", func(c conn) { c.wantErr("health", emptyMeta, ValidationException) })
			run("health fail invalid access key id", func(c conn) { c.with(badID).wantErr("health", healthBody(), AuthenticationFailedException) })
			run("health fail invalid secret", func(c conn) { c.with(badSecret).wantErr("health", healthBody(), AuthenticationFailedException) })
			run("health fail invalid URI prefix", func(c conn) { c.with(badPrefix).wantErr("health", healthBody(), InvalidURIPathException) })

			// test_get_key_metadata: 8 cases.
			mdBody := func(op string) map[string]any { return map[string]any{"requestMetadata": meta(op)} }
			for _, op := range []string{"DescribeKey", "CreateKey"} {
				run("metadata ok for "+op, func(c conn) {
					var r MetadataResponse
					st, b := c.post("keys/foo/metadata", mdBody(op))
					wantOK(c.t, st, b, &r)
					if r.KeySpec != "AES_256" || r.KeyStatus != "ENABLED" || len(r.KeyUsage) != 2 || r.KeyUsage[0] != "ENCRYPT" || r.KeyUsage[1] != "DECRYPT" {
						t.Fatalf("bad metadata %s", b)
					}
				})
			}
			run("metadata fail without requestMetadata", func(c conn) { c.wantErr("keys/foo/metadata", []byte("{}"), ValidationException) })
			run("metadata fail with empty requestMetadata", func(c conn) { c.wantErr("keys/foo/metadata", emptyMeta, ValidationException) })
			run("metadata fail non-existent key", func(c conn) {
				c.wantErr("keys/non_existing_key/metadata", mdBody("DescribeKey"), KeyNotFoundException)
			})
			run("metadata fail invalid access key id", func(c conn) {
				c.with(badID).wantErr("keys/foo/metadata", mdBody("DescribeKey"), AuthenticationFailedException)
			})
			run("metadata fail invalid secret", func(c conn) {
				c.with(badSecret).wantErr("keys/foo/metadata", mdBody("DescribeKey"), AuthenticationFailedException)
			})
			run("metadata fail invalid URI prefix", func(c conn) {
				c.with(badPrefix).wantErr("keys/foo/metadata", mdBody("DescribeKey"), InvalidURIPathException)
			})

			// test_encrypt_decrypt: 21 cases (an encrypt and its decrypt count as two).
			run("encrypt fail non-existing key", func(c conn) {
				c.wantErr("keys/non_existing_key/encrypt", encBody(tcPlain, "", false), KeyNotFoundException)
			})
			run("encrypt fail missing plaintext", func(c conn) { c.wantErr("keys/foo/encrypt", encBody("", "", false), ValidationException) })
			run("encrypt fail invalid access key id", func(c conn) {
				c.with(badID).wantErr("keys/foo/encrypt", encBody(tcPlain, "", false), AuthenticationFailedException)
			})
			run("encrypt fail invalid secret", func(c conn) {
				c.with(badSecret).wantErr("keys/foo/encrypt", encBody(tcPlain, "", false), AuthenticationFailedException)
			})
			run("encrypt fail invalid URI path", func(c conn) {
				c.with(badPrefix).wantErr("keys/foo/encrypt", encBody(tcPlain, "", false), InvalidURIPathException)
			})
			var enc *EncryptResponse
			for i := range 2 {
				run("encrypt ok with AAD #"+string(rune('1'+i)), func(c conn) { enc = c.encrypt("foo", tcPlain, tcAAD, false) })
				run("decrypt fail missing AAD #"+string(rune('1'+i)), func(c conn) {
					c.wantErr("keys/foo/decrypt", decBody(enc, ""), InvalidCiphertextException)
				})
			}
			run("encrypt ok with AAD before a different AAD", func(c conn) { enc = c.encrypt("foo", tcPlain, tcAAD, false) })
			run("decrypt fail different AAD", func(c conn) { c.wantErr("keys/foo/decrypt", decBody(enc, tcAAD2), InvalidCiphertextException) })
			run("encrypt ok without AAD", func(c conn) { enc = c.encrypt("foo", tcPlain2, "", false) })
			run("decrypt ok without AAD", func(c conn) { c.decryptOK("foo", enc, "", tcPlain2) })
			run("encrypt ok with AAD", func(c conn) { enc = c.encrypt("foo", tcPlain2, tcAAD, false) })
			run("decrypt ok with the same AAD", func(c conn) { c.decryptOK("foo", enc, tcAAD, tcPlain2) })
			run("encrypt ok with AAD and CDIV", func(c conn) { enc = c.encrypt("foo", tcPlain2, tcAAD, true) })
			run("decrypt ok after CDIV with AAD", func(c conn) { c.decryptOK("foo", enc, tcAAD, tcPlain2) })
			run("encrypt ok with CDIV without AAD", func(c conn) { enc = c.encrypt("foo", tcPlain2, "", true) })
			run("decrypt ok after CDIV without AAD", func(c conn) { c.decryptOK("foo", enc, "", tcPlain2) })
			run("encrypt ok large plaintext and AAD", func(c conn) { enc = c.encrypt("foo", largePT, largeAAD, false) })
			run("decrypt ok large ciphertext and AAD", func(c conn) { c.decryptOK("foo", enc, largeAAD, largePT) })
			if n != 35 {
				t.Fatalf("%d default cases, want 35", n)
			}

			// -a, test_encrypt_only_key: 6 cases.
			run("encrypt-only encrypt ok without AAD", func(c conn) { enc = c.encrypt("encrypt_only_key", tcPlain, "", false) })
			run("encrypt-only decrypt fail without AAD", func(c conn) {
				c.wantErr("keys/encrypt_only_key/decrypt", decBody(enc, ""), InvalidKeyUsageException)
			})
			run("encrypt-only encrypt ok with AAD", func(c conn) { enc = c.encrypt("encrypt_only_key", tcPlain, tcAAD, false) })
			run("encrypt-only decrypt fail with AAD", func(c conn) {
				c.wantErr("keys/encrypt_only_key/decrypt", decBody(enc, tcAAD), InvalidKeyUsageException)
			})
			run("encrypt-only encrypt fail AAD and CDIV", func(c conn) {
				c.wantErr("keys/encrypt_only_key/encrypt", encBody(tcPlain, tcAAD, true), InvalidKeyUsageException)
			})
			run("encrypt-only encrypt fail CDIV without AAD", func(c conn) {
				c.wantErr("keys/encrypt_only_key/encrypt", encBody(tcPlain, "", true), InvalidKeyUsageException)
			})
			// -a, test_decrypt_only_key and test_impotent_key: 4 cases each.
			for _, key := range []string{"decrypt_only_key", "impotent_key"} {
				run(key+" encrypt fail with AAD", func(c conn) {
					c.wantErr("keys/"+key+"/encrypt", encBody(tcPlain, tcAAD, false), InvalidKeyUsageException)
				})
				run(key+" encrypt fail without AAD", func(c conn) {
					c.wantErr("keys/"+key+"/encrypt", encBody(tcPlain, "", false), InvalidKeyUsageException)
				})
				run(key+" encrypt fail AAD and CDIV", func(c conn) {
					c.wantErr("keys/"+key+"/encrypt", encBody(tcPlain, tcAAD, true), InvalidKeyUsageException)
				})
				run(key+" encrypt fail CDIV without AAD", func(c conn) {
					c.wantErr("keys/"+key+"/encrypt", encBody(tcPlain, "", true), InvalidKeyUsageException)
				})
			}
			if n != 49 {
				t.Fatalf("%d cases in all, want 49", n)
			}
		})
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
