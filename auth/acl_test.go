package auth

import (
	"context"
	"testing"

	"github.com/keyhold/keyhold/fault"
)

func TestGlobPriority(t *testing.T) {
	policies := map[string]string{
		"globs": `
path "keymgmt/*"                 { capabilities = ["read"] }
path "keymgmt/key/*"             { capabilities = ["read", "list"] }
path "keymgmt/key/+/rotate"      { capabilities = ["update"] }
path "keymgmt/key/prod-*"        { capabilities = ["deny"] }
path "keymgmt/key/prod-open"     { capabilities = ["read", "update"] }
path "keymgmt/+/special"         { capabilities = ["delete"] }
path "keymgmt/key/special"       { capabilities = ["create"] }
path "kmip/scope/+/role/+"       { capabilities = ["read"] }
path "kmip/scope/+/role/admin"   { capabilities = ["update"] }
path "kmip/scope/+/+/admin"      { capabilities = ["list"] }
path "kmip/+/fin/role/+"         { capabilities = ["delete"] }
path "kmip/scope/+/role*"        { capabilities = ["sudo", "read"] }
path "sys/policy"                { capabilities = ["list"] }
path "sys/mounts/"               { capabilities = ["list"] }
path "x/+*"                      { capabilities = ["read"] }
`,
	}
	tests := []struct {
		name string
		path string
		cap  string
		sudo bool
		want bool
	}{
		{name: "ok prefix", path: "keymgmt/other", cap: "read", want: true},
		{name: "fail prefix lacks update", path: "keymgmt/other", cap: "update", want: false},
		{name: "ok longer prefix wins", path: "keymgmt/key/k1", cap: "list", want: true},
		{name: "ok list under glob", path: "keymgmt/key", cap: "list", want: true},
		{name: "ok plus beats prefix at the same position", path: "keymgmt/key/k1/rotate", cap: "update", want: true},
		{name: "fail plus rule decides alone", path: "keymgmt/key/k1/rotate", cap: "read", want: false},
		{name: "fail deny glob", path: "keymgmt/key/prod-1", cap: "read", want: false},
		{name: "fail deny glob covers deeper paths", path: "keymgmt/key/prod-1/rotate", cap: "update", want: false},
		{name: "ok exact beats deny glob", path: "keymgmt/key/prod-open", cap: "update", want: true},
		{name: "ok exact beats plus", path: "keymgmt/key/special", cap: "create", want: true},
		{name: "fail exact decides alone", path: "keymgmt/key/special", cap: "delete", want: false},
		{name: "ok plus matches other segment", path: "keymgmt/other/special", cap: "delete", want: true},
		{name: "ok later wildcard and fewer plus win", path: "kmip/scope/fin/role/admin", cap: "update", want: true},
		{name: "fail more plus loses", path: "kmip/scope/fin/role/admin", cap: "list", want: false},
		{name: "fail later wildcard decides alone", path: "kmip/scope/fin/role/admin", cap: "delete", want: false},
		{name: "ok non-prefix beats prefix at the same position", path: "kmip/scope/fin/role/r1", cap: "read", want: true},
		{name: "fail earlier wildcard loses", path: "kmip/scope/fin/role/r1", cap: "delete", want: false},
		{name: "ok plus prefix", path: "kmip/scope/fin/roles/x/y", cap: "read", want: true},
		{name: "ok sudo", path: "kmip/scope/fin/roles", cap: "read", sudo: true, want: true},
		{name: "fail sudo not granted", path: "keymgmt/other", cap: "read", sudo: true, want: false},
		{name: "fail plus needs a segment count", path: "kmip/scope/fin", cap: "read", want: false},
		{name: "ok exact list without slash", path: "sys/policy", cap: "list", want: true},
		{name: "fail exact is not a read of the list", path: "sys/policy", cap: "read", want: false},
		{name: "ok exact list with slash", path: "sys/mounts", cap: "list", want: true},
		{name: "ok plus star", path: "x/a/b", cap: "read", want: true},
		{name: "fail plus star needs the segment", path: "x", cap: "read", want: false},
		{name: "fail nothing matches", path: "other/path", cap: "read", want: false},
	}
	a := newTestAuth(t)
	ctx := context.Background()
	for name, text := range policies {
		a.putPolicy(t, name, text)
	}
	_, tok := a.create(t, a.root, CreateRequest{Policies: []string{"globs"}, NoDefaultPolicy: true})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.m.Allowed(ctx, tok, tt.path, tt.cap, tt.sudo)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("%s %s (sudo %v): %v, want %v", tt.cap, tt.path, tt.sudo, got, tt.want)
			}
		})
	}
}

