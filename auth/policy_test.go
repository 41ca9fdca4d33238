package auth

import (
	"slices"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/fault"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		want     []Rule // Path and Capabilities
		wantKind fault.Kind
		wantMsg  string
	}{
		{name: "ok hcl", text: `
# keys, read only
path "keymgmt/key/*" {
  capabilities = ["read", "list"]
}
path "/keymgmt/key/+/rotate" { capabilities = ["deny"] }`,
			want: []Rule{{Path: "keymgmt/key/*", Capabilities: []string{"read", "list"}}, {Path: "keymgmt/key/+/rotate", Capabilities: []string{"deny"}}}},
		{name: "ok json", text: `{"path": {"a/*": {"capabilities": ["read"]}, "b": {"capabilities": ["update", "create"]}}}`,
			want: []Rule{{Path: "a/*", Capabilities: []string{"read"}}, {Path: "b", Capabilities: []string{"create", "update"}}}},
		{name: "ok same path merged", text: `path "a" { capabilities = ["read"] }
path "a" { capabilities = ["list", "sudo"] }`,
			want: []Rule{{Path: "a", Capabilities: []string{"read", "list", "sudo"}}}},
		{name: "ok deny absorbs", text: `path "a" { capabilities = ["read", "deny", "update"] }`,
			want: []Rule{{Path: "a", Capabilities: []string{"deny"}}}},
		{name: "ok legacy policy", text: `path "a" { policy = "write" }
path "b" { policy = "read" }`,
			want: []Rule{{Path: "a", Capabilities: []string{"create", "read", "update", "delete", "list"}}, {Path: "b", Capabilities: []string{"read", "list"}}}},
		{name: "ok empty capabilities", text: `path "a" { capabilities = [] }`, want: []Rule{{Path: "a", Capabilities: []string{}}}},
		{name: "ok comment and name", text: `name = "x"
path "a" {
  comment = "why"
  capabilities = ["read"]
}`, want: []Rule{{Path: "a", Capabilities: []string{"read"}}}},
		{name: "ok comments only", text: "# nothing yet\n", want: nil},
		{name: "fail empty", text: "  \n", wantKind: fault.BadInput, wantMsg: "empty"},
		{name: "fail syntax", text: `path "a" {`, wantKind: fault.BadInput, wantMsg: "not valid HCL"},
		{name: "fail unknown capability", text: `path "a" { capabilities = ["read", "reed"] }`, wantKind: fault.BadInput, wantMsg: `unknown capability "reed"`},
		{name: "fail capability case", text: `path "a" { capabilities = ["READ"] }`, wantKind: fault.BadInput, wantMsg: "unknown capability"},
		{name: "fail patch capability", text: `path "a" { capabilities = ["patch"] }`, wantKind: fault.BadInput, wantMsg: "unknown capability"},
		{name: "fail capabilities not a list", text: `path "a" { capabilities = "read" }`, wantKind: fault.BadInput, wantMsg: "list of strings"},
		{name: "fail capabilities of numbers", text: `path "a" { capabilities = [1] }`, wantKind: fault.BadInput, wantMsg: "list of strings"},
		{name: "fail unknown legacy policy", text: `path "a" { policy = "all" }`, wantKind: fault.BadInput, wantMsg: "unknown policy"},
		{name: "fail unknown setting", text: `path "a" { capabilites = ["read"] }`, wantKind: fault.BadInput, wantMsg: `unknown setting "capabilites"`},
		{name: "fail unsupported setting", text: `path "a" {
  capabilities = ["update"]
  denied_parameters = { "type" = [] }
}`, wantKind: fault.Unsupported, wantMsg: "line 3"},
		{name: "fail unknown top-level", text: `paths "a" { capabilities = ["read"] }`, wantKind: fault.BadInput, wantMsg: "unknown setting"},
		{name: "fail two path keys", text: `path "a" "b" { capabilities = ["read"] }`, wantKind: fault.BadInput, wantMsg: "one quoted path"},
		{name: "fail path without block", text: `path = "a"`, wantKind: fault.BadInput, wantMsg: "quoted path"},
		{name: "fail star inside", text: `path "a/*/b" { capabilities = ["read"] }`, wantKind: fault.BadInput, wantMsg: "only at the end"},
		{name: "fail plus inside segment", text: `path "a/b+c" { capabilities = ["read"] }`, wantKind: fault.BadInput, wantMsg: "whole path segment"},
		{name: "fail empty path", text: `path "/" { capabilities = ["read"] }`, wantKind: fault.BadInput, wantMsg: "empty"},
		{name: "fail space in path", text: `path "a b" { capabilities = ["read"] }`, wantKind: fault.BadInput, wantMsg: "space"},
		{name: "fail duplicate setting", text: `path "a" {
  capabilities = ["read"]
  capabilities = ["list"]
}`, wantKind: fault.BadInput},
		{name: "fail too long", text: `path "a" { capabilities = ["read"] }` + strings.Repeat("#", MaxPolicyBytes), wantKind: fault.BadInput, wantMsg: "longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy("t", tt.text)
			if kindOf(err) != tt.wantKind {
				t.Fatalf("err %v, want kind %q", err, tt.wantKind)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("message %q does not say %q", err, tt.wantMsg)
				}
				return
			}
			if p.Text != tt.text || p.Name != "t" {
				t.Errorf("name %q, text kept %v", p.Name, p.Text == tt.text)
			}
			if len(p.Rules) != len(tt.want) {
				t.Fatalf("rules %+v, want %+v", p.Rules, tt.want)
			}
			for i, r := range p.Rules {
				if r.Path != tt.want[i].Path || !slices.Equal(r.Capabilities, tt.want[i].Capabilities) {
					t.Errorf("rule %d: %s %v, want %s %v", i, r.Path, r.Capabilities, tt.want[i].Path, tt.want[i].Capabilities)
				}
			}
		})
	}
}
