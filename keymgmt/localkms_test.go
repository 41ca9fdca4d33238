package keymgmt

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/store"
)

// The third-party AWS KMS emulator github.com/nsmithuk/local-kms (imports
// SYMMETRIC_DEFAULT keys wrapped with RSAES_OAEP_SHA_1 or _SHA_256 under
// RSA_2048). It is built from the module proxy into the user's cache, outside
// this repository, unless KEYHOLD_LOCAL_KMS or PATH names a binary.
const localKMSModule = "github.com/nsmithuk/local-kms@v0.0.0-20260228092603-2a5e92d09ab6"

func localKMSBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KEYHOLD_LOCAL_KMS"); p != "" {
		return p
	}
	if p, err := exec.LookPath("local-kms"); err == nil {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "keyhold-test", "local-kms-2a5e92d09ab6")
	bin := filepath.Join(dir, "local-kms")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", localKMSModule)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("local-kms cannot be built here (go install %s): %v\n%s", localKMSModule, err, out)
	}
	return bin
}

func startLocalKMS(t *testing.T) string {
	t.Helper()
	bin := localKMSBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+itoa(port), "KMS_REGION=us-east-1", "KMS_ACCOUNT_ID=111122223333", "KMS_DATA_PATH="+t.TempDir())
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := "127.0.0.1:" + itoa(port)
	for deadline := time.Now().Add(20 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("local-kms did not start:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr
}

// TestLocalKMS distributes an AES key to local-kms with RSAES_OAEP_SHA_1
// (wrapped in the token), rotates it and moves min_enabled_version, and
// proves through local-kms's own Encrypt that it holds the HSM's key: its
// ciphertext (ident length, ident, backing key version u32le, 12-byte
// nonce, AES-256-GCM ciphertext and tag, no AAD without an encryption
// context) is opened by the HSM.
func TestLocalKMS(t *testing.T) {
	ctx := context.Background()
	endpoint := startLocalKMS(t)
	e := newEnv(t, Options{})
	creds := map[string]string{"access_key": "AKIALOCALKMS", "secret_key": "local-kms-secret"}
	if _, err := e.m.WriteKMS(ctx, mount, "local", KMSUpdate{Provider: strp("awskms"), KeyCollection: strp("us-east-1"),
		Endpoint: &endpoint, Credentials: creds, OAEPHash: strp("sha1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Create(ctx, mount, "lk", "aes256-gcm96"); err != nil {
		t.Fatal(err)
	}
	d, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "local", Key: "lk", Purposes: []string{"encrypt", "decrypt"}})
	if err != nil {
		t.Fatal(err)
	}
	if v := d.Versions[0]; v.Scheme != "RSAES_OAEP_SHA_1" || v.Path != string(hsm.PathTokenOAEP) {
		t.Fatalf("scheme %s path %s", v.Scheme, v.Path)
	}
	c := kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: creds["access_key"], SecretAccessKey: creds["secret_key"]}, nil
		})})
	// openedByHSM encrypts under the alias in local-kms and decrypts with the
	// HSM's version v.
	openedByHSM := func(v int) bool {
		t.Helper()
		pt := []byte("keyhold local-kms check " + itoa(v))
		out, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/lk"), Plaintext: pt})
		if err != nil {
			t.Fatal(err)
		}
		b := out.CiphertextBlob
		n := int(b[0])
		if len(b) < 1+n+4+12+16 || binary.LittleEndian.Uint32(b[1+n:]) != 0 {
			t.Fatalf("unexpected local-kms ciphertext layout (%d bytes)", len(b))
		}
		body := b[1+n+4:]
		var sk *store.Key
		var kv *store.KeyVersion
		e.st.View(ctx, func(tx store.Tx) error {
			sk, _ = tx.GetKey(ctx, mount, "lk")
			kv, err = tx.GetKeyVersion(ctx, sk.ID, v)
			return err
		})
		got, err := e.h.Decrypt(ctx, hsm.Key{ID: bindID(sk.ID, v, sk.Type), Blob: kv.Blob}, hsm.DecryptRequest{
			Algorithm: hsm.AESGCM, IV: body[:12], Ciphertext: body[12 : len(body)-16], Tag: body[len(body)-16:]})
		return err == nil && bytes.Equal(got, pt)
	}
	if !openedByHSM(1) {
		t.Fatal("local-kms does not hold the HSM's version 1")
	}
	if _, err := e.m.Rotate(ctx, mount, "lk"); err != nil {
		t.Fatal(err)
	}
	if !openedByHSM(2) || openedByHSM(1) {
		t.Fatal("after the rotation local-kms's alias does not use the HSM's version 2 (alone)")
	}
	state := func(v int) string {
		d, err := e.m.ReadDistribution(ctx, mount, "local", "lk")
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(d.Versions[v-1].ProviderID)})
		if err != nil {
			t.Fatal(err)
		}
		return string(out.KeyMetadata.KeyState)
	}
	if _, err := e.m.UpdateKey(ctx, mount, "lk", Update{MinEnabledVersion: intp(2)}); err != nil {
		t.Fatal(err)
	}
	if state(1) != "Disabled" || state(2) != "Enabled" {
		t.Fatalf("min_enabled_version=2: %s %s", state(1), state(2))
	}
	if _, err := e.m.UpdateKey(ctx, mount, "lk", Update{MinEnabledVersion: intp(0)}); err != nil {
		t.Fatal(err)
	}
	if state(1) != "Enabled" {
		t.Fatalf("min_enabled_version=0: version 1 is %s", state(1))
	}
	d, _ = e.m.ReadDistribution(ctx, mount, "local", "lk")
	if err := e.m.RemoveDistribution(ctx, mount, "local", "lk"); err != nil {
		t.Fatal(err)
	}
	for _, v := range d.Versions {
		out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(v.ProviderID)})
		if err != nil || out.KeyMetadata.KeyState != "PendingDeletion" {
			t.Fatalf("version %d after remove: %v %v", v.Version, out, err)
		}
	}

	// SHA-256: the token cannot do RSAES_OAEP_SHA_256, the hybrid scheme it
	// can do is one local-kms lacks; local-kms's own refusal reaches the caller.
	if !e.h.Capabilities().OAEP(sha256Hash) {
		if _, err := e.m.WriteKMS(ctx, mount, "local", KMSUpdate{OAEPHash: strp("sha256")}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.Create(ctx, mount, "lk2", "aes256-gcm96"); err != nil {
			t.Fatal(err)
		}
		_, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "local", Key: "lk2", Purposes: []string{"encrypt"}})
		if err == nil || !strings.Contains(err.Error(), "GetParametersForImport") || !strings.Contains(err.Error(), "wrappingAlgorithm") {
			t.Fatalf("got %v", err)
		}
	}
}
