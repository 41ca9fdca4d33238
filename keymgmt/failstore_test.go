package keymgmt

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keyhold/keyhold/store"
)

// failingStore fails the reads of the paths fail picks while it is armed,
// as a disk or database error would.
type failingStore struct {
	store.Store
	armed atomic.Bool
	fail  func(path string) bool
}

var errInjected = errors.New("disk I/O error (injected by the test)")

func (s *failingStore) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.View(ctx, func(tx store.Tx) error { return fn(failingTx{tx, s}) })
}

func (s *failingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(failingTx{tx, s}) })
}

type failingTx struct {
	store.Tx
	s *failingStore
}

func (t failingTx) Get(ctx context.Context, path string) ([]byte, error) {
	if t.s.armed.Load() && t.s.fail(path) {
		return nil, errInjected
	}
	return t.Tx.Get(ctx, path)
}

// New credentials for a kms with keys distributed are stored only once they
// are known to reach those keys: a distribution record that cannot be read
// fails the change (closed), where passing over it could store credentials
// of another account.
func TestAWSCredentialsCheckFailsClosedOnStoreError(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	fs := &failingStore{Store: e.st, fail: func(path string) bool { return strings.HasPrefix(path, distPrefix(mount)+"aws/") }}
	e.m = NewWithOptions(e.h, fs, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "aws", nil)
	distributeAES(t, e, "aws", "k")
	other := map[string]string{"access_key": "AKIAOTHERACCOUNT0001", "secret_key": "secret-of-another-account"}
	c.awsFake.SetForeign(other["access_key"])

	fs.armed.Store(true)
	_, err := e.m.WriteKMS(ctx, mount, "aws", KMSUpdate{Credentials: other})
	fs.armed.Store(false)
	if err == nil {
		t.Fatal("credentials stored although the keys they must reach could not be read")
	}
	if !errors.Is(err, errInjected) || strings.Contains(err.Error(), other["secret_key"]) {
		t.Fatalf("got %v, want the store's error (and no secret)", err)
	}
	// The old credentials stay: the key still rotates into the first account.
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	if n := c.created("k"); n != 2 {
		t.Fatalf("%d AWS keys for k after the rotation, want 2", n)
	}
}
