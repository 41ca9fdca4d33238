package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/auth"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/keymgmt"
	"github.com/keyhold/keyhold/keymgmt/kmsfake"
	"github.com/keyhold/keyhold/keymgmt/provider"
	"github.com/keyhold/keyhold/metrics"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/sqlite"
)

// newKMSTestEnv is newTestEnv with a keymgmt manager whose providers are
// the given (fake-backed) factories.
func newKMSTestEnv(t *testing.T, providers map[string]provider.Factory) *testEnv {
	t.Helper()
	ctx := context.Background()
	h := hsmtest.Open(t)
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logger := slog.New(slog.DiscardHandler)
	srv := New(Deps{HSM: h, Store: st, Auth: auth.New(st), Keys: keymgmt.NewWithOptions(h, st, keymgmt.Options{Providers: providers}),
		Logger: logger, Version: "test", Audit: audit.NewBroker(h, st, logger), Metrics: metrics.New()})
	if err := srv.Init(ctx, testRootToken); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &testEnv{srv: srv, ts: ts, hsm: h, store: st, dir: dir}
}

type kmsCase struct {
	provider, collection, endpoint string
	creds                          map[string]string
	typ                            string
	purpose                        string
}

func kmsCases(t *testing.T) ([]kmsCase, map[string]provider.Factory) {
	aws := kmsfake.NewAWS("us-east-1")
	srv := aws.Serve()
	t.Cleanup(srv.Close)
	gcp := kmsfake.NewGCP()
	addr, stop, err := gcp.Serve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	sa, err := kmsfake.ServiceAccount()
	if err != nil {
		t.Fatal(err)
	}
	az := kmsfake.NewAzure("https://keyvault-name.vault.azure.net")
	return []kmsCase{
			{provider.AWSKMS, "us-east-1", srv.URL, map[string]string{"access_key": "AKIAEXAMPLE", "secret_key": "aws-secret-in-audit-only-as-hmac"}, "aes256-gcm96", "encrypt,decrypt"},
			{provider.GCPCKMS, "projects/p1/locations/global/keyRings/r1", addr, map[string]string{"service_account_file": sa}, "rsa-2048", "decrypt"},
			{provider.AzureKeyVault, "keyvault-name", "", map[string]string{"client_id": "azure-client-id-0001", "client_secret": "azure-secret-in-audit-only-as-hmac", "tenant_id": "azure-tenant-id-0001"}, "rsa-2048", "encrypt,decrypt"},
		}, map[string]provider.Factory{
			provider.AWSKMS: keymgmt.DefaultProviders()[provider.AWSKMS], provider.GCPCKMS: kmsfake.GCPFactory(), provider.AzureKeyVault: az.Factory(),
		}
}

