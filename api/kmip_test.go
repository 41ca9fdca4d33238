package api

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/auth"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/keymgmt"
	"github.com/keyhold/keyhold/kmip"
	"github.com/keyhold/keyhold/kmip/kmiptest"
	"github.com/keyhold/keyhold/metrics"
	"github.com/keyhold/keyhold/store/sqlite"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// newKMIPTestEnv is newTestEnv with a KMIP manager behind kmip mounts.
func newKMIPTestEnv(t *testing.T) (*vault.Client, *kmip.Manager) {
	t.Helper()
	ctx := context.Background()
	h := hsmtest.Open(t)
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	trail := audit.NewBroker(h, st, log)
	km := kmip.New(kmip.Options{HSM: h, Store: st, Audit: trail, Logger: log, Version: "test"})
	t.Cleanup(func() { km.Close() })
	srv := New(Deps{HSM: h, Store: st, Auth: auth.New(st), Keys: keymgmt.New(h, st), Logger: log, Version: "test",
		Audit: trail, Metrics: metrics.New(), KMIP: km})
	if err := srv.Init(ctx, testRootToken); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	cfg := vault.DefaultConfig()
	cfg.Address, cfg.MaxRetries = ts.URL, 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(testRootToken)
	return c, km
}

// kmipDial connects to a KMIP listener with a credential's PEM fields.
func kmipDial(t *testing.T, addr, caPEM, certPEM, keyPEM string) (*kmiptest.Client, error) {
	t.Helper()
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(caPEM))
	tc, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { tc.Close() })
	c := &kmiptest.Client{Conn: tc}
	// A handshake refused by the server shows on the first exchange (TLS
	// 1.3); a role without discover_versions gets Permission Denied.
	it, err := c.Do(gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{})
	if err == nil && it.ResultStatus != gokmip.ResultStatusSuccess {
		err = fmt.Errorf("discover versions: %s %q", ttlv.EnumStr(it.ResultReason), it.ResultMessage)
	}
	return c, err
}

func kmipField(t *testing.T, s *vault.Secret, k string) string {
	t.Helper()
	v, ok := s.Data[k].(string)
	if !ok {
		t.Fatalf("field %s = %#v", k, s.Data[k])
	}
	return v
}

