package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Policies and tokens end to end: a token limited to reading keys can read
// and list but not write, looks itself up, and stops working once revoked.
func TestTokenAndPolicyCommands(t *testing.T) {
	addr, root, _, _ := devServer(t, t.TempDir())
	op := newOperator(t, addr, root)
	op.must(`keyhold secrets enable keymgmt`, `Success!`)
	op.must(`keyhold write -f keymgmt/key/example-key type=rsa-2048`, `rsa-2048`)

	rules := filepath.Join(t.TempDir(), "key-reader.hcl")
	os.WriteFile(rules, []byte(`path "keymgmt/key" {
  capabilities = ["list"]
}
path "keymgmt/key/*" {
  capabilities = ["read", "list"]
}
`), 0o600)
	op.must(`keyhold policy write key-reader `+rules, `^Success! Uploaded policy: key-reader\n$`)
	op.must(`keyhold policy write from-stdin - < `+rules, `^Success! Uploaded policy: from-stdin\n$`)
	op.must(`keyhold policy list`, `(?m)^key-reader$`)
	op.must(`keyhold policy read key-reader`, `path "keymgmt/key/\*" \{`)
	op.must(`keyhold policy read -format=json key-reader`, `"policy": "path`)

	// A token with the policy, its table and its JSON.
	op.must(`keyhold token create -policy=key-reader -ttl=1h -display-name=ci`,
		`(?m)^token\s+\S+\ntoken_accessor\s+\S+\ntoken_duration\s+(1h|59m5\ds)\ntoken_renewable\s+true\ntoken_policies\s+\[.*"key-reader".*\]`)
	out := op.must(`keyhold token create -format=json -policy=key-reader -ttl=1h -display-name=ci`, `"auth"`)
	var created struct {
		Auth struct {
			ClientToken string   `json:"client_token"`
			Accessor    string   `json:"accessor"`
			Policies    []string `json:"policies"`
		} `json:"auth"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Auth.ClientToken == "" || created.Auth.Accessor == "" {
		t.Fatalf("token create -format=json: %v\n%s", err, out)
	}
	tok, acc := created.Auth.ClientToken, created.Auth.Accessor

	reader := newOperator(t, addr, tok)
	reader.must(`keyhold read keymgmt/key/example-key`, `(?m)^name\s+example-key$`)
	reader.must(`keyhold list keymgmt/key`, `example-key`)
	reader.mustFail(`keyhold write -f keymgmt/key/other`, "Error writing keymgmt/key/other: Code: 403.", "permission denied")
	reader.must(`keyhold token lookup`, `(?m)^policies\s+\[.*key-reader.*\]$`)
	op.must(`keyhold token lookup -- `+tok, `(?m)^accessor\s+`+regexp.QuoteMeta(acc)+`$`)
	op.must(`keyhold token lookup -accessor -- `+acc, `(?m)^display_name\s+\S*ci$`)

	op.must(`keyhold token revoke -accessor -- `+acc, `^Success! Revoked token \(if it existed\)\n$`)
	reader.mustFail(`keyhold read keymgmt/key/example-key`, "Code: 403.", "permission denied")

	// Revoking by token, and a token revoking itself.
	tok2 := strings.TrimSpace(op.must(`keyhold token create -field=token -policy=key-reader`, `\S`))
	op.must(`keyhold token revoke -- `+tok2, `Success! Revoked token`)
	newOperator(t, addr, tok2).mustFail(`keyhold token lookup`, "permission denied")
	tok3 := strings.TrimSpace(op.must(`keyhold token create -field=token -policy=key-reader -use-limit=5`, `\S`))
	self := newOperator(t, addr, tok3)
	self.must(`keyhold token revoke -self`, `Success! Revoked token`)
	self.mustFail(`keyhold read keymgmt/key/example-key`, "permission denied")

	op.must(`keyhold policy delete key-reader`, `^Success! Deleted policy: key-reader\n$`)
	op.mustFail(`keyhold policy read key-reader`, "Error reading policy key-reader: Code: 404.")
}
