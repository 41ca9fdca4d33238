package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/api"
	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/auth"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/keymgmt"
	"github.com/keyhold/keyhold/keymgmt/kmsfake"
	"github.com/keyhold/keyhold/keymgmt/provider"
	"github.com/keyhold/keyhold/store/sqlite"
)

// kmsServer serves the REST API in this process with a keymgmt manager
// whose providers are the given factories (the fakes of GCP and Azure are
// reached through their SDKs' test seams, which a separate server process
// cannot be given).
func kmsServer(t *testing.T, providers map[string]provider.Factory) string {
	t.Helper()
	ctx := context.Background()
	h := hsmtest.Open(t)
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	srv := api.New(api.Deps{HSM: h, Store: st, Auth: auth.New(st), Keys: keymgmt.NewWithOptions(h, st, keymgmt.Options{Providers: providers}),
		Logger: log, Version: "test", Audit: audit.NewBroker(h, st, log)})
	if err := srv.Init(ctx, "kms-cli-root"); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts.URL
}

// seedKMS runs the seed workflow's distribution lines verbatim (with the
// cloud's own kms line) and checks each step's answer.
func seedKMS(t *testing.T, op *operator, kmsLine string, versionsIn func() int) {
	op.must(`keyhold secrets enable keymgmt`, `Success!`)
	op.must(`keyhold write -f keymgmt/key/example-key type="rsa-2048"`, `(?m)^type\s+rsa-2048$`)
	op.must(kmsLine, `(?m)^key_collection\s+\S+$`)
	op.must(`keyhold read keymgmt/kms/example-kms`, `(?m)^provider\s+\S+$`)
	out := op.must(`keyhold write keymgmt/kms/example-kms/key/example-key purpose="encrypt,decrypt" protection="hsm"`, `(?m)^status\s+distributed$`)
	if !strings.Contains(out, "wrapping_path:token:") {
		t.Fatalf("the answer does not say how the blob was made:\n%s", out)
	}
	if n := versionsIn(); n != 1 {
		t.Fatalf("%d versions in the cloud after distribute", n)
	}
	op.must(`keyhold write -f keymgmt/key/example-key/rotate`, `(?m)^latest_version\s+2$`)
	if n := versionsIn(); n != 2 {
		t.Fatalf("%d versions in the cloud after rotate", n)
	}
	op.must(`keyhold write keymgmt/key/example-key min_enabled_version=2`, `(?m)^min_enabled_version\s+2$`)
	op.must(`keyhold read -format=json keymgmt/kms/example-kms/key/example-key`, `"version_details": \{\s+"1": \{\s+"enabled": false,`)
	op.must(`keyhold list keymgmt/kms/example-kms/key`, `^Keys\n----\nexample-key\n$`)
	op.must(`keyhold list keymgmt/key/example-key/kms`, `^Keys\n----\nexample-kms\n$`)
	op.mustFail(`keyhold delete keymgmt/kms/example-kms`, "Code: 409.", "still holds distributed keys")
	op.must(`keyhold delete keymgmt/kms/example-kms/key/example-key`, `^Success! Data deleted`)
	op.mustFail(`keyhold read keymgmt/kms/example-kms/key/example-key`, "Code: 404.")
	op.must(`keyhold delete keymgmt/kms/example-kms`, `^Success! Data deleted`)
}

// TestSeedWorkflowKMSAWS runs against the real dev server process; its AWS
// provider is the default one, pointed at the fake by the endpoint field.
func TestSeedWorkflowKMSAWS(t *testing.T) {
	f := kmsfake.NewAWS("us-east-1")
	srv := f.Serve()
	defer srv.Close()
	addr, root, _, _ := devServer(t, t.TempDir())
	op := newOperator(t, addr, root)
	live := func() int {
		n := 0
		for _, k := range f.Keys() {
			if k.Tags["keyhold-key"] == "example-key" && k.State != "PendingDeletion" {
				n++
			}
		}
		return n
	}
	seedKMS(t, op, `keyhold write keymgmt/kms/example-kms provider="awskms" key_collection="us-east-1" `+
		`credentials=access_key=AKIAEXAMPLE credentials=secret_key=example-secret endpoint=`+srv.URL, live)
	if live() != 0 {
		t.Fatal("keys left in AWS after the removal")
	}
}

func TestSeedWorkflowKMSAzure(t *testing.T) {
	f := kmsfake.NewAzure("https://keyvault-name.vault.azure.net")
	addr := kmsServer(t, map[string]provider.Factory{provider.AzureKeyVault: f.Factory()})
	op := newOperator(t, addr, "kms-cli-root")
	count := func() int {
		if k := f.Key("example-key"); k != nil && !k.Deleted {
			return len(k.Versions)
		}
		return 0
	}
	seedKMS(t, op, `keyhold write keymgmt/kms/example-kms provider="azurekeyvault" key_collection="keyvault-name" `+
		`credentials=client_id=... credentials=client_secret=... credentials=tenant_id=...`, count)
	if count() != 0 {
		t.Fatal("the key is still in the vault after the removal")
	}
}

func TestSeedWorkflowKMSGCP(t *testing.T) {
	f := kmsfake.NewGCP()
	gaddr, stop, err := f.Serve()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	sa, err := kmsfake.ServiceAccount()
	if err != nil {
		t.Fatal(err)
	}
	saFile := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(saFile, []byte(sa), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := kmsServer(t, map[string]provider.Factory{provider.GCPCKMS: kmsfake.GCPFactory()})
	op := newOperator(t, addr, "kms-cli-root")
	const ring = "projects/p1/locations/global/keyRings/r1"
	live := func() int {
		n := 0
		if k := f.Key(ring + "/cryptoKeys/example-key"); k != nil {
			for _, v := range k.Versions {
				if v.Version.GetState().String() != "DESTROY_SCHEDULED" {
					n++
				}
			}
		}
		return n
	}
	seedKMS(t, op, `keyhold write keymgmt/kms/example-kms provider="gcpckms" key_collection="`+ring+`" `+
		`credentials=service_account_file=@`+saFile+` endpoint=`+gaddr, live)
	if live() != 0 {
		t.Fatal("versions left in Cloud KMS after the removal")
	}
}
