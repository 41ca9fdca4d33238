package azurekv

import (
	"context"
	"strings"
	"testing"

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
