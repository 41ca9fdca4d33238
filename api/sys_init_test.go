package api

import (
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

func TestOperatorInit(t *testing.T) {
	env := newTestEnvRoot(t, "")
	c := env.client(t, "")
	if ok, err := c.Sys().InitStatus(); err != nil || ok {
		t.Fatalf("init status before init: %v %v", ok, err)
	}
	if st, m := rawReq(t, env, "GET", "/v1/sys/health", "", ""); st != 501 || m["initialized"] != false {
		t.Fatalf("health before init: %d %v", st, m)
	}
	resp, err := c.Sys().Init(&vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil || !strings.HasPrefix(resp.RootToken, "khs.") {
		t.Fatalf("init: %+v %v", resp, err)
	}
	if ok, _ := c.Sys().InitStatus(); !ok {
		t.Fatal("not initialized after init")
	}
	root := env.client(t, resp.RootToken)
	if err := root.Sys().Mount("keymgmt", &vault.MountInput{Type: "keymgmt"}); err != nil {
		t.Fatalf("the new root token does not work: %v", err)
	}
	if _, err := c.Sys().Init(&vault.InitRequest{SecretShares: 1, SecretThreshold: 1}); statusOfErr(err) != 400 || !strings.Contains(err.Error(), "already initialized") {
		t.Fatalf("second init: %v", err)
	}
	if st, _ := rawReq(t, env, "GET", "/v1/sys/health", "", ""); st != 200 {
		t.Fatalf("health after init: %d", st)
	}
}

// Revoking the root token after set-up (as Vault's hardening advice has it)
// must not let anybody without a token initialise the appliance again and
// mint a new root token.
func TestInitClosedAfterRootRevoked(t *testing.T) {
	env := newTestEnvRoot(t, "")
	anon := env.client(t, "")
	resp, err := anon.Sys().Init(&vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	root := env.client(t, resp.RootToken)
	// A child token, revoked with its parent: no token at all is left.
	if _, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"default"}}); err != nil {
		t.Fatal(err)
	}
	if err := root.Auth().Token().RevokeSelf(""); err != nil {
		t.Fatal(err)
	}
	if ok, err := anon.Sys().InitStatus(); err != nil || !ok {
		t.Fatalf("init status after the root token was revoked: %v %v", ok, err)
	}
	if st, m := rawReq(t, env, "GET", "/v1/sys/health", "", ""); st != 200 || m["initialized"] != true {
		t.Fatalf("health after the root token was revoked: %d %v", st, m)
	}
	if st, m := rawReq(t, env, "PUT", "/v1/sys/init", "", `{"secret_shares":1,"secret_threshold":1}`); st != 400 || m["root_token"] != nil {
		t.Fatalf("init after the root token was revoked: %d %v", st, m)
	}
}
