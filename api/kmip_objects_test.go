package api

import (
	"encoding/json"
	"testing"

	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// TestKMIPObjectCount creates objects over KMIP and reads their count,
// per scope, through kmip/objects.
func TestKMIPObjectCount(t *testing.T) {
	c, _ := newKMIPTestEnv(t)
	l := c.Logical()
	if _, err := l.Write("sys/mounts/kmip", map[string]any{"type": "kmip"}); err != nil {
		t.Fatal(err)
	}
	count := func() (int, map[string]any) {
		t.Helper()
		s, err := l.Read("kmip/objects")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := s.Data["count"].(json.Number).Int64()
		per, _ := s.Data["scopes"].(map[string]any)
		return int(n), per
	}
	if n, per := count(); n != 0 || len(per) != 0 {
		t.Fatalf("before anything: %d %v", n, per)
	}
	cfg, err := l.Write("kmip/config", map[string]any{"listen_addrs": "127.0.0.1:0", "server_hostnames": "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	addr := cfg.Data["listening"].([]any)[0].(string)
	ca, err := l.Read("kmip/ca")
	if err != nil {
		t.Fatal(err)
	}
	for scope, objects := range map[string]int{"finance": 2, "hr": 1, "empty": 0} {
		if _, err := l.Write("kmip/scope/"+scope, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Write("kmip/scope/"+scope+"/role/w", map[string]any{"operation_create": true, "operation_discover_versions": true}); err != nil {
			t.Fatal(err)
		}
		cred, err := l.Write("kmip/scope/"+scope+"/role/w/credential/generate", nil)
		if err != nil {
			t.Fatal(err)
		}
		kc, err := kmipDial(t, addr, kmipField(t, ca, "ca_pem"), kmipField(t, cred, "certificate"), kmipField(t, cred, "private_key"))
		if err != nil {
			t.Fatal(err)
		}
		for range objects {
			it, err := kc.Do(gokmip.V1_4, &payloads.CreateRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, TemplateAttribute: gokmip.TemplateAttribute{
				Attribute: []gokmip.Attribute{
					{AttributeName: gokmip.AttributeNameCryptographicAlgorithm, AttributeValue: gokmip.CryptographicAlgorithmAES},
					{AttributeName: gokmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
				}}})
			if err != nil || it.ResultStatus != gokmip.ResultStatusSuccess {
				t.Fatalf("create: %v %+v", err, it)
			}
		}
	}
	n, per := count()
	if n != 3 || len(per) != 3 || per["finance"] != json.Number("2") || per["hr"] != json.Number("1") || per["empty"] != json.Number("0") {
		t.Fatalf("count %d, per scope %v", n, per)
	}
}
