package keymgmt

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/aws/aws-sdk-go-v2/aws"
	awskmsapi "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/keymgmt/kmsfake"
	"github.com/keyhold/keyhold/keymgmt/provider"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/sqlite"
)

const mount = "mnt-0001"

type testEnv struct {
	m      *Manager
	h      *hsm.HSM
	st     *sqlite.Store
	dbPath string
}

func newEnv(t *testing.T, o Options) *testEnv {
	t.Helper()
	h := hsmtest.Open(t)
	db := filepath.Join(t.TempDir(), "keyhold.db")
	st, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &testEnv{m: NewWithOptions(h, st, o), h: h, st: st, dbPath: db}
}

// checkMaterial proves that what the cloud holds for a version is the HSM's
// key: the AES check value computed by the HSM, or the public key.
func (e *testEnv) checkMaterial(t *testing.T, key string, version int, m *kmsfake.Material) {
	t.Helper()
	if m == nil || m.Raw == nil {
		t.Fatalf("the cloud holds no material for version %d", version)
	}
	k, err := e.m.Get(context.Background(), mount, key)
	if err != nil {
		t.Fatal(err)
	}
	if k.Type == "aes256-gcm96" {
		var sk *store.Key
		var kv *store.KeyVersion
		e.st.View(context.Background(), func(tx store.Tx) error {
			sk, _ = tx.GetKey(context.Background(), mount, key)
			kv, err = tx.GetKeyVersion(context.Background(), sk.ID, version)
			return err
		})
		kcv, err := e.h.KeyCheckValue(context.Background(), hsm.Key{ID: bindID(sk.ID, version, k.Type), Blob: kv.Blob})
		if err != nil {
			t.Fatal(err)
		}
		c, err := aes.NewCipher(m.Raw)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 16)
		c.Encrypt(got, got)
		if !bytes.Equal(got, kcv) {
			t.Fatalf("version %d: the cloud's AES key is not the HSM's (check values differ)", version)
		}
		return
	}
	blk, _ := pem.Decode([]byte(k.Versions[version-1].PublicKey))
	var der []byte
	switch p := m.Public.(type) {
	case *rsa.PublicKey:
		der, _ = x509.MarshalPKIXPublicKey(p)
	case *ecdsa.PublicKey:
		der, _ = x509.MarshalPKIXPublicKey(p)
	}
	if blk == nil || !bytes.Equal(der, blk.Bytes) {
		t.Fatalf("version %d: the cloud's private key does not match the appliance's public key", version)
	}
}

// expect checks the cloud against the distribution record: every version
// imported with the HSM's material, enabled as wanted, the current one.
func (e *testEnv) expect(t *testing.T, c *cloud, kms, key string, enabled map[int]bool, current int) {
	t.Helper()
	d, err := e.m.ReadDistribution(context.Background(), mount, kms, key)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != StatusDistributed || d.Error != "" {
		t.Fatalf("status %s, error %q", d.Status, d.Error)
	}
	vs, cur := c.versions(key)
	if len(d.Versions) != len(enabled) || len(vs) != len(enabled) {
		t.Fatalf("%d versions recorded, %d in the cloud, want %d", len(d.Versions), len(vs), len(enabled))
	}
	for _, v := range d.Versions {
		cv, ok := vs[v.ProviderID]
		if !ok || !v.Imported {
			t.Fatalf("version %d (%s) is not in the cloud", v.Version, v.ProviderID)
		}
		e.checkMaterial(t, key, v.Version, cv.material)
		if cv.enabled != enabled[v.Version] || v.Enabled != enabled[v.Version] {
			t.Fatalf("version %d: enabled in the cloud %v, recorded %v, want %v", v.Version, cv.enabled, v.Enabled, enabled[v.Version])
		}
		if v.Version == current && cur != "" && cur != v.ProviderID {
			t.Fatalf("the cloud's current version is %s, want version %d (%s)", cur, current, v.ProviderID)
		}
	}
}

func intp(i int) *int { return &i }

// lifecycle is the seed workflow for one cloud and key type: distribute,
// rotate, min_enabled_version up and down, the delete guards, remove.
func lifecycle(t *testing.T, c *cloud, typ string, purposes []string, hasCurrent bool) {
	ctx := context.Background()
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "example-kms", nil)
	key := "example-key"
	if _, err := e.m.Create(ctx, mount, key, typ); err != nil {
		t.Fatal(err)
	}
	d, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "example-kms", Key: key, Purposes: purposes, Protection: "hsm"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Versions[0].Path == "" || d.Versions[0].Scheme == "" {
		t.Fatalf("the wrapping path is not recorded: %+v", d.Versions[0])
	}
	e.expect(t, c, "example-kms", key, map[int]bool{1: true}, 1)

	if _, err := e.m.Rotate(ctx, mount, key); err != nil {
		t.Fatal(err)
	}
	e.expect(t, c, "example-kms", key, map[int]bool{1: true, 2: true}, 2)

	if _, err := e.m.UpdateKey(ctx, mount, key, Update{MinEnabledVersion: intp(2)}); err != nil {
		t.Fatal(err)
	}
	e.expect(t, c, "example-kms", key, map[int]bool{1: false, 2: true}, 2)
	if _, err := e.m.UpdateKey(ctx, mount, key, Update{MinEnabledVersion: intp(1)}); err != nil {
		t.Fatal(err)
	}
	e.expect(t, c, "example-kms", key, map[int]bool{1: true, 2: true}, 2)
	if _, err := e.m.UpdateKey(ctx, mount, key, Update{MinEnabledVersion: intp(2)}); err != nil {
		t.Fatal(err)
	}

	// The guards: a distributed key, a provider holding keys.
	if _, err := e.m.UpdateKey(ctx, mount, key, Update{DeletionAllowed: boolp(true)}); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Delete(ctx, mount, key); fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), "example-kms") {
		t.Fatalf("delete of a distributed key: %v", err)
	}
	if err := e.m.DeleteKMS(ctx, mount, "example-kms"); fault.KindOf(err) != fault.Conflict {
		t.Fatalf("delete of a provider holding keys: %v", err)
	}
	names, err := e.m.KeyKMS(ctx, mount, key)
	if err != nil || len(names) != 1 || names[0] != "example-kms" {
		t.Fatalf("key/%s/kms = %v, %v", key, names, err)
	}
	names, err = e.m.ListDistributed(ctx, mount, "example-kms")
	if err != nil || len(names) != 1 || names[0] != key {
		t.Fatalf("kms/example-kms/key = %v, %v", names, err)
	}

	if err := e.m.RemoveDistribution(ctx, mount, "example-kms", key); err != nil {
		t.Fatal(err)
	}
	vs, cur := c.versions(key)
	for id, v := range vs {
		if !v.gone {
			t.Fatalf("version %s is still in the cloud after the removal", id)
		}
	}
	if hasCurrent && cur != "" && c.provider != provider.GCPCKMS {
		t.Fatalf("the cloud still has a current version %s", cur)
	}
	if _, err := e.m.ReadDistribution(ctx, mount, "example-kms", key); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("read after remove: %v", err)
	}
	if err := e.m.DeleteKMS(ctx, mount, "example-kms"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Delete(ctx, mount, key); err != nil {
		t.Fatal(err)
	}
}

func boolp(b bool) *bool { return &b }

func TestLifecycleAWS(t *testing.T) {
	for _, tc := range []struct {
		typ      string
		purposes []string
	}{
		{"aes256-gcm96", []string{"encrypt", "decrypt"}},
		{"rsa-2048", []string{"sign", "verify"}},
		{"ecdsa-p521", []string{"sign"}},
	} {
		t.Run("ok "+tc.typ, func(t *testing.T) { lifecycle(t, awsCloud(t), tc.typ, tc.purposes, true) })
	}
}

func TestLifecycleGCP(t *testing.T) {
	for _, tc := range []struct {
		typ      string
		purposes []string
		current  bool
	}{
		{"aes256-gcm96", []string{"encrypt", "decrypt"}, true},
		{"rsa-3072", []string{"decrypt"}, false},
		{"ecdsa-p384", []string{"sign", "verify"}, false},
	} {
		t.Run("ok "+tc.typ, func(t *testing.T) { lifecycle(t, gcpCloud(t), tc.typ, tc.purposes, tc.current) })
	}
}

func TestLifecycleAzure(t *testing.T) {
	for _, tc := range []struct {
		typ      string
		purposes []string
	}{
		{"rsa-2048", []string{"encrypt", "decrypt", "sign", "verify", "wrap", "unwrap"}},
		{"ecdsa-p256", []string{"sign", "verify"}},
		{"aes256-gcm96", []string{"encrypt", "decrypt"}},
	} {
		t.Run("ok "+tc.typ, func(t *testing.T) { lifecycle(t, azureCloud(t), tc.typ, tc.purposes, true) })
	}
}

