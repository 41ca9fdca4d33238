package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// tokenReq sends a request with the token in the given header ("" for
// none) and returns the status and the body.
func tokenReq(t *testing.T, env *testEnv, method, path, header, value string) (int, string) {
	t.Helper()
	h := map[string]string{}
	if header != "" {
		h[header] = value
	}
	return headerReq(t, env, method, path, "", h)
}

// createToken creates a token with the client and returns it and its accessor.
func createToken(t *testing.T, c *vault.Client, req *vault.TokenCreateRequest) (string, string) {
	t.Helper()
	s, err := c.Auth().Token().Create(req)
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	if s.Auth == nil || s.Auth.ClientToken == "" || s.Auth.Accessor == "" {
		t.Fatalf("create token: no auth block: %+v", s)
	}
	return s.Auth.ClientToken, s.Auth.Accessor
}

func TestTokenLifecycleWithVaultClient(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	// The policy exists: a missing one would add a warning of its own.
	if err := root.Sys().PutPolicy("reader", `path "keymgmt/key/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}

	s, err := root.Auth().Token().Create(&vault.TokenCreateRequest{
		Policies: []string{"reader"}, TTL: "1h", Metadata: map[string]string{"team": "infra"}, DisplayName: "ci",
	})
	if err != nil {
		t.Fatal(err)
	}
	a := s.Auth
	if !slices.Equal(a.Policies, []string{"default", "reader"}) || !slices.Equal(a.TokenPolicies, a.Policies) ||
		a.LeaseDuration < 3590 || a.LeaseDuration > 3600 || !a.Renewable || a.Orphan || a.Metadata["team"] != "infra" ||
		!strings.HasPrefix(a.ClientToken, "khs.") {
		t.Errorf("auth block %+v", a)
	}
	tok, acc := a.ClientToken, a.Accessor
	if len(s.Warnings) != 0 {
		t.Errorf("warnings for a TTL within the maximum: %v", s.Warnings)
	}
	// A TTL over the maximum is capped, with Vault's warning.
	long, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"reader"}, TTL: "100000h"})
	if err != nil || long.Auth.LeaseDuration != int((768*time.Hour).Seconds()) && long.Auth.LeaseDuration != int((768*time.Hour).Seconds())-1 ||
		len(long.Warnings) != 1 || !strings.Contains(long.Warnings[0], "TTL value is capped") {
		t.Errorf("a TTL over the maximum: %v %+v %v", err, long.Auth, long.Warnings)
	}

	self := env.client(t, tok)
	ls, err := self.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("lookup-self: %v", err)
	}
	id, _ := ls.TokenID()
	lacc, _ := ls.TokenAccessor()
	pols, _ := ls.TokenPolicies()
	ttl, _ := ls.TokenTTL()
	if id != tok || lacc != acc || !slices.Equal(pols, []string{"default", "reader"}) || ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("lookup-self: id ok %v, accessor %q, policies %v, ttl %v", id == tok, lacc, pols, ttl)
	}
	for k, want := range map[string]any{"display_name": "token-ci", "path": "auth/token/create", "type": "service", "orphan": false, "num_uses": json.Number("0"), "creation_ttl": json.Number("3600")} {
		if ls.Data[k] != want {
			t.Errorf("lookup-self %s = %#v, want %#v", k, ls.Data[k], want)
		}
	}
	for _, k := range []string{"creation_time", "expire_time", "issue_time", "explicit_max_ttl", "meta", "renewable", "entity_id"} {
		if _, ok := ls.Data[k]; !ok {
			t.Errorf("lookup-self has no %s", k)
		}
	}

	l, err := root.Auth().Token().Lookup(tok)
	if err != nil || l.Data["accessor"] != acc || l.Data["id"] != tok {
		t.Errorf("lookup: %v %v", err, l)
	}
	la, err := root.Auth().Token().LookupAccessor(acc)
	if err != nil || la.Data["accessor"] != acc || la.Data["id"] != "" {
		t.Errorf("lookup-accessor: %v %v", err, la)
	}
	rs, err := self.Auth().Token().RenewSelf(7200)
	if err != nil || rs.Auth == nil || rs.Auth.LeaseDuration < 7190 || rs.Auth.LeaseDuration > 7200 {
		t.Errorf("renew-self: %v %+v", err, rs)
	}

	// A bad token looked up is named as such, apart from the caller's own.
	if _, err := root.Auth().Token().Lookup("khs.bogus"); statusOfErr(err) != 403 || !strings.Contains(err.Error(), "the token looked up is invalid or expired") {
		t.Errorf("lookup of a bogus token: %v", err)
	}
	// The default policy lets a token look itself up, not others, nor create tokens.
	if _, err := self.Auth().Token().Lookup(testRootToken); statusOfErr(err) != 403 {
		t.Errorf("non-root lookup of another token: %v", err)
	}
	if _, err := self.Auth().Token().Create(&vault.TokenCreateRequest{}); statusOfErr(err) != 403 {
		t.Errorf("create without a policy for it: %v", err)
	}

	if err := self.Auth().Token().RevokeSelf(""); err != nil {
		t.Fatalf("revoke-self: %v", err)
	}
	if _, err := self.Auth().Token().LookupSelf(); statusOfErr(err) != 403 {
		t.Errorf("a revoked token: %v", err)
	}
	if _, err := root.Auth().Token().LookupAccessor(acc); statusOfErr(err) != 400 {
		t.Errorf("lookup-accessor of a revoked token: %v", err)
	}
}

func TestTokenRevocationWithVaultClient(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	if err := root.Sys().PutPolicy("maker", `path "auth/token/create" { capabilities = ["update"] }
path "auth/token/create-orphan" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	parent, parentAcc := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"maker"}})
	pc := env.client(t, parent)
	child, _ := createToken(t, pc, &vault.TokenCreateRequest{})
	grand, _ := createToken(t, env.client(t, child), &vault.TokenCreateRequest{})
	orphanS, err := pc.Auth().Token().CreateOrphan(&vault.TokenCreateRequest{})
	if err != nil || !orphanS.Auth.Orphan {
		t.Fatalf("create-orphan: %v", err)
	}
	works := func(tok string) bool {
		_, err := env.client(t, tok).Auth().Token().LookupSelf()
		if err != nil && statusOfErr(err) != 403 {
			t.Fatalf("lookup-self: %v", err)
		}
		return err == nil
	}
	if !works(child) || !works(grand) {
		t.Fatal("children do not work")
	}
	if err := root.Auth().Token().RevokeAccessor(parentAcc); err != nil {
		t.Fatal(err)
	}
	if works(parent) || works(child) || works(grand) {
		t.Error("a descendant of a revoked token still works")
	}
	if !works(orphanS.Auth.ClientToken) {
		t.Error("the orphan was revoked with its creator")
	}
	// revoke (by token) and revoke-orphan (sudo).
	p2, _ := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"maker"}})
	c2, _ := createToken(t, env.client(t, p2), &vault.TokenCreateRequest{})
	if err := root.Auth().Token().RevokeOrphan(p2); err != nil {
		t.Fatal(err)
	}
	if works(p2) || !works(c2) {
		t.Error("revoke-orphan")
	}
	if err := root.Auth().Token().RevokeTree(c2); err != nil {
		t.Fatal(err)
	}
	if works(c2) {
		t.Error("revoke")
	}
	if err := env.client(t, orphanS.Auth.ClientToken).Auth().Token().RevokeOrphan(parent); statusOfErr(err) != 403 {
		t.Errorf("revoke-orphan without sudo: %v", err)
	}
}

