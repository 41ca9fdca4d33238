package kmip

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/keyhold/keyhold/store/sqlite"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// fuzzServer is a mount's message handler over a fresh token and store,
// and the peer of a credential whose role may do everything.
func fuzzServer(t testing.TB) (*server, *peer) {
	return testServer(t, "")
}

// testServer is a mount's server (the role may do everything) and a peer
// with a credential of it; with auditLog set, a file audit device writing
// it audits the requests.
func testServer(t testing.TB, auditLog string) (*server, *peer) {
	ctx := context.Background()
	h := hsmtest.Open(t)
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var trail *audit.Broker
	if auditLog != "" {
		trail = audit.NewBroker(h, st, slog.New(slog.DiscardHandler))
		t.Cleanup(trail.Close)
		if err := trail.Enable(ctx, audit.Device{Path: "file", Type: "file", FilePath: auditLog}); err != nil {
			t.Fatal(err)
		}
	}
	m := New(Options{HSM: h, Store: st, Getenv: func(string) string { return "" }, Audit: trail})
	t.Cleanup(func() { m.Close() })
	addrs, timeout := []string{"127.0.0.1:0"}, 10*time.Second
	if _, err := m.SetConfig(ctx, "fuzz", ConfigInput{ListenAddrs: &addrs, ConnectionTimeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	if err := m.CreateScope(ctx, "fuzz", "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.PutRole(ctx, "fuzz", "s", "r", RoleInput{Ops: map[string]bool{"all": true}}); err != nil {
		t.Fatal(err)
	}
	cred, err := m.GenerateCredential(ctx, "fuzz", "s", "r", "pem")
	if err != nil {
		t.Fatal(err)
	}
	return m.mounts["fuzz"].srv, &peer{serial: cred.SerialNumber, remote: "fuzz"}
}

func fuzzSeeds() [][]byte {
	aes := kmip.TemplateAttribute{Attribute: []kmip.Attribute{
		{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
		{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(128)},
		{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "n", NameType: kmip.NameTypeUninterpretedTextString}},
	}}
	secret := []byte("secret")
	key := []byte("0123456789abcdef")
	yes := true
	msgs := [][]kmip.OperationPayload{
		{&payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: aes}, &payloads.GetRequestPayload{},
			&payloads.AddAttributeRequestPayload{Attribute: kmip.Attribute{AttributeName: "x-a", AttributeValue: "v"}},
			&payloads.ActivateRequestPayload{}, &payloads.RevokeRequestPayload{RevocationReason: kmip.RevocationReason{RevocationReasonCode: kmip.RevocationReasonCodeKeyCompromise}},
			&payloads.DestroyRequestPayload{}},
		{&payloads.RegisterRequestPayload{ObjectType: kmip.ObjectTypeSecretData, Object: &kmip.SecretData{SecretDataType: kmip.SecretDataTypeSeed,
			KeyBlock: kmip.KeyBlock{KeyFormatType: kmip.KeyFormatTypeOpaque, KeyValue: &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &secret}}}}}},
			&payloads.GetAttributesRequestPayload{}, &payloads.GetAttributeListRequestPayload{}},
		{&payloads.LocateRequestPayload{MaximumItems: 2, Attribute: []kmip.Attribute{{AttributeName: kmip.AttributeNameInitialDate, AttributeValue: time.Unix(5, 0)},
			{AttributeName: kmip.AttributeNameInitialDate, AttributeValue: time.Unix(1<<40, 0)}}}, &payloads.RekeyRequestPayload{}},
		{&payloads.QueryRequestPayload{QueryFunction: []kmip.QueryFunction{1, 2, 3, 11}}, &payloads.DiscoverVersionsRequestPayload{}},
		{&payloads.ModifyAttributeRequestPayload{UniqueIdentifier: "x", Attribute: kmip.Attribute{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "m"}}},
			&payloads.DeleteAttributeRequestPayload{UniqueIdentifier: "x", AttributeName: kmip.AttributeNameName}},
		// The cryptographic operations (issue 6).
		{&payloads.CreateKeyPairRequestPayload{CommonTemplateAttribute: &kmip.TemplateAttribute{Attribute: []kmip.Attribute{
			{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmEC},
			{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)}}}},
			&payloads.ActivateRequestPayload{},
			&payloads.SignRequestPayload{CryptographicParameters: &kmip.CryptographicParameters{HashingAlgorithm: kmip.HashingAlgorithmSHA_256}, Data: secret},
			&payloads.SignatureVerifyRequestPayload{Data: secret, SignatureData: secret}},
		{&payloads.RegisterRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{
			{AttributeName: kmip.AttributeNameActivationDate, AttributeValue: time.Unix(5, 0)},
			{AttributeName: kmip.AttributeNameUsageLimits, AttributeValue: kmip.UsageLimits{UsageLimitsTotal: 64, UsageLimitsUnit: kmip.UsageLimitsUnitByte}}}},
			Object: &kmip.SymmetricKey{KeyBlock: kmip.KeyBlock{KeyFormatType: kmip.KeyFormatTypeRaw, CryptographicAlgorithm: kmip.CryptographicAlgorithmAES,
				KeyValue: &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &key}}}}}},
			&payloads.EncryptRequestPayload{CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeGCM, TagLength: 12}, Data: secret},
			&payloads.DecryptRequestPayload{CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeCBC, PaddingMethod: kmip.PaddingMethodPKCS5},
				Data: key, IVCounterNonce: key},
			&payloads.EncryptRequestPayload{CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeCTR}, Data: secret, InitIndicator: &yes},
			&wire.MACRequestPayload{CryptographicParameters: &kmip.CryptographicParameters{CryptographicAlgorithm: kmip.CryptographicAlgorithmHMACSHA256}, Data: secret},
			&wire.MACVerifyRequestPayload{Data: secret, MACData: secret}},
		{&wire.HashRequestPayload{CryptographicParameters: &kmip.CryptographicParameters{HashingAlgorithm: kmip.HashingAlgorithmSHA_512}, Data: secret},
			&wire.RNGRetrieveRequestPayload{DataLength: 16}, &wire.RNGSeedRequestPayload{Data: secret}},
	}
	var out [][]byte
	for i, pls := range msgs {
		for _, v := range []kmip.ProtocolVersion{kmip.V1_0, kmip.V1_4} {
			m := kmip.NewRequestMessage(v, pls...)
			m.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOption(i%3 + 1)
			out = append(out, ttlv.MarshalTTLV(&m))
		}
	}
	return out
}

// FuzzHandle feeds arbitrary messages to the request handler with a role
// that may do everything: it must never panic, and must always answer a
// well-formed Response Message whose Batch Count matches its items.
func FuzzHandle(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Add([]byte{0x42, 0x00, 0x78, 0x01, 0, 0, 0, 0})
	srv, p := fuzzServer(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, _ := srv.handle(context.Background(), p, msg)
		root, err := wire.Parse(out, wire.Limits{})
		if err != nil {
			t.Fatalf("the answer does not parse: %v", err)
		}
		if root.Tag != kmip.TagResponseMessage {
			t.Fatalf("the answer is a %s", ttlv.TagString(root.Tag))
		}
		var resp kmip.ResponseMessage
		if err := ttlv.UnmarshalTTLV(out, &resp); err != nil {
			t.Fatalf("the answer does not decode: %v", err)
		}
		if int(resp.Header.BatchCount) != len(resp.BatchItem) || len(resp.BatchItem) == 0 {
			t.Fatalf("batch count %d for %d items", resp.Header.BatchCount, len(resp.BatchItem))
		}
	})
}
