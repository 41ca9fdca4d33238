package awskms

import (
	"context"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/keymgmt/provider"
)

func TestNewRefusesBadConfig(t *testing.T) {
	ok := map[string]string{"access_key": "AKIA", "secret_key": "s"}
	for _, c := range []struct {
		name, region string
		creds        map[string]string
		msg          string
	}{
		{"fail region", "mars-1", ok, "AWS region"},
		{"fail no secret", "us-east-1", map[string]string{"access_key": "AKIA"}, "secret_key"},
		{"fail unknown credential", "us-east-1", map[string]string{"access_key": "a", "secret_key": "b", "password": "c"}, `unknown awskms credential "password"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := New(context.Background(), provider.Config{KeyCollection: c.region, Credentials: c.creds}); err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v", err)
			}
		})
	}
	if _, err := New(context.Background(), provider.Config{KeyCollection: "eu-central-1", Credentials: ok}); err != nil {
		t.Fatal(err)
	}
}

func TestSchemeChoice(t *testing.T) {
	for _, c := range []struct {
		typ, hash string
		token256  bool
		want      string
	}{
		{"aes256-gcm96", "sha1", false, "RSAES_OAEP_SHA_1"},
		{"aes256-gcm96", "sha256", true, "RSAES_OAEP_SHA_256"},
		{"aes256-gcm96", "sha256", false, "RSA_AES_KEY_WRAP_SHA_256"},
		{"rsa-2048", "sha1", false, "RSA_AES_KEY_WRAP_SHA_1"},
		{"ecdsa-p256", "sha256", true, "RSA_AES_KEY_WRAP_SHA_256"},
	} {
		p := NewWithClient(provider.Config{OAEPHash: c.hash, TokenOAEPSHA256: c.token256}, nil)
		if s, _ := p.scheme(provider.Key{Type: c.typ}); string(s) != c.want {
			t.Fatalf("%s %s token256=%v: %s, want %s", c.typ, c.hash, c.token256, s, c.want)
		}
	}
}