func TestTokenCreateErrors(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	if err := root.Sys().PutPolicy("maker", `path "auth/token/create" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	maker, _ := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"maker"}})
	tests := []struct {
		name       string
		token      string
		body       map[string]any
		path       string
		wantStatus int
		wantMsg    string
	}{
		{name: "ok subset", token: maker, body: map[string]any{"policies": []string{"maker"}}, wantStatus: 200},
		{name: "ok custom id by root", token: testRootToken, body: map[string]any{"id": "custom-id-1"}, wantStatus: 200},
		{name: "ok ttl as seconds", token: testRootToken, body: map[string]any{"ttl": 60, "policies": "a,b"}, wantStatus: 200},
		{name: "fail not a subset", token: maker, body: map[string]any{"policies": []string{"admin"}}, wantStatus: 403, wantMsg: "subset"},
		{name: "fail root from non-root", token: maker, body: map[string]any{"policies": []string{"root"}}, wantStatus: 403},
		{name: "fail id without sudo", token: maker, body: map[string]any{"id": "custom-id-2"}, wantStatus: 403, wantMsg: "sudo"},
		{name: "fail no_parent without sudo", token: maker, body: map[string]any{"no_parent": true}, wantStatus: 403, wantMsg: "sudo"},
		{name: "fail period without sudo", token: maker, body: map[string]any{"period": "1h"}, wantStatus: 403, wantMsg: "sudo"},
		{name: "fail batch", token: testRootToken, body: map[string]any{"type": "batch"}, wantStatus: 400, wantMsg: "batch"},
		{name: "fail unknown type", token: testRootToken, body: map[string]any{"type": "weird"}, wantStatus: 400, wantMsg: "token type"},
		{name: "fail entity alias", token: testRootToken, body: map[string]any{"entity_alias": "x"}, wantStatus: 400, wantMsg: "entity_alias"},
		{name: "fail negative uses", token: testRootToken, body: map[string]any{"num_uses": -1}, wantStatus: 400, wantMsg: "num_uses"},
		{name: "fail bad ttl", token: testRootToken, body: map[string]any{"ttl": "soon"}, wantStatus: 400, wantMsg: "ttl"},
		{name: "fail bad policy name", token: testRootToken, body: map[string]any{"policies": []string{"a/b"}}, wantStatus: 400, wantMsg: "policy name"},
		{name: "fail unknown field", token: testRootToken, body: map[string]any{"bogus": 1}, wantStatus: 400, wantMsg: "bogus"},
		{name: "fail custom id taken", token: testRootToken, body: map[string]any{"id": testRootToken}, wantStatus: 409},
		{name: "fail role", token: testRootToken, path: "auth/token/create/myrole", body: map[string]any{}, wantStatus: 400, wantMsg: "roles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "auth/token/create"
			}
			s, err := env.client(t, tt.token).Logical().Write(path, tt.body)
			if tt.wantStatus == 200 {
				if err != nil || s == nil || s.Auth == nil {
					t.Fatalf("%v %+v", err, s)
				}
				return
			}
			if statusOfErr(err) != tt.wantStatus {
				t.Fatalf("err %v, want status %d", err, tt.wantStatus)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("message does not say %q: %v", tt.wantMsg, err)
			}
			if id, _ := tt.body["id"].(string); id != "" && strings.Contains(err.Error(), id) {
				t.Errorf("the error echoes the token: %v", err)
			}
		})
	}
}

func TestTokenNumUses(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	tok, _ := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"x"}, NumUses: 2})
	c := env.client(t, tok)
	for i, want := range []int{200, 200, 403, 403} {
		_, err := c.Auth().Token().LookupSelf()
		got := 200
		if err != nil {
			got = statusOfErr(err)
		}
		if got != want {
			t.Errorf("use %d: %d (%v), want %d", i+1, got, err, want)
		}
	}
}

func TestTokenRequired(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	tok, _ := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"x"}})
	revoked, _ := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"x"}})
	if err := root.Auth().Token().RevokeTree(revoked); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, header, value string
		want                int
	}{
		{name: "ok X-Vault-Token", header: "X-Vault-Token", value: tok, want: 200},
		{name: "ok Authorization Bearer", header: "Authorization", value: "Bearer " + tok, want: 200},
		{name: "ok bearer in lowercase", header: "Authorization", value: "bearer " + tok, want: 200},
		{name: "fail no token", want: 403},
		{name: "fail bad token", header: "X-Vault-Token", value: "khs.not-a-real-token-at-all", want: 403},
		{name: "fail revoked token", header: "X-Vault-Token", value: revoked, want: 403},
		{name: "fail Basic scheme", header: "Authorization", value: "Basic " + tok, want: 403},
		{name: "fail bad bearer", header: "Authorization", value: "Bearer khs.wrong-token-value", want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := tokenReq(t, env, "GET", "/v1/auth/token/lookup-self", tt.header, tt.value)
			if st != tt.want {
				t.Fatalf("status %d, want %d: %s", st, tt.want, body)
			}
			if st != 200 {
				if !strings.Contains(body, "permission denied") {
					t.Errorf("body %s", body)
				}
				if tt.value != "" && strings.Contains(body, strings.TrimPrefix(strings.TrimPrefix(tt.value, "Bearer "), "Basic ")) {
					t.Errorf("the error echoes the token: %s", body)
				}
			}
		})
	}
}

// A policy that allows reading keys but denies writing them and rotating
// them, with the keys made by root.
func TestPolicyEnforcedOnKeymgmt(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	mountKeymgmt(t, root, "keymgmt")
	if _, err := root.Logical().Write("keymgmt/key/k1", map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("key-reader", `
path "keymgmt/key/*" {
  capabilities = ["read", "list"]
}
path "keymgmt/key/+/rotate" {
  capabilities = ["deny"]
}`); err != nil {
		t.Fatal(err)
	}
	tok, _ := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"key-reader"}})
	c := env.client(t, tok)
	tests := []struct {
		name string
		op   func() error
		want int
	}{
		{name: "ok read", want: 200, op: func() error {
			s, err := c.Logical().Read("keymgmt/key/k1")
			if err == nil && (s == nil || s.Data["name"] != "k1") {
				t.Errorf("read: %+v", s)
			}
			return err
		}},
		{name: "ok list", want: 200, op: func() error {
			s, err := c.Logical().List("keymgmt/key")
			if err == nil && (s == nil || len(s.Data["keys"].([]any)) != 1) {
				t.Errorf("list: %+v", s)
			}
			return err
		}},
		{name: "fail update", want: 403, op: func() error {
			_, err := c.Logical().Write("keymgmt/key/k1", map[string]any{"deletion_allowed": true})
			return err
		}},
		{name: "fail create", want: 403, op: func() error {
			_, err := c.Logical().Write("keymgmt/key/k2", map[string]any{"type": "aes256-gcm96"})
			return err
		}},
		{name: "fail rotate", want: 403, op: func() error {
			_, err := c.Logical().Write("keymgmt/key/k1/rotate", nil)
			return err
		}},
		{name: "fail delete", want: 403, op: func() error {
			_, err := c.Logical().Delete("keymgmt/key/k1")
			return err
		}},
		{name: "fail mount", want: 403, op: func() error {
			return c.Sys().Mount("other", &vault.MountInput{Type: "keymgmt"})
		}},
		{name: "fail policy write", want: 403, op: func() error {
			return c.Sys().PutPolicy("key-reader", `path "*" { capabilities = ["sudo", "update"] }`)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			got := 200
			if err != nil {
				got = statusOfErr(err)
			}
			if got != tt.want {
				t.Errorf("status %d (%v), want %d", got, err, tt.want)
			}
		})
	}
	s, err := root.Logical().Read("keymgmt/key/k1")
	if err != nil || s.Data["latest_version"] != json.Number("1") || s.Data["deletion_allowed"] != false {
		t.Errorf("the denied writes changed the key: %v %+v", err, s)
	}
}

// A token made with a policy that does not exist is made (the policy may
// come later), and the answer warns of it, as Vault's does.
func TestTokenCreateWarnsOfMissingPolicies(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	s, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"typo-policy"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Warnings, `Policy "typo-policy" does not exist`) {
		t.Fatalf("warnings %v", s.Warnings)
	}
	s, err = root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil || len(s.Warnings) != 0 {
		t.Fatalf("a token of existing policies: warnings %v, %v", s.Warnings, err)
	}
}