func TestKMSWithVaultClient(t *testing.T) {
	cases, factories := kmsCases(t)
	env := newKMSTestEnv(t, factories)
	c := env.client(t, testRootToken)
	mountKeymgmt(t, c, "keymgmt")
	logPath := enableFileAudit(t, c)
	l := c.Logical()
	for _, kc := range cases {
		t.Run("ok "+kc.provider, func(t *testing.T) {
			kms, key := "kms-"+kc.provider, "key-"+kc.provider
			data := map[string]any{"provider": kc.provider, "key_collection": kc.collection, "credentials": kc.creds}
			if kc.endpoint != "" {
				data["endpoint"] = kc.endpoint
			}
			if _, err := l.Write("keymgmt/kms/"+kms, data); err != nil {
				t.Fatal(err)
			}
			s, err := l.Read("keymgmt/kms/" + kms)
			if err != nil {
				t.Fatal(err)
			}
			if s.Data["provider"] != kc.provider || s.Data["key_collection"] != kc.collection {
				t.Fatalf("read kms: %v", s.Data)
			}
			if _, ok := s.Data["credentials"]; ok {
				t.Fatal("read returns the credentials")
			}
			if _, err := l.Write("keymgmt/key/"+key, map[string]any{"type": kc.typ}); err != nil {
				t.Fatal(err)
			}
			s, err = l.Write("keymgmt/kms/"+kms+"/key/"+key, map[string]any{"purpose": kc.purpose, "protection": "hsm"})
			if err != nil {
				t.Fatal(err)
			}
			vs := s.Data["versions"].(map[string]any)
			if s.Data["status"] != "distributed" || len(vs) != 1 || vs["1"] == "" {
				t.Fatalf("distribute: %v", s.Data)
			}
			details := s.Data["version_details"].(map[string]any)["1"].(map[string]any)
			if !strings.HasPrefix(details["wrapping_path"].(string), "token:") {
				t.Fatalf("no wrapping path: %v", details)
			}
			if _, err := l.Write("keymgmt/key/"+key+"/rotate", nil); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Write("keymgmt/key/"+key, map[string]any{"min_enabled_version": 2}); err != nil {
				t.Fatal(err)
			}
			s, err = l.Read("keymgmt/kms/" + kms + "/key/" + key)
			if err != nil {
				t.Fatal(err)
			}
			det := s.Data["version_details"].(map[string]any)
			if len(det) != 2 || det["1"].(map[string]any)["enabled"] != false || det["2"].(map[string]any)["enabled"] != true {
				t.Fatalf("after rotate and min_enabled_version=2: %v", det)
			}
			list, err := l.List("keymgmt/kms/" + kms + "/key")
			if err != nil || fmt.Sprint(list.Data["keys"]) != "["+key+"]" {
				t.Fatalf("list kms/:name/key: %v %v", list, err)
			}
			list, err = l.List("keymgmt/key/" + key + "/kms")
			if err != nil || fmt.Sprint(list.Data["keys"]) != "["+kms+"]" {
				t.Fatalf("list key/:name/kms: %v %v", list, err)
			}
			if _, err := l.Write("keymgmt/key/"+key, map[string]any{"deletion_allowed": true}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Delete("keymgmt/key/" + key); statusOfErr(err) != 409 {
				t.Fatalf("delete of a distributed key: %v", err)
			}
			if _, err := l.Delete("keymgmt/kms/" + kms); statusOfErr(err) != 409 {
				t.Fatalf("delete of a kms holding keys: %v", err)
			}
			if _, err := l.Delete("keymgmt/kms/" + kms + "/key/" + key); err != nil {
				t.Fatal(err)
			}
			if s, err := l.Read("keymgmt/kms/" + kms + "/key/" + key); err != nil || s != nil {
				t.Fatalf("read after remove: %v %v", s, err)
			}
			if _, err := l.Delete("keymgmt/key/" + key); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Delete("keymgmt/kms/" + kms); err != nil {
				t.Fatal(err)
			}
		})
	}
	list, err := l.List("keymgmt/kms")
	if err != nil || list != nil {
		t.Fatalf("kms left: %v %v", list, err)
	}

	t.Run("ok audit holds credentials only as HMACs and records the wrapping path", func(t *testing.T) {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, kc := range cases {
			for k, v := range kc.creds {
				if k != "service_account_file" && strings.Contains(string(b), v) {
					t.Fatalf("the audit trail holds credential %s in the clear", k)
				}
			}
		}
		if strings.Contains(string(b), "PRIVATE KEY") {
			t.Fatal("the audit trail holds the service account key")
		}
		if !strings.Contains(string(b), `"wrapping_path":"token:`) {
			t.Fatal("the audit trail does not record the wrapping path")
		}
	})

	t.Run("fail errors", func(t *testing.T) {
		for _, f := range []struct {
			path   string
			data   map[string]any
			status int
			msg    string
		}{
			{"keymgmt/kms/x", map[string]any{"provider": "awskms", "key_collection": "us-east-1"}, 400, "credentials are required"},
			{"keymgmt/kms/x", map[string]any{"provider": "ibm", "key_collection": "a", "credentials": map[string]any{"a": "b"}}, 400, "unknown provider"},
			{"keymgmt/kms/x", map[string]any{"provider": "awskms", "key_collection": "us-east-1", "credentials": "flat"}, 400, "want an object"},
			{"keymgmt/kms/nope/key/k", map[string]any{"purpose": "encrypt"}, 404, "no kms provider"},
		} {
			_, err := l.Write(f.path, f.data)
			if statusOfErr(err) != f.status || !strings.Contains(err.Error(), f.msg) {
				t.Fatalf("write %s %v: %v", f.path, f.data, err)
			}
		}
	})

	t.Run("fail a token without the capability", func(t *testing.T) {
		if err := c.Sys().PutPolicy("kms-read", `path "keymgmt/kms/*" { capabilities = ["read", "list"] }`); err != nil {
			t.Fatal(err)
		}
		sec, err := c.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"kms-read"}})
		if err != nil {
			t.Fatal(err)
		}
		ro := env.client(t, sec.Auth.ClientToken).Logical()
		_, err = ro.Write("keymgmt/kms/evil", map[string]any{"provider": "awskms", "key_collection": "us-east-1", "credentials": map[string]any{"access_key": "a", "secret_key": "b"}})
		if statusOfErr(err) != 403 {
			t.Fatalf("write without update capability: %v", err)
		}
		if _, err := ro.Write("keymgmt/kms/evil/key/k", map[string]any{"purpose": "encrypt"}); statusOfErr(err) != 403 {
			t.Fatalf("distribute without capability: %v", err)
		}
	})
}

