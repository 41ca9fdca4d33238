package xks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SigV4 verification of XKS requests (spec Appendix A): the signature is
// recomputed over exactly the headers the client listed in SignedHeaders,
// the request path and query, and the SHA-256 of the body, with a signing key
// derived from the access key's secret; the request time must be within
// MaxClockSkew of the proxy's clock, the credential scope's service must be
// kms-xks-proxy and its region, if the key store has one, the key store's
// (AWS KMS signs for the region it calls from). Every failure is the same
// AuthenticationFailedException on the wire; the reason is for the log and
// never contains the secret.

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	sigV4Service   = "kms-xks-proxy"
	sigV4Term      = "aws4_request"
	amzDateFormat  = "20060102T150405Z"
	// MaxClockSkew is how far a request's X-Amz-Date may be from the proxy's clock.
	MaxClockSkew = 5 * time.Minute
)

// authHeader is a parsed SigV4 Authorization header.
type authHeader struct {
	AccessKeyID   string
	Date          string // yyyymmdd of the credential scope
	Region        string
	Service       string
	SignedHeaders []string // lower case, sorted, unique
	Signature     []byte   // 32 bytes
}

// errAuthSyntax is the cause of every malformed Authorization header.
var errAuthSyntax = errors.New("malformed SigV4 Authorization header")

func authSyntax(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errAuthSyntax}, args...)...)
}

// parseAuthorization parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/
// SERVICE/aws4_request, SignedHeaders=a;b, Signature=HEX`. It checks syntax
// only; the values are checked by verify.
func parseAuthorization(v string) (*authHeader, error) {
	rest, ok := strings.CutPrefix(v, sigV4Algorithm+" ")
	if !ok {
		return nil, authSyntax("want the %s scheme", sigV4Algorithm)
	}
	var a authHeader
	var seen [3]bool
	for _, part := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, authSyntax("component without '='")
		}
		switch k {
		case "Credential":
			if seen[0] {
				return nil, authSyntax("Credential twice")
			}
			seen[0] = true
			f := strings.Split(val, "/")
			if len(f) != 5 {
				return nil, authSyntax("Credential must have 5 '/'-separated fields, got %d", len(f))
			}
			for _, x := range f {
				if x == "" {
					return nil, authSyntax("empty Credential field")
				}
			}
			if f[4] != sigV4Term {
				return nil, authSyntax("credential scope must end in %s", sigV4Term)
			}
			a.AccessKeyID, a.Date, a.Region, a.Service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			if seen[1] {
				return nil, authSyntax("SignedHeaders twice")
			}
			seen[1] = true
			hs := strings.Split(val, ";")
			for i, h := range hs {
				if h == "" || h != strings.ToLower(h) || strings.ContainsAny(h, " \t:") {
					return nil, authSyntax("invalid signed header name")
				}
				if i > 0 && hs[i-1] >= h {
					return nil, authSyntax("SignedHeaders must be sorted and unique")
				}
			}
			a.SignedHeaders = hs
		case "Signature":
			if seen[2] {
				return nil, authSyntax("Signature twice")
			}
			seen[2] = true
			sig, err := hex.DecodeString(val)
			if err != nil || len(sig) != sha256.Size || val != strings.ToLower(val) {
				return nil, authSyntax("Signature must be 64 lower-case hex digits")
			}
			a.Signature = sig
		default:
			return nil, authSyntax("unknown component")
		}
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return nil, authSyntax("Credential, SignedHeaders and Signature are all required")
	}
	return &a, nil
}

// credential is one active SigV4 key pair of a path prefix. The secret lives
// only in memory (sealed under an HSM key in the store).
type credential struct {
	AccessKeyID string
	Prefix      string
	Region      string // the key store's AWS region; "" takes any
	secret      []byte

	mu   sync.Mutex
	keys map[string][]byte // signing keys by date/region
}