// TestFailureAndRetry injects a failure of the import call (before it runs,
// and after it ran with its answer lost) during a distribution and during a
// rotation; the record keeps the error, and writing the distribution again
// completes it without a second copy in the cloud.
func TestFailureAndRetry(t *testing.T) {
	for _, mk := range []func(*testing.T) *cloud{awsCloud, gcpCloud, azureCloud} {
		for _, how := range []string{"fail", "lose"} {
			c := mk(t)
			t.Run("ok "+c.provider+" "+how, func(t *testing.T) {
				ctx := context.Background()
				e := newEnv(t, Options{Providers: providers(c)})
				c.write(t, ctx, e.m, mount, "k1", nil)
				key := "retry-key"
				if _, err := e.m.Create(ctx, mount, key, "rsa-2048"); err != nil {
					t.Fatal(err)
				}
				inject := c.fail
				if how == "lose" {
					inject = c.lose
				}
				req := DistributeRequest{KMS: "k1", Key: key, Purposes: []string{"sign", "verify"}}
				inject(c.importOp, 1)
				_, err := e.m.Distribute(ctx, mount, req)
				// The cloud's own message reaches the caller.
				if err == nil || !strings.Contains(err.Error(), c.importOp) || !strings.Contains(strings.ToLower(err.Error()), "injected") {
					t.Fatalf("distribute with a failing %s: %v", c.importOp, err)
				}
				d, rerr := e.m.ReadDistribution(ctx, mount, "k1", key)
				if rerr != nil || d.Status != StatusDistributing || !strings.Contains(d.Error, c.importOp) {
					t.Fatalf("record after the failure: %+v, %v", d, rerr)
				}
				d, err = e.m.Distribute(ctx, mount, req)
				if err != nil {
					t.Fatalf("retry: %v", err)
				}
				e.expect(t, c, "k1", key, map[int]bool{1: true}, 1)
				// Which scheme and path made the version is in the answer,
				// also for one found imported after its answer was lost.
				if v := d.Versions[0]; v.Scheme == "" || !strings.HasPrefix(v.Path, "token:") {
					t.Fatalf("after the retry, version 1 has scheme %q, path %q", v.Scheme, v.Path)
				}
				if n := c.created(key); n != 1 {
					t.Fatalf("%d versions created in the cloud for one, after a retry", n)
				}

				// A rotation whose push fails: the key has its new version, the
				// error names the provider, a retry pushes it once.
				inject(c.importOp, 1)
				k, err := e.m.Rotate(ctx, mount, key)
				if err == nil || !strings.Contains(err.Error(), "k1") || k == nil || k.LatestVersion != 2 {
					t.Fatalf("rotate with a failing push: %v, %+v", err, k)
				}
				// Written again without purposes: the distribution as it is.
				d, err = e.m.Distribute(ctx, mount, DistributeRequest{KMS: "k1", Key: key})
				if err != nil {
					t.Fatalf("retry after rotate, without purposes: %v", err)
				}
				e.expect(t, c, "k1", key, map[int]bool{1: true, 2: true}, 2)
				for _, v := range d.Versions {
					if v.Scheme == "" || !strings.HasPrefix(v.Path, "token:") {
						t.Fatalf("after the retry, version %d has scheme %q, path %q", v.Version, v.Scheme, v.Path)
					}
				}
				if n := c.created(key); n != 2 {
					t.Fatalf("%d versions created in the cloud for two", n)
				}
			})
		}
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	aws, gcp, az := awsCloud(t), gcpCloud(t), azureCloud(t)
	e := newEnv(t, Options{Providers: providers(aws, gcp, az)})
	aws.write(t, ctx, e.m, mount, "aws", nil)
	gcp.write(t, ctx, e.m, mount, "gcp", nil)
	az.write(t, ctx, e.m, mount, "az", nil)
	for _, k := range []struct{ name, typ string }{{"aes", "aes256-gcm96"}, {"rsa", "rsa-2048"}, {"p521", "ecdsa-p521"}, {"dotted.name", "aes256-gcm96"}} {
		if _, err := e.m.Create(ctx, mount, k.name, k.typ); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		req  DistributeRequest
		msg  string
	}{
		{"fail aws software protection", DistributeRequest{KMS: "aws", Key: "aes", Purposes: []string{"encrypt"}, Protection: "software"}, "protection=hsm"},
		{"fail aws symmetric sign", DistributeRequest{KMS: "aws", Key: "aes", Purposes: []string{"sign"}}, `purpose "sign"`},
		{"fail aws rsa sign and encrypt", DistributeRequest{KMS: "aws", Key: "rsa", Purposes: []string{"sign", "encrypt"}}, "either sign/verify or encrypt/decrypt"},
		{"fail aws alias name", DistributeRequest{KMS: "aws", Key: "dotted.name", Purposes: []string{"encrypt"}}, "AWS alias"},
		{"fail gcp p521", DistributeRequest{KMS: "gcp", Key: "p521", Purposes: []string{"sign"}}, "cannot take a ecdsa-p521"},
		{"fail gcp two purposes", DistributeRequest{KMS: "gcp", Key: "rsa", Purposes: []string{"decrypt", "sign"}}, "one purpose per key"},
		{"fail azure software", DistributeRequest{KMS: "az", Key: "rsa", Purposes: []string{"sign"}, Protection: "software"}, "HSM-protected"},
		{"fail azure ec encrypt", DistributeRequest{KMS: "az", Key: "p521", Purposes: []string{"encrypt"}}, `purpose "encrypt"`},
		{"fail unknown purpose", DistributeRequest{KMS: "az", Key: "rsa", Purposes: []string{"mint"}}, "unknown purpose"},
		{"fail no purpose", DistributeRequest{KMS: "az", Key: "rsa"}, "purpose is required"},
		{"fail unknown protection", DistributeRequest{KMS: "az", Key: "rsa", Purposes: []string{"sign"}, Protection: "tpm"}, "protection must be"},
		{"fail unknown kms", DistributeRequest{KMS: "nope", Key: "rsa", Purposes: []string{"sign"}}, "no kms provider"},
		{"fail unknown key", DistributeRequest{KMS: "az", Key: "nope", Purposes: []string{"sign"}}, "no key named"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.m.Distribute(ctx, mount, c.req)
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want an error containing %q", err, c.msg)
			}
		})
	}
	t.Run("fail purpose change of a distribution", func(t *testing.T) {
		if _, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "az", Key: "rsa", Purposes: []string{"sign"}}); err != nil {
			t.Fatal(err)
		}
		_, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "az", Key: "rsa", Purposes: []string{"decrypt"}})
		if fault.KindOf(err) != fault.Conflict {
			t.Fatalf("got %v", err)
		}
	})
	for _, c := range []struct {
		name string
		u    KMSUpdate
		msg  string
	}{
		{"fail no provider", KMSUpdate{KeyCollection: strp("x")}, "provider is required"},
		{"fail unknown provider", KMSUpdate{Provider: strp("oraclekms"), KeyCollection: strp("x")}, "unknown provider"},
		{"fail no collection", KMSUpdate{Provider: strp("awskms")}, "key_collection is required"},
		{"fail bad oaep hash", KMSUpdate{Provider: strp("awskms"), KeyCollection: strp("us-east-1"), OAEPHash: strp("md5")}, "oaep_hash"},
		// Kept in whole seconds: 500ms would silently become the default.
		{"fail timeout under a second", KMSUpdate{Provider: strp("awskms"), KeyCollection: strp("us-east-1"), Timeout: durp(500 * time.Millisecond)}, "whole seconds"},
		{"fail timeout with a fraction", KMSUpdate{Provider: strp("awskms"), KeyCollection: strp("us-east-1"), Timeout: durp(1500 * time.Millisecond)}, "whole seconds"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := e.m.WriteKMS(ctx, mount, "new", c.u); err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v", err)
			}
		})
	}
	t.Run("fail provider change", func(t *testing.T) {
		if _, err := e.m.WriteKMS(ctx, mount, "aws", KMSUpdate{Provider: strp("gcpckms")}); err == nil {
			t.Fatal("accepted")
		}
	})
	// What the provider cannot use is refused at the write, not at the
	// first distribution.
	for _, c := range []struct {
		name string
		u    KMSUpdate
		msg  string
	}{
		{"incomplete credentials", KMSUpdate{Provider: strp("awskms"), KeyCollection: strp("us-east-1"), Credentials: map[string]string{"access_key": "a"}}, "secret_key"},
		{"no credentials", KMSUpdate{Provider: strp("awskms"), KeyCollection: strp("us-east-1")}, "secret_key"},
		{"a misspelt credential", KMSUpdate{Provider: strp("awskms"), KeyCollection: strp("us-east-1"), Credentials: map[string]string{"access_key": "a", "secret_key": "s", "sesion_token": "t"}}, "sesion_token"},
		{"a key collection that is no region", KMSUpdate{Provider: strp("awskms"), KeyCollection: strp("us-east"), Credentials: map[string]string{"access_key": "a", "secret_key": "s"}}, "AWS region"},
	} {
		t.Run("fail "+c.name+" refused at the write", func(t *testing.T) {
			if _, err := e.m.WriteKMS(ctx, mount, "aws2", c.u); fault.KindOf(err) != fault.BadInput || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want bad input naming %s", err, c.msg)
			}
			if _, err := e.m.ReadKMS(ctx, mount, "aws2"); fault.KindOf(err) != fault.NotFound {
				t.Fatalf("a refused write left kms aws2: %v", err)
			}
		})
	}
	t.Run("fail a new key collection the provider cannot use, with the stored credentials", func(t *testing.T) {
		if _, err := e.m.WriteKMS(ctx, mount, "aws", KMSUpdate{KeyCollection: strp("not-a-region")}); fault.KindOf(err) != fault.BadInput || !strings.Contains(err.Error(), "AWS region") {
			t.Fatalf("got %v", err)
		}
	})
}

