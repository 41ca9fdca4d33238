package kmip_test

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/kmip/kmiptest"
	"github.com/keyhold/keyhold/logbuf"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

func TestDebugVariables(t *testing.T) {
	for _, tt := range []struct {
		name string
		vars map[string]string
		want []string
		not  []string
	}{
		{name: "ok all on", vars: map[string]string{
			"KMIP_CONNECTION_DEBUGGING": "1", "KMIP_REQUEST_DEBUGGING": "1", "KMIP_RESPONSE_DEBUGGING": "1",
			"KMIP_DECODING_DEBUGGING": "1", "KMIP_INDEX_DEBUGGING": "1"},
			want: []string{"kmip debug: connection open", "kmip debug: request", "kmip debug: response", "kmip debug: message framed",
				"kmip debug: request decoded", "kmip debug: object look-up", "kmip debug: locate", "<redacted"}},
		{name: "ok requests only", vars: map[string]string{"KMIP_REQUEST_DEBUGGING": "1"},
			want: []string{"kmip debug: request"}, not: []string{"kmip debug: response", "kmip debug: connection", "kmip debug: object look-up"}},
		{name: "ok none", vars: map[string]string{"KMIP_REQUEST_DEBUGGING": "0"}, not: []string{"kmip debug"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf logbuf.Buffer
			e := kmiptest.Start(t, kmiptest.Options{
				Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
				Getenv: func(k string) string { return tt.vars[k] },
			})
			e.Role(t, "d", "all", "all")
			cert, _ := e.Credential(t, "d", "all")
			c := e.Dial(t, cert)
			secret := []byte("debug-secret-material-0123456789")
			id := must[*payloads.RegisterResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.RegisterRequestPayload{
				ObjectType: gokmip.ObjectTypeSymmetricKey, Object: symmetricKey(gokmip.CryptographicAlgorithmAES, secret, gokmip.KeyFormatTypeRaw)})).UniqueIdentifier
			must[*payloads.GetResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: id}))
			must[*payloads.LocateResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.LocateRequestPayload{}))
			// The Digest, a SHA-256 of the material, is in a Get Attributes
			// answer and a Locate by Digest: neither log shows its value.
			sum := sha256.Sum256(secret)
			attrs := must[*payloads.GetAttributesResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.GetAttributesRequestPayload{
				UniqueIdentifier: id, AttributeName: []gokmip.AttributeName{gokmip.AttributeNameDigest}}))
			if len(attrs.Attribute) != 1 {
				t.Fatalf("Get Attributes of the Digest: %+v", attrs.Attribute)
			}
			byDigest := must[*payloads.LocateResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
				attr(gokmip.AttributeNameDigest, gokmip.Digest{HashingAlgorithm: gokmip.HashingAlgorithmSHA_256, DigestValue: sum[:], KeyFormatType: gokmip.KeyFormatTypeRaw})}}))
			if len(byDigest.UniqueIdentifier) != 1 || byDigest.UniqueIdentifier[0] != id {
				t.Fatalf("Locate by Digest found %v, want [%s]", byDigest.UniqueIdentifier, id)
			}
			c.Conn.Close()
			out := buf.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("log lacks %q", w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("log has %q", n)
				}
			}
			if strings.Contains(out, string(secret)) || strings.Contains(out, hex.EncodeToString(secret)) || strings.Contains(out, hex.EncodeToString(secret[:8])) {
				t.Fatal("key material in the log")
			}
			if strings.Contains(strings.ToLower(out), hex.EncodeToString(sum[:])) {
				t.Fatal("the key's digest in the log")
			}
		})
	}
}
