package xks

import (
	"context"
	"encoding/json"
	"maps"
	"testing"

	"github.com/keyhold/keyhold/fault"
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

// A key store with a region refuses a request signed for another region,
// or for a service other than kms-xks-proxy, with the spec's answer to a
// bad signature (AuthenticationFailedException, 401), whichever signer
// signed it (curl --aws-sigv4, the AWS SDK); a key store without a region
// takes any, as every key store did before the setting existed. A change
// of regions takes effect without a restart.
func TestKeyStoreRegion(t *testing.T) {
	regions := map[string]string{testPrefix: "eu-west-1"}
	e := newTestEnv(t, ConfigInput{Prefixes: &[]string{testPrefix, "anywhere"}, Regions: &regions})
	ctx := context.Background()
	other, err := e.m.GenerateCredential(ctx, e.mount, "anywhere")
	if err != nil {
		t.Fatal(err)
	}
	health := must(json.Marshal(healthBody()))
	for _, c := range []struct {
		region, service string
		prefix          string
		ok              bool
	}{
		{"eu-west-1", "", testPrefix, true},
		{"us-east-1", "", testPrefix, false},
		{"eu-west-2", "", testPrefix, false},
		{"eu-west-1", "kms", testPrefix, false},
		{"us-east-1", "", "anywhere", true},
		{"ap-southeast-2", "", "anywhere", true},
		{"us-east-1", "kms", "anywhere", false},
	} {
		for _, s := range []signer{curlSigner{c.region, c.service}, sdkSigner{c.region, c.service}} {
			akid, secret := e.akid, e.secret
			if c.prefix == "anywhere" {
				akid, secret = other.AccessKeyID, other.SecretAccessKey
			}
			st, b := s.post(t, e, e.xksURL(c.prefix, "health"), health, akid, secret)
			if c.ok {
				wantOK(t, st, b, &HealthResponse{})
			} else {
				wantError(t, st, b, AuthenticationFailedException)
			}
		}
	}
	// Without its region, the key store takes any again.
	none := map[string]string{}
	v, err := e.m.SetConfig(ctx, e.mount, ConfigInput{Regions: &none})
	if err != nil {
		t.Fatal(err)
	}
	if v.Regions != nil {
		t.Fatalf("regions %v after they were cleared", v.Regions)
	}
	for _, s := range signers {
		st, b := s.post(t, e, e.xksURL(testPrefix, "health"), health, e.akid, e.secret)
		wantOK(t, st, b, &HealthResponse{})
	}
}

// The regions a configuration write gives are checked: region names, and
// prefixes that are configured key stores; a key store removed takes its
// region with it.
func TestKeyStoreRegionsChecked(t *testing.T) {
	stored := func() *Config {
		return &Config{ListenAddrs: []string{"127.0.0.1:0"}, Prefixes: []string{"", "a/b"}, TLSCertPEM: "cert", TLSKeyBlob: []byte{1},
			MaxPlaintext: DefaultPlaintext, MaxAAD: DefaultAAD}
	}
	for name, rs := range map[string]map[string]string{
		"fail not a prefix":       {"c": "us-east-1"},
		"fail bad prefix":         {"a b": "us-east-1"},
		"fail empty region":       {"a/b": ""},
		"fail upper-case region":  {"a/b": "US-EAST-1"},
		"fail not a region":       {"a/b": "us_east_1"},
		"fail no number":          {"a/b": "us-east"},
		"fail empty prefix twice": {"": "us-east-1", "/": "us-east-1"},
	} {
		c := stored()
		if _, err := c.apply(ConfigInput{Regions: &rs}); fault.KindOf(err) != fault.BadInput {
			t.Errorf("%s: %v, want bad input", name, err)
		}
	}
	c := stored()
	rs := map[string]string{"/": "us-gov-west-1", "/a/b/": " eu-west-1 "}
	if _, err := c.apply(ConfigInput{Regions: &rs}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"": "us-gov-west-1", "a/b": "eu-west-1"}; !maps.Equal(c.Regions, want) {
		t.Fatalf("regions %v, want %v", c.Regions, want)
	}
	// A write that leaves the regions out keeps them.
	rate := 5
	if _, err := c.apply(ConfigInput{RateLimit: &rate}); err != nil || len(c.Regions) != 2 {
		t.Fatalf("regions %v after another write (%v)", c.Regions, err)
	}
	ps := []string{"a/b"}
	if _, err := c.apply(ConfigInput{Prefixes: &ps}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a/b": "eu-west-1"}; !maps.Equal(c.Regions, want) {
		t.Fatalf("regions %v after the empty prefix was removed, want %v", c.Regions, want)
	}
	ps = []string{""}
	if _, err := c.apply(ConfigInput{Prefixes: &ps}); err != nil || c.Regions != nil {
		t.Fatalf("regions %v after their key stores were removed (%v)", c.Regions, err)
	}
}