// Rules for the same path in different policies merge; deny in any of them
// denies everything on that path.
func TestDenyWins(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	a.putPolicy(t, "reader", `path "keymgmt/key/*" { capabilities = ["read", "list", "update"] }
path "keymgmt/key/a" { capabilities = ["read"] }`)
	a.putPolicy(t, "writer", `path "keymgmt/key/a" { capabilities = ["update"] }`)
	a.putPolicy(t, "blocker", `path "keymgmt/key/*" { capabilities = ["deny"] }
path "keymgmt/key/b" { capabilities = ["deny"] }`)
	tests := []struct {
		name     string
		policies []string
		path     string
		cap      string
		want     bool
	}{
		{name: "ok union across policies", policies: []string{"reader", "writer"}, path: "keymgmt/key/a", cap: "update", want: true},
		{name: "ok union keeps read", policies: []string{"reader", "writer"}, path: "keymgmt/key/a", cap: "read", want: true},
		{name: "fail deny glob merged", policies: []string{"reader", "blocker"}, path: "keymgmt/key/c", cap: "read", want: false},
		{name: "fail deny glob merged for list", policies: []string{"reader", "blocker"}, path: "keymgmt/key", cap: "list", want: false},
		{name: "fail deny exact merged", policies: []string{"reader", "writer", "blocker"}, path: "keymgmt/key/b", cap: "read", want: false},
		{name: "ok more specific allow beats deny glob", policies: []string{"reader", "writer", "blocker"}, path: "keymgmt/key/a", cap: "update", want: true},
		{name: "fail missing policy grants nothing", policies: []string{"nosuch"}, path: "keymgmt/key/a", cap: "read", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, tok := a.create(t, a.root, CreateRequest{Policies: tt.policies})
			got, err := a.m.Allowed(ctx, tok, tt.path, tt.cap, false)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("%v: %s %s = %v, want %v", tt.policies, tt.cap, tt.path, got, tt.want)
			}
		})
	}
}

func TestBuiltinPolicies(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	_, plain := a.create(t, a.root, CreateRequest{Policies: []string{"none"}})
	allowed := func(tok *Token, path, c string) bool {
		t.Helper()
		ok, err := a.m.Allowed(ctx, tok, path, c, false)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, c := range []string{"create", "read", "update", "delete", "list"} {
		if !allowed(a.root, "anything/at/all", c) {
			t.Errorf("root may not %s", c)
		}
	}
	if ok, _ := a.m.Allowed(ctx, a.root, "sys/x", "read", true); !ok {
		t.Error("root has no sudo")
	}
	if !allowed(plain, "auth/token/lookup-self", "read") || !allowed(plain, "auth/token/revoke-self", "update") || !allowed(plain, "auth/token/renew-self", "update") {
		t.Error("the default policy does not let a token look up, renew and revoke itself")
	}
	if allowed(plain, "auth/token/create", "update") || allowed(plain, "sys/policy/default", "update") {
		t.Error("the default policy grants more than self-service")
	}

	tests := []struct {
		name     string
		op       func() error
		wantKind fault.Kind
	}{
		{name: "fail put root", op: func() error { _, err := a.m.PutPolicy(ctx, "root", `path "*" { capabilities = ["read"] }`); return err }, wantKind: fault.BadInput},
		{name: "fail put ROOT", op: func() error { _, err := a.m.PutPolicy(ctx, "ROOT", `path "*" { capabilities = ["read"] }`); return err }, wantKind: fault.BadInput},
		{name: "fail delete root", op: func() error { return a.m.DeletePolicy(ctx, "root") }, wantKind: fault.BadInput},
		{name: "fail delete default", op: func() error { return a.m.DeletePolicy(ctx, "default") }, wantKind: fault.BadInput},
		{name: "fail bad name", op: func() error { _, err := a.m.PutPolicy(ctx, "a b", `path "a" { capabilities = ["read"] }`); return err }, wantKind: fault.BadInput},
		{name: "fail get missing", op: func() error { _, err := a.m.Policy(ctx, "nope"); return err }, wantKind: fault.NotFound},
		{name: "ok delete missing", op: func() error { return a.m.DeletePolicy(ctx, "nope") }},
		{name: "ok get root", op: func() error { _, err := a.m.Policy(ctx, "root"); return err }},
		{name: "ok get default", op: func() error { _, err := a.m.Policy(ctx, "default"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); kindOf(err) != tt.wantKind {
				t.Errorf("err %v, want kind %q", err, tt.wantKind)
			}
		})
	}

	// default can be edited, and the edit takes effect at once.
	a.putPolicy(t, "Default", `path "keymgmt/*" { capabilities = ["read"] }`)
	if allowed(plain, "auth/token/lookup-self", "read") || !allowed(plain, "keymgmt/key/a", "read") {
		t.Error("the edited default policy is not in force")
	}
	names, err := a.m.PolicyNames(ctx)
	if err != nil || len(names) != 2 || names[0] != "default" || names[1] != "root" {
		t.Errorf("names %v, %v", names, err)
	}
}

// The policy cache follows writes and deletes.
func TestPolicyCache(t *testing.T) {
	a := newTestAuth(t)
	ctx := context.Background()
	_, tok := a.create(t, a.root, CreateRequest{Policies: []string{"ops"}})
	check := func(want bool) {
		t.Helper()
		got, err := a.m.Allowed(ctx, tok, "keymgmt/key/a", "read", false)
		if err != nil || got != want {
			t.Fatalf("allowed %v, %v; want %v", got, err, want)
		}
	}
	check(false) // caches "ops" as missing
	a.putPolicy(t, "ops", `path "keymgmt/*" { capabilities = ["read"] }`)
	check(true)
	a.putPolicy(t, "ops", `path "keymgmt/*" { capabilities = ["list"] }`)
	check(false)
	a.putPolicy(t, "ops", `path "keymgmt/*" { capabilities = ["read"] }`)
	check(true)
	if err := a.m.DeletePolicy(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	check(false)
	// A fresh manager over the same store reads what was written.
	a.putPolicy(t, "ops", `path "keymgmt/*" { capabilities = ["read"] }`)
	m2 := New(a.st)
	if ok, err := m2.Allowed(ctx, tok, "keymgmt/key/a", "read", false); err != nil || !ok {
		t.Errorf("a fresh manager: %v, %v", ok, err)
	}
	p, err := m2.Policy(ctx, "ops")
	if err != nil || p.Text != `path "keymgmt/*" { capabilities = ["read"] }` {
		t.Errorf("policy text %v", err)
	}
}
