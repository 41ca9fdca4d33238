package kmip_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/kmip"
	"github.com/keyhold/keyhold/kmip/kmiptest"
	"github.com/keyhold/keyhold/store"
)

// editStored changes fields of a JSON record of the mount as a record
// written before a rule existed would have them.
func editStored(t *testing.T, e *kmiptest.Env, path string, fields map[string]any) {
	t.Helper()
	ctx := context.Background()
	if err := e.Store.Update(ctx, func(tx store.Tx) error {
		raw, err := tx.Get(ctx, path)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		for k, v := range fields {
			m[k] = v
		}
		out, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return tx.Put(ctx, path, out)
	}); err != nil {
		t.Fatal(err)
	}
}

// A role or config stored before ec 224 client keys and sub-second
// connection timeouts were refused can still be changed in its other
// fields; the old value is refused only when a write sets it, and no
// credential is made for a P-224 key, generated or signed.
func TestStoredValuesOfOlderRules(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	ctx := context.Background()
	e.Role(t, "s", "old", "get")
	editStored(t, e, "kmip/"+e.Mount+"/role/s/old", map[string]any{"tls_client_key_type": "ec", "tls_client_key_bits": 224})
	editStored(t, e, "kmip/"+e.Mount+"/config", map[string]any{"connection_timeout": int64(300 * time.Millisecond),
		"default_tls_client_key_type": "ec", "default_tls_client_key_bits": 224})

	r, err := e.Manager.PutRole(ctx, e.Mount, "s", "old", kmip.RoleInput{Ops: map[string]bool{"get": true, "locate": true}})
	if err != nil {
		t.Fatalf("changing the operations of a stored ec 224 role: %v", err)
	}
	if len(r.Operations) != 2 || r.TLSClientKeyBits != 224 {
		t.Fatalf("role after the write: %+v", r)
	}
	// The record written back whole keeps it; a change to it is checked.
	typ, bits := "ec", 224
	if _, err := e.Manager.PutRole(ctx, e.Mount, "s", "old", kmip.RoleInput{TLSClientKeyType: &typ, TLSClientKeyBits: &bits}); err != nil {
		t.Fatalf("the stored ec 224 sent back unchanged: %v", err)
	}
	b256 := 256
	if _, err := e.Manager.PutRole(ctx, e.Mount, "s", "other", kmip.RoleInput{TLSClientKeyType: &typ, TLSClientKeyBits: &bits}); fault.KindOf(err) != fault.BadInput || err == nil {
		t.Fatalf("ec 224 on a new role: %v", err)
	}
	e.Role(t, "u", "moved", "get")
	if _, err := e.Manager.PutRole(ctx, e.Mount, "u", "moved", kmip.RoleInput{TLSClientKeyType: &typ, TLSClientKeyBits: &b256}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Manager.PutRole(ctx, e.Mount, "u", "moved", kmip.RoleInput{TLSClientKeyBits: &bits}); fault.KindOf(err) != fault.BadInput || err == nil {
		t.Fatalf("going back to ec 224: %v", err)
	}

	ttl := 2 * time.Hour
	v, err := e.Manager.SetConfig(ctx, e.Mount, kmip.ConfigInput{DefaultTLSClientTTL: &ttl})
	if err != nil {
		t.Fatalf("changing another field of a config with a 300ms timeout and an ec 224 default: %v", err)
	}
	if v.Config.ConnectionTimeout != 300*time.Millisecond {
		t.Fatalf("stored timeout changed to %v", v.Config.ConnectionTimeout)
	}
	same := 300 * time.Millisecond
	if _, err := e.Manager.SetConfig(ctx, e.Mount, kmip.ConfigInput{ConnectionTimeout: &same}); err != nil {
		t.Fatalf("the stored 300ms timeout sent back unchanged: %v", err)
	}
	short := 500 * time.Millisecond
	if _, err := e.Manager.SetConfig(ctx, e.Mount, kmip.ConfigInput{ConnectionTimeout: &short}); fault.KindOf(err) != fault.BadInput || err == nil {
		t.Fatalf("writing a sub-second timeout: %v", err)
	}
	if _, err := e.Manager.SetConfig(ctx, e.Mount, kmip.ConfigInput{DefaultTLSClientKeyType: &typ, DefaultTLSClientKeyBits: &bits}); err != nil {
		t.Fatalf("the stored ec 224 default sent back unchanged: %v", err)
	}
	rsa := "rsa"
	if _, err := e.Manager.SetConfig(ctx, e.Mount, kmip.ConfigInput{DefaultTLSClientKeyType: &rsa}); fault.KindOf(err) != fault.BadInput || err == nil {
		t.Fatalf("a default of rsa 224: %v", err)
	}

	// Credentials: none for the stored ec 224 role, generated or signed.
	if _, err := e.Manager.GenerateCredential(ctx, e.Mount, "s", "old", "pem"); fault.KindOf(err) != fault.BadInput || err == nil ||
		!strings.Contains(err.Error(), "tls_client_key") {
		t.Fatalf("generate for an ec 224 role: %v", err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	if _, err := e.Manager.SignCredential(ctx, e.Mount, "s", "old", csr, "pem"); fault.KindOf(err) != fault.BadInput || err == nil {
		t.Fatalf("sign of a P-224 request for an ec 224 role: %v", err)
	}
	// The role inheriting the mount's stored ec 224 default is refused too.
	e.Role(t, "t", "inherits", "get")
	if _, err := e.Manager.SignCredential(ctx, e.Mount, "t", "inherits", csr, "pem"); fault.KindOf(err) != fault.BadInput || err == nil {
		t.Fatalf("sign of a P-224 request under an ec 224 default: %v", err)
	}
}