func strp(s string) *string { return &s }

// TestCredentialsSealed: the secrets are nowhere in the database file in the
// clear, and a read never shows them.
func TestCredentialsSealed(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "aws", nil)
	distributeAES(t, e, "aws", "k")
	e.st.Close()
	files, _ := filepath.Glob(e.dbPath + "*")
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{c.creds["secret_key"], c.creds["access_key"]} {
			if bytes.Contains(b, []byte(secret)) {
				t.Fatalf("%s holds a credential in the clear", filepath.Base(f))
			}
		}
	}
}

// TestSoftwareOAEPSwitch: SHA-256 hybrids on a token without OAEP-SHA-256 use
// software OAEP of the ephemeral key, recorded as such; forbidding it refuses
// with a message that says what works; SHA-1 then works in the token.
func TestSoftwareOAEPSwitch(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c), ForbidSoftwareOAEP: true})
	if e.h.Capabilities().OAEP(sha256Hash) {
		t.Skip("this token does OAEP-SHA-256 itself")
	}
	c.write(t, ctx, e.m, mount, "aws", nil)
	if _, err := e.m.Create(ctx, mount, "k", "rsa-2048"); err != nil {
		t.Fatal(err)
	}
	req := DistributeRequest{KMS: "aws", Key: "k", Purposes: []string{"sign", "verify"}}
	_, err := e.m.Distribute(ctx, mount, req)
	if fault.KindOf(err) != fault.Unsupported || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "oaep_hash=sha1") {
		t.Fatalf("got %v", err)
	}
	if n := c.created("k"); n != 0 {
		t.Fatalf("a refused distribution made %d keys in AWS", n)
	}
	if _, err := e.m.WriteKMS(ctx, mount, "aws", KMSUpdate{OAEPHash: strp("sha1")}); err != nil {
		t.Fatal(err)
	}
	d, err := e.m.Distribute(ctx, mount, req)
	if err != nil {
		t.Fatal(err)
	}
	if v := d.Versions[0]; v.Path != string(hsm.PathTokenComposed) || v.Scheme != "RSA_AES_KEY_WRAP_SHA_1" {
		t.Fatalf("scheme %s, path %s", v.Scheme, v.Path)
	}

	// The same appliance without the switch.
	allowed := NewWithOptions(e.h, e.st, Options{Providers: providers(c)})
	c.write(t, ctx, allowed, mount, "aws256", nil)
	if _, err := allowed.Create(ctx, mount, "k2", "rsa-2048"); err != nil {
		t.Fatal(err)
	}
	d, err = allowed.Distribute(ctx, mount, DistributeRequest{KMS: "aws256", Key: "k2", Purposes: []string{"sign"}})
	if err != nil {
		t.Fatal(err)
	}
	if v := d.Versions[0]; v.Path != string(hsm.PathSoftwareOAEP) || v.Scheme != "RSA_AES_KEY_WRAP_SHA_256" {
		t.Fatalf("scheme %s, path %s", v.Scheme, v.Path)
	}
}

// TestClientTimeout: a provider that does not answer fails within its
// timeout, with a message that says so.
func TestClientTimeout(t *testing.T) {
	ctx := context.Background()
	stop := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-time.After(10 * time.Second):
		}
	}))
	defer hang.Close()
	defer close(stop)
	e := newEnv(t, Options{ClientTimeout: 500 * time.Millisecond})
	if _, err := e.m.WriteKMS(ctx, mount, "aws", KMSUpdate{Provider: strp("awskms"), KeyCollection: strp("us-east-1"), Endpoint: &hang.URL,
		Credentials: map[string]string{"access_key": "AKIAX", "secret_key": "s3cr3t-value"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Create(ctx, mount, "k", "aes256-gcm96"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "aws", Key: "k", Purposes: []string{"encrypt"}})
	if fault.KindOf(err) != fault.Unavailable || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("took %v with a 500ms timeout", d)
	}
	if strings.Contains(err.Error(), "s3cr3t-value") {
		t.Fatal("the error shows the secret")
	}
}

// TestAWSLostCreateKey: CreateKey made the key but its answer was lost; the
// retry finds that key by its description instead of making a second.
func TestAWSLostCreateKey(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	req := keyOn(t, e, c, "aws", mount)
	c.lose("CreateKey", 1)
	if _, err := e.m.Distribute(ctx, mount, req); err == nil || !strings.Contains(err.Error(), "CreateKey") {
		t.Fatalf("got %v", err)
	}
	if n := c.created("k"); n != 1 {
		t.Fatalf("%d keys after the lost answer", n)
	}
	if _, err := e.m.Distribute(ctx, mount, req); err != nil {
		t.Fatal(err)
	}
	if n := c.created("k"); n != 1 {
		t.Fatalf("%d keys in AWS after the retry, want 1", n)
	}
	e.expect(t, c, "aws", "k", map[int]bool{1: true}, 1)
}

// While keys are distributed to a kms, where it points cannot change: a new
// key collection or endpoint is another cloud, and the next rotation would
// wrap key material for whoever answers there. Other settings can.
func TestKMSTargetFixedWhileDistributed(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "aws", nil)
	distributeAES(t, e, "aws", "k")
	elsewhere := "https://127.0.0.1:1/"
	for name, u := range map[string]KMSUpdate{
		"fail another endpoint":       {Endpoint: &elsewhere},
		"fail another key collection": {KeyCollection: strp("eu-west-3")},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := e.m.WriteKMS(ctx, mount, "aws", u); fault.KindOf(err) != fault.Conflict {
				t.Fatalf("got %v, want a conflict", err)
			}
		})
	}
	t.Run("ok the same endpoint and another timeout", func(t *testing.T) {
		d := 30 * time.Second
		u := KMSUpdate{Timeout: &d}
		if c.endpoint != "" {
			u.Endpoint = &c.endpoint
		}
		if _, err := e.m.WriteKMS(ctx, mount, "aws", u); err != nil {
			t.Fatal(err)
		}
	})
}

// A kms deleted or pointed elsewhere while a distribution starts (after
// its provider was built from the kms as first read) is refused with a
// conflict: nothing is imported, and no distribution is recorded. A change
// that leaves where the kms points alone (its timeout) is not.
func TestKMSChangedWhileADistributionStarts(t *testing.T) {
	other := kmsfake.NewAWS("eu-west-1")
	otherSrv := other.Serve()
	t.Cleanup(otherSrv.Close)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, e *testEnv, c *cloud) error
	}{
		{"fail deleted", func(t *testing.T, e *testEnv, c *cloud) error {
			return e.m.DeleteKMS(context.Background(), mount, "aws")
		}},
		{"fail another key collection", func(t *testing.T, e *testEnv, c *cloud) error {
			_, err := e.m.WriteKMS(context.Background(), mount, "aws", KMSUpdate{KeyCollection: strp("eu-west-3")})
			return err
		}},
		{"fail another endpoint", func(t *testing.T, e *testEnv, c *cloud) error {
			_, err := e.m.WriteKMS(context.Background(), mount, "aws", KMSUpdate{Endpoint: &otherSrv.URL, Credentials: c.creds})
			return err
		}},
		{"fail new credentials", func(t *testing.T, e *testEnv, c *cloud) error {
			creds := maps.Clone(c.creds)
			creds["secret_key"] = "another-aws-secret-key-never-in-clear"
			_, err := e.m.WriteKMS(context.Background(), mount, "aws", KMSUpdate{Credentials: creds})
			return err
		}},
		{"ok another timeout", func(t *testing.T, e *testEnv, c *cloud) error {
			d := 20 * time.Second
			_, err := e.m.WriteKMS(context.Background(), mount, "aws", KMSUpdate{Timeout: &d})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := awsCloud(t)
			var armed atomic.Bool
			var changed error
			var e *testEnv
			provs := providers(c)
			provs[c.provider] = func(ctx context.Context, cfg provider.Config) (provider.Provider, error) {
				p, err := c.factory(ctx, cfg)
				if err == nil && armed.Swap(false) {
					// The distribution has built its provider: the kms
					// changes before the distribution is recorded.
					changed = tc.change(t, e, c)
				}
				return p, err
			}
			e = newEnv(t, Options{Providers: provs})
			req := keyOn(t, e, c, "aws", mount)
			armed.Store(true)
			_, err := e.m.Distribute(ctx, mount, req)
			if changed != nil {
				t.Fatalf("the change: %v", changed)
			}
			if strings.HasPrefix(tc.name, "ok") {
				if err != nil {
					t.Fatal(err)
				}
				e.expect(t, c, "aws", "k", map[int]bool{1: true}, 1)
				return
			}
			if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), `kms "aws"`) {
				t.Fatalf("got %v, want a conflict over kms aws", err)
			}
			if _, err := e.m.ReadDistribution(ctx, mount, "aws", "k"); fault.KindOf(err) != fault.NotFound {
				t.Fatalf("a distribution was recorded: %v", err)
			}
			if n, m := c.created("k"), len(other.Keys()); n != 0 || m != 0 {
				t.Fatalf("%d AWS keys made where the kms pointed, %d where it points now; want none", n, m)
			}
		})
	}
}

