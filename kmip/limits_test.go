package kmip

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// An Undo batch holds the store's write lock while it runs, so what it may
// do is bounded: no key pair generation, at most maxUndoItems items, and
// no item starts after undoTimeBudget (the batch is then undone).
func TestUndoBatchBounds(t *testing.T) {
	ctx := context.Background()
	srv, p := testServer(t, "")
	aes := kmip.TemplateAttribute{Attribute: []kmip.Attribute{
		{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
		{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
		{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt},
	}}
	create := &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: aes}
	pair := &payloads.CreateKeyPairRequestPayload{CommonTemplateAttribute: &kmip.TemplateAttribute{Attribute: []kmip.Attribute{
		{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmEC},
		{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
	}}}
	send := func(pls ...kmip.OperationPayload) kmip.ResponseMessage {
		t.Helper()
		return handleDirect(t, srv, p, kmip.BatchErrorContinuationOptionUndo, pls...)
	}
	objects := func() int {
		var n int
		if err := srv.m.o.Store.View(ctx, func(tx store.Tx) (err error) {
			n, err = tx.CountKMIPObjects(ctx, "fuzz", "s")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	reasons := func(resp kmip.ResponseMessage) (out []string) {
		for _, it := range resp.BatchItem {
			out = append(out, ttlv.EnumStr(it.ResultStatus)+"/"+ttlv.EnumStr(it.ResultReason))
		}
		return out
	}

	t.Run("fail key pair generation", func(t *testing.T) {
		resp := send(create, pair)
		for _, r := range reasons(resp) {
			if r != "OperationFailed/FeatureNotSupported" {
				t.Fatalf("items: %v", reasons(resp))
			}
		}
		if n := objects(); n != 0 {
			t.Fatalf("%d objects after a refused Undo batch", n)
		}
	})
	t.Run("fail too many items", func(t *testing.T) {
		pls := make([]kmip.OperationPayload, maxUndoItems+1)
		for i := range pls {
			pls[i] = create
		}
		resp := send(pls...)
		if len(resp.BatchItem) != maxUndoItems+1 || reasons(resp)[0] != "OperationFailed/FeatureNotSupported" {
			t.Fatalf("items: %v", reasons(resp)[:1])
		}
		if n := objects(); n != 0 {
			t.Fatalf("%d objects after a refused Undo batch", n)
		}
	})
	t.Run("fail past the time budget: undone", func(t *testing.T) {
		old := undoTimeBudget
		undoTimeBudget = time.Nanosecond
		t.Cleanup(func() { undoTimeBudget = old })
		resp := send(create, create)
		if r := reasons(resp); len(r) != 2 || r[0] != "OperationUndone/OperationCanceledByRequester" || r[1] != "OperationFailed/GeneralFailure" {
			t.Fatalf("items: %v", r)
		}
		if n := objects(); n != 0 {
			t.Fatalf("%d objects after an undone batch", n)
		}
	})
	t.Run("fail an item running past the budget: stopped and undone", func(t *testing.T) {
		oldBudget, oldGrace := undoTimeBudget, undoItemGrace
		undoTimeBudget, undoItemGrace = 0, 0
		t.Cleanup(func() { undoTimeBudget, undoItemGrace = oldBudget, oldGrace })
		resp := send(create)
		if r := reasons(resp); len(r) != 1 || r[0] != "OperationFailed/GeneralFailure" || !strings.Contains(resp.BatchItem[0].ResultMessage, "ran past") {
			t.Fatalf("items: %v %q", r, resp.BatchItem[0].ResultMessage)
		}
		if n := objects(); n != 0 {
			t.Fatalf("%d objects after an undone batch", n)
		}
	})
	t.Run("ok within the bounds", func(t *testing.T) {
		resp := send(create, create)
		if r := reasons(resp); len(r) != 2 || r[0] != "Success/" || r[1] != "Success/" {
			t.Fatalf("items: %v", r)
		}
		if n := objects(); n != 2 {
			t.Fatalf("%d objects, want 2", n)
		}
	})
}

// A change another node made (a revoked certificate) that cannot be loaded
// at once, because an administrative call holds the manager, makes the
// mount refuse requests until it is loaded.
func TestOtherNodesChangeWaitsClosed(t *testing.T) {
	ctx := context.Background()
	srv, p := testServer(t, "")
	if it := queryOps(t, srv, p); it.ResultStatus != kmip.ResultStatusSuccess {
		t.Fatalf("before: %s", ttlv.EnumStr(it.ResultReason))
	}
	m := srv.m
	// What the other node commits: the certificate is revoked.
	if err := m.o.Store.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, kvPath("fuzz", "cred", p.serial)) }); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock() // an administrative call in progress
	m.Changed(ctx, []string{"kv:" + kvPath("fuzz", "cred", p.serial)})
	it := queryOps(t, srv, p)
	m.mu.Unlock()
	if it.ResultStatus != kmip.ResultStatusOperationFailed || it.ResultReason != kmip.ResultReasonGeneralFailure {
		t.Fatalf("while the change waits: %s %s", ttlv.EnumStr(it.ResultStatus), ttlv.EnumStr(it.ResultReason))
	}
	it = waitRefusalEnds(t, srv, p)
	if it.ResultReason != kmip.ResultReasonAuthenticationNotSuccessful {
		t.Fatalf("after the change: %s %s", ttlv.EnumStr(it.ResultStatus), ttlv.EnumStr(it.ResultReason))
	}
}

// failingViews fails reads while fail is set.
type failingViews struct {
	store.Store
	fail atomic.Bool
}

func (f *failingViews) View(ctx context.Context, fn func(store.Tx) error) error {
	if f.fail.Load() {
		return errors.New("the store cannot be read")
	}
	return f.Store.View(ctx, fn)
}

// A change another node made that cannot be loaded (the store fails) keeps
// the mount refusing requests until a retried reload succeeds.
func TestOtherNodesChangeThatFailsToLoad(t *testing.T) {
	old := reloadRetry
	reloadRetry = 10 * time.Millisecond
	t.Cleanup(func() { reloadRetry = old })
	ctx := context.Background()
	srv, p := testServer(t, "")
	m := srv.m
	fv := &failingViews{Store: m.o.Store}
	m.o.Store = fv
	if err := fv.Store.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, kvPath("fuzz", "cred", p.serial)) }); err != nil {
		t.Fatal(err)
	}
	fv.fail.Store(true)
	m.Changed(ctx, []string{"kv:" + kvPath("fuzz", "cred", p.serial)})
	if it := queryOps(t, srv, p); it.ResultReason != kmip.ResultReasonGeneralFailure {
		t.Fatalf("while the change cannot be loaded: %s %s", ttlv.EnumStr(it.ResultStatus), ttlv.EnumStr(it.ResultReason))
	}
	time.Sleep(50 * time.Millisecond) // retries fail meanwhile
	if it := queryOps(t, srv, p); it.ResultReason != kmip.ResultReasonGeneralFailure {
		t.Fatalf("after failed retries: %s %s", ttlv.EnumStr(it.ResultStatus), ttlv.EnumStr(it.ResultReason))
	}
	fv.fail.Store(false)
	if it := waitRefusalEnds(t, srv, p); it.ResultReason != kmip.ResultReasonAuthenticationNotSuccessful {
		t.Fatalf("after the store is back: %s %s", ttlv.EnumStr(it.ResultStatus), ttlv.EnumStr(it.ResultReason))
	}
}

