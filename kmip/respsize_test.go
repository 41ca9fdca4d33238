package kmip_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"math/big"
	"testing"

	"github.com/keyhold/keyhold/kmip/kmiptest"
	"github.com/keyhold/keyhold/kmip/wire"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// beginGCMDecryption registers an AES key (with attrs) and sends the first
// part of a streamed AES-GCM decryption of 8 KiB, whose plaintext the token
// holds back until the last part; it returns the key, the first answer and
// the tag the last part needs.
func beginGCMDecryption(t *testing.T, c *kmiptest.Client, attrs ...gokmip.Attribute) (string, *payloads.DecryptResponsePayload, []byte) {
	t.Helper()
	key := bytes.Repeat([]byte{3}, 16)
	id := registerAES(t, c, key, append([]gokmip.Attribute{activeNow()}, attrs...)...)
	blk, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(blk)
	iv := make([]byte, 12)
	sealed := g.Seal(nil, iv, make([]byte, 8192), nil)
	yes := true
	first := must[*payloads.DecryptResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.DecryptRequestPayload{UniqueIdentifier: id, InitIndicator: &yes,
		CryptographicParameters: params(gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeGCM}), IVCounterNonce: iv, Data: sealed[:8192]}))
	if len(first.Data) != 0 {
		t.Fatalf("the token gave %d bytes before the tag", len(first.Data))
	}
	return id, first, sealed[8192:]
}

// The last part of a streamed AES-GCM Decrypt is a few dozen bytes, but its
// answer is all the plaintext the token held back. If that cannot fit the
// Maximum Response Size, the part is refused before it ends the stream or
// spends a use of the key, so the client can ask again with room.
func TestMaximumResponseSizeStreamedGCMDecrypt(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "r", "all", "all")
	cert, _ := e.Credential(t, "r", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	yes := true
	id, first, tag := beginGCMDecryption(t, c, attr(gokmip.AttributeNameUsageLimits,
		gokmip.UsageLimits{UsageLimitsTotal: 10, UsageLimitsUnit: gokmip.UsageLimitsUnitObject}))
	count := func() int64 { return usageCount(t, c, id) }
	before := count()
	req := batch(v, 0, &payloads.DecryptRequestPayload{CorrelationValue: first.CorrelationValue, FinalIndicator: &yes, AuthenticatedEncryptionTag: tag})
	req.Header.MaximumResponseSize = 4096
	resp, err := c.Send(req)
	if err != nil {
		t.Fatal(err)
	}
	it := resp.BatchItem[0]
	after := count()
	// Was the stream consumed? A retry without a limit tells.
	retry := do(t, c, v, &payloads.DecryptRequestPayload{CorrelationValue: first.CorrelationValue, FinalIndicator: &yes, AuthenticatedEncryptionTag: tag})
	if it.ResultReason != gokmip.ResultReasonResponseTooLarge || after != before || retry.ResultStatus != gokmip.ResultStatusSuccess {
		t.Fatalf("last part under 4096 bytes: %v %v %q; uses counted %d -> %d; the part again without a limit: %v %v",
			it.ResultStatus, it.ResultReason, it.ResultMessage, before, after, retry.ResultStatus, retry.ResultReason)
	}
}

// An Encrypt to an RSA-8192 public key with one byte of data answers 1 KiB
// of ciphertext. At no limit may it spend a use of a usage-limited key and
// be answered Response Too Large; at a large enough one it runs.
func TestMaximumResponseSizeRSA8192Encrypt(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "r", "all", "all")
	cert, _ := e.Credential(t, "r", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	n := new(big.Int).Lsh(big.NewInt(1), 8191)
	n.Or(n, big.NewInt(1))
	kb := gokmip.KeyBlock{KeyFormatType: gokmip.KeyFormatTypeTransparentRSAPublicKey, KeyValue: &gokmip.KeyValue{Plain: &gokmip.PlainKeyValue{
		KeyMaterial: gokmip.KeyMaterial{TransparentRSAPublicKey: &gokmip.TransparentRSAPublicKey{Modulus: *n, PublicExponent: *big.NewInt(65537)}}}}}
	id := must[*payloads.RegisterResponsePayload](t, do(t, c, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypePublicKey,
		TemplateAttribute: keyTemplate(activeNow(),
			attr(gokmip.AttributeNameCryptographicUsageMask, gokmip.CryptographicUsageEncrypt),
			attr(gokmip.AttributeNameCryptographicParameters, gokmip.CryptographicParameters{PaddingMethod: gokmip.PaddingMethodPKCS1V1_5}),
			attr(gokmip.AttributeNameUsageLimits, gokmip.UsageLimits{UsageLimitsTotal: 1000, UsageLimitsUnit: gokmip.UsageLimitsUnitObject})),
		Object: &gokmip.PublicKey{KeyBlock: kb}})).UniqueIdentifier
	count := func() int64 { return usageCount(t, c, id) }
	var ranThenRefused []int32
	ran := 0
	for limit := int32(1050); limit <= 2600; limit += 3 {
		before := count()
		req := batch(v, 0, &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: []byte{1}})
		req.Header.MaximumResponseSize = limit
		resp, err := c.Send(req)
		if err != nil {
			t.Fatal(err)
		}
		it := resp.BatchItem[0]
		if it.ResultStatus == gokmip.ResultStatusSuccess {
			ran++
		}
		if it.ResultStatus != gokmip.ResultStatusSuccess && count() != before {
			ranThenRefused = append(ranThenRefused, limit)
			t.Logf("limit %d: use spent, answered %v %q", limit, it.ResultReason, it.ResultMessage)
		}
	}
	if ran == 0 {
		t.Fatal("the Encrypt ran at no limit up to 2600 bytes")
	}
	if len(ranThenRefused) > 0 {
		t.Fatalf("at limits %v an Encrypt spent a use of the key and was answered Response Too Large", ranThenRefused)
	}
}