// Names of the keys Keyhold makes in clouds for itself are not key names:
// a key "keyhold-kek-foo" distributed to Azure would be taken for the
// key-exchange key of key "foo" (and removed with foo's distribution).
func TestReservedKeyNames(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{})
	for _, name := range []string{"keyhold-kek-foo", "KeyHold-KEK-foo"} {
		if _, err := e.m.Create(ctx, mount, name, "aes256-gcm96"); fault.KindOf(err) != fault.BadInput {
			t.Errorf("%s: got %v, want a refusal", name, err)
		}
	}
	if _, err := e.m.Create(ctx, mount, "keyhold-kekfoo", "aes256-gcm96"); err != nil {
		t.Errorf("a name that only looks alike: %v", err)
	}
	// A key made with such a name before it was reserved is not distributed.
	if _, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "az", Key: "keyhold-kek-old", Purposes: []string{"encrypt"}}); fault.KindOf(err) != fault.BadInput || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("distribute a reserved name: %v", err)
	}
}

// otherMount is a second keymgmt mount, for keys of the same name as
// mount's.
const otherMount = "other-mount"

// keyOn configures the cloud c as kms on each of mounts, creates an AES key
// "k" on each and returns the request that distributes it to kms.
func keyOn(t *testing.T, e *testEnv, c *cloud, kms string, mounts ...string) DistributeRequest {
	t.Helper()
	ctx := context.Background()
	for _, mnt := range mounts {
		c.write(t, ctx, e.m, mnt, kms, nil)
		if _, err := e.m.Create(ctx, mnt, "k", "aes256-gcm96"); err != nil {
			t.Fatal(err)
		}
	}
	return DistributeRequest{KMS: kms, Key: "k", Purposes: []string{"encrypt", "decrypt"}}
}

// Two appliance keys of the same name (two mounts) map to one Azure vault
// key: the second's import is refused before anything is imported, the
// first's versions stay as they were, and removing the refused distribution
// leaves them (and the first key's KEK) too.
func TestAzureSameNameKeyRefused(t *testing.T) {
	ctx := context.Background()
	c := azureCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "az", nil)
	distributeAES(t, e, "az", "k")
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, c, "az", "k", map[int]bool{1: true, 2: true}, 2)

	const other = otherMount
	c.write(t, ctx, e.m, other, "az", nil)
	if _, err := e.m.Create(ctx, other, "k", "aes256-gcm96"); err != nil {
		t.Fatal(err)
	}
	_, err := e.m.Distribute(ctx, other, DistributeRequest{KMS: "az", Key: "k", Purposes: []string{"encrypt", "decrypt"}})
	if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), "vault key k belongs to another key") {
		t.Fatalf("got %v, want a conflict", err)
	}
	if strings.Contains(err.Error(), c.creds["client_secret"]) {
		t.Fatal("the error shows the secret")
	}
	d, err := e.m.ReadDistribution(ctx, other, "az", "k")
	if err != nil || d.Status != StatusDistributing || !strings.Contains(d.Error, "belongs to another key") {
		t.Fatalf("record of the refused distribution: %+v, %v", d, err)
	}
	if n := c.created("k"); n != 2 {
		t.Fatalf("%d versions in the vault key, want the first key's 2", n)
	}
	e.expect(t, c, "az", "k", map[int]bool{1: true, 2: true}, 2)

	if err := e.m.RemoveDistribution(ctx, other, "az", "k"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"k", "keyhold-kek-k"} {
		if k := c.azure.Key(name); k == nil || k.Deleted {
			t.Fatalf("%s was deleted with the refused distribution", name)
		}
	}
	e.expect(t, c, "az", "k", map[int]bool{1: true, 2: true}, 2)
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, c, "az", "k", map[int]bool{1: true, 2: true, 3: true}, 3)
}

// A vault key that also holds another key's version (set up in the fake:
// the import itself would be refused) is not deleted by a removal: the
// removed key's versions are disabled, the other's left as they were.
func TestAzureRemoveLeavesAnotherKeysVersions(t *testing.T) {
	ctx := context.Background()
	c := azureCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "az", nil)
	distributeAES(t, e, "az", "k")
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	theirs := c.azure.PutVersion("k", azkeys.KeyTypeOctHSM, map[string]string{"managed-by": "keyhold", "keyhold-version": "1", "keyhold-key-id": "another-key-id"})
	if err := e.m.RemoveDistribution(ctx, mount, "az", "k"); err != nil {
		t.Fatal(err)
	}
	k := c.azure.Key("k")
	if k == nil || k.Deleted {
		t.Fatal("the vault key was deleted with another key's version in it")
	}
	if len(k.Versions) != 3 {
		t.Fatalf("%d versions in the vault key, want 3", len(k.Versions))
	}
	for _, v := range k.Versions {
		if mine := v.ID != theirs; v.Enabled == mine {
			t.Errorf("version %s (this key's: %v): enabled %v", v.ID, mine, v.Enabled)
		}
	}
	if _, err := e.m.ReadDistribution(ctx, mount, "az", "k"); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("read after remove: %v", err)
	}
	// The KEK was made for the removed key: it goes.
	if kek := c.azure.Key("keyhold-kek-k"); kek == nil || !kek.Deleted {
		t.Fatal("the removed key's KEK is still there")
	}
}

// A vault key keyhold did not make (no managed-by=keyhold and
// keyhold-version tags) is refused, and a removal leaves it.
func TestAzurePreexistingKeyRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		tags map[string]string
	}{
		{"fail no tags", map[string]string{"owner": "payments"}},
		{"fail keyhold-version without managed-by", map[string]string{"keyhold-version": "1"}},
		{"fail managed-by without keyhold-version", map[string]string{"managed-by": "keyhold"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			az := azureCloud(t)
			e := newEnv(t, Options{Providers: providers(az)})
			az.write(t, ctx, e.m, mount, "az", nil)
			theirs := az.azure.PutVersion("k", azkeys.KeyTypeRSAHSM, c.tags)
			if _, err := e.m.Create(ctx, mount, "k", "rsa-2048"); err != nil {
				t.Fatal(err)
			}
			_, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "az", Key: "k", Purposes: []string{"sign"}})
			if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), "vault key k belongs to another key") {
				t.Fatalf("got %v, want a conflict", err)
			}
			if kek := az.azure.Key("keyhold-kek-k"); kek != nil {
				t.Fatal("a KEK was made for a refused import")
			}
			if err := e.m.RemoveDistribution(ctx, mount, "az", "k"); err != nil {
				t.Fatal(err)
			}
			k := az.azure.Key("k")
			if k == nil || k.Deleted || len(k.Versions) != 1 || k.Versions[0].ID != theirs || !k.Versions[0].Enabled {
				t.Fatalf("the vault key after the removal: %+v", k)
			}
		})
	}
}

// withoutKeyID drops keyhold-key-id from every version of a vault key, as
// older code tagged them.
func withoutKeyID(t *testing.T, c *cloud, name string) {
	t.Helper()
	k := c.azure.Key(name)
	if k == nil {
		t.Fatalf("no vault key %s", name)
	}
	for _, v := range k.Versions {
		tags := map[string]string{}
		for tg, val := range v.Tags {
			if tg != "keyhold-key-id" {
				tags[tg] = val
			}
		}
		c.azure.SetTags(name, v.ID, tags)
	}
}

// Versions (and a KEK) older code made, tagged without the key's id, are
// the key's own: a distribution that code began resumes, taking the version
// it imported instead of a second copy, and a removal deletes them. A key
// that never began one cannot claim such a version (it may be another
// key's): its distribution is refused.
func TestAzureLegacyVersionsAreTheKeys(t *testing.T) {
	ctx := context.Background()
	c := azureCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	req := keyOn(t, e, c, "az", mount)
	c.lose("ImportKey", 1)
	if _, err := e.m.Distribute(ctx, mount, req); err == nil {
		t.Fatal("a lost ImportKey answer went unnoticed")
	}
	withoutKeyID(t, c, "k")
	withoutKeyID(t, c, "keyhold-kek-k")
	if _, err := e.m.Distribute(ctx, mount, req); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if n := c.created("k"); n != 1 {
		t.Fatalf("%d versions in the vault key after the resume, want 1", n)
	}
	e.expect(t, c, "az", "k", map[int]bool{1: true}, 1)
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, c, "az", "k", map[int]bool{1: true, 2: true}, 2)
	if err := e.m.RemoveDistribution(ctx, mount, "az", "k"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"k", "keyhold-kek-k"} {
		if k := c.azure.Key(name); k == nil || !k.Deleted {
			t.Fatalf("%s is still there after the removal", name)
		}
	}

	// A version older code left for some key of the name k2 cannot be told
	// apart from another mount's: a fresh distribution of k2 is refused and
	// leaves it as it was.
	legacy := c.azure.PutVersion("k2", azkeys.KeyTypeOctHSM, map[string]string{"managed-by": "keyhold", "keyhold-version": "1"})
	if _, err := e.m.Create(ctx, mount, "k2", "aes256-gcm96"); err != nil {
		t.Fatal(err)
	}
	_, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "az", Key: "k2", Purposes: []string{"encrypt", "decrypt"}})
	if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), legacy) {
		t.Fatalf("a fresh distribution beside a version older code left: %v, want a conflict naming %s", err, legacy)
	}
	if vs, cur := c.versions("k2"); len(vs) != 1 || cur != legacy {
		t.Fatalf("the vault key k2 changed: %d versions, current %s", len(vs), cur)
	}
}

