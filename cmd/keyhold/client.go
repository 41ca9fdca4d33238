package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The client side of the command line: a small REST client over net/http
// that speaks Vault's wire conventions (X-Vault-Token, {"data": ...},
// {"errors": [...]}, LIST as GET ?list=true).

const (
	defaultAddr    = "http://127.0.0.1:8200"
	defaultTimeout = 60 * time.Second
	maxRespBytes   = 32 << 20
)

// client talks to one appliance with one token.
type client struct {
	addr  *url.URL
	token string
	hc    *http.Client
	// warn, if set, gets a warning (once) before a request goes out over
	// plain http to a host that is not this one.
	warn     io.Writer
	warnOnce sync.Once
}

// newClient builds a client from the flags, falling back to the environment
// (KEYHOLD_ADDR, KEYHOLD_TOKEN, KEYHOLD_CACERT, KEYHOLD_SKIP_VERIFY,
// KEYHOLD_CLIENT_TIMEOUT). Its errors are the caller's (usage) errors.
func newClient(cf *clientFlags, getenv func(string) string) (*client, error) {
	addr := firstNonEmpty(cf.address, getenv("KEYHOLD_ADDR"), defaultAddr)
	u, err := url.Parse(strings.TrimSuffix(addr, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid address %q: want http(s)://host:port", addr)
	}
	timeout := defaultTimeout
	if s := getenv("KEYHOLD_CLIENT_TIMEOUT"); s != "" {
		if timeout, err = parseTimeout(s); err != nil {
			return nil, fmt.Errorf("invalid KEYHOLD_CLIENT_TIMEOUT %q: want seconds or a duration such as 30s", s)
		}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := firstNonEmpty(cf.caCert, getenv("KEYHOLD_CACERT")); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("reading the CA certificate: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no PEM certificate in %s", ca)
		}
	}
	skip := cf.skipVerify
	if s := getenv("KEYHOLD_SKIP_VERIFY"); s != "" && !cf.skipSet {
		if skip, err = strconv.ParseBool(s); err != nil {
			return nil, fmt.Errorf("invalid KEYHOLD_SKIP_VERIFY %q: want true or false", s)
		}
	}
	tc.InsecureSkipVerify = skip
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	hc := &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A redirect would carry the token to wherever it points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// A token read from a file or pasted often ends in a newline.
	token := strings.TrimSpace(getenv("KEYHOLD_TOKEN"))
	if strings.IndexFunc(token, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 {
		return nil, errors.New("KEYHOLD_TOKEN contains a control character: it is not a token")
	}
	return &client{addr: u, token: token, hc: hc}, nil
}

// plainToRemote tells whether u is plain http to a host other than this
// one (a name other than localhost, or an address that is not loopback).
func plainToRemote(u *url.URL) bool {
	if u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

func parseTimeout(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, errors.New("invalid timeout")
	}
	return d, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// response is a successful (2xx) answer.
type response struct {
	status int
	body   []byte
}

// apiError is an answer with an error status; errors are the server's
// errors[] messages.
type apiError struct {
	status int
	errors []string
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Code: %d. Errors:\n", e.status)
	for _, m := range e.errors {
		b.WriteString("\n* " + m)
	}
	return b.String()
}

// connError is a request that got no answer.
type connError struct {
	addr string
	err  error
}

func (e *connError) Error() string {
	cause := e.err
	var ue *url.Error
	if errors.As(cause, &ue) {
		cause = ue.Err // the method and URL are said already
	}
	msg := fmt.Sprintf("cannot reach Keyhold at %s: %v", e.addr, cause)
	var ne net.Error
	switch {
	case errors.Is(e.err, syscall.ECONNREFUSED):
		msg += "\n\nIs the server running there? Set KEYHOLD_ADDR or -address."
	case errors.As(e.err, &ne) && ne.Timeout():
		msg += "\n\nThe server did not answer in time (KEYHOLD_CLIENT_TIMEOUT)."
	}
	return msg
}

func (e *connError) Unwrap() error { return e.err }

// do sends one request to /v1/path. A body, if not nil, is sent as JSON.
// Statuses of 400 and above come back as *apiError, no answer as *connError.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body any) (*response, error) {
	u := *c.addr
	u.Path = u.Path + "/v1/" + strings.TrimPrefix(path, "/")
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.warn != nil && plainToRemote(c.addr) {
		// Also without a token: sys/init answers with the root token.
		c.warnOnce.Do(func() {
			fmt.Fprintf(c.warn, "Warning: talking to %s over plain http: tokens and data cross the network unencrypted. Use https.\n", c.addr.Host)
		})
	}
	if c.token != "" {
		req.Header.Set("X-Vault-Token", c.token)
	}
	req.Header.Set("User-Agent", "keyhold-cli/"+version)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, &connError{addr: c.addr.Redacted(), err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRespBytes))
	if err != nil {
		return nil, &connError{addr: c.addr.Redacted(), err: err}
	}
	if resp.StatusCode >= 300 {
		err := errorOf(resp, b)
		var ae *apiError
		if resp.StatusCode == http.StatusForbidden && c.token == "" && errors.As(err, &ae) {
			ae.errors = append(ae.errors, "no token was sent: set KEYHOLD_TOKEN")
		}
		return &response{status: resp.StatusCode, body: b}, err
	}
	return &response{status: resp.StatusCode, body: b}, nil
}

// errorOf reads Vault's {"errors": [...]} body, or falls back to the status
// line and a short piece of whatever else came back.
func errorOf(resp *http.Response, body []byte) error {
	var e struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Errors) > 0 {
		return &apiError{status: resp.StatusCode, errors: e.Errors}
	}
	msg := http.StatusText(resp.StatusCode)
	if loc := resp.Header.Get("Location"); resp.StatusCode < 400 && loc != "" {
		msg = "redirected to " + loc + "; not followed (set KEYHOLD_ADDR to the right address)"
	} else if t := strings.TrimSpace(string(body)); t != "" && !json.Valid(body) {
		if len(t) > 200 {
			t = t[:200] + "..."
		}
		msg += ": " + t
	}
	return &apiError{status: resp.StatusCode, errors: []string{msg}}
}

// secret is the parts of a Vault-style response the table output uses.
type secret struct {
	Data     map[string]any `json:"data"`
	Warnings []string       `json:"warnings"`
	Auth     *secretAuth    `json:"auth"`
}

// secretAuth is the "auth" block of a login or token creation.
type secretAuth struct {
	ClientToken      string            `json:"client_token"`
	Accessor         string            `json:"accessor"`
	Policies         []string          `json:"policies"`
	TokenPolicies    []string          `json:"token_policies"`
	IdentityPolicies []string          `json:"identity_policies"`
	Metadata         map[string]string `json:"metadata"`
	LeaseDuration    int64             `json:"lease_duration"`
	Renewable        bool              `json:"renewable"`
}

// parseSecret decodes a response body, keeping numbers as written.
func parseSecret(body []byte) (*secret, error) {
	s := &secret{}
	if len(bytes.TrimSpace(body)) == 0 {
		return s, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return nil, fmt.Errorf("the server's answer is a JSON %s, not the object of a Vault-style response", te.Value)
		}
		if !json.Valid(body) {
			return nil, errors.New("the server's answer is not JSON: the CLI reads JSON paths; fetch others, such as sys/metrics, with curl")
		}
		return nil, fmt.Errorf("the server's answer is not a Vault-style response: %v", err)
	}
	return s, nil
}
