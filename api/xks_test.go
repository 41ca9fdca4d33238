package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/xks"
)

// newXKSEnv is the API test server with an XKS manager and an xks mount.
func newXKSEnv(t *testing.T) (*testEnv, *xks.Manager) {
	t.Helper()
	e := newTestEnv(t)
	m := xks.New(xks.Options{HSM: e.hsm, Store: e.store, Version: "test"})
	t.Cleanup(func() { m.Close() })
	e.srv.d.XKS = m
	c := e.client(t, testRootToken)
	if _, err := c.Logical().Write("sys/mounts/xks", map[string]any{"type": "xks"}); err != nil {
		t.Fatal(err)
	}
	return e, m
}

func TestXKSAdmin(t *testing.T) {
	e, m := newXKSEnv(t)
	c := e.client(t, testRootToken).Logical()
	mount := e.srv.mounts.get("xks")

	if sec, err := c.Read("xks/config"); sec != nil || err != nil { // the Vault client's answer to a 404
		t.Fatalf("config before any write: %v %v", sec, err)
	}
	if _, err := c.Write("xks/credential/generate", map[string]any{"prefix": "p"}); statusOfErr(err) != http.StatusBadRequest {
		t.Fatalf("credential before config: %v", err)
	}
	for name, bad := range map[string]map[string]any{
		"fail no TLS":              {"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "p"},
		"fail no prefixes":         {"listen_addrs": "127.0.0.1:0", "tls_internal_ca": true},
		"fail bad prefix":          {"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "a b", "tls_internal_ca": true},
		"fail plaintext limit low": {"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "p", "tls_internal_ca": true, "max_plaintext_bytes": 4299},
		"fail unknown field":       {"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "p", "tls_internal_ca": true, "nope": 1},
		"fail bad client CA":       {"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "p", "tls_internal_ca": true, "mtls_client_ca": "x"},
		"fail max_connections":     {"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "p", "tls_internal_ca": true, "max_connections": -1},
		"fail max_connections 0":   {"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "p", "tls_internal_ca": true, "max_connections": 0},
	} {
		if _, err := c.Write("xks/config", bad); statusOfErr(err) != http.StatusBadRequest {
			t.Errorf("%s: %v", name, err)
		}
	}
	sec, err := c.Write("xks/config", map[string]any{"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": []any{"p", ""}, "tls_internal_ca": true})
	if err != nil {
		t.Fatal(err)
	}
	if l := sec.Data["listening"].([]any); len(l) != 1 || len(m.Addrs(mount.UUID)) != 1 {
		t.Fatalf("not listening: %v", sec.Data)
	}
	if p := sec.Data["uri_paths"].([]any); len(p) != 2 || p[0] != "/p/kms/xks/v1" || p[1] != "/kms/xks/v1" {
		t.Fatalf("uri_paths %v", p)
	}
	if _, ok := sec.Data["tls_key_blob"]; ok {
		t.Fatal("the config shows the key blob")
	}
	if n, _ := sec.Data["max_connections"].(json.Number).Int64(); n != 1024 {
		t.Fatalf("max_connections %v, want the default 1024", sec.Data["max_connections"])
	}
	ca, err := c.Read("xks/ca")
	if err != nil || !strings.HasPrefix(ca.Data["certificate"].(string), "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("ca: %v %v", ca, err)
	}

	cred, err := c.Write("xks/credential/generate", map[string]any{"prefix": "p"})
	if err != nil {
		t.Fatal(err)
	}
	akid := cred.Data["access_key_id"].(string)
	if cred.Data["secret_access_key"].(string) == "" || cred.Data["xks_proxy_configuration"].(map[string]any)["XksProxyUriPath"] != "/p/kms/xks/v1" {
		t.Fatalf("generate: %v", cred.Data)
	}
	list, err := c.List("xks/credential")
	if err != nil || len(list.Data["keys"].([]any)) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	// A null is no value: it neither moves the mount to the empty prefix
	// (which would revoke the credential) nor changes anything else.
	if _, err := c.Write("xks/config", map[string]any{"uri_path_prefixes": nil, "max_connections": nil}); err != nil {
		t.Fatal(err)
	}
	if list, err := c.List("xks/credential"); err != nil || len(list.Data["keys"].([]any)) != 1 {
		t.Fatalf("list after a config write of nulls: %v %v", list, err)
	}
	info, err := c.Read("xks/credential/" + akid)
	if err != nil || info.Data["prefix"] != "p" || info.Data["secret_access_key"] != nil {
		t.Fatalf("read credential: %v %v", info, err)
	}
	if _, err := c.Write("xks/credential/revoke", map[string]any{"access_key_id": akid}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write("xks/credential/revoke", map[string]any{"access_key_id": akid}); statusOfErr(err) != http.StatusNotFound {
		t.Fatalf("second revoke: %v", err)
	}

	k, err := c.Write("xks/key/foo", map[string]any{"key_usage": "ENCRYPT"})
	if err != nil {
		t.Fatal(err)
	}
	if k.Data["key_status"] != "ENABLED" || len(k.Data["key_usage"].([]any)) != 1 || k.Data["key_spec"] != "AES_256" {
		t.Fatalf("key: %v", k.Data)
	}
	if _, err := c.Write("xks/key/bad!name", nil); statusOfErr(err) != http.StatusBadRequest {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := c.Write("xks/key/x", map[string]any{"key_usage": "SIGN"}); statusOfErr(err) != http.StatusBadRequest {
		t.Fatalf("bad usage: %v", err)
	}
	k, err = c.Write("xks/key/foo", map[string]any{"enabled": false, "key_usage": "encrypt,decrypt"})
	if err != nil || k.Data["key_status"] != "DISABLED" || len(k.Data["key_usage"].([]any)) != 2 {
		t.Fatalf("update: %v %v", k, err)
	}
	if keys, err := c.List("xks/key"); err != nil || len(keys.Data["keys"].([]any)) != 1 {
		t.Fatalf("list keys: %v %v", keys, err)
	}

	if _, err := c.Write("xks/rule/r1", map[string]any{"keys": "foo", "aws_principal_arn": "arn:aws:iam::1:user/*"}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Read("xks/rule/r1")
	if err != nil || r.Data["aws_principal_arn"].([]any)[0] != "arn:aws:iam::1:user/*" {
		t.Fatalf("rule: %v %v", r, err)
	}
	if _, err := c.Write("xks/rule/r2", map[string]any{"keys": "foo"}); statusOfErr(err) != http.StatusBadRequest {
		t.Fatalf("rule without conditions: %v", err)
	}
	if _, err := c.Delete("xks/rule/r1"); err != nil {
		t.Fatal(err)
	}

	// Disabling the mount needs force while it holds keys; then its data
	// and its listener are gone.
	if _, err := c.Delete("sys/mounts/xks"); statusOfErr(err) != http.StatusConflict {
		t.Fatalf("disable without force: %v", err)
	}
	if _, err := c.DeleteWithData("sys/mounts/xks", map[string][]string{"force": {"true"}}); err != nil {
		t.Fatal(err)
	}
	if len(m.Addrs(mount.UUID)) != 0 {
		t.Fatal("the listener survived the mount")
	}
	e.store.View(context.Background(), func(tx store.Tx) error {
		if left, _ := tx.List(context.Background(), "xks/"+mount.UUID+"/"); len(left) != 0 {
			t.Fatalf("left in the store: %v", left)
		}
		return nil
	})
}

// xks/credential/revoke names its credential in the body: the credential's
// own path decides as well, so a policy denying it holds on both routes.
func TestXKSRevokeHonoursTheCredentialsPath(t *testing.T) {
	e, _ := newXKSEnv(t)
	root := e.client(t, testRootToken)
	c := root.Logical()
	if _, err := c.Write("xks/config", map[string]any{"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "p", "tls_internal_ca": true}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 2 {
		cred, err := c.Write("xks/credential/generate", map[string]any{"prefix": "p"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cred.Data["access_key_id"].(string))
	}
	protected, other := ids[0], ids[1]
	if err := root.Sys().PutPolicy("revoker", `path "xks/credential/*" { capabilities = ["update", "delete"] }
path "xks/credential/`+protected+`" { capabilities = ["deny"] }`); err != nil {
		t.Fatal(err)
	}
	tok, _ := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"revoker"}})
	rc := e.client(t, tok).Logical()
	if _, err := rc.Delete("xks/credential/" + protected); statusOfErr(err) != http.StatusForbidden {
		t.Fatalf("delete of a denied credential: %v", err)
	}
	if _, err := rc.Write("xks/credential/revoke", map[string]any{"access_key_id": protected}); statusOfErr(err) != http.StatusForbidden {
		t.Fatalf("revoke of a denied credential: %v", err)
	}
	if _, err := c.Read("xks/credential/" + protected); err != nil {
		t.Fatalf("the denied credential is gone: %v", err)
	}
	if _, err := rc.Write("xks/credential/revoke", map[string]any{"access_key_id": other}); err != nil {
		t.Fatalf("revoke of an allowed credential: %v", err)
	}
	if _, err := rc.Write("xks/credential/revoke", map[string]any{"access_key_id": "../../sys/x"}); statusOfErr(err) != http.StatusNotFound {
		t.Fatalf("revoke of a path-like id: %v", err)
	}
}

// An empty list of prefixes is refused, and leaves the prefixes and their
// credentials as they were; "" (a string) is the empty prefix.
func TestXKSConfigRefusesAnEmptyPrefixList(t *testing.T) {
	e, _ := newXKSEnv(t)
	c := e.client(t, testRootToken).Logical()
	if _, err := c.Write("xks/config", map[string]any{"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "p", "tls_internal_ca": true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write("xks/credential/generate", map[string]any{"prefix": "p"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write("xks/config", map[string]any{"uri_path_prefixes": []any{}}); statusOfErr(err) != http.StatusBadRequest {
		t.Fatalf("uri_path_prefixes=[]: %v, want 400", err)
	}
	sec, err := c.Read("xks/config")
	if err != nil {
		t.Fatal(err)
	}
	if p := sec.Data["uri_path_prefixes"].([]any); len(p) != 1 || p[0] != "p" {
		t.Fatalf("prefixes after the refused write: %v", p)
	}
	if l, err := c.List("xks/credential"); err != nil || l == nil || len(l.Data["keys"].([]any)) != 1 {
		t.Fatalf("credentials after the refused write: %v %v", l, err)
	}
	sec, err = c.Write("xks/config", map[string]any{"uri_path_prefixes": ""})
	if err != nil {
		t.Fatal(err)
	}
	if p := sec.Data["uri_path_prefixes"].([]any); len(p) != 1 || p[0] != "" {
		t.Fatalf(`uri_path_prefixes="": %v, want the empty prefix`, p)
	}
}

// key_store_regions takes an object of prefix to region, or PREFIX=REGION
// strings (as the CLI sends a prefix with '/'), and reads back as an object;
// a write replaces them all, and what is not a region or not a key store is
// refused.
func TestXKSKeyStoreRegions(t *testing.T) {
	e, _ := newXKSEnv(t)
	c := e.client(t, testRootToken).Logical()
	if _, err := c.Write("xks/config", map[string]any{"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": []any{"a/b", "", "c"}, "tls_internal_ca": true}); err != nil {
		t.Fatal(err)
	}
	regions := func() map[string]any {
		t.Helper()
		sec, err := c.Read("xks/config")
		if err != nil {
			t.Fatal(err)
		}
		return sec.Data["key_store_regions"].(map[string]any)
	}
	if r := regions(); len(r) != 0 {
		t.Fatalf("regions before any were written: %v", r)
	}
	for _, w := range []struct {
		v    any
		want map[string]any
	}{
		{map[string]any{"a/b": "eu-west-1", "": "us-east-1"}, map[string]any{"a/b": "eu-west-1", "": "us-east-1"}},
		{"a/b=eu-west-2", map[string]any{"a/b": "eu-west-2"}},
		{"a/b=eu-west-2, /=us-east-2,c=ap-south-1", map[string]any{"a/b": "eu-west-2", "": "us-east-2", "c": "ap-south-1"}},
		{[]any{"=us-west-2", "c=us-gov-west-1"}, map[string]any{"": "us-west-2", "c": "us-gov-west-1"}},
		{map[string]any{}, map[string]any{}},
	} {
		if _, err := c.Write("xks/config", map[string]any{"key_store_regions": w.v}); err != nil {
			t.Fatalf("key_store_regions=%v: %v", w.v, err)
		}
		if r := regions(); !reflect.DeepEqual(r, w.want) {
			t.Fatalf("key_store_regions=%v reads back %v, want %v", w.v, r, w.want)
		}
	}
	for _, bad := range []any{
		map[string]any{"d": "us-east-1"},
		map[string]any{"c": "nowhere"},
		map[string]any{"c": 1},
		"c",
		"c=us-east-1,c=us-east-2",
		[]any{1},
		7,
	} {
		if _, err := c.Write("xks/config", map[string]any{"key_store_regions": bad}); statusOfErr(err) != http.StatusBadRequest {
			t.Errorf("key_store_regions=%v: %v, want 400", bad, err)
		}
	}
}

// sys/health?listener= answers 200 while the named listener is up on this
// node, by the mount's name as sys/mounts lists it (with its slash) or
// without, and 503 for a listener that is not up or not there; it needs a
// token that may read sys/mounts.
func TestHealthOfAListener(t *testing.T) {
	e, _ := newXKSEnv(t)
	c := e.client(t, testRootToken).Logical()
	if st, _ := rawReq(t, e, "GET", "/v1/sys/health?listener=xks", testRootToken, ""); st != 503 {
		t.Fatalf("a listener not configured: %d, want 503", st)
	}
	if _, err := c.Write("xks/config", map[string]any{"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "p", "tls_internal_ca": true}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"xks", "xks/"} {
		if st, m := rawReq(t, e, "GET", "/v1/sys/health?listener="+name, testRootToken, ""); st != 200 {
			t.Errorf("listener=%s: %d %v, want 200", name, st, m)
		}
	}
	if st, _ := rawReq(t, e, "GET", "/v1/sys/health?listener=nope/", testRootToken, ""); st != 503 {
		t.Errorf("a listener that is not there: %d, want 503", st)
	}
}

// TestHealthOfAListenerTellsNoMount: without a token that may read
// sys/mounts, sys/health?listener= answers the same for a mount whose
// listener is up, a mount without one and a name that is no mount.
func TestHealthOfAListenerTellsNoMount(t *testing.T) {
	e, _ := newXKSEnv(t)
	root := e.client(t, testRootToken)
	if _, err := root.Logical().Write("xks/config", map[string]any{"listen_addrs": "127.0.0.1:0", "uri_path_prefixes": "p", "tls_internal_ca": true}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Mount("keymgmt", &vault.MountInput{Type: "keymgmt"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("keys-only", `path "keymgmt/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, _ := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"keys-only"}})
	if st, _ := rawReq(t, e, "GET", "/v1/sys/health?listener=xks", testRootToken, ""); st != 200 {
		t.Fatalf("the listener for root: %d, want 200", st)
	}
	for _, who := range []struct{ name, token string }{{"no token", ""}, {"a token that may not read sys/mounts", tok}, {"a bad token", "not-a-token"}} {
		var first string
		for _, name := range []string{"xks", "xks/", "keymgmt", "nope"} {
			st, m := rawReq(t, e, "GET", "/v1/sys/health?listener="+name, who.token, "")
			got := fmt.Sprint(st, " ", m["errors"])
			if st != 403 || len(m) != 1 || !strings.Contains(errText(m), "needs a token that may read sys/mounts") {
				t.Errorf("%s, listener=%s: %d %v keys, %s, want 403 with only errors", who.name, name, st, len(m), got)
			}
			if first == "" {
				first = got
			} else if got != first {
				t.Errorf("%s: listener=%s answers %s, listener=xks %s", who.name, name, got, first)
			}
		}
	}
	// Without listener= the health answer stays open to all.
	if st, _ := rawReq(t, e, "GET", "/v1/sys/health", "", ""); st != 200 {
		t.Fatalf("health without a token: %d", st)
	}
}