// Objects older code made carry no key id, and a same-named key of another
// mount must not claim them: not the vault key (its versions), whose
// current version it would replace and which its removal would delete, and
// not the KEK of a first import that failed, which the first key's retry
// must still find.
func TestAzureLegacyObjectsOfAnotherMount(t *testing.T) {
	ctx := context.Background()
	t.Run("vault key", func(t *testing.T) {
		c := azureCloud(t)
		e := newEnv(t, Options{Providers: providers(c)})
		req := keyOn(t, e, c, "az", mount, otherMount)
		if _, err := e.m.Distribute(ctx, mount, req); err != nil {
			t.Fatal(err)
		}
		withoutKeyID(t, c, "k")
		withoutKeyID(t, c, "keyhold-kek-k")
		_, cur := c.versions("k")
		if _, err := e.m.Distribute(ctx, otherMount, req); fault.KindOf(err) != fault.Conflict {
			t.Fatalf("the other mount's key: %v, want a conflict", err)
		}
		if _, now := c.versions("k"); now != cur {
			t.Fatalf("the vault key's current version moved from %s to %s", cur, now)
		}
		if err := e.m.RemoveDistribution(ctx, otherMount, "az", "k"); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"k", "keyhold-kek-k"} {
			if k := c.azure.Key(name); k == nil || k.Deleted {
				t.Fatalf("%s was deleted by the other mount's removal", name)
			}
		}
		e.expect(t, c, "az", "k", map[int]bool{1: true}, 1)
		// The first key's own removal, once the vault key also holds a
		// version of another key id, disables its untagged version (its
		// records name it) and leaves the other.
		other := c.azure.PutVersion("k", azkeys.KeyTypeOctHSM, map[string]string{"managed-by": "keyhold", "keyhold-version": "1", "keyhold-key-id": "another-id"})
		if err := e.m.RemoveDistribution(ctx, mount, "az", "k"); err != nil {
			t.Fatal(err)
		}
		vs, _ := c.versions("k")
		for id, v := range vs {
			if v.enabled != (id == other) {
				t.Fatalf("version %s enabled %v after the removal (the other key's is %s)", id, v.enabled, other)
			}
		}
	})
	t.Run("KEK", func(t *testing.T) {
		c := azureCloud(t)
		e := newEnv(t, Options{Providers: providers(c)})
		req := keyOn(t, e, c, "az", mount, otherMount)
		c.fail("ImportKey", 1)
		if _, err := e.m.Distribute(ctx, mount, req); err == nil {
			t.Fatal("a failing ImportKey went unnoticed")
		}
		withoutKeyID(t, c, "keyhold-kek-k")
		if _, err := e.m.Distribute(ctx, otherMount, req); fault.KindOf(err) != fault.Conflict {
			t.Fatalf("the other mount's key: %v, want a conflict", err)
		}
		if n := c.created("k"); n != 0 {
			t.Fatalf("%d versions imported by the other mount's key", n)
		}
		if _, err := e.m.Distribute(ctx, mount, req); err != nil {
			t.Fatalf("the first key's retry: %v", err)
		}
		e.expect(t, c, "az", "k", map[int]bool{1: true}, 1)
	})
}

// Two keys of the same name share the KEK's name too: the second's import is
// refused while the KEK is the first's, even before the first imported a
// version, and removing the refused distribution leaves the KEK the first's
// import goes on with.
func TestAzureKEKOfAnotherKeyRefused(t *testing.T) {
	ctx := context.Background()
	c := azureCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	const other = otherMount
	req := keyOn(t, e, c, "az", mount, otherMount)
	c.fail("ImportKey", 1)
	if _, err := e.m.Distribute(ctx, mount, req); err == nil {
		t.Fatal("a failing ImportKey went unnoticed")
	}
	if c.azure.Key("keyhold-kek-k") == nil || c.azure.Key("k") != nil {
		t.Fatal("the failed import should leave a KEK and no vault key")
	}
	_, err := e.m.Distribute(ctx, other, req)
	if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), "keyhold-kek-k belongs to another key") {
		t.Fatalf("got %v, want a conflict", err)
	}
	if n := c.created("k"); n != 0 {
		t.Fatalf("%d versions imported by a refused distribution", n)
	}
	if err := e.m.RemoveDistribution(ctx, other, "az", "k"); err != nil {
		t.Fatal(err)
	}
	if kek := c.azure.Key("keyhold-kek-k"); kek == nil || kek.Deleted || len(kek.Versions) != 1 {
		t.Fatalf("the first key's KEK after the removal: %+v", kek)
	}
	if _, err := e.m.Distribute(ctx, mount, req); err != nil {
		t.Fatal(err)
	}
	e.expect(t, c, "az", "k", map[int]bool{1: true}, 1)
}

// awsAliasTarget returns the ARN of the key alias/<key> points at ("" if none).
func awsAliasTarget(c *cloud, key string) string {
	id := c.awsFake.Alias("alias/" + key)
	for _, k := range c.awsFake.Keys() {
		if k.ID == id {
			return k.ARN
		}
	}
	return ""
}

// awsCustomerAlias makes a key and alias/<name> of the customer's own, with
// the SDK, and returns the key's ARN.
func awsCustomerAlias(t *testing.T, c *cloud, name string) string {
	t.Helper()
	ctx := context.Background()
	sdk := c.awsSDK()
	out, err := sdk.CreateKey(ctx, &awskmsapi.CreateKeyInput{Description: aws.String("the customer's own")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.CreateAlias(ctx, &awskmsapi.CreateAliasInput{AliasName: aws.String("alias/" + name), TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	return *out.KeyMetadata.Arn
}

// Two appliance keys of the same name (two mounts) distributed to one AWS
// account: the second does not take over alias/<name>, which stays the
// first's through its rotations, and removing the second leaves it.
func TestAWSAliasOfAnotherKeyIsNotTakenOver(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	const other = otherMount
	req := keyOn(t, e, c, "aws", mount, otherMount)
	first, err := e.m.Distribute(ctx, mount, req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.m.Distribute(ctx, other, req)
	if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), "alias/k") || !strings.Contains(err.Error(), "not this key's") {
		t.Fatalf("the second key of the same name: %v, want a conflict over alias/k", err)
	}
	if got := awsAliasTarget(c, "k"); got != first.Versions[0].ProviderID {
		t.Fatalf("alias/k points at %s, want the first key's %s", got, first.Versions[0].ProviderID)
	}
	// The conflict was found before the second key got an AWS key.
	if ks := c.awsFake.Keys(); len(ks) != 1 || ks[0].ARN != first.Versions[0].ProviderID {
		t.Fatalf("AWS keys after the refusal: %+v, want the first key's only", ks)
	}

	// The first key still rotates: its alias moves to its new version.
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	d, err := e.m.ReadDistribution(ctx, mount, "aws", "k")
	if err != nil {
		t.Fatal(err)
	}
	if got := awsAliasTarget(c, "k"); got != d.Versions[1].ProviderID {
		t.Fatalf("after the first key's rotation alias/k points at %s, want %s", got, d.Versions[1].ProviderID)
	}

	// Removing the second key's distribution leaves the first key's alias
	// and AWS keys alone.
	if err := e.m.RemoveDistribution(ctx, other, "aws", "k"); err != nil {
		t.Fatal(err)
	}
	if got := awsAliasTarget(c, "k"); got != d.Versions[1].ProviderID {
		t.Fatalf("removing the second key moved or deleted alias/k (now %q)", got)
	}
	for _, k := range c.awsFake.Keys() {
		if k.State == "PendingDeletion" {
			t.Errorf("%s: pending deletion after removing the second key", k.ARN)
		}
	}
}

// A customer's own alias/<name> is not taken over by a distribution of a key
// of that name, nor deleted by the removal of that distribution.
func TestAWSCustomerAliasIsNotTakenOver(t *testing.T) {
	// The customer's key may also be one these credentials may not read
	// (its policy): that is not one keyhold made either.
	for name, denied := range map[string][]string{
		"readable":           nil,
		"tags denied":        {"ListResourceTags"},
		"description denied": {"DescribeKey", "ListResourceTags"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := awsCloud(t)
			e := newEnv(t, Options{Providers: providers(c)})
			customer := awsCustomerAlias(t, c, "k")
			c.awsFake.Deny(customer[strings.LastIndex(customer, "/")+1:], denied...)
			req := keyOn(t, e, c, "aws", mount)
			_, err := e.m.Distribute(ctx, mount, req)
			if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), "alias/k") {
				t.Fatalf("got %v, want a conflict over alias/k", err)
			}
			if got := awsAliasTarget(c, "k"); got != customer {
				t.Fatalf("alias/k points at %s, want the customer's key %s", got, customer)
			}
			// The conflict is found before an AWS key is made and the key
			// material imported into it.
			if n := c.created("k"); n != 0 {
				t.Fatalf("%d AWS keys made for a key refused the alias", n)
			}
			if err := e.m.RemoveDistribution(ctx, mount, "aws", "k"); err != nil {
				t.Fatal(err)
			}
			if got := awsAliasTarget(c, "k"); got != customer {
				t.Fatalf("after the removal alias/k points at %q, want the customer's key %s", got, customer)
			}
		})
	}
}

