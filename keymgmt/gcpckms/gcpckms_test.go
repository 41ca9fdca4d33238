package gcpckms

import (
	"context"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/keymgmt/provider"
)

func TestNewRefusesBadConfig(t *testing.T) {
	ring := "projects/p/locations/global/keyRings/r"
	for _, c := range []struct {
		name, ring string
		creds      map[string]string
		msg        string
	}{
		{"fail ring", "r", map[string]string{"service_account_file": "{}"}, "key ring resource name"},
		{"fail no service account", ring, map[string]string{}, "service_account_file"},
		{"fail not a service account", ring, map[string]string{"service_account_file": `{"type":"authorized_user"}`}, "service_account_file"},
		{"fail unknown credential", ring, map[string]string{"service_account_file": "{}", "token": "x"}, `unknown gcpckms credential "token"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := New(context.Background(), provider.Config{KeyCollection: c.ring, Credentials: c.creds}); err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v", err)
			}
		})
	}
}
