package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

func rawReq(t *testing.T, env *testEnv, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	h := map[string]string{}
	if token != "" {
		h["X-Vault-Token"] = token
	}
	st, b := headerReq(t, env, method, path, body, h)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal([]byte(b), &m); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, b)
		}
	}
	return st, m
}

// headerReq sends a request with the headers and body given and returns
// the status and the body.
func headerReq(t *testing.T, env *testEnv, method, path, body string, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, env.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func errText(m map[string]any) string {
	errs, _ := m["errors"].([]any)
	var out []string
	for _, e := range errs {
		out = append(out, e.(string))
	}
	return strings.Join(out, "; ")
}

func TestWireConventions(t *testing.T) {
	env := newTestEnv(t)
	mountKeymgmt(t, env.client(t, testRootToken), "keymgmt")
	if st, _ := rawReq(t, env, "POST", "/v1/keymgmt/key/a", testRootToken, `{"type":"aes256-gcm96"}`); st != 200 {
		t.Fatalf("create: %d", st)
	}
	t.Run("ok LIST method and GET ?list=true", func(t *testing.T) {
		for _, c := range [][2]string{{"LIST", "/v1/keymgmt/key"}, {"GET", "/v1/keymgmt/key?list=true"}, {"LIST", "/v1/keymgmt/key/"},
			{"GET", "/v1/keymgmt/key?list=t"}, {"GET", "/v1/keymgmt/key?list=TRUE"}} {
			st, m := rawReq(t, env, c[0], c[1], testRootToken, "")
			keys, _ := m["data"].(map[string]any)["keys"].([]any)
			if st != 200 || len(keys) != 1 || keys[0] != "a" {
				t.Fatalf("%s %s: %d %v", c[0], c[1], st, m)
			}
		}
	})
	t.Run("ok Authorization Bearer", func(t *testing.T) {
		req, _ := http.NewRequest("GET", env.ts.URL+"/v1/keymgmt/key/a", nil)
		req.Header.Set("Authorization", "Bearer "+testRootToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp.StatusCode, err)
		}
		resp.Body.Close()
	})
	cases := []struct {
		name, method, path, token, body string
		status                          int
		msg                             string
	}{
		{"fail no token", "GET", "/v1/keymgmt/key/a", "", "", 403, "permission denied"},
		{"fail bad token", "GET", "/v1/keymgmt/key/a", "not-a-token", "", 403, "permission denied"},
		{"fail malformed json", "POST", "/v1/keymgmt/key/b", testRootToken, `{"type":`, 400, "malformed JSON body"},
		{"fail json array", "POST", "/v1/keymgmt/key/b", testRootToken, `["type"]`, 400, "want an object"},
		{"fail trailing data", "POST", "/v1/keymgmt/key/b", testRootToken, `{"type":"rsa-2048"} {}`, 400, "data after the object"},
		{"fail oversized body", "POST", "/v1/keymgmt/key/b", testRootToken, `{"type":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, "larger than"},
		{"fail method not allowed", "DELETE", "/v1/keymgmt/key/a/rotate", testRootToken, "", 405, "unsupported operation delete"},
		{"fail unknown method", "TRACE", "/v1/keymgmt/key/a", testRootToken, "", 405, "unsupported operation"},
		// PATCH has merge semantics and its own capability in Vault: not a
		// write that replaces (nor creates) the object.
		{"fail patch", "PATCH", "/v1/keymgmt/key/fresh", testRootToken, "{}", 405, "unsupported operation patch"},
		{"fail delete query and body disagree", "DELETE", "/v1/sys/mounts/keymgmt?force=true", testRootToken, `{"force":false}`, 400, "in the query and in the body"},
		{"fail not under v1", "GET", "/v2/sys/health", testRootToken, "", 404, "paths start with /v1/"},
		// A field given twice in the query is not settled by picking one.
		{"fail query field twice, different", "DELETE", "/v1/sys/mounts/keymgmt?force=false&force=true", testRootToken, "", 400, "more than once in the query"},
		{"fail no such key", "GET", "/v1/keymgmt/key/missing", testRootToken, "", 404, `no key named "missing"`},
		{"fail no mount", "GET", "/v1/nomount/key/a", testRootToken, "", 404, "no handler for this path"},
		{"fail no mount, no token: which paths exist is not told", "GET", "/v1/nomount/key/a", "", "", 403, "permission denied"},
		{"fail a mount, a body its route refuses, no token: not told either", "POST", "/v1/keymgmt/key/a", "", `{"bogus":1}`, 403, "permission denied"},
		{"fail create conflict is reported", "POST", "/v1/sys/mounts/keymgmt", testRootToken, `{"type":"keymgmt"}`, 409, "already in use"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, m := rawReq(t, env, c.method, c.path, c.token, c.body)
			if st != c.status || !strings.Contains(errText(m), c.msg) {
				t.Fatalf("got %d %v, want %d with %q", st, m, c.status, c.msg)
			}
			if c.token == "" && strings.Contains(errText(m), testRootToken) {
				t.Fatal("error echoes a token")
			}
		})
	}
	t.Run("fail a token without the path's policy is not told which mounts exist", func(t *testing.T) {
		st, m := rawReq(t, env, "POST", "/v1/auth/token/create", testRootToken, `{"policies":["default"]}`)
		if st != 200 {
			t.Fatalf("token create: %d %v", st, m)
		}
		tok := m["auth"].(map[string]any)["client_token"].(string)
		for _, p := range []string{"/v1/keymgmt/key/a", "/v1/nomount/key/a", "/v1/keymgmt/nothing/here"} {
			if st, m := rawReq(t, env, "GET", p, tok, ""); st != 403 || !strings.Contains(errText(m), "permission denied") {
				t.Fatalf("GET %s with the default policy: %d %v, want 403", p, st, m)
			}
		}
	})
	t.Run("ok a boolean agrees in any form", func(t *testing.T) {
		mountKeymgmt(t, env.client(t, testRootToken), "km3")
		if st, m := rawReq(t, env, "DELETE", "/v1/sys/mounts/km3?force=1&force=1", testRootToken, `{"force":true}`); st != 204 {
			t.Fatalf("force=1 in the query (twice) and true in the body: %d %v", st, m)
		}
	})
	t.Run("ok a delete's query counts with its body", func(t *testing.T) {
		mountKeymgmt(t, env.client(t, testRootToken), "km2")
		if st, _ := rawReq(t, env, "POST", "/v1/km2/key/k", testRootToken, `{"type":"aes256-gcm96"}`); st != 200 {
			t.Fatalf("create: %d", st)
		}
		if st, m := rawReq(t, env, "DELETE", "/v1/sys/mounts/km2?force=true", testRootToken, `{}`); st != 204 {
			t.Fatalf("disable with force in the query and a body: %d %v", st, m)
		}
	})
	t.Run("fail internal errors carry no detail", func(t *testing.T) {
		env.store.Close() // every store call now fails inside
		st, m := rawReq(t, env, "GET", "/v1/keymgmt/key/a", testRootToken, "")
		if st != 500 || errText(m) != "internal error" {
			t.Fatalf("got %d %v", st, m)
		}
	})
}

func TestHealthIsUnauthenticated(t *testing.T) {
	env := newTestEnv(t)
	st, m := rawReq(t, env, "GET", "/v1/sys/health", "", "")
	if st != 200 || m["initialized"] != true || m["hsm"].(map[string]any)["token_label"] != "keyhold-test" {
		t.Fatalf("%d %v", st, m)
	}
	// The Vault client reads it too.
	h, err := env.client(t, "").Sys().Health()
	if err != nil || !h.Initialized || h.Sealed || h.Version != "test" {
		t.Fatalf("%+v %v", h, err)
	}
	// Which mounts listen where is told only to a token that may read
	// sys/mounts.
	if _, ok := m["listeners"]; ok {
		t.Fatalf("the listeners without a token: %v", m)
	}
	root := env.client(t, testRootToken)
	if err := root.Sys().PutPolicy("nothing", `path "keymgmt/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, _ := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"nothing"}})
	if _, m := rawReq(t, env, "GET", "/v1/sys/health", tok, ""); m["listeners"] != nil {
		t.Fatalf("the listeners for a token that may not read sys/mounts: %v", m)
	}
	if _, m := rawReq(t, env, "GET", "/v1/sys/health", testRootToken, ""); m["listeners"] == nil {
		t.Fatalf("no listeners for root: %v", m)
	}
}

// FuzzRequestBody: any body gives a JSON answer with a 2xx or 4xx status,
// never a panic or a 500.
func FuzzRequestBody(f *testing.F) {
	env := newTestEnv(f)
	for _, s := range []string{`{"type":"aes256-gcm96"}`, `null`, `{}`, `[]`, `{"type":1}`, `{"min_enabled_version":"1"}`, `{"a":{"b":[1,2]}}`, "\x00", `{"type":"rsa-2048"}{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/sys/mounts/fz", bytes.NewReader(body))
		req.Header.Set("X-Vault-Token", testRootToken)
		w := httptest.NewRecorder()
		env.srv.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", w.Code, body, w.Body.String())
		}
		if w.Code != 204 && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", w.Body.String())
		}
		if w.Code == 204 {
			env.srv.ServeHTTP(httptest.NewRecorder(), func() *http.Request {
				r := httptest.NewRequest("DELETE", "/v1/sys/mounts/fz?force=true", nil)
				r.Header.Set("X-Vault-Token", testRootToken)
				return r
			}())
		}
	})
}

func TestVaultClientOversizedBody(t *testing.T) {
	env := newTestEnv(t)
	c := env.client(t, testRootToken)
	mountKeymgmt(t, c, "keymgmt")
	_, err := c.Logical().Write("keymgmt/key/big", map[string]any{"type": strings.Repeat("a", 2*MaxBodyBytes)})
	if statusOfErr(err) != 413 || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized write: %v", err)
	}
	if s, err := c.Logical().Read("keymgmt/key/big"); err != nil || s != nil {
		t.Fatalf("oversized write left a key: %v %v", s, err)
	}
}

// A cross-site page cannot write through the operator's browser (a write
// with a foreign Origin is refused, sys/init included), and a path segment
// cannot hold an encoded "/".
func TestCrossOriginWritesAndEncodedSlashes(t *testing.T) {
	env := newTestEnv(t)
	mountKeymgmt(t, env.client(t, testRootToken), "keymgmt")
	send := func(method, path, origin, token, body string) (int, string) {
		t.Helper()
		h := map[string]string{}
		if origin != "" {
			h["Origin"] = origin
		}
		if token != "" {
			h["X-Vault-Token"] = token
		}
		return headerReq(t, env, method, path, body, h)
	}
	if st, b := send("POST", "/v1/sys/init", "https://evil.example", "", `{}`); st != 403 || !strings.Contains(b, "cross-origin write refused") {
		t.Fatalf("a cross-origin sys/init: %d %s", st, b)
	}
	if st, b := send("POST", "/v1/keymgmt/key/x", "https://evil.example", testRootToken, `{"type":"aes256-gcm96"}`); st != 403 || !strings.Contains(b, "cross-origin") {
		t.Fatalf("a cross-origin write: %d %s", st, b)
	}
	if st, b := send("POST", "/v1/keymgmt/key/x", env.ts.URL, testRootToken, `{"type":"aes256-gcm96"}`); st != 200 {
		t.Fatalf("a same-origin write (the console): %d %s", st, b)
	}
	if st, b := send("GET", "/v1/keymgmt/key/x", "https://evil.example", testRootToken, ""); st != 200 {
		t.Fatalf("a read with an Origin (no CORS headers: the page cannot read it): %d %s", st, b)
	}
	if st, b := send("GET", "/v1/keymgmt/key/x%2Fy", "", testRootToken, ""); st != 400 || !strings.Contains(b, "encoded") {
		t.Fatalf("an encoded slash: %d %s", st, b)
	}
}