// handleDirect hands one message to srv's handler as peer p and decodes the
// answer.
func handleDirect(t *testing.T, srv *server, p *peer, opt kmip.BatchErrorContinuationOption, pls ...kmip.OperationPayload) kmip.ResponseMessage {
	t.Helper()
	m := kmip.NewRequestMessage(kmip.V1_4, pls...)
	m.Header.BatchErrorContinuationOption = opt
	out, _ := srv.handle(context.Background(), p, ttlv.MarshalTTLV(&m))
	var resp kmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(out, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// queryOps is a Query of the operations, answered by one item.
func queryOps(t *testing.T, srv *server, p *peer) kmip.ResponseBatchItem {
	t.Helper()
	resp := handleDirect(t, srv, p, 0, &payloads.QueryRequestPayload{QueryFunction: []kmip.QueryFunction{kmip.QueryFunctionOperations}})
	if len(resp.BatchItem) != 1 {
		t.Fatalf("%d items answered", len(resp.BatchItem))
	}
	return resp.BatchItem[0]
}

// waitRefusalEnds queries until the answer is no longer the General Failure
// of a mount that refuses requests (10 s at most) and returns it.
func waitRefusalEnds(t *testing.T, srv *server, p *peer) kmip.ResponseBatchItem {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		it := queryOps(t, srv, p)
		if it.ResultReason != kmip.ResultReasonGeneralFailure || time.Now().After(deadline) {
			return it
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A message refused by its framing (over max_message_bytes, a bad header)
// is recorded, in the audit trail and the metrics, as the client is
// answered: Invalid Message, a 400, not an internal failure.
func TestFramingRefusalIsInvalidMessage(t *testing.T) {
	reason, msg, internal := reasonOf(&wire.FrameError{Msg: "declared length 1100224 is over the limit"})
	if reason != kmip.ResultReasonInvalidMessage || internal || !strings.Contains(msg, "over the limit") {
		t.Fatalf("reasonOf a framing error: %v %q internal=%v", reason, msg, internal)
	}
	if st := statusOf(reason, true); st != 400 {
		t.Fatalf("status %d, want 400", st)
	}
}