// The same last part in an Undo batch: the batch is undone, and the stream,
// which lives in the token and not in the store, must not have been ended.
func TestMaximumResponseSizeStreamedGCMDecryptUndo(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "r", "all", "all")
	cert, _ := e.Credential(t, "r", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	yes := true
	_, first, tag := beginGCMDecryption(t, c)
	req := batch(v, gokmip.BatchErrorContinuationOptionUndo, &payloads.DecryptRequestPayload{CorrelationValue: first.CorrelationValue, FinalIndicator: &yes, AuthenticatedEncryptionTag: tag})
	req.Header.MaximumResponseSize = 4096
	resp, err := c.Send(req)
	if err != nil {
		t.Fatal(err)
	}
	retry := do(t, c, v, &payloads.DecryptRequestPayload{CorrelationValue: first.CorrelationValue, FinalIndicator: &yes, AuthenticatedEncryptionTag: tag})
	if it := resp.BatchItem[0]; it.ResultReason != gokmip.ResultReasonResponseTooLarge || retry.ResultStatus != gokmip.ResultStatusSuccess {
		t.Fatalf("Undo batch: %v %v %q; the part again without a limit: %v %v", it.ResultStatus, it.ResultReason, it.ResultMessage, retry.ResultStatus, retry.ResultReason)
	}
}

// The first Get of an object durably clears its Fresh attribute: a Get
// whose answer cannot fit the Maximum Response Size leaves it set.
func TestMaximumResponseSizeGetOfAFreshObject(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "r", "all", "all")
	cert, _ := e.Credential(t, "r", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	id := must[*payloads.RegisterResponsePayload](t, do(t, c, v, &payloads.RegisterRequestPayload{
		ObjectType: gokmip.ObjectTypeSecretData, Object: secretData(fill(8192, 7))})).UniqueIdentifier
	fresh := func() any {
		ga := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id,
			AttributeName: []gokmip.AttributeName{gokmip.AttributeNameFresh}}))
		if len(ga.Attribute) == 0 {
			return nil
		}
		return ga.Attribute[0].AttributeValue
	}
	before := fresh()
	req := batch(v, 0, &payloads.GetRequestPayload{UniqueIdentifier: id})
	req.Header.MaximumResponseSize = 2048
	resp, err := c.Send(req)
	if err != nil {
		t.Fatal(err)
	}
	it := resp.BatchItem[0]
	after := fresh()
	if before != true || after != true || it.ResultReason != gokmip.ResultReasonResponseTooLarge {
		t.Fatalf("Fresh %v -> %v; Get under 2048 bytes answered %v %v %q", before, after, it.ResultStatus, it.ResultReason, it.ResultMessage)
	}
	// With room, the Get serves the object and clears Fresh.
	must[*payloads.GetResponsePayload](t, do(t, c, v, &payloads.GetRequestPayload{UniqueIdentifier: id}))
	if got := fresh(); got != false {
		t.Fatalf("Fresh after a Get: %v", got)
	}
}

// A Locate or an RNG Retrieve changes nothing, and the request does not
// bound its answer: it runs, and is refused only if its answer does not
// fit. Under a Maximum Response Size just the size of its answer, it is
// answered.
func TestMaximumResponseSizeOfReadOnlyAnswers(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "r", "all", "all")
	cert, _ := e.Credential(t, "r", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	must[*payloads.CreateResponsePayload](t, do(t, c, v, createAES("located")))
	send := func(pl gokmip.OperationPayload, limit int32) (int, *gokmip.ResponseBatchItem) {
		t.Helper()
		req := batch(v, 0, pl)
		req.Header.MaximumResponseSize = limit
		out, err := c.Raw(ttlv.MarshalTTLV(req))
		if err != nil {
			t.Fatal(err)
		}
		var resp gokmip.ResponseMessage
		if err := ttlv.UnmarshalTTLV(out, &resp); err != nil || len(resp.BatchItem) != 1 {
			t.Fatalf("response: %v", err)
		}
		return len(out), &resp.BatchItem[0]
	}
	for name, pl := range map[string]gokmip.OperationPayload{
		"locate": &payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{{AttributeName: gokmip.AttributeNameName,
			AttributeValue: gokmip.Name{NameValue: "located", NameType: gokmip.NameTypeUninterpretedTextString}}}},
		"rng retrieve": &wire.RNGRetrieveRequestPayload{DataLength: 16},
	} {
		size, it := send(pl, 1<<20)
		if it.ResultStatus != gokmip.ResultStatusSuccess {
			t.Fatalf("%s: %v %q", name, it.ResultReason, it.ResultMessage)
		}
		if _, it := send(pl, int32(size)); it.ResultStatus != gokmip.ResultStatusSuccess {
			t.Errorf("%s under a Maximum Response Size of its answer's %d bytes: %v %q", name, size, it.ResultReason, it.ResultMessage)
		}
		if _, it := send(pl, int32(size)-1); it.ResultReason != gokmip.ResultReasonResponseTooLarge {
			t.Errorf("%s under one byte less than its answer: %v %v %q", name, it.ResultStatus, it.ResultReason, it.ResultMessage)
		}
	}
}
