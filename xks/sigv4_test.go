package xks

import (
	"bytes"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	tAKID   = "AKIAIOSFODNN7EXAMPLEXYZ2"
	tSecret = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE="
)

func testCred() *credential {
	return &credential{AccessKeyID: tAKID, Prefix: "p", secret: []byte(tSecret)}
}

func lookupTest(id string) *credential {
	if id == tAKID {
		return testCred()
	}
	return nil
}

// serverSide turns a signed client request into what Go's server hands a
// handler (Host moved out of the header map).
func serverSide(t *testing.T, c *http.Request) (*http.Request, []byte) {
	t.Helper()
	body, _ := io.ReadAll(c.Body)
	r := httptest.NewRequest(c.Method, c.URL.String(), bytes.NewReader(body))
	for k, v := range c.Header {
		r.Header[k] = v
	}
	if c.Host != "" {
		r.Host = c.Host
	}
	return r, body
}

func TestVerifySigV4(t *testing.T) {
	url := "https://xks.example.com:8443/a/b/kms/xks/v1/keys/k/encrypt"
	body := []byte(`{"requestMetadata":{}}`)
	now := time.Now()
	cases := []struct {
		name   string
		secret string
		at     time.Time
		mutate func(r *http.Request) []byte // returns the body the server sees
		ok     bool
	}{
		{"ok", tSecret, now, nil, true},
		{"ok 4 minutes old", tSecret, now.Add(-4 * time.Minute), nil, true},
		{"ok 4 minutes ahead", tSecret, now.Add(4 * time.Minute), nil, true},
		{"ok unsigned header added", tSecret, now, func(r *http.Request) []byte { r.Header.Set("X-Other", "1"); return nil }, true},
		{"fail 6 minutes old", tSecret, now.Add(-6 * time.Minute), nil, false},
		{"fail 6 minutes ahead", tSecret, now.Add(6 * time.Minute), nil, false},
		{"fail wrong secret", "x" + tSecret, now, nil, false},
		{"fail body changed", tSecret, now, func(r *http.Request) []byte { return []byte(`{"requestMetadata":{ }}`) }, false},
		{"fail signed content-type changed", tSecret, now, func(r *http.Request) []byte { r.Header.Set("Content-Type", "text/plain"); return nil }, false},
		{"fail host changed", tSecret, now, func(r *http.Request) []byte { r.Host = "xks.example.com"; return nil }, false},
		{"fail path changed", tSecret, now, func(r *http.Request) []byte { r.URL.Path = strings.Replace(r.URL.Path, "/k/", "/j/", 1); return nil }, false},
		{"fail query added", tSecret, now, func(r *http.Request) []byte { r.URL.RawQuery = "a=b"; return nil }, false},
		{"fail method changed", tSecret, now, func(r *http.Request) []byte { r.Method = http.MethodPut; return nil }, false},
		{"fail date changed", tSecret, now, func(r *http.Request) []byte {
			r.Header.Set("X-Amz-Date", now.Add(time.Second).UTC().Format(amzDateFormat))
			return nil
		}, false},
		{"fail two Authorization headers", tSecret, now, func(r *http.Request) []byte {
			r.Header.Add("Authorization", r.Header.Get("Authorization"))
			return nil
		}, false},
		{"fail payload hash header mismatch", tSecret, now, func(r *http.Request) []byte {
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
			return nil
		}, false},
		{"fail other service", tSecret, now, func(r *http.Request) []byte {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/kms-xks-proxy/", "/kms/", 1))
			return nil
		}, false},
		{"fail unknown access key", tSecret, now, func(r *http.Request) []byte {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), tAKID, "AAAAAAAAAAAAAAAAAAAAAAAA", 1))
			return nil
		}, false},
		{"fail x-amz-date not signed", tSecret, now, func(r *http.Request) []byte {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", strings.Replace(a, ";x-amz-date", "", 1))
			return nil
		}, false},
		{"fail no Authorization", tSecret, now, func(r *http.Request) []byte { r.Header.Del("Authorization"); return nil }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cr := sdkRequest(t, url, body, tAKID, c.secret, c.at)
			r, b := serverSide(t, cr)
			if c.mutate != nil {
				if nb := c.mutate(r); nb != nil {
					b = nb
				}
			}
			cred, err := verifySigV4(r, b, now, lookupTest)
			if c.ok != (err == nil) {
				t.Fatalf("ok=%v, err=%v", c.ok, err)
			}
			if err != nil {
				if err.Name != AuthenticationFailedException || status(err.Name) != 401 {
					t.Fatalf("want AuthenticationFailedException, got %v", err)
				}
				if strings.Contains(err.Error(), tSecret) || strings.Contains(err.Msg, tAKID) {
					t.Fatal("the error reveals the secret or the access key id")
				}
			} else if cred.AccessKeyID != tAKID {
				t.Fatal("wrong credential")
			}
		})
	}
}

