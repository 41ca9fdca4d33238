package kmip_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/kmip/kmiptest"
)

// python is Debian's interpreter, which has python3-pykmip (make deps).
const python = "/usr/bin/python3"

// pykmip runs testdata/pykmip_client.py and decodes its JSON answer.
func pykmip(t *testing.T, e *kmiptest.Env, cert, key, ca, version, mode string, args ...string) map[string]any {
	t.Helper()
	host, port, _ := net.SplitHostPort(e.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	script, _ := filepath.Abs(filepath.Join("testdata", "pykmip_client.py"))
	cmd := exec.CommandContext(ctx, python, append([]string{script, host, port, cert, key, ca, version, mode}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("pykmip %s: %v\n%s\n%s", mode, err, out, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("pykmip %s answered %q: %v", mode, out, err)
	}
	return res
}

func ok(t *testing.T, res map[string]any) any {
	t.Helper()
	if e, failed := res["error"]; failed {
		t.Fatalf("pykmip failed: %v", e)
	}
	return res["ok"]
}

func reason(t *testing.T, res map[string]any) string {
	t.Helper()
	e, failed := res["error"].(map[string]any)
	if !failed {
		t.Fatalf("pykmip succeeded where it should fail: %v", res["ok"])
	}
	if r, ok := e["reason"].(string); ok {
		return r
	}
	return "exception: " + e["exception"].(string)
}

func TestPyKMIP(t *testing.T) {
	if err := exec.Command(python, "-c", "import kmip").Run(); err != nil {
		t.Fatalf("PyKMIP is not installed for %s (make deps installs python3-pykmip): %v", python, err)
	}
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "py", "all", "all")
	e.Role(t, "py", "reader", "get", "get_attributes", "locate")
	e.Role(t, "other", "all", "all")
	cert, key, ca, _ := e.WriteCredential(t, "py", "all")

	for _, version := range []string{"1.2", "1.4"} {
		t.Run("ok lifecycle KMIP "+version, func(t *testing.T) {
			r := ok(t, pykmip(t, e, cert, key, ca, version, "lifecycle")).(map[string]any)
			kid, rid := r["created"].(string), r["registered"].(string)
			checks := []struct {
				name string
				ok   bool
			}{
				{"created key is 32 bytes of AES", r["created_len"] == 32.0 && r["created_alg"] == "AES"},
				{"registered key comes back", r["registered_value"] == hex.EncodeToString([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})},
				{"secret data comes back", r["secret_value_matches"] == true},
				{"opaque object comes back", r["opaque_value_matches"] == true},
				{"locate by name finds the registered key only", slices.Equal(anyStrings(r["located_by_name"]), []string{rid})},
				{"locate by algorithm finds both keys, newest first", slices.Equal(anyStrings(r["located_aes"])[:2], []string{rid, kid})},
				{"maximum items", slices.Equal(anyStrings(r["located_first"]), []string{rid})},
				{"get_attributes names the key", r["get_attributes_uid"] == kid},
				{"modified name is found", slices.Equal(anyStrings(r["located_renamed"]), []string{rid})},
				{"deleted name is gone", r["names_after_delete"] == 0.0},
				{"a name another object has is refused at register (KMIP 1.4 §11.4)", r["register_taken_name"] == "INVALID_FIELD"},
				{"a name another object has is refused at modify_attribute (KMIP 1.4 §11.16)", r["rename_to_taken_name"] == "ILLEGAL_OPERATION"},
				{"activate", r["state_after_activate"] == "ACTIVE"},
				{"an active key cannot be destroyed", r["destroy_active"] == "PERMISSION_DENIED"},
				{"revoke deactivates", r["state_after_revoke"] == "DEACTIVATED"},
				{"destroy", r["state_after_destroy"] == "DESTROYED" && r["has_destroy_date"] == true},
			}
			for _, c := range checks {
				if !c.ok {
					t.Errorf("%s: %v", c.name, r)
				}
			}
			attrs := r["attributes"].(map[string]any)
			if s := anyStrings(attrs["State"]); !slices.Equal(s, []string{"PRE_ACTIVE"}) {
				t.Errorf("state: %v", attrs)
			}
			if n := anyStrings(attrs["Name"]); !slices.Equal(n, []string{"pyk-created-" + version}) {
				t.Errorf("name: %v", attrs)
			}
			list := anyStrings(r["attribute_list"])
			for _, want := range []string{"Cryptographic Algorithm", "Digest", "Initial Date", "State", "Unique Identifier"} {
				if !slices.Contains(list, want) {
					t.Errorf("attribute list %v lacks %q", list, want)
				}
			}
			// Only the version's attributes: KMIP 1.2 has no Sensitive (1.4)
			// nor Random Number Generator (1.3).
			has14 := slices.Contains(list, "Sensitive")
			if (version == "1.2") == has14 || (version == "1.2") == slices.Contains(list, "Random Number Generator") {
				t.Errorf("KMIP %s attribute list: %v", version, list)
			}
		})
	}

	// A key of scope py, for the refusals below.
	kid := ok(t, pykmip(t, e, cert, key, ca, "1.2", "create")).(string)

	t.Run("fail another scope's role does not see the key", func(t *testing.T) {
		oc, ok2, oca, _ := e.WriteCredential(t, "other", "all")
		if r := reason(t, pykmip(t, e, oc, ok2, oca, "1.2", "get", kid)); r != "ITEM_NOT_FOUND" {
			t.Fatalf("got %s", r)
		}
	})
	t.Run("fail a role without the operation", func(t *testing.T) {
		rc, rk, rca, _ := e.WriteCredential(t, "py", "reader")
		if r := reason(t, pykmip(t, e, rc, rk, rca, "1.4", "create")); r != "PERMISSION_DENIED" {
			t.Fatalf("got %s", r)
		}
		if got := ok(t, pykmip(t, e, rc, rk, rca, "1.4", "get", kid)); got != 16.0 {
			t.Fatalf("get answered %v", got)
		}
	})
	t.Run("fail a revoked certificate", func(t *testing.T) {
		vc, vk, vca, serial := e.WriteCredential(t, "py", "all")
		ok(t, pykmip(t, e, vc, vk, vca, "1.2", "get", kid))
		if err := e.Manager.RevokeCredential(context.Background(), e.Mount, "py", "all", serial, ""); err != nil {
			t.Fatal(err)
		}
		r := reason(t, pykmip(t, e, vc, vk, vca, "1.2", "get", kid))
		if !strings.HasPrefix(r, "exception:") {
			t.Fatalf("a revoked certificate got a KMIP answer: %s", r)
		}
	})
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// pykmipDecodes checks that PyKMIP's own decoder reads a response message,
// as a PyKMIP client would have to.
func pykmipDecodes(t *testing.T, raw []byte) {
	t.Helper()
	const script = `import sys
from kmip.core import utils
from kmip.core.messages import messages
m = messages.ResponseMessage()
m.read(utils.BytearrayStream(bytes.fromhex(sys.stdin.read().strip())))
print(len(m.batch_items))`
	cmd := exec.Command(python, "-c", script)
	cmd.Stdin = strings.NewReader(hex.EncodeToString(raw))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("PyKMIP cannot decode the response: %v\n%s", err, out)
	}
}
