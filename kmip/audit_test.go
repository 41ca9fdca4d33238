package kmip_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/kmip/kmiptest"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

func readTrail(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("trail line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

// auditedServer starts a server with a file audit device and returns it
// with the device's file.
func auditedServer(t *testing.T) (*kmiptest.Env, string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "audit.log")
	e := kmiptest.Start(t, kmiptest.Options{Audit: func(b *audit.Broker) {
		if err := b.Enable(context.Background(), audit.Device{Path: "file", Type: "file", FilePath: logPath}); err != nil {
			t.Fatal(err)
		}
	}})
	return e, logPath
}

func TestAuditTrail(t *testing.T) {
	e, logPath := auditedServer(t)
	e.Role(t, "audited", "ops", "all")
	cert, serial := e.Credential(t, "audited", "ops")
	c := e.Dial(t, cert)
	v := gokmip.V1_4

	id := must[*payloads.CreateResponsePayload](t, do(t, c, v, createAES("audited-key"))).UniqueIdentifier
	key, _ := must[*payloads.GetResponsePayload](t, do(t, c, v, &payloads.GetRequestPayload{UniqueIdentifier: id})).SymmetricKey()
	secret := []byte("the-audited-secret-value-42")
	must[*payloads.RegisterResponsePayload](t, do(t, c, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypeSecretData, Object: secretData(secret)}))
	mustFail(t, do(t, c, v, &payloads.DestroyRequestPayload{UniqueIdentifier: "nope"}), gokmip.ResultReasonItemNotFound)

	evs := readTrail(t, logPath)
	var kmipEvents []map[string]any
	for _, ev := range evs {
		if ev["interface"] == audit.KMIP {
			kmipEvents = append(kmipEvents, ev)
		}
	}
	if len(kmipEvents) != 8 {
		t.Fatalf("%d kmip events, want a request and a response for each of 4 items", len(kmipEvents))
	}
	for i, ev := range kmipEvents {
		auth := ev["auth"].(map[string]any)
		if auth["cert_serial"] != serial || auth["scope"] != "audited" || auth["role"] != "ops" || auth["remote_addr"] == nil {
			t.Fatalf("event %d principal: %v", i, auth)
		}
		wantType := []string{"request", "response"}[i%2]
		if ev["type"] != wantType {
			t.Fatalf("event %d is a %v", i, ev["type"])
		}
	}
	create := kmipEvents[1]
	if req := create["request"].(map[string]any); req["operation"] != "Create" || !slices.Contains(anyStrings(req["objects"]), id) {
		t.Fatalf("create response event: %v", create)
	}
	get := kmipEvents[3]["response"].(map[string]any)
	if m, _ := get["data"].(map[string]any)["key_material"].(string); !strings.HasPrefix(m, audit.HMACPrefix) {
		t.Fatalf("get's key material is not an HMAC: %v", get)
	}
	failed := kmipEvents[7]["response"].(map[string]any)
	if failed["kmip_result_reason"] != "ItemNotFound" || failed["status"] != 404.0 {
		t.Fatalf("failed destroy: %v", failed)
	}
	raw, _ := os.ReadFile(logPath)
	for name, v := range map[string][]byte{"key": key, "secret": secret} {
		for _, enc := range []string{string(v), hex.EncodeToString(v), base64.StdEncoding.EncodeToString(v)} {
			if bytes.Contains(raw, []byte(enc)) {
				t.Fatalf("the %s is in the trail in the clear", name)
			}
		}
	}
	if rep, err := audit.Verify([]string{logPath}); err != nil || rep.Problem != nil {
		t.Fatalf("verify: %+v %v", rep, err)
	}

	t.Run("fail closed", func(t *testing.T) {
		before := countObjects(t, e, "audited")
		os.Remove(logPath)
		if err := os.Symlink("/dev/full", logPath); err != nil {
			t.Fatal(err)
		}
		// Reopening onto a file that cannot be made durable is refused.
		if err := e.Audit.Reopen(); err == nil || !strings.Contains(err.Error(), "sync") {
			t.Fatalf("reopen onto /dev/full: %v", err)
		}
		it := do(t, c, v, createAES("refused"))
		mustFail(t, it, gokmip.ResultReasonGeneralFailure)
		if !strings.Contains(it.ResultMessage, "audit trail") {
			t.Fatalf("message %q", it.ResultMessage)
		}
		if n := countObjects(t, e, "audited"); n != before {
			t.Fatalf("a refused create left %d object(s)", n-before)
		}
	})
}

