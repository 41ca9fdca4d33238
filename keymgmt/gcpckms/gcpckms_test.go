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

// An appliance key's id is a label value as it is; anything that could not
// be one is replaced by a digest that can.
func TestIDLabel(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	if got := idLabel(id); got != id {
		t.Fatalf("idLabel(%q) = %q", id, got)
	}
	a, b := idLabel("Key/With.Odd-Chars"), idLabel(strings.Repeat("a", 64))
	for _, l := range []string{a, b} {
		if !labelValueRe.MatchString(l) || !strings.HasPrefix(l, "sha256-") {
			t.Fatalf("%q is not a label value", l)
		}
	}
	if a == b || a != idLabel("Key/With.Odd-Chars") {
		t.Fatalf("digests %q and %q", a, b)
	}
}