// A removal leaves alias/<name> alone when it no longer points at one of the
// key's AWS keys (the customer moved it), and still deletes those keys.
func TestAWSRemoveLeavesAnAliasPointingElsewhere(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "aws", nil)
	distributeAES(t, e, "aws", "k")
	sdk := c.awsSDK()
	out, err := sdk.CreateKey(ctx, &awskmsapi.CreateKeyInput{Description: aws.String("the customer's own")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.UpdateAlias(ctx, &awskmsapi.UpdateAliasInput{AliasName: aws.String("alias/k"), TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RemoveDistribution(ctx, mount, "aws", "k"); err != nil {
		t.Fatal(err)
	}
	if got := awsAliasTarget(c, "k"); got != *out.KeyMetadata.Arn {
		t.Fatalf("after the removal alias/k points at %q, want the customer's key", got)
	}
	vs, _ := c.versions("k")
	for arn, v := range vs {
		if !v.gone {
			t.Errorf("%s is not pending deletion after the removal", arn)
		}
	}
}

// Keys made before they were tagged with the appliance key's id are known
// by the distribution's records: the alias still moves from them at a
// rotation (also when the answer to a move is lost) and is deleted with them.
func TestAWSAliasOfUntaggedVersionsStillMoves(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "aws", nil)
	distributeAES(t, e, "aws", "k")
	d, err := e.m.ReadDistribution(ctx, mount, "aws", "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.awsSDK().UntagResource(ctx, &awskmsapi.UntagResourceInput{KeyId: aws.String(d.Versions[0].ProviderID), TagKeys: []string{"keyhold-key-id"}}); err != nil {
		t.Fatal(err)
	}
	c.lose("UpdateAlias", 1)
	if _, err := e.m.Rotate(ctx, mount, "k"); err == nil || !strings.Contains(err.Error(), "UpdateAlias") {
		t.Fatalf("rotate with the answer to UpdateAlias lost: %v", err)
	}
	if _, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "aws", Key: "k", Purposes: []string{"encrypt", "decrypt"}}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	e.expect(t, c, "aws", "k", map[int]bool{1: true, 2: true}, 2)
	if err := e.m.RemoveDistribution(ctx, mount, "aws", "k"); err != nil {
		t.Fatal(err)
	}
	if got := awsAliasTarget(c, "k"); got != "" {
		t.Fatalf("alias/k still points at %s after the removal", got)
	}
}

// Two appliance keys of the same name (two mounts) distributed to one GCP
// key ring: the second is not imported into the first's crypto key, whose
// versions and primary stay the first's.
func TestGCPCryptoKeyOfAnotherKeyIsNotReused(t *testing.T) {
	ctx := context.Background()
	c := gcpCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	const other = otherMount
	req := keyOn(t, e, c, "gcp", mount, otherMount)
	first, err := e.m.Distribute(ctx, mount, req)
	if err != nil {
		t.Fatal(err)
	}
	name := gcpRing + "/cryptoKeys/k"
	_, err = e.m.Distribute(ctx, other, req)
	if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "another key of the same name") {
		t.Fatalf("the second key of the same name: %v, want a conflict over %s", err, name)
	}
	ck := c.gcpFake.Key(name)
	if len(ck.Versions) != 1 || ck.Key.GetPrimary().GetName() != first.Versions[0].ProviderID {
		t.Fatalf("the crypto key has %d versions, primary %q; want the first key's one version %s", len(ck.Versions), ck.Key.GetPrimary().GetName(), first.Versions[0].ProviderID)
	}

	// The first key still rotates into its crypto key; removing the second
	// key's distribution destroys nothing of it.
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, c, "gcp", "k", map[int]bool{1: true, 2: true}, 2)
	if err := e.m.RemoveDistribution(ctx, other, "gcp", "k"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, c, "gcp", "k", map[int]bool{1: true, 2: true}, 2)
}

// A crypto key of the key's name that keyhold did not make for this key
// (the customer's, or one an older keyhold made that this distribution has
// no record of) is refused and left as it is.
func TestGCPCustomerCryptoKeyIsNotReused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		msg    string
	}{
		{"fail the customer's", map[string]string{"team": "payments"}, "not made by keyhold"},
		{"fail an unrecorded one of keyhold's", map[string]string{"managed-by": "keyhold"}, "no record of it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := gcpCloud(t)
			e := newEnv(t, Options{Providers: providers(c)})
			c.write(t, ctx, e.m, mount, "gcp", nil)
			name := gcpRing + "/cryptoKeys/k"
			if _, err := c.gcpSDK(t).CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{
				Parent: gcpRing, CryptoKeyId: "k", SkipInitialVersionCreation: true,
				CryptoKey: &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, ImportOnly: true, Labels: tc.labels,
					VersionTemplate: &kmspb.CryptoKeyVersionTemplate{ProtectionLevel: kmspb.ProtectionLevel_HSM, Algorithm: kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION}},
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.m.Create(ctx, mount, "k", "aes256-gcm96"); err != nil {
				t.Fatal(err)
			}
			_, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "gcp", Key: "k", Purposes: []string{"encrypt", "decrypt"}})
			if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want a conflict over %s (%s)", err, name, tc.msg)
			}
			ck := c.gcpFake.Key(name)
			if len(ck.Versions) != 0 || ck.Key.GetPrimary() != nil || !maps.Equal(ck.Key.GetLabels(), tc.labels) {
				t.Fatalf("the crypto key was changed: %d versions, primary %v, labels %v", len(ck.Versions), ck.Key.GetPrimary(), ck.Key.GetLabels())
			}
		})
	}
}

// Cloud KMS never deletes a crypto key. One an older release made (no id
// label) stays after the key's distribution is removed, and distributing
// the key again is refused with the label that claims it; once the
// operator sets it, the distribution goes through.
func TestGCPLegacyCryptoKeyClaimedByLabel(t *testing.T) {
	ctx := context.Background()
	c := gcpCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	req := keyOn(t, e, c, "gcp", mount)
	if _, err := e.m.Distribute(ctx, mount, req); err != nil {
		t.Fatal(err)
	}
	name := gcpRing + "/cryptoKeys/k"
	label := c.gcpFake.Key(name).Key.GetLabels()["keyhold-key-id"]
	if label == "" {
		t.Fatal("the crypto key has no id label")
	}
	c.gcpFake.SetLabel(name, "keyhold-key-id", "") // as an older release made it
	if err := e.m.RemoveDistribution(ctx, mount, "gcp", "k"); err != nil {
		t.Fatal(err)
	}
	_, err := e.m.Distribute(ctx, mount, req)
	if want := "label it keyhold-key-id=" + label; fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), want) {
		t.Fatalf("distributing again: %v, want a conflict saying %q", err, want)
	}
	c.gcpFake.SetLabel(name, "keyhold-key-id", label)
	if _, err := e.m.Distribute(ctx, mount, req); err != nil {
		t.Fatalf("distributing again after the label was set: %v", err)
	}
	if ck := c.gcpFake.Key(name); ck.Key.GetPrimary() == nil || ck.Key.GetPrimary().GetState() != kmspb.CryptoKeyVersion_ENABLED {
		t.Fatalf("no enabled primary after the distribution: %v", ck.Key.GetPrimary())
	}
}

// CreateCryptoKey made the crypto key but its answer was lost: the retry
// takes it as this key's (it carries the key's id) and imports into it.
func TestGCPLostCreateCryptoKey(t *testing.T) {
	ctx := context.Background()
	c := gcpCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	req := keyOn(t, e, c, "gcp", mount)
	c.lose("CreateCryptoKey", 1)
	if _, err := e.m.Distribute(ctx, mount, req); err == nil || !strings.Contains(err.Error(), "CreateCryptoKey") {
		t.Fatalf("got %v", err)
	}
	if c.gcpFake.Key(gcpRing+"/cryptoKeys/k") == nil {
		t.Fatal("the crypto key was not made: the test shows nothing")
	}
	if _, err := e.m.Distribute(ctx, mount, req); err != nil {
		t.Fatalf("retry: %v", err)
	}
	e.expect(t, c, "gcp", "k", map[int]bool{1: true}, 1)
}

