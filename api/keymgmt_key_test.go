package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"sync"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"github.com/keyhold/keyhold/store"
)

func mountKeymgmt(t *testing.T, c *vault.Client, path string) {
	t.Helper()
	if err := c.Sys().Mount(path, &vault.MountInput{Type: "keymgmt"}); err != nil {
		t.Fatalf("mount %s: %v", path, err)
	}
}

func intField(t *testing.T, s *vault.Secret, k string) int {
	t.Helper()
	n, ok := s.Data[k].(json.Number)
	if !ok {
		t.Fatalf("field %s = %#v", k, s.Data[k])
	}
	i, _ := n.Int64()
	return int(i)
}

func TestKeyLifecycleWithVaultClient(t *testing.T) {
	env := newTestEnv(t)
	c := env.client(t, testRootToken)
	mountKeymgmt(t, c, "keymgmt")
	l := c.Logical()

	for _, typ := range []string{"aes256-gcm96", "rsa-2048", "rsa-3072", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521"} {
		t.Run("ok create "+typ, func(t *testing.T) {
			name := "k-" + typ
			s, err := l.Write("keymgmt/key/"+name, map[string]any{"type": typ})
			if err != nil {
				t.Fatal(err)
			}
			if s.Data["type"] != typ || s.Data["name"] != name || intField(t, s, "latest_version") != 1 {
				t.Fatalf("create answered %v", s.Data)
			}
			v1 := s.Data["versions"].(map[string]any)["1"].(map[string]any)
			if typ == "aes256-gcm96" {
				if _, ok := v1["public_key"]; ok {
					t.Fatal("a symmetric key shows a public key")
				}
				return
			}
			blk, _ := pem.Decode([]byte(v1["public_key"].(string)))
			if blk == nil || blk.Type != "PUBLIC KEY" {
				t.Fatalf("public key is not PEM: %v", v1["public_key"])
			}
			pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			switch p := pub.(type) {
			case *rsa.PublicKey:
				if want := map[string]int{"rsa-2048": 2048, "rsa-3072": 3072}[typ]; p.N.BitLen() != want {
					t.Fatalf("RSA key of %d bits for %s", p.N.BitLen(), typ)
				}
			case *ecdsa.PublicKey:
				if want := map[string]string{"ecdsa-p256": "P-256", "ecdsa-p384": "P-384", "ecdsa-p521": "P-521"}[typ]; p.Curve.Params().Name != want {
					t.Fatalf("curve %s for %s", p.Curve.Params().Name, typ)
				}
			default:
				t.Fatalf("public key %T", pub)
			}
		})
	}

	t.Run("ok default type is rsa-2048", func(t *testing.T) {
		s, err := l.Write("keymgmt/key/default-type", nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Data["type"] != "rsa-2048" {
			t.Fatalf("type %v", s.Data["type"])
		}
	})

	t.Run("ok rotate, min_enabled_version, read, list, delete", func(t *testing.T) {
		if _, err := l.Write("keymgmt/key/example-key", map[string]any{"type": "ecdsa-p256"}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if _, err := l.Write("keymgmt/key/example-key/rotate", nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Write("keymgmt/key/example-key", map[string]any{"min_enabled_version": 2}); err != nil {
			t.Fatal(err)
		}
		// A null (what the Vault client sends for a field it has no value
		// for) leaves a setting as it is.
		if _, err := l.Write("keymgmt/key/example-key", map[string]any{"min_enabled_version": nil, "deletion_allowed": nil}); err != nil {
			t.Fatal(err)
		}
		s, err := l.Read("keymgmt/key/example-key")
		if err != nil {
			t.Fatal(err)
		}
		if intField(t, s, "latest_version") != 3 || intField(t, s, "min_enabled_version") != 2 || s.Data["deletion_allowed"] != false {
			t.Fatalf("read %v", s.Data)
		}
		vs := s.Data["versions"].(map[string]any)
		if len(vs) != 3 {
			t.Fatalf("%d versions", len(vs))
		}
		pubs := map[string]bool{}
		for _, v := range vs {
			pubs[v.(map[string]any)["public_key"].(string)] = true
		}
		if len(pubs) != 3 {
			t.Fatal("rotation did not make a new key")
		}
		list, err := l.List("keymgmt/key")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(fmt.Sprint(list.Data["keys"]), "example-key") {
			t.Fatalf("list %v", list.Data)
		}
		// Deletion is guarded.
		_, err = l.Delete("keymgmt/key/example-key")
		if statusOfErr(err) != 400 || !strings.Contains(err.Error(), "deletion is not allowed") {
			t.Fatalf("delete without deletion_allowed: %v", err)
		}
		if _, err := l.Write("keymgmt/key/example-key", map[string]any{"deletion_allowed": true}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Delete("keymgmt/key/example-key"); err != nil {
			t.Fatal(err)
		}
		s, err = l.Read("keymgmt/key/example-key")
		if err != nil || s != nil {
			t.Fatalf("read after delete: %v %v", s, err)
		}
	})

	fails := []struct {
		name   string
		path   string
		data   map[string]any
		status int
		msg    string
	}{
		{"fail unknown key type", "keymgmt/key/bad", map[string]any{"type": "des-56"}, 400, `unknown key type "des-56"`},
		{"fail unknown field", "keymgmt/key/bad", map[string]any{"tpye": "rsa-2048"}, 400, "unknown field(s): tpye"},
		{"fail wrong field type", "keymgmt/key/bad", map[string]any{"min_enabled_version": "two"}, 400, `field "min_enabled_version"`},
		{"fail bad name", "keymgmt/key/-bad", map[string]any{"type": "rsa-2048"}, 400, "invalid key name"},
		{"fail min_enabled_version above latest", "keymgmt/key/k-rsa-2048", map[string]any{"min_enabled_version": 5}, 400, "out of range"},
		{"fail negative min_enabled_version", "keymgmt/key/k-rsa-2048", map[string]any{"min_enabled_version": -1}, 400, "out of range"},
		{"fail type change", "keymgmt/key/k-rsa-2048", map[string]any{"type": "rsa-4096"}, 400, "cannot change"},
		{"fail rotate missing key", "keymgmt/key/nope/rotate", nil, 404, `no key named "nope"`},
		{"fail unknown path", "keymgmt/nothing/here", map[string]any{}, 404, "no handler for this path"},
	}
	for _, f := range fails {
		t.Run(f.name, func(t *testing.T) {
			_, err := l.Write(f.path, f.data)
			if statusOfErr(err) != f.status || !strings.Contains(err.Error(), f.msg) {
				t.Fatalf("got %v, want %d with %q", err, f.status, f.msg)
			}
		})
	}
}

func TestMounts(t *testing.T) {
	env := newTestEnv(t)
	c := env.client(t, testRootToken)
	mountKeymgmt(t, c, "keymgmt")
	mountKeymgmt(t, c, "team-a/keys")
	if err := c.Sys().Mount("kmip", &vault.MountInput{Type: "kmip"}); err != nil {
		t.Fatal(err)
	}
	// Settings of Vault's mounts that are not kept here are refused, not
	// dropped; at their zero values (as the Vault client sends them) they
	// are fine, as the mounts above show.
	for name, in := range map[string]*vault.MountInput{
		"seal_wrap": {Type: "keymgmt", SealWrap: true},
		"local":     {Type: "keymgmt", Local: true},
		"config":    {Type: "keymgmt", Config: vault.MountConfigInput{DefaultLeaseTTL: "1h"}},
		"options":   {Type: "keymgmt", Options: map[string]string{"version": "2"}},
	} {
		if err := c.Sys().Mount("refused-"+strings.ReplaceAll(name, "_", "-"), in); statusOfErr(err) != 400 {
			t.Fatalf("a mount with %s: %v, want 400", name, err)
		}
	}
	mounts, err := c.Sys().ListMounts()
	if err != nil {
		t.Fatal(err)
	}
	for p := range mounts {
		if strings.HasPrefix(p, "refused-") {
			t.Fatalf("a refused mount is there: %s", p)
		}
	}
	if mounts["keymgmt/"] == nil || mounts["keymgmt/"].Type != "keymgmt" || mounts["team-a/keys/"] == nil || mounts["kmip/"].Type != "kmip" {
		t.Fatalf("mounts %v", mounts)
	}
	// Keys of one mount are invisible in another.
	l := c.Logical()
	if _, err := l.Write("keymgmt/key/shared-name", map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatal(err)
	}
	if s, err := l.Read("team-a/keys/key/shared-name"); err != nil || s != nil {
		t.Fatalf("key visible across mounts: %v %v", s, err)
	}
	for _, f := range []struct {
		name, path, typ, msg string
		status               int
	}{
		{"fail taken path", "keymgmt", "keymgmt", "already in use", 409},
		{"fail nested under a mount", "keymgmt/inner", "keymgmt", "overlaps", 409},
		{"fail unknown type", "other", "transit", `unknown mount type "transit"`, 400},
		{"fail reserved path", "sys/x", "keymgmt", "reserved", 400},
		{"fail bad path", "bad path", "keymgmt", "invalid mount path", 400},
	} {
		t.Run(f.name, func(t *testing.T) {
			err := c.Sys().Mount(f.path, &vault.MountInput{Type: f.typ})
			if statusOfErr(err) != f.status || !strings.Contains(err.Error(), f.msg) {
				t.Fatalf("got %v", err)
			}
		})
	}
	// Disabling a mount that holds keys needs force, and force destroys them.
	err = c.Sys().Unmount("keymgmt")
	if statusOfErr(err) != 409 || !strings.Contains(err.Error(), "force") {
		t.Fatalf("unmount with keys: %v", err)
	}
	r := c.NewRequest("DELETE", "/v1/sys/mounts/keymgmt")
	r.Params.Set("force", "true")
	resp, err := c.RawRequest(r)
	if err != nil {
		t.Fatalf("forced unmount: %v", err)
	}
	resp.Body.Close()
	mountKeymgmt(t, c, "keymgmt")
	if s, err := l.Read("keymgmt/key/shared-name"); err != nil || s != nil {
		t.Fatalf("a new mount at the old path sees the old keys: %v %v", s, err)
	}
	if err := c.Sys().Unmount("team-a/keys"); err != nil {
		t.Fatalf("unmount an empty mount: %v", err)
	}
}

func TestConcurrentRotationsNeverLoseOrDuplicate(t *testing.T) {
	env := newTestEnv(t)
	c := env.client(t, testRootToken)
	mountKeymgmt(t, c, "keymgmt")
	if _, err := c.Logical().Write("keymgmt/key/busy", map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 6
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := c.Logical().Write("keymgmt/key/busy/rotate", nil); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s, err := c.Logical().Read("keymgmt/key/busy")
	if err != nil {
		t.Fatal(err)
	}
	want := 1 + workers*each
	if got := intField(t, s, "latest_version"); got != want {
		t.Fatalf("latest_version %d after %d rotations, want %d", got, workers*each, want)
	}
	vs := s.Data["versions"].(map[string]any)
	for v := 1; v <= want; v++ {
		if vs[fmt.Sprint(v)] == nil {
			t.Fatalf("version %d missing", v)
		}
	}
	if len(vs) != want {
		t.Fatalf("%d versions, want %d", len(vs), want)
	}
}

// The same create sent at once by several callers answers each of them as
// one sent after the others would: the key, once, and no conflict.
func TestConcurrentCreatesOfOneKey(t *testing.T) {
	env := newTestEnv(t)
	c := env.client(t, testRootToken)
	mountKeymgmt(t, c, "keymgmt")
	for round := range 5 {
		name := fmt.Sprintf("keymgmt/key/race-%d", round)
		const callers = 8
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for range callers {
			wg.Go(func() {
				if _, err := c.Logical().Write(name, map[string]any{"type": "ecdsa-p256"}); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		s, err := c.Logical().Read(name)
		if err != nil || intField(t, s, "latest_version") != 1 {
			t.Fatalf("round %d: %v %v", round, s, err)
		}
	}
	// A create of another type losing the race is still refused.
	if _, err := c.Logical().Write("keymgmt/key/race-0", map[string]any{"type": "rsa-2048"}); statusOfErr(err) != 400 {
		t.Fatalf("a write of another type: %v", err)
	}
}

// A mount another node enabled, which this node has not loaded yet, still
// blocks its path and the paths nested in or around it: the check is made
// against the store, in the write's own transaction.
func TestMountConflictsWithAnotherNodesMount(t *testing.T) {
	env := newTestEnv(t)
	c := env.client(t, testRootToken)
	ctx := context.Background()
	// Another node's mount, as it stands in the shared store.
	other := `{"path":"team-b/keys","type":"keymgmt","uuid":"0f0e0d0c-0b0a-0908-0706-050403020100"}`
	if err := env.store.Update(ctx, func(tx store.Tx) error { return tx.Put(ctx, "sys/mounts/team-b/keys", []byte(other)) }); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ path, msg string }{
		{"team-b/keys", "already in use"},
		{"team-b/keys/inner", "overlaps"},
		{"team-b", "overlaps"},
	} {
		err := c.Sys().Mount(f.path, &vault.MountInput{Type: "keymgmt"})
		if statusOfErr(err) != 409 || !strings.Contains(err.Error(), f.msg) {
			t.Fatalf("mount at %s beside another node's team-b/keys: %v", f.path, err)
		}
	}
	var got []byte
	if err := env.store.View(ctx, func(tx store.Tx) (err error) { got, err = tx.Get(ctx, "sys/mounts/team-b/keys"); return err }); err != nil || string(got) != other {
		t.Fatalf("the other node's mount after the refusals: %s, %v", got, err)
	}
	mountKeymgmt(t, c, "team-c/keys")
}