// signingKey derives (and caches, per scope date and region) the SigV4
// signing key.
func (c *credential) signingKey(date, region string) []byte {
	scope := date + "/" + region
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.keys[scope]; ok {
		return k
	}
	k := hmacSHA256(append([]byte("AWS4"), c.secret...), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, sigV4Service)
	k = hmacSHA256(k, sigV4Term)
	if c.keys == nil || len(c.keys) > 16 {
		c.keys = map[string][]byte{}
	}
	c.keys[scope] = k
	return k
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// authFailure is the wire error of every SigV4 failure; cause is logged.
func authFailure(cause error) *Error {
	return &Error{Name: AuthenticationFailedException, Msg: "the request signature could not be verified", Err: cause}
}

// verifySigV4 authenticates r (whose body is body) and returns the credential
// that signed it. lookup finds a credential by access key id.
func verifySigV4(r *http.Request, body []byte, now time.Time, lookup func(string) *credential) (*credential, *Error) {
	hv := r.Header.Values("Authorization")
	if len(hv) != 1 {
		return nil, authFailure(errors.New("want exactly one Authorization header"))
	}
	a, err := parseAuthorization(hv[0])
	if err != nil {
		return nil, authFailure(err)
	}
	if a.Service != sigV4Service {
		return nil, authFailure(fmt.Errorf("credential scope service %q is not %s", a.Service, sigV4Service))
	}
	if !contains(a.SignedHeaders, "host") || !contains(a.SignedHeaders, "x-amz-date") {
		return nil, authFailure(errors.New("host and x-amz-date must be signed"))
	}
	dv := r.Header.Values("X-Amz-Date")
	if len(dv) != 1 {
		return nil, authFailure(errors.New("want exactly one X-Amz-Date header"))
	}
	t, err := time.Parse(amzDateFormat, dv[0])
	if err != nil {
		return nil, authFailure(errors.New("malformed X-Amz-Date"))
	}
	if d := now.Sub(t); d > MaxClockSkew || d < -MaxClockSkew {
		return nil, authFailure(fmt.Errorf("request time %s is more than %v from the proxy's clock", dv[0], MaxClockSkew))
	}
	if a.Date != t.Format("20060102") {
		return nil, authFailure(errors.New("credential scope date differs from X-Amz-Date"))
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if cv := r.Header.Values("X-Amz-Content-Sha256"); len(cv) > 0 && (len(cv) != 1 || cv[0] != payloadHash) {
		return nil, authFailure(errors.New("X-Amz-Content-Sha256 does not match the body"))
	}
	cr, err := canonicalRequest(r, a.SignedHeaders, payloadHash)
	if err != nil {
		return nil, authFailure(err)
	}
	c := lookup(a.AccessKeyID)
	if c == nil {
		return nil, authFailure(errors.New("unknown access key id"))
	}
	crSum := sha256.Sum256([]byte(cr))
	scope := a.Date + "/" + a.Region + "/" + a.Service + "/" + sigV4Term
	sts := sigV4Algorithm + "\n" + dv[0] + "\n" + scope + "\n" + hex.EncodeToString(crSum[:])
	want := hmacSHA256(c.signingKey(a.Date, a.Region), sts)
	if !hmac.Equal(want, a.Signature) {
		return nil, authFailure(errors.New("signature mismatch"))
	}
	if c.Region != "" && a.Region != c.Region {
		// Checked once the signature holds, so that the log tells a
		// signer of another region (a key store configured in AWS KMS
		// with this proxy's credential) from a forged request.
		return nil, authFailure(fmt.Errorf("signed for region %q; the key store is in %s", a.Region, c.Region))
	}
	return c, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// canonicalRequest builds SigV4's canonical request from exactly the signed headers.
func canonicalRequest(r *http.Request, signed []string, payloadHash string) (string, error) {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(awsEscape(r.URL.Path, false))
	b.WriteByte('\n')
	q, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return "", err
	}
	b.WriteString(q)
	b.WriteByte('\n')
	for _, h := range signed {
		v, ok := headerValue(r, h)
		if !ok {
			return "", fmt.Errorf("signed header %q is missing", h)
		}
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(v)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String(), nil
}

// headerValue is a header's canonical value: its values trimmed, inner runs
// of spaces collapsed, joined with commas. Host and Content-Length come from
// where Go's server keeps them.
func headerValue(r *http.Request, name string) (string, bool) {
	switch name {
	case "host":
		return r.Host, r.Host != ""
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) > 0 {
			break
		}
		if r.ContentLength < 0 {
			return "", false
		}
		return strconv.FormatInt(r.ContentLength, 10), true
	}
	vs := r.Header.Values(name)
	if len(vs) == 0 {
		return "", false
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(out, ","), true
}

// canonicalQuery sorts and escapes the query parameters.
func canonicalQuery(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return "", errors.New("malformed query string")
	}
	var pairs []string
	for k, vs := range vals {
		for _, v := range vs {
			pairs = append(pairs, awsEscape(k, true)+"="+awsEscape(v, true))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&"), nil
}

// awsEscape percent-encodes all but SigV4's unreserved characters (and '/'
// in paths).
func awsEscape(s string, encodeSlash bool) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encodeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}