// Cloud KMS never changes a crypto key's protection level, and imports
// only through an import job of that level. A key distributed with
// protection=hsm, removed, then distributed with protection=software finds
// its HSM crypto key: that is refused before any import job is made, and
// distributing with protection=hsm again goes through.
func TestGCPProtectionLevelOfAnExistingCryptoKey(t *testing.T) {
	ctx := context.Background()
	c := gcpCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "gcp", nil)
	if _, err := e.m.Create(ctx, mount, "k", "ecdsa-p256"); err != nil {
		t.Fatal(err)
	}
	req := DistributeRequest{KMS: "gcp", Key: "k", Purposes: []string{"sign", "verify"}, Protection: "hsm"}
	if _, err := e.m.Distribute(ctx, mount, req); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RemoveDistribution(ctx, mount, "gcp", "k"); err != nil {
		t.Fatal(err)
	}
	jobs := c.gcpFake.Jobs()
	req.Protection = "software"
	_, err := e.m.Distribute(ctx, mount, req)
	name := gcpRing + "/cryptoKeys/k"
	if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "protection level HSM") {
		t.Fatalf("distributing with protection=software into the HSM crypto key: %v, want a conflict over its protection level", err)
	}
	if got := c.gcpFake.Jobs(); got != jobs {
		t.Fatalf("%d import jobs after the refusal, want %d: a job was made for an import Cloud KMS refuses", got, jobs)
	}
	if ck := c.gcpFake.Key(name); len(ck.Versions) != 1 || ck.Key.GetVersionTemplate().GetProtectionLevel() != kmspb.ProtectionLevel_HSM {
		t.Fatalf("the crypto key changed: %d versions, template %v", len(ck.Versions), ck.Key.GetVersionTemplate())
	}
	if err := e.m.RemoveDistribution(ctx, mount, "gcp", "k"); err != nil {
		t.Fatal(err)
	}
	req.Protection = "hsm"
	if _, err := e.m.Distribute(ctx, mount, req); err != nil {
		t.Fatalf("distributing again with protection=hsm: %v", err)
	}
	vs, _ := c.versions("k")
	live := 0
	for _, v := range vs {
		if !v.gone && v.enabled {
			live++
		}
	}
	if live != 1 {
		t.Fatalf("%d enabled versions in the crypto key, want the 1 distributed again", live)
	}
}

// An import job expires 3 days after its creation. A version whose import
// failed before anything was imported through its job, retried after the
// job expired, gets a new job and is imported; one whose import reached
// Cloud KMS (its answer lost) is found through the expired job, not
// imported twice.
func TestGCPExpiredImportJob(t *testing.T) {
	for _, how := range []string{"fail", "lose"} {
		t.Run("ok "+how, func(t *testing.T) {
			ctx := context.Background()
			c := gcpCloud(t)
			e := newEnv(t, Options{Providers: providers(c)})
			req := keyOn(t, e, c, "gcp", mount)
			inject := c.fail
			if how == "lose" {
				inject = c.lose
			}
			inject("ImportCryptoKeyVersion", 1)
			if _, err := e.m.Distribute(ctx, mount, req); err == nil {
				t.Fatal("a distribution whose import failed succeeded")
			}
			d, err := e.m.ReadDistribution(ctx, mount, "gcp", "k")
			if err != nil {
				t.Fatal(err)
			}
			job := d.Versions[0].Progress["import_job"]
			if job == "" || c.gcpFake.Jobs() != 1 {
				t.Fatalf("no import job recorded and made: %+v, %d jobs", d.Versions[0], c.gcpFake.Jobs())
			}
			c.gcpFake.ExpireImportJobs()
			if d, err = e.m.Distribute(ctx, mount, req); err != nil {
				t.Fatalf("retry after the import job expired: %v", err)
			}
			e.expect(t, c, "gcp", "k", map[int]bool{1: true}, 1)
			if n := c.created("k"); n != 1 {
				t.Fatalf("%d versions in Cloud KMS, want 1", n)
			}
			got := d.Versions[0].Progress["import_job"]
			if how == "fail" && (got == job || c.gcpFake.Jobs() != 2) {
				t.Fatalf("import job %s (of %d) after the retry, want a new one in place of %s", got, c.gcpFake.Jobs(), job)
			}
			if how == "lose" && (got != job || c.gcpFake.Jobs() != 1) {
				t.Fatalf("import job %s (of %d) after the retry, want the version found through %s", got, c.gcpFake.Jobs(), job)
			}
		})
	}
}

// A version Cloud KMS refused (IMPORT_FAILED) is imported again, through a
// new job, into the same crypto key version, on the next attempt.
func TestGCPImportFailedVersionIsImportedAgain(t *testing.T) {
	ctx := context.Background()
	c := gcpCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	req := keyOn(t, e, c, "gcp", mount)
	c.gcpFake.RefuseNextImports(1)
	_, err := e.m.Distribute(ctx, mount, req)
	if err == nil || !strings.Contains(err.Error(), "refused the import") {
		t.Fatalf("a distribution whose import Cloud KMS refused: %v", err)
	}
	d, err := e.m.ReadDistribution(ctx, mount, "gcp", "k")
	if err != nil {
		t.Fatal(err)
	}
	failed, job := d.Versions[0].ProviderID, d.Versions[0].Progress["import_job"]
	if failed == "" || job == "" {
		t.Fatalf("the record after the refusal: %+v", d.Versions[0])
	}
	if d, err = e.m.Distribute(ctx, mount, req); err != nil {
		t.Fatalf("retry after IMPORT_FAILED: %v", err)
	}
	e.expect(t, c, "gcp", "k", map[int]bool{1: true}, 1)
	if v := d.Versions[0]; v.ProviderID != failed || v.Progress["import_job"] == job || c.created("k") != 1 || c.gcpFake.Jobs() != 2 {
		t.Fatalf("after the retry: version %s through %s (%d versions, %d jobs); want %s again, through a new job", v.ProviderID, v.Progress["import_job"], c.created("k"), c.gcpFake.Jobs(), failed)
	}
	// A retry once the distribution is complete changes nothing.
	if _, err := e.m.Distribute(ctx, mount, req); err != nil || c.gcpFake.Jobs() != 2 || c.created("k") != 1 {
		t.Fatalf("writing the distribution again: %v, %d jobs, %d versions", err, c.gcpFake.Jobs(), c.created("k"))
	}
}

// New credentials of a kms whose keys are distributed must reach those
// keys: AWS credentials of another account (same region) are refused, as
// the next sync would put the key's next versions in that account, and the
// stored credentials stay. Credentials of the same account, and any for a
// kms with nothing distributed, are taken.
func TestAWSCredentialsOfAnotherAccountRefused(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "aws", nil)
	c.write(t, ctx, e.m, mount, "empty", nil)
	distributeAES(t, e, "aws", "k")
	other := map[string]string{"access_key": "AKIAOTHERACCOUNT0001", "secret_key": "secret-of-another-account"}
	c.awsFake.SetForeign(other["access_key"])

	_, err := e.m.WriteKMS(ctx, mount, "aws", KMSUpdate{Credentials: other})
	if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), "another account") {
		t.Fatalf("credentials of another account: %v, want a conflict", err)
	}
	if strings.Contains(err.Error(), other["secret_key"]) {
		t.Fatalf("the secret in the error: %v", err)
	}
	// The old credentials stay: the key still rotates into the first account.
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	if n := c.created("k"); n != 2 {
		t.Fatalf("%d AWS keys for k after the rotation, want 2", n)
	}

	if _, err := e.m.WriteKMS(ctx, mount, "empty", KMSUpdate{Credentials: other}); err != nil {
		t.Fatalf("a kms with nothing distributed: %v", err)
	}
	same := map[string]string{"access_key": "AKIASAMEACCOUNT00002", "secret_key": "a-rotated-secret-of-this-account"}
	if _, err := e.m.WriteKMS(ctx, mount, "aws", KMSUpdate{Credentials: same}); err != nil {
		t.Fatalf("new credentials of the same account: %v", err)
	}
}

