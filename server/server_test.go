package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/logbuf"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/sqlite"
)

// startDev runs a dev appliance in dir until the returned stop is called.
func startDev(t *testing.T, dir, rootID string) (addr, root string, stop func()) {
	t.Helper()
	cfg, root, err := DevSetup(DevOptions{Dir: dir, RootTokenID: rootID, ListenAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", cfg.HSM.SoftHSMConf) // restored after the test
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Version: "test", RootToken: root, Ready: func(a string) { ready <- a }})
	}()
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start in 30 s")
	}
	return addr, root, func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("server stopped with %v", err)
		}
	}
}

type health struct {
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Version     string `json:"version"`
	HSM         struct {
		TokenLabel   string `json:"token_label"`
		Model        string `json:"model"`
		SerialNumber string `json:"serial_number"`
		KEKVersion   int    `json:"kek_version"`
		Capabilities struct {
			Mechanisms []string `json:"mechanisms"`
			OAEPHashes []string `json:"oaep_hashes"`
		} `json:"capabilities"`
	} `json:"hsm"`
}

func getHealth(t *testing.T, addr string) health {
	t.Helper()
	resp, err := http.Get(addr + "/v1/sys/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health status %d", resp.StatusCode)
	}
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDevServerHealthAndRestart(t *testing.T) {
	dir := t.TempDir()
	addr, root1, stop := startDev(t, dir, "")
	h1 := getHealth(t, addr)
	if !h1.Initialized || h1.Sealed || h1.Version != "test" || h1.HSM.TokenLabel != DevTokenLabel ||
		h1.HSM.Model != "SoftHSM v2" || h1.HSM.KEKVersion != 1 ||
		!slices.Contains(h1.HSM.Capabilities.Mechanisms, "CKM_AES_GCM") || !slices.Contains(h1.HSM.Capabilities.OAEPHashes, "SHA-1") {
		t.Fatalf("health = %+v", h1)
	}
	stop()
	if _, err := http.Get(addr + "/v1/sys/health"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
	// A restart on the same folder reopens the same token (same serial, same
	// KEK) and keeps the root token.
	addr, root2, stop := startDev(t, dir, "")
	defer stop()
	h2 := getHealth(t, addr)
	if h2.HSM.SerialNumber != h1.HSM.SerialNumber || h2.HSM.KEKVersion != 1 {
		t.Fatalf("restart changed the token: %+v vs %+v", h2.HSM, h1.HSM)
	}
	if root1 != root2 || root1 == "" {
		t.Fatalf("restart changed the root token")
	}
	if st, err := os.Stat(filepath.Join(dir, "hsm", "pin")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("pin file: %v %v", st, err)
	}
}

func TestDevFixedRootToken(t *testing.T) {
	_, root, err := DevSetup(DevOptions{Dir: t.TempDir(), RootTokenID: "fixed-root"})
	if err != nil || root != "fixed-root" {
		t.Fatalf("%q %v", root, err)
	}
}

// The store must never hold plaintext key material: generate exportable keys,
// store their blobs, read the material out through the HSM, and look for it
// (raw, hex, base64) in every file of the store folder.
func TestStoreHoldsNoPlaintextKeyMaterial(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg, _, err := DevSetup(DevOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", cfg.HSM.SoftHSMConf)
	pin, _ := cfg.HSM.PIN()
	h, err := hsm.Open(ctx, hsm.Config{Module: cfg.HSM.Module, TokenLabel: cfg.HSM.TokenLabel, PIN: pin})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	st, err := sqlite.Open(cfg.Storage.Path)
	if err != nil {
		t.Fatal(err)
	}
	var secrets [][]byte
	for i, typ := range []hsm.KeyType{hsm.AES256, hsm.HMACSHA256, hsm.RSA2048, hsm.ECP256} {
		id := "leak-test-" + string(typ)
		blob, err := h.Generate(ctx, hsm.GenerateRequest{ID: id, Type: typ, Exportable: true})
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := h.PublicKey(ctx, hsm.Key{ID: id, Blob: blob})
		err = st.Update(ctx, func(tx store.Tx) error {
			now := time.Now()
			if err := tx.CreateKey(ctx, &store.Key{Mount: "m", Name: string(typ), ID: id, Type: string(typ), LatestVersion: 1, CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
			return tx.AddKeyVersion(ctx, &store.KeyVersion{KeyID: id, Version: 1, Blob: blob, PublicKey: pub, CreatedAt: now})
		})
		if err != nil {
			t.Fatal(i, err)
		}
		mat, err := h.Export(ctx, hsm.Key{ID: id, Blob: blob})
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secretPart(t, typ, mat))
	}
	// Read the blobs back, so the file is known to hold them.
	var n int
	st.View(ctx, func(tx store.Tx) error {
		for _, typ := range []string{"aes-256", "hmac-sha256", "rsa-2048", "ec-p256"} {
			if vs, _ := tx.KeyVersions(ctx, "leak-test-"+typ); len(vs) == 1 && len(vs[0].Blob) > 0 {
				n++
			}
		}
		return nil
	})
	if n != 4 {
		t.Fatalf("store holds %d of 4 blobs", n)
	}
	st.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "keyhold.db*"))
	if len(files) == 0 {
		t.Fatal("no store files")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, needle := range secrets {
			for _, form := range [][]byte{needle, []byte(hex.EncodeToString(needle)), []byte(base64.StdEncoding.EncodeToString(needle))} {
				if bytes.Contains(data, form) {
					t.Fatalf("%s holds plaintext key material", filepath.Base(f))
				}
			}
		}
	}
}

// secretPart returns the bytes that must never be stored: the whole key for
// secret keys, the private exponent or scalar for key pairs.
func secretPart(t *testing.T, typ hsm.KeyType, mat []byte) []byte {
	t.Helper()
	if typ.Symmetric() {
		return mat
	}
	k, err := x509.ParsePKCS8PrivateKey(mat)
	if err != nil {
		t.Fatal(err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k.D.Bytes()
	case *ecdsa.PrivateKey:
		b, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatalf("unexpected key %T", k)
	return nil
}

// A listener without TLS on an address other hosts can reach is warned
// about at start; on loopback it is not.
func TestPlainListenerWarning(t *testing.T) {
	for _, tc := range []struct {
		listen string
		warn   bool
	}{
		{"127.0.0.1:0", false},
		{"0.0.0.0:0", true},
	} {
		dir := t.TempDir()
		cfg, root, err := DevSetup(DevOptions{Dir: dir, ListenAddress: tc.listen})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("SOFTHSM2_CONF", cfg.HSM.SoftHSMConf)
		var logs logbuf.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan string, 1)
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, cfg, Options{Version: "test", RootToken: root, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
				Ready: func(a string) { ready <- a }})
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("server did not start: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("server did not start in 30 s")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(logs.String(), "TLS is disabled on an address other hosts can reach"); got != tc.warn {
			t.Fatalf("listening on %s: warning logged %v, want %v\n%s", tc.listen, got, tc.warn, logs.String())
		}
	}
}