// A message its framing refuses (here a declared length over
// max_message_bytes) is answered Invalid Message, and recorded so in the
// trail and the metrics, not as a General Failure.
func TestFramingRefusalAudited(t *testing.T) {
	e, logPath := auditedServer(t)
	e.Role(t, "s", "r", "all")
	cert, serial := e.Credential(t, "s", "r")
	c := e.Dial(t, cert)
	out, err := c.Raw(item(gokmip.TagRequestMessage, ttlv.TypeStructure, 1<<31, nil))
	if err != nil {
		t.Fatal(err)
	}
	invalidMessage(t, out)

	var resp map[string]any
	for _, ev := range readTrail(t, logPath) {
		if ev["interface"] == audit.KMIP && ev["type"] == "response" {
			resp = ev
		}
	}
	if resp == nil {
		t.Fatal("no kmip response event for the refused message")
	}
	r := resp["response"].(map[string]any)
	if r["kmip_result_reason"] != "InvalidMessage" || r["status"] != 400.0 {
		t.Fatalf("the refused message is recorded as %v / %v, want InvalidMessage / 400", r["kmip_result_reason"], r["status"])
	}
	if auth := resp["auth"].(map[string]any); auth["cert_serial"] != serial {
		t.Fatalf("principal of the refused message: %v", auth)
	}
	rec := httptest.NewRecorder()
	e.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if !strings.Contains(body, `keyhold_errors_total{interface="kmip",kind="InvalidMessage"} 1`) ||
		!strings.Contains(body, `keyhold_requests_total{interface="kmip",operation="message",status="400"} 1`) {
		t.Fatalf("metrics do not count one Invalid Message (400):\n%s", grepLines(body, "kmip"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// An audited Undo batch, committed or undone: each item has one request
// event, before its response event, and the chain holds. (That the queued
// request events are durable before the commit cannot be seen in the trail
// afterwards; audit's TestPersistQueuedRequests tests Persist itself.)
func TestAuditedUndoBatch(t *testing.T) {
	e, logPath := auditedServer(t)
	e.Role(t, "u", "ops", "all")
	cert, _ := e.Credential(t, "u", "ops")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	resp, err := c.Send(batch(v, gokmip.BatchErrorContinuationOptionUndo, createAES("u1"), createAES("u2"), createAES("u3")))
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range resp.BatchItem {
		if it.ResultStatus != gokmip.ResultStatusSuccess {
			t.Fatalf("item %d: %v %q", i, it.ResultReason, it.ResultMessage)
		}
	}
	resp, err = c.Send(batch(v, gokmip.BatchErrorContinuationOptionUndo, createAES("undone"), &payloads.DestroyRequestPayload{UniqueIdentifier: "nope"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(resp); len(got) != 2 || got[0] != gokmip.ResultStatusOperationUndone || got[1] != gokmip.ResultStatusOperationFailed {
		t.Fatalf("undone batch: %v", got)
	}
	if n := countObjects(t, e, "u"); n != 3 {
		t.Fatalf("%d objects, want the 3 of the committed batch", n)
	}
	seen := map[string]string{}
	var order []string
	for _, ev := range readTrail(t, logPath) {
		if ev["interface"] != audit.KMIP {
			continue
		}
		id, _ := ev["request_id"].(string)
		if ev["type"] == "request" {
			if _, dup := seen[id]; dup {
				t.Fatalf("two request events for %s", id)
			}
			seen[id] = "request"
			order = append(order, id)
			continue
		}
		if seen[id] != "request" {
			t.Fatalf("response event of %s without its request event before it", id)
		}
		seen[id] = "response"
	}
	if len(order) != 5 {
		t.Fatalf("%d items have request events, want 5", len(order))
	}
	for id, last := range seen {
		if last != "response" {
			t.Fatalf("item %s has no response event", id)
		}
	}
	if rep, err := audit.Verify([]string{logPath}); err != nil || rep.Problem != nil {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