// An endpoint must be https (http only to loopback: a local test double,
// and not for Azure) or, for GCP, a gRPC host:port; a new endpoint needs
// the credentials again (the stored ones, or tokens made from them, would
// be sent there), clearing it does not.
func TestKMSEndpointChecks(t *testing.T) {
	ctx := context.Background()
	c, g, az := awsCloud(t), gcpCloud(t), azureCloud(t)
	e := newEnv(t, Options{Providers: providers(c, g, az)})
	c.write(t, ctx, e.m, mount, "aws", nil)
	for _, bad := range []string{"file:///etc/passwd", "http://kms.example.com", "ftp://127.0.0.1:21", "https://user:pw@kms.example.com", "no-port", ":443", "kms.example.internal:443"} {
		if _, err := e.m.WriteKMS(ctx, mount, "aws", KMSUpdate{Endpoint: &bad, Credentials: c.creds}); fault.KindOf(err) != fault.BadInput {
			t.Fatalf("endpoint %q: %v, want bad input", bad, err)
		}
	}
	elsewhere := "https://kms.attacker.example"
	if _, err := e.m.WriteKMS(ctx, mount, "aws", KMSUpdate{Endpoint: &elsewhere}); fault.KindOf(err) != fault.BadInput || !strings.Contains(err.Error(), "needs its credentials") {
		t.Fatalf("a new endpoint without the credentials: %v", err)
	}
	for _, ok := range []string{"https://kms.vpce.example:8443", "http://127.0.0.1:9", "http://localhost:9", c.endpoint} {
		if _, err := e.m.WriteKMS(ctx, mount, "aws", KMSUpdate{Endpoint: &ok, Credentials: c.creds}); err != nil {
			t.Fatalf("endpoint %q with the credentials: %v", ok, err)
		}
	}
	// Clearing the endpoint (back to the cloud's own) needs no credentials.
	none := ""
	if _, err := e.m.WriteKMS(ctx, mount, "aws", KMSUpdate{Endpoint: &none}); err != nil {
		t.Fatalf("clearing the endpoint: %v", err)
	}
	// An endpoint stored before its form was checked: a write that sends
	// it again unchanged (to rotate the credentials) is not refused for it.
	legacy := "kms.example.internal:443"
	if err := e.st.Update(ctx, func(tx store.Tx) error {
		r, err := e.m.getKMS(ctx, tx, mount, "aws")
		if err != nil {
			return err
		}
		r.Endpoint = legacy
		return store.PutJSON(ctx, tx, kmsPath(mount, "aws"), r)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.WriteKMS(ctx, mount, "aws", KMSUpdate{Endpoint: &legacy, Credentials: c.creds}); err != nil {
		t.Fatalf("writing the stored endpoint %q again with new credentials: %v", legacy, err)
	}
	// host:port is GCP's gRPC form only; Azure's SDK takes only https.
	g.write(t, ctx, e.m, mount, "gcp", nil)
	az.write(t, ctx, e.m, mount, "az", nil)
	hostPort := "kms.example.internal:443"
	if _, err := e.m.WriteKMS(ctx, mount, "gcp", KMSUpdate{Endpoint: &hostPort, Credentials: g.creds}); err != nil {
		t.Fatalf("gcp endpoint %q: %v", hostPort, err)
	}
	for _, bad := range []string{hostPort, "http://127.0.0.1:9"} {
		if _, err := e.m.WriteKMS(ctx, mount, "az", KMSUpdate{Endpoint: &bad, Credentials: az.creds}); fault.KindOf(err) != fault.BadInput {
			t.Fatalf("azure endpoint %q: %v, want bad input", bad, err)
		}
	}
}

// With forbid_software_oaep switched on after a key was distributed with
// oaep_hash=sha256 (software OAEP then allowed): writing the distribution
// again still works while nothing needs wrapping, and a rotation's push is
// refused before the cloud makes anything for the new version.
func TestSoftwareOAEPForbiddenAfterDistribution(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c), ForbidSoftwareOAEP: true})
	if e.h.Capabilities().OAEP(sha256Hash) {
		t.Skip("this token does OAEP-SHA-256 itself")
	}
	allowed := NewWithOptions(e.h, e.st, Options{Providers: providers(c)})
	c.write(t, ctx, allowed, mount, "aws256", nil)
	if _, err := allowed.Create(ctx, mount, "k2", "rsa-2048"); err != nil {
		t.Fatal(err)
	}
	req := DistributeRequest{KMS: "aws256", Key: "k2", Purposes: []string{"sign"}}
	if _, err := allowed.Distribute(ctx, mount, req); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Distribute(ctx, mount, req); err != nil {
		t.Fatalf("writing a complete distribution again under the switch: %v", err)
	}
	before := c.created("k2")
	_, err := e.m.Rotate(ctx, mount, "k2")
	if err == nil || !strings.Contains(err.Error(), "forbid_software_oaep") {
		t.Fatalf("rotation under the switch: %v", err)
	}
	if after := c.created("k2"); after != before {
		t.Fatalf("the refused push made %d AWS keys", after-before)
	}
	d, err := e.m.ReadDistribution(ctx, mount, "aws256", "k2")
	if err != nil || d.Status != StatusDistributing || !strings.Contains(d.Error, "forbid_software_oaep") {
		t.Fatalf("the distribution after the refused push: %+v, %v", d, err)
	}
}

// A Key Vault holds no oct-HSM keys: an aes256-gcm96 distribution to one is
// refused before anything is made there (Azure refuses only the import,
// after the key-exchange key was created). RSA keys still go there.
func TestAzureKeyVaultRefusesAESUpFront(t *testing.T) {
	ctx := context.Background()
	f := kmsfake.NewAzure("https://vault1.vault.azure.net")
	c := azureCloud(t)
	c.factory, c.endpoint = f.Factory(), "" // the vault's own URL
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "az", nil)
	if _, err := e.m.Create(ctx, mount, "k", "aes256-gcm96"); err != nil {
		t.Fatal(err)
	}
	_, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "az", Key: "k", Purposes: []string{"encrypt", "decrypt"}})
	if fault.KindOf(err) != fault.BadInput || !strings.Contains(err.Error(), "Managed HSM") {
		t.Fatalf("aes256-gcm96 to a Key Vault: %v, want a refusal naming Managed HSM", err)
	}
	if f.Key("keyhold-kek-k") != nil || f.Key("k") != nil {
		t.Fatal("the refused distribution made keys in the vault")
	}
	if _, err := e.m.ReadDistribution(ctx, mount, "az", "k"); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("the refused distribution left a record: %v", err)
	}
	if _, err := e.m.Create(ctx, mount, "r", "rsa-2048"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "az", Key: "r", Purposes: []string{"sign", "verify"}}); err != nil {
		t.Fatalf("rsa-2048 to the Key Vault: %v", err)
	}
	if k := f.Key("r"); k == nil || len(k.Versions) != 1 || k.Versions[0].Material == nil {
		t.Fatalf("the vault's key r: %+v", k)
	}
}

// Removing an Azure distribution deletes the vault key and its KEK, and
// soft delete keeps both, with their names, for the vault's retention
// period. Distributing the same key again recovers them: its versions come
// back as they were and are not imported again.
func TestAzureRedistributionRecoversDeletedKeys(t *testing.T) {
	ctx := context.Background()
	c := azureCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "az", nil)
	distributeAES(t, e, "az", "k")
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.UpdateKey(ctx, mount, "k", Update{MinEnabledVersion: intp(2)}); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RemoveDistribution(ctx, mount, "az", "k"); err != nil {
		t.Fatal(err)
	}
	if k, kek := c.azure.Key("k"), c.azure.Key("keyhold-kek-k"); k == nil || !k.Deleted || kek == nil || !kek.Deleted {
		t.Fatalf("after removal: vault key %+v, KEK %+v; want both deleted", k, kek)
	}
	c.azure.RecoverLag = 1 // a recovered key answers only after a while
	if _, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "az", Key: "k", Purposes: []string{"encrypt", "decrypt"}}); err != nil {
		t.Fatalf("distributing the key again: %v", err)
	}
	e.expect(t, c, "az", "k", map[int]bool{1: false, 2: true}, 2)
	if n := len(c.azure.Key("k").Versions); n != 2 {
		t.Errorf("the vault key has %d versions, want the 2 recovered ones", n)
	}
	if n := len(c.azure.Key("keyhold-kek-k").Versions); n != 1 {
		t.Errorf("the KEK has %d versions, want the recovered one (a create before the recovery completed makes another)", n)
	}
	if n := c.azure.Requests["RecoverDeletedKey"]; n != 2 {
		t.Errorf("%d keys recovered, want the vault key and its KEK", n)
	}
	// A rotation after that imports into the recovered key.
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, c, "az", "k", map[int]bool{1: false, 2: true, 3: true}, 3)
}

// A deleted vault key or KEK of another key (here another mount's key of the
// same name) is not recovered: the distribution is refused, saying how to
// free the name, and the deleted keys stay deleted.
func TestAzureDeletedKeysOfAnotherKeyStayDeleted(t *testing.T) {
	ctx := context.Background()
	c := azureCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "az", nil)
	distributeAES(t, e, "az", "k")
	if err := e.m.RemoveDistribution(ctx, mount, "az", "k"); err != nil {
		t.Fatal(err)
	}
	c.write(t, ctx, e.m, otherMount, "az", nil)
	if _, err := e.m.Create(ctx, otherMount, "k", "aes256-gcm96"); err != nil {
		t.Fatal(err)
	}
	_, err := e.m.Distribute(ctx, otherMount, DistributeRequest{KMS: "az", Key: "k", Purposes: []string{"encrypt", "decrypt"}})
	if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), "soft delete") || !strings.Contains(err.Error(), "purge") {
		t.Fatalf("got %v, want a conflict that names soft delete and purging", err)
	}
	if c.azure.Requests["RecoverDeletedKey"] != 0 {
		t.Fatal("another key's deleted key was recovered")
	}
	if k, kek := c.azure.Key("k"), c.azure.Key("keyhold-kek-k"); !k.Deleted || !kek.Deleted {
		t.Fatal("another key's deleted keys are no longer deleted")
	}
}

// Removing a distribution and distributing the key again is how its
// purposes change: the versions recovered with the deleted vault key take
// the new purposes' operations.
func TestAzureRecoveredVersionsTakeTheNewPurposes(t *testing.T) {
	ctx := context.Background()
	c := azureCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "az", nil)
	distributeAES(t, e, "az", "k") // encrypt, decrypt
	if err := e.m.RemoveDistribution(ctx, mount, "az", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "az", Key: "k", Purposes: []string{"wrap", "unwrap"}}); err != nil {
		t.Fatal(err)
	}
	e.expect(t, c, "az", "k", map[int]bool{1: true}, 1)
	for _, v := range c.azure.Key("k").Versions {
		if ops := strings.Join(slices.Sorted(slices.Values(v.KeyOps)), ","); ops != "unwrapKey,wrapKey" {
			t.Errorf("vault key version %s allows %s, want the new purposes' wrapKey and unwrapKey", v.ID, ops)
		}
	}
}

func durp(d time.Duration) *time.Duration { return &d }
