package kmip

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyhold/keyhold/audit"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// An operation that panics fails its batch item with General Failure; the
// other items are answered, an Undo batch is undone, and the trail holds a
// request and a response event for every item.
func TestOperationPanic(t *testing.T) {
	ctx := context.Background()
	logPath := filepath.Join(t.TempDir(), "audit.log")
	srv, p := testServer(t, logPath)
	srv.ops[kmip.OperationGetAttributeList] = opSpec{since: 10, fn: func(context.Context, *call, kmip.OperationPayload) (kmip.OperationPayload, error) {
		panic("a bug")
	}}
	aes := kmip.TemplateAttribute{Attribute: []kmip.Attribute{
		{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
		{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
		{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt},
	}}
	send := func(opt kmip.BatchErrorContinuationOption, pls ...kmip.OperationPayload) kmip.ResponseMessage {
		t.Helper()
		m := kmip.NewRequestMessage(kmip.V1_4, pls...)
		m.Header.BatchErrorContinuationOption = opt
		out, closeConn := srv.handle(ctx, p, ttlv.MarshalTTLV(&m))
		if closeConn {
			t.Fatal("the connection is closed after a panic in one operation")
		}
		var resp kmip.ResponseMessage
		if err := ttlv.UnmarshalTTLV(out, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	create := &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: aes}
	list := &payloads.GetAttributeListRequestPayload{}

	resp := send(kmip.BatchErrorContinuationOptionContinue, create, list, &payloads.GetRequestPayload{})
	if len(resp.BatchItem) != 3 {
		t.Fatalf("%d items answered, want 3", len(resp.BatchItem))
	}
	if it := resp.BatchItem[1]; it.ResultStatus != kmip.ResultStatusOperationFailed || it.ResultReason != kmip.ResultReasonGeneralFailure {
		t.Fatalf("the item that panicked: %s %s", ttlv.EnumStr(it.ResultStatus), ttlv.EnumStr(it.ResultReason))
	}
	if resp.BatchItem[0].ResultStatus != kmip.ResultStatusSuccess || resp.BatchItem[2].ResultStatus != kmip.ResultStatusSuccess {
		t.Fatal("the items around the one that panicked failed")
	}

	resp = send(kmip.BatchErrorContinuationOptionUndo, create, list)
	if resp.BatchItem[0].ResultStatus != kmip.ResultStatusOperationUndone || resp.BatchItem[1].ResultReason != kmip.ResultReasonGeneralFailure {
		t.Fatalf("undo batch: %s, %s", ttlv.EnumStr(resp.BatchItem[0].ResultStatus), ttlv.EnumStr(resp.BatchItem[1].ResultReason))
	}
	resp = send(kmip.BatchErrorContinuationOptionStop, &payloads.LocateRequestPayload{})
	if ids := resp.BatchItem[0].ResponsePayload.(*payloads.LocateResponsePayload).UniqueIdentifier; len(ids) != 1 {
		t.Fatalf("%d objects after the undone batch, want the 1 of the first batch", len(ids))
	}

	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	requests, responses := map[string]int{}, map[string][]string{}
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var ev audit.Event
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == "request" {
			requests[ev.Request.Operation]++
		} else {
			responses[ev.Request.Operation] = append(responses[ev.Request.Operation], ev.Response.KMIPResultReason)
		}
	}
	if requests["GetAttributeList"] != 2 || len(responses["GetAttributeList"]) != 2 || responses["GetAttributeList"][0] != "GeneralFailure" {
		t.Fatalf("events of the operation that panicked: %d requests, responses %q", requests["GetAttributeList"], responses["GetAttributeList"])
	}
	for op, n := range requests {
		if len(responses[op]) != n {
			t.Fatalf("%s: %d request events, %d response events", op, n, len(responses[op]))
		}
	}
}
