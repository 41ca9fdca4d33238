package api

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

func TestPoliciesWithVaultClient(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	sys := root.Sys()
	const text = `path "keymgmt/key/*" { capabilities = ["read", "list"] }`

	if err := sys.PutPolicy("Readers", text); err != nil {
		t.Fatal(err)
	}
	got, err := sys.GetPolicy("readers")
	if err != nil || got != text {
		t.Errorf("get: %q, %v", got, err)
	}
	names, err := sys.ListPolicies()
	if err != nil || !slices.Equal(names, []string{"default", "readers", "root"}) {
		t.Errorf("list: %v, %v", names, err)
	}
	def, err := sys.GetPolicy("default")
	if err != nil || !strings.Contains(def, "auth/token/lookup-self") {
		t.Errorf("default: %q, %v", def, err)
	}
	// The old paths.
	s, err := root.Logical().Read("sys/policy/readers")
	if err != nil || s.Data["rules"] != text || s.Data["name"] != "readers" {
		t.Errorf("sys/policy/readers: %v %+v", err, s)
	}
	s, err = root.Logical().Read("sys/policy")
	if err != nil || len(s.Data["keys"].([]any)) != 3 || len(s.Data["policies"].([]any)) != 3 {
		t.Errorf("sys/policy: %v %+v", err, s)
	}
	if _, err := root.Logical().Write("sys/policy/legacy", map[string]any{"rules": text}); err != nil {
		t.Errorf("write rules: %v", err)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte(text))
	if _, err := root.Logical().Write("sys/policies/acl/encoded", map[string]any{"policy": b64}); err != nil {
		t.Errorf("write base64: %v", err)
	}
	if got, _ := sys.GetPolicy("encoded"); got != text {
		t.Errorf("base64 policy stored as %q", got)
	}

	if err := sys.DeletePolicy("readers"); err != nil {
		t.Fatal(err)
	}
	if got, err := sys.GetPolicy("readers"); err != nil || got != "" {
		t.Errorf("get after delete: %q, %v", got, err)
	}
	if _, err := root.Logical().Read("sys/policy/readers"); err != nil {
		t.Errorf("read after delete (the client answers nil on 404): %v", err)
	}
	if err := sys.DeletePolicy("readers"); err != nil {
		t.Errorf("delete twice: %v", err)
	}
}

func TestPolicyWriteErrors(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	tests := []struct {
		name       string
		op         func(c *vault.Client) error
		wantStatus int
		wantMsg    string
	}{
		{name: "ok edit default", op: func(c *vault.Client) error {
			return c.Sys().PutPolicy("default", `path "auth/token/lookup-self" { capabilities = ["read"] }`)
		}},
		{name: "fail bad HCL", op: func(c *vault.Client) error { return c.Sys().PutPolicy("p", `path "a" {`) }, wantStatus: 400, wantMsg: "not valid HCL"},
		{name: "fail unknown capability", op: func(c *vault.Client) error {
			return c.Sys().PutPolicy("p", `path "a" { capabilities = ["read", "fly"] }`)
		}, wantStatus: 400, wantMsg: `unknown capability "fly"`},
		{name: "fail unsupported setting", op: func(c *vault.Client) error {
			return c.Sys().PutPolicy("p", `path "a" { allowed_parameters = { "x" = [] } }`)
		}, wantStatus: 400, wantMsg: "allowed_parameters is not supported"},
		{name: "fail glob star inside", op: func(c *vault.Client) error {
			return c.Sys().PutPolicy("p", `path "a/*/b" { capabilities = ["read"] }`)
		}, wantStatus: 400, wantMsg: "only at the end"},
		{name: "fail empty", op: func(c *vault.Client) error { return c.Sys().PutPolicy("p", "") }, wantStatus: 400, wantMsg: "policy is required"},
		{name: "fail bad name", op: func(c *vault.Client) error {
			return c.Sys().PutPolicy("a+b", `path "a" { capabilities = ["read"] }`)
		}, wantStatus: 400, wantMsg: "invalid policy name"},
		{name: "fail update root", op: func(c *vault.Client) error {
			return c.Sys().PutPolicy("root", `path "a" { capabilities = ["read"] }`)
		}, wantStatus: 400, wantMsg: "root policy"},
		{name: "fail delete root", op: func(c *vault.Client) error { return c.Sys().DeletePolicy("root") }, wantStatus: 400, wantMsg: "root policy"},
		{name: "fail delete default", op: func(c *vault.Client) error { return c.Sys().DeletePolicy("default") }, wantStatus: 400, wantMsg: "default policy"},
		{name: "fail unknown field", op: func(c *vault.Client) error {
			_, err := c.Logical().Write("sys/policies/acl/p", map[string]any{"policy": `path "a" { capabilities = ["read"] }`, "rules": "x"})
			return err
		}, wantStatus: 400, wantMsg: "rules"},
		{name: "fail no token", op: func(c *vault.Client) error {
			c = c.WithNamespace("")
			c.ClearToken()
			_, err := c.Sys().ListPolicies()
			return err
		}, wantStatus: 403, wantMsg: "no token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := root.Clone()
			if err != nil {
				t.Fatal(err)
			}
			c.SetToken(testRootToken)
			err = tt.op(c)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if statusOfErr(err) != tt.wantStatus || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err %v, want %d saying %q", err, tt.wantStatus, tt.wantMsg)
			}
		})
	}
}