// TestKMSMountDisable: a keymgmt mount with keys distributed to a cloud is
// not disabled without force; with force its providers and records go.
func TestKMSMountDisable(t *testing.T) {
	cases, factories := kmsCases(t)
	env := newKMSTestEnv(t, factories)
	c := env.client(t, testRootToken)
	mountKeymgmt(t, c, "km2")
	l := c.Logical()
	kc := cases[0]
	if _, err := l.Write("km2/kms/aws", map[string]any{"provider": kc.provider, "key_collection": kc.collection, "credentials": kc.creds, "endpoint": kc.endpoint}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write("km2/key/k", map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write("km2/kms/aws/key/k", map[string]any{"purpose": "encrypt,decrypt"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DeleteWithData("sys/mounts/km2", map[string][]string{"force": {"false"}}); statusOfErr(err) != 409 || !strings.Contains(err.Error(), "distribution") {
		t.Fatalf("disable without force: %v", err)
	}
	if _, err := l.DeleteWithData("sys/mounts/km2", map[string][]string{"force": {"true"}}); err != nil {
		t.Fatal(err)
	}
	var left []string
	env.store.View(context.Background(), func(tx store.Tx) error {
		var err error
		left, err = tx.List(context.Background(), "keymgmt/")
		return err
	})
	if len(left) != 0 {
		t.Fatalf("records left after disable: %v", left)
	}
}

// Pointing a kms at a new endpoint needs sudo on its path: the endpoint's
// host receives every key distributed there, wrapped under its own key.
func TestKMSEndpointNeedsSudo(t *testing.T) {
	cases, factories := kmsCases(t)
	env := newKMSTestEnv(t, factories)
	root := env.client(t, testRootToken)
	mountKeymgmt(t, root, "keymgmt")
	aws := cases[0]
	if err := root.Sys().PutPolicy("kms-writer", `path "keymgmt/kms/*" { capabilities = ["create", "update", "read"] }`); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("kms-admin", `path "keymgmt/kms/*" { capabilities = ["create", "update", "read", "sudo"] }`); err != nil {
		t.Fatal(err)
	}
	writer, _ := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"kms-writer"}})
	admin, _ := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"kms-admin"}})
	write := func(token, name string, data map[string]any) error {
		_, err := env.client(t, token).Logical().Write("keymgmt/kms/"+name, data)
		return err
	}
	base := func(endpoint string) map[string]any {
		d := map[string]any{"provider": aws.provider, "key_collection": aws.collection, "credentials": aws.creds}
		if endpoint != "" {
			d["endpoint"] = endpoint
		}
		return d
	}
	tests := []struct {
		name, token, kms string
		data             map[string]any
		wantStatus       int
	}{
		{"fail new kms with an endpoint, no sudo", writer, "a", base(aws.endpoint), 403},
		{"ok new kms without an endpoint, no sudo", writer, "b", base(""), 200},
		{"fail endpoint added, no sudo", writer, "b", base(aws.endpoint), 403},
		{"ok endpoint added with sudo", admin, "b", base(aws.endpoint), 200},
		{"ok same endpoint again, no sudo", writer, "b", base(aws.endpoint), 200},
		{"fail another endpoint, no sudo", writer, "b", base("https://127.0.0.1:1/"), 403},
		{"ok endpoint cleared, no sudo", writer, "b", map[string]any{"endpoint": "", "credentials": aws.creds}, 200},
		{"ok new kms with an endpoint by root", testRootToken, "c", base(aws.endpoint), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := write(tt.token, tt.kms, tt.data)
			got := 200
			if err != nil {
				got = statusOfErr(err)
			}
			if got != tt.wantStatus {
				t.Fatalf("status %d (%v), want %d", got, err, tt.wantStatus)
			}
			if tt.wantStatus == 403 && !strings.Contains(err.Error(), "sudo") {
				t.Fatalf("refusal %v does not say sudo is needed", err)
			}
		})
	}
}

// A writer without sudo who names a new endpoint is refused before the
// server sends it anything: checking new credentials calls the cloud at
// the endpoint, with the distributed keys' cloud ids.
func TestKMSEndpointWithoutSudoIsNotContacted(t *testing.T) {
	cases, factories := kmsCases(t)
	env := newKMSTestEnv(t, factories)
	root := env.client(t, testRootToken)
	mountKeymgmt(t, root, "keymgmt")
	aws := cases[0]
	l := root.Logical()
	if _, err := l.Write("keymgmt/kms/aws", map[string]any{"provider": aws.provider, "key_collection": aws.collection, "credentials": aws.creds, "endpoint": aws.endpoint}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write("keymgmt/key/k", map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write("keymgmt/kms/aws/key/k", map[string]any{"purpose": "encrypt,decrypt"}); err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(other.Close)
	if err := root.Sys().PutPolicy("kms-writer", `path "keymgmt/kms/*" { capabilities = ["create", "update", "read"] }`); err != nil {
		t.Fatal(err)
	}
	writer, _ := createToken(t, root, &vault.TokenCreateRequest{Policies: []string{"kms-writer"}})
	_, err := env.client(t, writer).Logical().Write("keymgmt/kms/aws", map[string]any{"credentials": aws.creds, "endpoint": other.URL})
	if statusOfErr(err) != 403 || !strings.Contains(err.Error(), "sudo") {
		t.Errorf("a new endpoint without sudo: %v, want 403 naming sudo", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the endpoint was called %d times before the refusal", n)
	}
}
