package xks

import (
	"context"
	"testing"
)

// A key that names its key stores (prefixes) is not found through the
// others, whatever request metadata their credentials send; a key that
// names none serves every key store of the mount.
func TestKeyStoresOfAKey(t *testing.T) {
	e := newTestEnv(t, ConfigInput{Prefixes: &[]string{testPrefix, "tenant-b"}})
	ctx := context.Background()
	b, err := e.m.GenerateCredential(ctx, e.mount, "tenant-b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.CreateKeyFor(ctx, e.mount, "a-only", []string{UsageEncrypt, UsageDecrypt}, true, []string{"/" + testPrefix + "/"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.CreateKeyFor(ctx, e.mount, "bad", nil, true, []string{"a b"}); err == nil {
		t.Fatal("a key with an invalid prefix was made")
	}
	encrypt := func(prefix, key, akid, secret string) (int, []byte) {
		return e.post(t, prefix, "keys/"+key+"/encrypt", encBody(tcPlain, "", false), akid, secret)
	}
	var out EncryptResponse
	st, body := encrypt(testPrefix, "a-only", e.akid, e.secret)
	wantOK(t, st, body, &out)
	st, body = encrypt("tenant-b", "a-only", b.AccessKeyID, b.SecretAccessKey)
	wantError(t, st, body, KeyNotFoundException)
	st, body = e.post(t, "tenant-b", "keys/a-only/decrypt", decBody(&out, ""), b.AccessKeyID, b.SecretAccessKey)
	wantError(t, st, body, KeyNotFoundException)
	st, body = e.post(t, "tenant-b", "keys/a-only/metadata", map[string]any{"requestMetadata": meta("DescribeKey")}, b.AccessKeyID, b.SecretAccessKey)
	wantError(t, st, body, KeyNotFoundException)
	// foo names no key store: both may use it.
	st, body = encrypt("tenant-b", "foo", b.AccessKeyID, b.SecretAccessKey)
	wantOK(t, st, body, &out)
	// Opened to tenant-b, then closed to all but it.
	both := []string{testPrefix, "tenant-b"}
	if _, err := e.m.UpdateKey(ctx, e.mount, "a-only", KeyUpdate{Prefixes: &both}); err != nil {
		t.Fatal(err)
	}
	st, body = encrypt("tenant-b", "a-only", b.AccessKeyID, b.SecretAccessKey)
	wantOK(t, st, body, &out)
	onlyB := []string{"tenant-b"}
	if _, err := e.m.UpdateKey(ctx, e.mount, "a-only", KeyUpdate{Prefixes: &onlyB}); err != nil {
		t.Fatal(err)
	}
	st, body = encrypt(testPrefix, "a-only", e.akid, e.secret)
	wantError(t, st, body, KeyNotFoundException)
}

// Removing a key store (prefix) revokes its credentials: adding the prefix
// again does not bring them back.
func TestRemovedKeyStoreTakesItsCredentials(t *testing.T) {
	e := newTestEnv(t, ConfigInput{Prefixes: &[]string{testPrefix, "other"}})
	ctx := context.Background()
	b, err := e.m.GenerateCredential(ctx, e.mount, "other")
	if err != nil {
		t.Fatal(err)
	}
	encrypt := func() (int, []byte) {
		return e.post(t, "other", "keys/foo/encrypt", encBody(tcPlain, "", false), b.AccessKeyID, b.SecretAccessKey)
	}
	var out EncryptResponse
	st, body := encrypt()
	wantOK(t, st, body, &out)
	for _, ps := range [][]string{{testPrefix}, {testPrefix, "other"}} {
		if _, err := e.m.SetConfig(ctx, e.mount, ConfigInput{Prefixes: &ps}); err != nil {
			t.Fatal(err)
		}
	}
	st, body = encrypt()
	wantError(t, st, body, AuthenticationFailedException)
	// The first key store's credential is untouched.
	st, body = e.post(t, testPrefix, "keys/foo/encrypt", encBody(tcPlain, "", false), e.akid, e.secret)
	wantOK(t, st, body, &out)
}
