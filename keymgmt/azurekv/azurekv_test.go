package azurekv

import (
	"context"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/keymgmt/provider"
)

func TestNewRefusesBadConfig(t *testing.T) {
	ok := map[string]string{"tenant_id": "t", "client_id": "c", "client_secret": "s"}
	for _, c := range []struct {
		name, vault string
		creds       map[string]string
		msg         string
	}{
		{"fail vault name", "no_underscores", ok, "Azure Key Vault name"},
		{"fail no secret", "vault1", map[string]string{"tenant_id": "t", "client_id": "c"}, "client_secret"},
		{"fail environment", "vault1", map[string]string{"tenant_id": "t", "client_id": "c", "client_secret": "s", "environment": "Moon"}, `unknown Azure environment "Moon"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := New(context.Background(), provider.Config{KeyCollection: c.vault, Credentials: c.creds}); err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v", err)
			}
		})
	}
	if _, err := New(context.Background(), provider.Config{KeyCollection: "vault1", Credentials: ok}); err != nil {
		t.Fatal(err)
	}
}

// An aes256-gcm96 key (oct-HSM) is refused before anything is created
// unless the target may be a Managed HSM: a Key Vault has no such keys, and
// Azure would refuse the import only after the key-exchange key was made.
func TestOctKeysOnlyOutsideKeyVaults(t *testing.T) {
	aes := provider.Key{Name: "k", Type: "aes256-gcm96", Purposes: []string{"encrypt", "decrypt"}, Protection: provider.ProtectionHSM}
	for _, c := range []struct {
		endpoint string
		ok       bool
	}{
		{"", false}, // https://vault1.vault.azure.net/
		{"https://vault1.vault.azure.net/", false},
		{"https://VAULT1.Vault.Azure.CN", false},
		{"https://vault1.vault.usgovcloudapi.net:443/", false},
		{"https://hsm1.managedhsm.azure.net/", true},
		{"https://keys.internal.example/", true},
		{"http://127.0.0.1:8443/", true},
	} {
		p := NewWithClient(provider.Config{KeyCollection: "vault1", Endpoint: c.endpoint}, nil)
		err := p.Check(aes)
		if (err == nil) != c.ok {
			t.Errorf("endpoint %q: %v, want ok=%v", c.endpoint, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "Managed HSM") {
			t.Errorf("endpoint %q: the refusal does not say where such keys go: %v", c.endpoint, err)
		}
		rsa := provider.Key{Name: "r", Type: "rsa-2048", Purposes: []string{"sign"}, Protection: provider.ProtectionHSM}
		if err := p.Check(rsa); err != nil {
			t.Errorf("endpoint %q: an RSA key: %v", c.endpoint, err)
		}
	}
}

// A vault's answer keeps its kind: 404 not found, 409 a conflict (a name a
// key still being deleted holds), 429 and 5xx unavailable, others bad input.
func TestFailKinds(t *testing.T) {
	p := NewWithClient(provider.Config{Name: "az", KeyCollection: "vault1"}, nil)
	for status, want := range map[int]fault.Kind{404: fault.NotFound, 409: fault.Conflict, 429: fault.Unavailable, 503: fault.Unavailable, 400: fault.BadInput, 403: fault.BadInput} {
		err := p.fail("GetKey", &azcore.ResponseError{StatusCode: status, ErrorCode: "Code"})
		if got := fault.KindOf(err); got != want {
			t.Errorf("%d: kind %s, want %s", status, got, want)
		}
	}
}