func TestKMIPAdminWithVaultClient(t *testing.T) {
	c, _ := newKMIPTestEnv(t)
	l := c.Logical()
	if err := c.Sys().Mount("kmip", &vault.MountInput{Type: "kmip"}); err != nil {
		t.Fatal(err)
	}
	if s, err := l.Read("kmip/ca"); s != nil || err != nil { // the Vault client answers a 404 read with nothing
		t.Fatalf("ca before config: %v %v", s, err)
	}
	cfg, err := l.Write("kmip/config", map[string]any{"listen_addrs": "127.0.0.1:0", "connection_timeout": 10, "server_hostnames": "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	addr := cfg.Data["listening"].([]any)[0].(string)
	if kmipField(t, cfg, "tls_ca_key_type") != "ec" || intField(t, cfg, "tls_ca_key_bits") != 256 || kmipField(t, cfg, "tls_min_version") != "tls12" {
		t.Fatalf("config defaults: %v", cfg.Data)
	}
	ca, err := l.Read("kmip/ca")
	if err != nil {
		t.Fatal(err)
	}
	caPEM := kmipField(t, ca, "ca_pem")
	if _, err := l.Write("kmip/config", map[string]any{"tls_ca_key_type": "rsa", "tls_ca_key_bits": 2048}); err == nil || statusOfErr(err) != 400 {
		t.Fatalf("changing the CA key type: %v", err)
	}
	again, _ := l.Read("kmip/ca")
	if kmipField(t, again, "ca_pem") != caPEM {
		t.Fatal("a second config write made a new CA")
	}

	t.Run("scopes and roles", func(t *testing.T) {
		for _, s := range []string{"finance", "hr"} {
			if _, err := l.Write("kmip/scope/"+s, nil); err != nil {
				t.Fatal(err)
			}
		}
		list, err := l.List("kmip/scope")
		if err != nil || len(list.Data["keys"].([]any)) != 2 {
			t.Fatalf("list scopes: %v %v", list, err)
		}
		tests := []struct {
			name    string
			data    map[string]any
			wantErr bool
			want    map[string]any
		}{
			{name: "ok all", data: map[string]any{"operation_all": true}, want: map[string]any{"operation_all": true}},
			{name: "ok some", data: map[string]any{"operation_get": true, "operation_locate": "true"}, want: map[string]any{"operation_get": true, "operation_locate": true}},
			{name: "ok none", data: map[string]any{"operation_none": true}, want: map[string]any{"operation_none": true}},
			{name: "fail all and none", data: map[string]any{"operation_all": true, "operation_none": true}, wantErr: true},
			{name: "fail all with another", data: map[string]any{"operation_all": true, "operation_get": true}, wantErr: true},
			{name: "fail none with another", data: map[string]any{"operation_none": true, "operation_create": true}, wantErr: true},
			// Not "all but destroy": refused rather than granted whole.
			{name: "fail all with another set false", data: map[string]any{"operation_all": true, "operation_destroy": false}, wantErr: true},
			{name: "fail none with another set false", data: map[string]any{"operation_none": true, "operation_get": false}, wantErr: true},
			{name: "fail unknown operation", data: map[string]any{"operation_fly": true}, wantErr: true},
			{name: "ok rng_seed_max_bytes", data: map[string]any{"operation_all": true, "rng_seed_max_bytes": 16}, want: map[string]any{"rng_seed_max_bytes": json.Number("16")}},
			{name: "fail bad key bits", data: map[string]any{"operation_all": true, "tls_client_key_type": "ec", "tls_client_key_bits": 255}, wantErr: true},
			// P-224 has no TLS 1.3 signature scheme: its credentials would not work.
			{name: "fail ec 224", data: map[string]any{"operation_all": true, "tls_client_key_type": "ec", "tls_client_key_bits": 224}, wantErr: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := l.Write("kmip/scope/finance/role/r", tt.data)
				if tt.wantErr {
					if statusOfErr(err) != 400 {
						t.Fatalf("got %v, want 400", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				r, err := l.Read("kmip/scope/finance/role/r")
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range tt.want {
					if r.Data[k] != v {
						t.Fatalf("role %v, want %s=%v", r.Data, k, v)
					}
				}
			})
		}
		if _, err := l.Write("kmip/scope/nowhere/role/r", map[string]any{"operation_all": true}); statusOfErr(err) != 404 {
			t.Fatalf("role in a missing scope: %v", err)
		}
		// A delete of a role that is not there (a name mistyped) is not
		// reported as done, as a scope's is not.
		for _, p := range []string{"kmip/scope/finance/role/nosuch", "kmip/scope/nowhere/role/r", "kmip/scope/nowhere"} {
			if _, err := l.Delete(p); statusOfErr(err) != 404 {
				t.Fatalf("delete %s: %v, want 404", p, err)
			}
		}
	})

	t.Run("credentials", func(t *testing.T) {
		if _, err := l.Write("kmip/scope/finance/role/admin", map[string]any{"operation_all": true}); err != nil {
			t.Fatal(err)
		}
		gen, err := l.Write("kmip/scope/finance/role/admin/credential/generate", map[string]any{"format": "pem"})
		if err != nil {
			t.Fatal(err)
		}
		serial := kmipField(t, gen, "serial_number")
		certPEM, keyPEM := kmipField(t, gen, "certificate"), kmipField(t, gen, "private_key")
		if chain := gen.Data["ca_chain"].([]any); len(chain) != 1 || chain[0] != caPEM {
			t.Fatalf("ca_chain: %v", chain)
		}
		b, _ := pem.Decode([]byte(certPEM))
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil || leaf.SerialNumber.String() != serial || leaf.Subject.Organization[0] != "finance" || leaf.Subject.OrganizationalUnit[0] != "admin" {
			t.Fatalf("certificate: %v %+v", err, leaf.Subject)
		}
		if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
			t.Fatalf("default client key is %T", leaf.PublicKey)
		}
		if _, err := kmipDial(t, addr, caPEM, certPEM, keyPEM); err != nil {
			t.Fatalf("the new credential does not connect: %v", err)
		}

		der, err := l.Write("kmip/scope/finance/role/admin/credential/generate", map[string]any{"format": "der"})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(kmipField(t, der, "certificate"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x509.ParseCertificate(raw); err != nil {
			t.Fatalf("der certificate: %v", err)
		}
		bundle, err := l.Write("kmip/scope/finance/role/admin/credential/generate", map[string]any{"format": "pem_bundle"})
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(kmipField(t, bundle, "certificate"), "BEGIN CERTIFICATE"); n != 2 {
			t.Fatalf("pem_bundle holds %d certificates", n)
		}
		if _, err := l.Write("kmip/scope/finance/role/admin/credential/generate", map[string]any{"format": "p12"}); statusOfErr(err) != 400 {
			t.Fatalf("bad format: %v", err)
		}

		// sign: a CSR whose key is not the role's type and size (ec 256
		// by default) is refused: no weaker key, none the listener cannot
		// use.
		for name, k := range map[string]crypto.Signer{
			"rsa 1024": func() crypto.Signer { k, _ := rsa.GenerateKey(rand.Reader, 1024); return k }(),
			"ec 224":   func() crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader); return k }(),
			"ec 384":   func() crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader); return k }(),
		} {
			der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "c"}}, k)
			p := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
			if _, err := l.Write("kmip/scope/finance/role/admin/credential/sign", map[string]any{"csr": p}); statusOfErr(err) != 400 {
				t.Fatalf("a csr with an %s key: %v, want 400", name, err)
			}
		}
		// sign: the CSR's key, the role's subject.
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "evil", Organization: []string{"hr"}}}, key)
		csrPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
		signed, err := l.Write("kmip/scope/finance/role/admin/credential/sign", map[string]any{"csr": csrPEM})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := signed.Data["private_key"]; ok {
			t.Fatal("sign answered a private key")
		}
		b, _ = pem.Decode([]byte(kmipField(t, signed, "certificate")))
		sc, _ := x509.ParseCertificate(b.Bytes)
		if sc.Subject.Organization[0] != "finance" || !sc.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
			t.Fatalf("signed certificate: %+v", sc.Subject)
		}
		if _, err := l.Write("kmip/scope/finance/role/admin/credential/sign", map[string]any{"csr": "not a csr"}); statusOfErr(err) != 400 {
			t.Fatalf("bad csr: %v", err)
		}

		list, err := l.List("kmip/scope/finance/role/admin/credential")
		if err != nil || len(list.Data["keys"].([]any)) != 4 {
			t.Fatalf("list credentials: %v %v", list, err)
		}
		look, err := l.ReadWithData("kmip/scope/finance/role/admin/credential/lookup", map[string][]string{"serial_number": {serial}})
		if err != nil || kmipField(t, look, "certificate") != certPEM {
			t.Fatalf("lookup: %v %v", look, err)
		}
		if s, err := l.ReadWithData("kmip/scope/finance/role/r/credential/lookup", map[string][]string{"serial_number": {serial}}); s != nil || err != nil {
			t.Fatalf("lookup through another role: %v %v", s, err)
		}

		if _, err := l.Write("kmip/scope/finance/role/admin/credential/revoke", map[string]any{"serial_number": serial}); err != nil {
			t.Fatal(err)
		}
		if _, err := kmipDial(t, addr, caPEM, certPEM, keyPEM); err == nil {
			t.Fatal("a revoked credential still connects")
		}
		if _, err := l.Write("kmip/scope/finance/role/admin/credential/revoke", map[string]any{"serial_number": serial}); statusOfErr(err) != 404 {
			t.Fatalf("revoking twice: %v", err)
		}
	})

	t.Run("scope deletion needs force while it holds objects", func(t *testing.T) {
		if _, err := l.Write("kmip/scope/hr/role/w", map[string]any{"operation_create": true}); err != nil {
			t.Fatal(err)
		}
		cred, err := l.Write("kmip/scope/hr/role/w/credential/generate", nil)
		if err != nil {
			t.Fatal(err)
		}
		kc, err := kmipDial(t, addr, caPEM, kmipField(t, cred, "certificate"), kmipField(t, cred, "private_key"))
		if err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
			t.Fatalf("a role without discover_versions: %v", err)
		}
		it, err := kc.Do(gokmip.V1_4, &payloads.CreateRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, TemplateAttribute: gokmip.TemplateAttribute{
			Attribute: []gokmip.Attribute{
				{AttributeName: gokmip.AttributeNameCryptographicAlgorithm, AttributeValue: gokmip.CryptographicAlgorithmAES},
				{AttributeName: gokmip.AttributeNameCryptographicLength, AttributeValue: int32(128)},
			}}})
		if err != nil || it.ResultStatus != gokmip.ResultStatusSuccess {
			t.Fatalf("create: %v %+v", err, it)
		}
		if _, err := l.Delete("kmip/scope/hr"); statusOfErr(err) != 409 {
			t.Fatalf("delete without force: %v", err)
		}
		if _, err := l.DeleteWithData("kmip/scope/hr", map[string][]string{"force": {"true"}}); err != nil {
			t.Fatal(err)
		}
		list, err := l.List("kmip/scope")
		if err != nil || len(list.Data["keys"].([]any)) != 1 {
			t.Fatalf("scopes after delete: %v %v", list, err)
		}
	})
}

