// Package storetest is the conformance suite that every store.Store
// implementation must pass, so that SQLite and PostgreSQL behave alike: call
// Run from the implementation's tests.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/keyhold/keyhold/store"
)

// Opener opens the store kept at one location (a file, a database schema).
// Each call opens the same location again, so the data a closed store held
// must be there after the next call.
type Opener func() (store.Store, error)

// Run runs the conformance suite. newLocation is called once per test and
// returns the Opener of a fresh, empty location that no other test uses; it
// should register any cleanup of that location with t.Cleanup.
func Run(t *testing.T, newLocation func(t *testing.T) Opener) {
	s := suite{newLocation: newLocation}
	t.Run("kv", s.kv)
	t.Run("list", s.list)
	t.Run("keys", s.keys)
	t.Run("versions", s.versions)
	t.Run("tx", s.tx)
	t.Run("lifecycle", s.lifecycle)
	t.Run("concurrency", s.concurrency)
	t.Run("kmip", s.kmip)
}

type suite struct {
	newLocation func(t *testing.T) Opener
}

// open returns a new store at a fresh location; it is closed at the end of t.
func (s suite) open(t *testing.T) store.Store {
	t.Helper()
	return mustOpen(t, s.newLocation(t))
}

// mustOpen opens the store of o and closes it at the end of t, accepting that
// the test may have closed it already.
func mustOpen(t *testing.T, o Opener) store.Store {
	t.Helper()
	st, err := o()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return st
}

// update runs fn in an Update and fails t if it returns an error.
func update(t *testing.T, st store.Store, fn func(ctx context.Context, tx store.Tx) error) {
	t.Helper()
	ctx := t.Context()
	if err := st.Update(ctx, func(tx store.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("update: %v", err)
	}
}

// view runs fn in a View and fails t if it returns an error.
func view(t *testing.T, st store.Store, fn func(ctx context.Context, tx store.Tx) error) {
	t.Helper()
	ctx := t.Context()
	if err := st.View(ctx, func(tx store.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("view: %v", err)
	}
}

// checkErr fails t unless err matches want (nil meaning success).
func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: unexpected error %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// base is a time with a non-UTC zone and nanoseconds, so that the suite sees
// whether a store converts to UTC and keeps at least milliseconds.
func base() time.Time {
	return time.Date(2024, 3, 1, 12, 34, 56, 789_123_456, time.FixedZone("UTC+2", 2*3600))
}

// newKey returns a key with every field set to a non-zero value.
func newKey(mount, name, id string) *store.Key {
	return &store.Key{
		Mount:             mount,
		Name:              name,
		ID:                id,
		Type:              "aes256-gcm96",
		LatestVersion:     1,
		MinEnabledVersion: 1,
		DeletionAllowed:   true,
		CreatedAt:         base(),
		UpdatedAt:         base().Add(90*time.Minute + 1_234_567*time.Nanosecond),
	}
}

// newVersion returns a version whose blob and public key depend on the
// arguments, so that mixed-up rows are noticed.
func newVersion(keyID string, version int) *store.KeyVersion {
	return &store.KeyVersion{
		KeyID:     keyID,
		Version:   version,
		Blob:      fmt.Appendf(nil, "blob\x00\xff %s %d", keyID, version),
		PublicKey: fmt.Appendf(nil, "pub\x00\x80 %s %d", keyID, version),
		CreatedAt: base().Add(time.Duration(version) * time.Hour),
	}
}

// sameTime fails t unless got is in UTC and within a millisecond of want.
func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Errorf("%s: location %v, want UTC", what, got.Location())
	}
	if d := got.Sub(want); d <= -time.Millisecond || d >= time.Millisecond {
		t.Errorf("%s: got %v, want %v (within 1ms)", what, got, want.UTC())
	}
}

// sameKey fails t unless got equals want, times compared with sameTime.
func sameKey(t *testing.T, got, want *store.Key) {
	t.Helper()
	if got == nil {
		t.Fatalf("key: got nil, want %s/%s", want.Mount, want.Name)
	}
	g, w := *got, *want
	sameTime(t, "key created at", g.CreatedAt, w.CreatedAt)
	sameTime(t, "key updated at", g.UpdatedAt, w.UpdatedAt)
	g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if g != w {
		t.Errorf("key:\n got %+v\nwant %+v", g, w)
	}
}

// sameVersion fails t unless got equals want, byte for byte.
func sameVersion(t *testing.T, got, want *store.KeyVersion) {
	t.Helper()
	if got == nil {
		t.Fatalf("version: got nil, want %s v%d", want.KeyID, want.Version)
	}
	if got.KeyID != want.KeyID || got.Version != want.Version {
		t.Errorf("version: got %s v%d, want %s v%d", got.KeyID, got.Version, want.KeyID, want.Version)
	}
	if !bytes.Equal(got.Blob, want.Blob) {
		t.Errorf("version %d blob: got %q, want %q", want.Version, got.Blob, want.Blob)
	}
	if !bytes.Equal(got.PublicKey, want.PublicKey) {
		t.Errorf("version %d public key: got %q, want %q", want.Version, got.PublicKey, want.PublicKey)
	}
	sameTime(t, "version created at", got.CreatedAt, want.CreatedAt)
}

// createKeys creates each key in one Update.
func createKeys(t *testing.T, st store.Store, keys ...*store.Key) {
	t.Helper()
	update(t, st, func(ctx context.Context, tx store.Tx) error {
		for _, k := range keys {
			if err := tx.CreateKey(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// addVersions adds each version in one Update.
func addVersions(t *testing.T, st store.Store, vs ...*store.KeyVersion) {
	t.Helper()
	update(t, st, func(ctx context.Context, tx store.Tx) error {
		for _, v := range vs {
			if err := tx.AddKeyVersion(ctx, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// getKey reads a key in a View and returns it with the error of GetKey.
func getKey(t *testing.T, st store.Store, mount, name string) (*store.Key, error) {
	t.Helper()
	var k *store.Key
	var kerr error
	view(t, st, func(ctx context.Context, tx store.Tx) error {
		k, kerr = tx.GetKey(ctx, mount, name)
		return nil
	})
	return k, kerr
}

// getValue reads a path in a View and returns it with the error of Get.
func getValue(t *testing.T, st store.Store, path string) ([]byte, error) {
	t.Helper()
	var v []byte
	var verr error
	view(t, st, func(ctx context.Context, tx store.Tx) error {
		v, verr = tx.Get(ctx, path)
		return nil
	})
	return v, verr
}

// versionsOf reads the versions of a key in a View.
func versionsOf(t *testing.T, st store.Store, keyID string) []store.KeyVersion {
	t.Helper()
	var vs []store.KeyVersion
	view(t, st, func(ctx context.Context, tx store.Tx) (err error) {
		vs, err = tx.KeyVersions(ctx, keyID)
		return err
	})
	return vs
}

// versionNumbers returns the version numbers of vs, in order.
func versionNumbers(vs []store.KeyVersion) []int {
	out := make([]int, len(vs))
	for i, v := range vs {
		out[i] = v.Version
	}
	return out
}