// The SDK signer signs content-length with content-type, host and
// x-amz-date; the check covers every header listed, including that one.
func TestVerifySigV4SignedHeadersOfSDK(t *testing.T) {
	cr := sdkRequest(t, "https://h:1/kms/xks/v1/health", []byte("{}"), tAKID, tSecret, time.Now())
	a, err := parseAuthorization(cr.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"content-type", "host", "x-amz-date"} {
		if !slices.Contains(a.SignedHeaders, h) {
			t.Fatalf("SDK did not sign %s: %v", h, a.SignedHeaders)
		}
	}
	r, b := serverSide(t, cr)
	if _, err := verifySigV4(r, b, time.Now(), lookupTest); err != nil {
		t.Fatal(err)
	}
}

func TestParseAuthorization(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	good := "AWS4-HMAC-SHA256 Credential=AK/20240101/us-east-1/kms-xks-proxy/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + sig
	a, err := parseAuthorization(good)
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessKeyID != "AK" || a.Date != "20240101" || a.Region != "us-east-1" || a.Service != "kms-xks-proxy" ||
		!slices.Equal(a.SignedHeaders, []string{"content-type", "host", "x-amz-date"}) || hex.EncodeToString(a.Signature) != sig {
		t.Fatalf("parsed %+v", a)
	}
	if _, err := parseAuthorization(strings.ReplaceAll(good, ", ", ",")); err != nil {
		t.Fatalf("no spaces after commas: %v", err)
	}
	for name, bad := range map[string]string{
		"fail other scheme":       strings.Replace(good, "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512", 1),
		"fail short credential":   strings.Replace(good, "/aws4_request", "", 1),
		"fail other terminator":   strings.Replace(good, "aws4_request", "aws4_x", 1),
		"fail empty field":        strings.Replace(good, "us-east-1", "", 1),
		"fail unsorted headers":   strings.Replace(good, "content-type;host", "host;content-type", 1),
		"fail duplicate header":   strings.Replace(good, "content-type;host", "host;host", 1),
		"fail upper-case header":  strings.Replace(good, "content-type", "Content-Type", 1),
		"fail short signature":    strings.Replace(good, sig, sig[:62], 1),
		"fail upper-case hex":     strings.Replace(good, sig, strings.ToUpper(sig), 1),
		"fail missing signature":  good[:strings.Index(good, ", Signature")],
		"fail repeated component": good + ", Signature=" + sig,
		"fail unknown component":  good + ", Foo=bar",
		"fail empty":              "",
	} {
		if _, err := parseAuthorization(bad); err == nil {
			t.Errorf("%s: accepted %q", name, bad)
		}
	}
}

// FuzzParseAuthorization: never panics; what it accepts, formatted back,
// parses to the same header.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AK/20240101/us-east-1/kms-xks-proxy/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + strings.Repeat("0f", 32))
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request,SignedHeaders=host,Signature=" + strings.Repeat("00", 32))
	f.Add("AWS4-HMAC-SHA256 ,,,")
	f.Add("AWS4-HMAC-SHA256 Credential=====")
	f.Fuzz(func(t *testing.T, v string) {
		a, err := parseAuthorization(v)
		if err != nil {
			return
		}
		back := sigV4Algorithm + " Credential=" + a.AccessKeyID + "/" + a.Date + "/" + a.Region + "/" + a.Service + "/" + sigV4Term +
			", SignedHeaders=" + strings.Join(a.SignedHeaders, ";") + ", Signature=" + hex.EncodeToString(a.Signature)
		b, err := parseAuthorization(back)
		if err != nil {
			t.Fatalf("reformatted header refused: %v", err)
		}
		if a.AccessKeyID != b.AccessKeyID || a.Date != b.Date || a.Region != b.Region || a.Service != b.Service ||
			!slices.Equal(a.SignedHeaders, b.SignedHeaders) || !bytes.Equal(a.Signature, b.Signature) {
			t.Fatalf("round trip changed %+v to %+v", a, b)
		}
	})
}