func TestKMIPSeveralMountsOnDistinctPorts(t *testing.T) {
	c, km := newKMIPTestEnv(t)
	l := c.Logical()
	var addrs []string
	for _, m := range []string{"kmip-a", "kmip-b"} {
		if err := c.Sys().Mount(m, &vault.MountInput{Type: "kmip"}); err != nil {
			t.Fatal(err)
		}
		cfg, err := l.Write(m+"/config", map[string]any{"listen_addrs": "127.0.0.1:0", "connection_timeout": "10s"})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, cfg.Data["listening"].([]any)[0].(string))
		if _, err := l.Write(m+"/scope/s", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Write(m+"/scope/s/role/r", map[string]any{"operation_all": true}); err != nil {
			t.Fatal(err)
		}
	}
	if addrs[0] == addrs[1] {
		t.Fatalf("both mounts on %s", addrs[0])
	}
	caA, _ := l.Read("kmip-a/ca")
	caB, _ := l.Read("kmip-b/ca")
	credA, err := l.Write("kmip-a/scope/s/role/r/credential/generate", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kmipDial(t, addrs[0], kmipField(t, caA, "ca_pem"), kmipField(t, credA, "certificate"), kmipField(t, credA, "private_key")); err != nil {
		t.Fatalf("mount a's credential on mount a: %v", err)
	}
	// Mount b's listener presents mount b's CA chain and trusts only it.
	if _, err := kmipDial(t, addrs[1], kmipField(t, caB, "ca_pem"), kmipField(t, credA, "certificate"), kmipField(t, credA, "private_key")); err == nil {
		t.Fatal("mount a's credential was accepted by mount b")
	}
	// Disabling a mount stops its listener and removes its data.
	if err := c.Sys().Unmount("kmip-a"); err != nil {
		t.Fatal(err)
	}
	if got := km.Addrs(""); len(got) != 0 {
		t.Fatalf("addrs of no mount: %v", got)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := kmipDial(t, addrs[0], kmipField(t, caA, "ca_pem"), kmipField(t, credA, "certificate"), kmipField(t, credA, "private_key")); err == nil {
		t.Fatal("the disabled mount still answers")
	}
}
