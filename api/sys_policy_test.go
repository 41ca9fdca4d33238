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

// A deny on one object must hold however the path names it: extra slashes
// (which the handlers would strip) are refused, and a policy name that the
// store lowercases and trims is checked in that form.
func TestPolicyCheckSeesTheObjectTheHandlerChanges(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	enableFileAudit(t, root)
	mountKeymgmt(t, root, "prod")
	for name, text := range map[string]string{
		"ops": `path "sys/mounts/*" { capabilities = ["create", "read", "update", "delete"] }
path "sys/mounts/prod" { capabilities = ["deny"] }
path "sys/audit/*" { capabilities = ["update", "delete", "sudo"] }
path "sys/audit/file" { capabilities = ["deny"] }`,
		"editor": `path "sys/policy/*" { capabilities = ["create", "read", "update", "delete"] }
path "sys/policy/admin" { capabilities = ["deny"] }
path "sys/policies/acl/*" { capabilities = ["create", "read", "update", "delete"] }
path "sys/policies/acl/admin" { capabilities = ["deny"] }`,
		"admin": `path "*" { capabilities = ["read"] }`,
	} {
		if err := root.Sys().PutPolicy(name, text); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"ops", "editor"}})
	if err != nil {
		t.Fatal(err)
	}
	id := tok.Auth.ClientToken
	evil := `{"policy":"path \"*\" { capabilities = [\"sudo\", \"create\", \"update\"] }"}`
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{name: "fail a mount denied, with a doubled slash", method: "DELETE", path: "/v1/sys/mounts//prod", want: 400},
		{name: "fail a mount denied, with a dot segment", method: "DELETE", path: "/v1/sys/mounts/./prod", want: 400},
		{name: "fail a mount denied, with an encoded slash", method: "DELETE", path: "/v1/sys/mounts/%2Fprod", want: 400},
		{name: "fail a mount denied, as written", method: "DELETE", path: "/v1/sys/mounts/prod", want: 403},
		{name: "fail an audit device denied, with trailing slashes", method: "DELETE", path: "/v1/sys/audit/file//", want: 400},
		{name: "fail a policy denied, in capitals", method: "PUT", path: "/v1/sys/policy/ADMIN", body: evil, want: 403},
		{name: "fail a policy denied, with a space", method: "PUT", path: "/v1/sys/policy/%20admin", body: evil, want: 403},
		{name: "fail a policy denied, new path, in capitals", method: "PUT", path: "/v1/sys/policies/acl/Admin", body: evil, want: 403},
		{name: "fail a policy denied, deleted in capitals", method: "DELETE", path: "/v1/sys/policies/acl/ADMIN", want: 403},
		{name: "ok another policy in capitals is lowercased", method: "PUT", path: "/v1/sys/policies/acl/Readers", body: `{"policy":"path \"x\" { capabilities = [\"read\"] }"}`, want: 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st, m := rawReq(t, env, tt.method, tt.path, id, tt.body); st != tt.want {
				t.Fatalf("status %d, want %d: %v", st, tt.want, m)
			}
		})
	}
	if mounts, err := root.Sys().ListMounts(); err != nil || mounts["prod/"] == nil {
		t.Errorf("the denied mount is gone: %v", err)
	}
	if devices, err := root.Sys().ListAudit(); err != nil || devices["file/"] == nil {
		t.Errorf("the denied audit device is gone: %v", err)
	}
	if p, err := root.Sys().GetPolicy("admin"); err != nil || strings.Contains(p, "sudo") {
		t.Errorf("the denied policy was replaced: %q %v", p, err)
	}
	if p, err := root.Sys().GetPolicy("readers"); err != nil || p == "" {
		t.Errorf("the policy written as Readers: %q %v", p, err)
	}
}
