package api

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"github.com/keyhold/keyhold/audit"
)

// auditLog reads sys/audit-log/file with the query through the Vault client
// and decodes its events.
func auditLog(t *testing.T, c *vault.Client, q map[string][]string) (map[string]any, []audit.Event) {
	t.Helper()
	s, err := c.Logical().ReadWithData("sys/audit-log/file", q)
	if err != nil {
		t.Fatal(err)
	}
	var evs []audit.Event
	raw, _ := json.Marshal(s.Data["events"])
	if err := json.Unmarshal(raw, &evs); err != nil {
		t.Fatal(err)
	}
	return s.Data, evs
}

func TestAuditLogRead(t *testing.T) {
	env := newTestEnv(t)
	root := env.client(t, testRootToken)
	logPath := enableFileAudit(t, root)
	mountKeymgmt(t, root, "keymgmt")
	for _, k := range []string{"alpha", "beta"} {
		if _, err := root.Logical().Write("keymgmt/key/"+k, map[string]any{"type": "aes256-gcm96"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.Logical().Write("keymgmt/key/alpha/rotate", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("keymgmt/key/alpha", map[string]any{"min_enabled_version": 9}); statusOfErr(err) != 400 {
		t.Fatalf("bad min_enabled_version: %v", err)
	}

	data, evs := auditLog(t, root, map[string][]string{"key": {"alpha"}, "type": {"response"}, "verify": {"true"}})
	if len(evs) != 3 {
		t.Fatalf("%d response events for alpha, want 3 (create, rotate, refused update)", len(evs))
	}
	if evs[0].Request.Path != "keymgmt/key/alpha" || evs[0].Response.Status != 400 || !strings.Contains(evs[0].Response.Error, "min_enabled_version") {
		t.Fatalf("newest event: %+v %+v", evs[0].Request, evs[0].Response)
	}
	if evs[1].Request.Path != "keymgmt/key/alpha/rotate" || evs[2].Request.Operation != "create" || evs[0].Seq <= evs[1].Seq {
		t.Fatalf("older events: %+v / %+v", evs[1].Request, evs[2].Request)
	}
	v, _ := data["verification"].(map[string]any)
	if v["intact"] != true || v["problem"] != nil || data["file_path"] != logPath || data["more"] != false || len(v["notes"].([]any)) != 0 {
		t.Fatalf("answer: %v", data)
	}
	if _, evs := auditLog(t, root, map[string][]string{"key": {"alpha"}, "result": {"error"}}); len(evs) != 1 {
		t.Fatalf("%d failed events for alpha", len(evs))
	}
	if _, evs := auditLog(t, root, map[string][]string{"operation": {"CREATE"}, "type": {"request"}}); len(evs) != 2 {
		t.Fatalf("%d create requests", len(evs))
	}
	if _, evs := auditLog(t, root, map[string][]string{"limit": {"2"}, "interface": {"rest"}}); len(evs) != 2 {
		t.Fatalf("limit 2: %d events", len(evs))
	}
	// The root token's accessor finds its events although the file holds
	// only its HMAC.
	self, err := root.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	acc, _ := self.Data["accessor"].(string)
	if _, evs := auditLog(t, root, map[string][]string{"principal": {acc}, "key": {"beta"}}); len(evs) != 2 {
		t.Fatalf("%d events of beta by the root accessor", len(evs))
	}

	// The pages read are not copied into the trail.
	raw, _ := os.ReadFile(logPath)
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	var last audit.Event
	json.Unmarshal(lines[len(lines)-1], &last)
	if last.Request.Path != "sys/audit-log/file" || last.Response == nil || last.Response.Data != nil {
		t.Fatalf("the last event is %s", lines[len(lines)-1])
	}

	for _, c := range []struct {
		name string
		q    map[string][]string
	}{
		{"fail limit 0", map[string][]string{"limit": {"0"}}},
		{"fail limit too large", map[string][]string{"limit": {"5000"}}},
		{"fail interface", map[string][]string{"interface": {"smtp"}}},
		{"fail result", map[string][]string{"result": {"maybe"}}},
		{"fail type", map[string][]string{"type": {"both"}}},
		{"fail before_seq", map[string][]string{"before_seq": {"-1"}}},
		{"fail unknown field", map[string][]string{"secret": {"x"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := root.Logical().ReadWithData("sys/audit-log/file", c.q); statusOfErr(err) != 400 {
				t.Fatalf("want 400, got %v", err)
			}
		})
	}
	if _, err := root.Logical().ReadRaw("sys/audit-log/nope"); statusOfErr(err) != 404 {
		t.Fatalf("missing device: %v", err)
	}

	// sudo is needed, as for the other audit paths.
	if err := root.Sys().PutPolicy("auditor", `path "sys/audit-log/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	child, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"auditor"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.client(t, child.Auth.ClientToken).Logical().Read("sys/audit-log/file"); statusOfErr(err) != 403 {
		t.Fatalf("read without sudo: %v", err)
	}

	// A changed event shows in the verification state.
	raw, _ = os.ReadFile(logPath)
	os.WriteFile(logPath, bytes.Replace(raw, []byte(`"beta"`), []byte(`"gamma"`), 1), 0o600)
	data, _ = auditLog(t, root, map[string][]string{"verify": {"true"}, "limit": {"1"}})
	v, _ = data["verification"].(map[string]any)
	p, _ := v["problem"].(map[string]any)
	if v["intact"] != false || p == nil || !strings.Contains(p["what"].(string), "changed") {
		t.Fatalf("verification after an edit: %v", v)
	}
}
