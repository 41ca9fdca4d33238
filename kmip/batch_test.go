package kmip_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/kmip/kmiptest"
	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/keyhold/keyhold/store"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

func batch(v gokmip.ProtocolVersion, opt gokmip.BatchErrorContinuationOption, pls ...gokmip.OperationPayload) *gokmip.RequestMessage {
	m := gokmip.NewRequestMessage(v, pls...)
	m.Header.BatchErrorContinuationOption = opt
	return &m
}

func createAES(name string) *payloads.CreateRequestPayload {
	return &payloads.CreateRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, TemplateAttribute: aesTemplate(name, 128)}
}

func statuses(resp *gokmip.ResponseMessage) []gokmip.ResultStatus {
	var out []gokmip.ResultStatus
	for _, it := range resp.BatchItem {
		out = append(out, it.ResultStatus)
	}
	return out
}

func countObjects(t *testing.T, e *kmiptest.Env, scope string) int {
	t.Helper()
	var n int
	err := e.Store.View(context.Background(), func(tx store.Tx) (err error) {
		n, err = tx.CountKMIPObjects(context.Background(), e.Mount, scope)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBatches(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "b", "all", "all")
	cert, _ := e.Credential(t, "b", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4

	t.Run("ok the ID placeholder chains create, activate and get", func(t *testing.T) {
		resp, err := c.Send(batch(v, 0, createAES("ph"), &payloads.ActivateRequestPayload{},
			&payloads.GetAttributesRequestPayload{AttributeName: []gokmip.AttributeName{gokmip.AttributeNameState}},
			&payloads.GetRequestPayload{}))
		if err != nil {
			t.Fatal(err)
		}
		id := resp.BatchItem[0].ResponsePayload.(*payloads.CreateResponsePayload).UniqueIdentifier
		for i, it := range resp.BatchItem {
			if it.ResultStatus != gokmip.ResultStatusSuccess {
				t.Fatalf("item %d: %v %q", i, it.ResultReason, it.ResultMessage)
			}
			if !bytes.Equal(it.UniqueBatchItemID, []byte{0, 0, 0, 0, 0, 0, 0, byte(i)}) {
				t.Fatalf("item %d: batch item id %x", i, it.UniqueBatchItemID)
			}
		}
		ga := resp.BatchItem[2].ResponsePayload.(*payloads.GetAttributesResponsePayload)
		if ga.UniqueIdentifier != id || ga.Attribute[0].AttributeValue != gokmip.StateActive {
			t.Fatalf("get attributes: %+v", ga)
		}
	})
	t.Run("fail no placeholder", func(t *testing.T) {
		mustFail(t, do(t, c, v, &payloads.ActivateRequestPayload{}), gokmip.ResultReasonInvalidField)
	})
	t.Run("fail a Locate that finds nothing empties the placeholder", func(t *testing.T) {
		resp, err := c.Send(batch(v, gokmip.BatchErrorContinuationOptionContinue, createAES("kept"),
			&payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{{AttributeName: gokmip.AttributeNameName,
				AttributeValue: gokmip.Name{NameValue: "no-such-name", NameType: gokmip.NameTypeUninterpretedTextString}}}},
			&payloads.DestroyRequestPayload{}))
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(resp); len(got) != 3 || got[0] != gokmip.ResultStatusSuccess || got[1] != gokmip.ResultStatusSuccess || got[2] != gokmip.ResultStatusOperationFailed {
			t.Fatalf("statuses %v", got)
		}
		id := resp.BatchItem[0].ResponsePayload.(*payloads.CreateResponsePayload).UniqueIdentifier
		if it := do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id}); it.ResultStatus != gokmip.ResultStatusSuccess {
			t.Fatalf("the created key is gone: %v %q", it.ResultReason, it.ResultMessage)
		}
	})

	bad := &payloads.GetRequestPayload{UniqueIdentifier: "no-such-object"}
	t.Run("ok stop is the default", func(t *testing.T) {
		before := countObjects(t, e, "b")
		resp, err := c.Send(batch(v, 0, createAES("s1"), bad, createAES("s2")))
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(resp); len(got) != 2 || got[0] != gokmip.ResultStatusSuccess || got[1] != gokmip.ResultStatusOperationFailed {
			t.Fatalf("statuses %v", got)
		}
		if resp.Header.BatchCount != 2 || countObjects(t, e, "b") != before+1 {
			t.Fatalf("batch count %d, objects %d (before %d)", resp.Header.BatchCount, countObjects(t, e, "b"), before)
		}
	})
	t.Run("ok continue", func(t *testing.T) {
		before := countObjects(t, e, "b")
		resp, err := c.Send(batch(v, gokmip.BatchErrorContinuationOptionContinue, createAES("c1"), bad, createAES("c2")))
		if err != nil {
			t.Fatal(err)
		}
		got := statuses(resp)
		if len(got) != 3 || got[0] != gokmip.ResultStatusSuccess || got[1] != gokmip.ResultStatusOperationFailed || got[2] != gokmip.ResultStatusSuccess {
			t.Fatalf("statuses %v", got)
		}
		if countObjects(t, e, "b") != before+2 {
			t.Fatal("continue did not create both keys")
		}
	})
	t.Run("ok undo undoes what succeeded", func(t *testing.T) {
		before := countObjects(t, e, "b")
		raw, err := c.Raw(ttlv.MarshalTTLV(batch(v, gokmip.BatchErrorContinuationOptionUndo, createAES("u1"), createAES("u2"), bad, createAES("u3"))))
		if err != nil {
			t.Fatal(err)
		}
		var resp gokmip.ResponseMessage
		if err := ttlv.UnmarshalTTLV(raw, &resp); err != nil {
			t.Fatal(err)
		}
		got := statuses(&resp)
		if len(got) != 3 || got[0] != gokmip.ResultStatusOperationUndone || got[1] != gokmip.ResultStatusOperationUndone || got[2] != gokmip.ResultStatusOperationFailed {
			t.Fatalf("statuses %v", got)
		}
		if resp.BatchItem[0].ResponsePayload != nil || resp.BatchItem[2].ResultReason != gokmip.ResultReasonItemNotFound {
			t.Fatalf("undone items: %+v", resp.BatchItem)
		}
		// KMIP wants a Result Reason with every status but Success and
		// Pending; without one PyKMIP cannot read the answer.
		for _, it := range resp.BatchItem[:2] {
			if it.ResultReason != gokmip.ResultReasonOperationCanceledByRequester {
				t.Fatalf("an undone item's reason: %v", it.ResultReason)
			}
		}
		pykmipDecodes(t, raw)
		if n := countObjects(t, e, "b"); n != before {
			t.Fatalf("undo left %d objects behind", n-before)
		}
	})
	t.Run("ok undo commits a batch that succeeds", func(t *testing.T) {
		before := countObjects(t, e, "b")
		resp, err := c.Send(batch(v, gokmip.BatchErrorContinuationOptionUndo, createAES("w1"), &payloads.ActivateRequestPayload{}, createAES("w2")))
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(resp); len(got) != 3 || got[2] != gokmip.ResultStatusSuccess {
			t.Fatalf("statuses %v", got)
		}
		if countObjects(t, e, "b") != before+2 {
			t.Fatal("the undo batch did not commit")
		}
	})
	t.Run("fail unknown operation alone", func(t *testing.T) {
		resp, err := c.Send(batch(v, gokmip.BatchErrorContinuationOptionContinue,
			gokmip.NewUnknownPayload(gokmip.OperationCheck), &payloads.DiscoverVersionsRequestPayload{}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.BatchItem[0].ResultReason != gokmip.ResultReasonOperationNotSupported || resp.BatchItem[1].ResultStatus != gokmip.ResultStatusSuccess {
			t.Fatalf("items: %+v", resp.BatchItem)
		}
	})
	t.Run("ok responses in the request's version", func(t *testing.T) {
		for _, ver := range []gokmip.ProtocolVersion{gokmip.V1_0, gokmip.V1_1, gokmip.V1_2, gokmip.V1_3, gokmip.V1_4} {
			resp, err := c.Send(batch(ver, 0, &payloads.QueryRequestPayload{QueryFunction: []gokmip.QueryFunction{gokmip.QueryFunctionOperations}}))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Header.ProtocolVersion != ver || resp.BatchItem[0].ResultStatus != gokmip.ResultStatusSuccess {
				t.Fatalf("%v: %+v", ver, resp)
			}
		}
		// Discover Versions is KMIP 1.1.
		mustFail(t, do(t, c, gokmip.V1_0, &payloads.DiscoverVersionsRequestPayload{}), gokmip.ResultReasonOperationNotSupported)
	})
}

func TestDiscoverAndQuery(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "q", "all", "all")
	cert, _ := e.Credential(t, "q", "all")
	c := e.Dial(t, cert)
	dv := must[*payloads.DiscoverVersionsResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}))
	if len(dv.ProtocolVersion) != 5 || dv.ProtocolVersion[0] != gokmip.V1_4 || dv.ProtocolVersion[4] != gokmip.V1_0 {
		t.Fatalf("versions: %v", dv.ProtocolVersion)
	}
	dv = must[*payloads.DiscoverVersionsResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{
		ProtocolVersion: []gokmip.ProtocolVersion{{ProtocolVersionMajor: 2, ProtocolVersionMinor: 0}, gokmip.V1_2}}))
	if len(dv.ProtocolVersion) != 1 || dv.ProtocolVersion[0] != gokmip.V1_2 {
		t.Fatalf("common versions: %v", dv.ProtocolVersion)
	}
	q := must[*payloads.QueryResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.QueryRequestPayload{QueryFunction: []gokmip.QueryFunction{
		gokmip.QueryFunctionOperations, gokmip.QueryFunctionObjects, gokmip.QueryFunctionServerInformation, gokmip.QueryFunctionCapabilities}}))
	has := func(op gokmip.Operation) bool {
		for _, o := range q.Operations {
			if o == op {
				return true
			}
		}
		return false
	}
	for _, op := range []gokmip.Operation{gokmip.OperationLocate, gokmip.OperationReKey, gokmip.OperationCreateKeyPair, gokmip.OperationReKeyKeyPair,
		gokmip.OperationEncrypt, gokmip.OperationDecrypt, gokmip.OperationSign, gokmip.OperationSignatureVerify,
		gokmip.OperationMAC, gokmip.OperationMACVerify, gokmip.OperationHash, gokmip.OperationRNGRetrieve, gokmip.OperationRNGSeed} {
		if !has(op) {
			t.Fatalf("operations %v lack %v", q.Operations, op)
		}
	}
	if has(gokmip.OperationImport) || has(gokmip.OperationArchive) {
		t.Fatalf("operations %v list ones the server does not do", q.Operations)
	}
	if len(q.ObjectType) != 6 || q.VendorIdentification != "Keyhold test" || len(q.CapabilityInformation) != 1 ||
		!*q.CapabilityInformation[0].BatchUndoCapability || *q.CapabilityInformation[0].StreamingCapability {
		t.Fatalf("query: %+v", q)
	}
}

// One small message cannot make the server hold and send an unbounded
// answer: values past the server's budget for one answer (random bytes
// here) fail with Response Too Large, the items before them are answered.
func TestAnswerSizeIsBounded(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "b", "all", "all")
	cert, _ := e.Credential(t, "b", "all")
	c := e.Dial(t, cert)
	var pls []gokmip.OperationPayload
	for range 40 {
		pls = append(pls, &wire.RNGRetrieveRequestPayload{DataLength: 1 << 20})
	}
	ok, tooLarge := answeredOrTooLarge(t, c, batch(gokmip.V1_4, gokmip.BatchErrorContinuationOptionContinue, pls...))
	if ok != 28 || tooLarge != 12 {
		t.Fatalf("%d items answered and %d refused as too large, want 28 and 12", ok, tooLarge)
	}
}

// Located identifiers count toward the same budget: a message of many
// Locates over a scope of many objects gets Response Too Large for the
// items past it, and the answer stays bounded.
// A Locate's filters are bounded once equal ones are merged: each is a
// subquery of the store's query.
func TestLocateFiltersAreBounded(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "b", "all", "all")
	cert, _ := e.Credential(t, "b", "all")
	c := e.Dial(t, cert)
	mustSucceed := func(it *gokmip.ResponseBatchItem) {
		t.Helper()
		if it.ResultStatus != gokmip.ResultStatusSuccess {
			t.Fatalf("%v %q", it.ResultReason, it.ResultMessage)
		}
	}
	mustSucceed(do(t, c, gokmip.V1_4, createAES("f1")))
	same := make([]gokmip.Attribute, 500)
	for i := range same {
		same[i] = gokmip.Attribute{AttributeName: gokmip.AttributeNameState, AttributeValue: gokmip.StatePreActive}
	}
	it := do(t, c, gokmip.V1_4, &payloads.LocateRequestPayload{Attribute: same})
	mustSucceed(it)
	if n := len(it.ResponsePayload.(*payloads.LocateResponsePayload).UniqueIdentifier); n != 1 {
		t.Fatalf("500 equal filters found %d objects, want 1", n)
	}
	var different []gokmip.Attribute
	for i := range 65 {
		different = append(different, gokmip.Attribute{AttributeName: gokmip.AttributeNameObjectGroup, AttributeValue: fmt.Sprintf("g%d", i)})
	}
	mustFail(t, do(t, c, gokmip.V1_4, &payloads.LocateRequestPayload{Attribute: different}), gokmip.ResultReasonInvalidField)
	mustSucceed(do(t, c, gokmip.V1_4, &payloads.LocateRequestPayload{Attribute: different[:64]}))
}

func TestLocateAnswersAreBounded(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "b", "all", "all")
	cert, _ := e.Credential(t, "b", "all")
	c := e.Dial(t, cert)
	var creates []gokmip.OperationPayload
	for i := range 700 {
		creates = append(creates, createAES(fmt.Sprintf("k%d", i)))
	}
	resp, err := c.Send(batch(gokmip.V1_4, gokmip.BatchErrorContinuationOptionContinue, creates...))
	if err != nil || len(resp.BatchItem) != 700 {
		t.Fatalf("creates: %v", err)
	}
	var locates []gokmip.OperationPayload
	for range 1024 {
		locates = append(locates, &payloads.LocateRequestPayload{})
	}
	out, err := c.Raw(ttlv.MarshalTTLV(batch(gokmip.V1_4, gokmip.BatchErrorContinuationOptionContinue, locates...)))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > 32<<20 {
		t.Fatalf("an answer of %d bytes", len(out))
	}
	var r gokmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(out, &r); err != nil || len(r.BatchItem) != 1024 {
		t.Fatalf("response: %v", err)
	}
	ok, tooLarge := 0, 0
	for _, it := range r.BatchItem {
		switch {
		case it.ResultStatus == gokmip.ResultStatusSuccess && len(it.ResponsePayload.(*payloads.LocateResponsePayload).UniqueIdentifier) == 700:
			ok++
		case it.ResultReason == gokmip.ResultReasonResponseTooLarge:
			tooLarge++
		}
	}
	if ok == 0 || tooLarge == 0 || ok+tooLarge != 1024 {
		t.Fatalf("%d whole answers, %d refused as too large, of 1024", ok, tooLarge)
	}
	// Paging is the way: a Locate with Maximum Items fits.
	page := must[*payloads.LocateResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.LocateRequestPayload{MaximumItems: 10, OffsetItems: 690}))
	if len(page.UniqueIdentifier) != 10 {
		t.Fatalf("a page of %d", len(page.UniqueIdentifier))
	}
}

// What clients store in attributes is bounded (a value, an object's
// attributes), dates are within 1970-9999, and the attributes Get
// Attributes answers count against the answer's budget: a batch asking
// again and again for a large attribute is refused item by item instead of
// building an answer of gigabytes.
func TestAttributeBounds(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "b", "all", "all")
	cert, _ := e.Credential(t, "b", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	created := must[*payloads.CreateResponsePayload](t, do(t, c, v, createAES("bounds")))
	id := created.UniqueIdentifier
	add := func(name string, val any) *gokmip.ResponseBatchItem {
		return do(t, c, v, &payloads.AddAttributeRequestPayload{UniqueIdentifier: id, Attribute: gokmip.Attribute{AttributeName: gokmip.AttributeName(name), AttributeValue: val}})
	}
	mustFail(t, add("x-too-big", strings.Repeat("x", 70<<10)), gokmip.ResultReasonInvalidField)
	big := strings.Repeat("y", 60<<10)
	for i := range 17 {
		if it := add(fmt.Sprintf("x-big-%d", i), big); it.ResultStatus != gokmip.ResultStatusSuccess {
			t.Fatalf("attribute %d of 60 KiB: %v %q", i, it.ResultReason, it.ResultMessage)
		}
	}
	// 18 × 60 KiB is over an object's 1 MiB.
	mustFail(t, add("x-big-17", big), gokmip.ResultReasonInvalidField)
	far := &payloads.CreateRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, TemplateAttribute: aesTemplate("far", 128)}
	far.TemplateAttribute.Attribute = append(far.TemplateAttribute.Attribute, gokmip.Attribute{AttributeName: gokmip.AttributeNameActivationDate,
		AttributeValue: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).AddDate(1, 0, 0)})
	mustFail(t, do(t, c, v, far), gokmip.ResultReasonInvalidField)

	var gets []gokmip.OperationPayload
	for range 1024 {
		gets = append(gets, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: []gokmip.AttributeName{"x-big-0", "x-big-1"}})
	}
	ok, tooLarge := answeredOrTooLarge(t, c, batch(v, gokmip.BatchErrorContinuationOptionContinue, gets...))
	if ok == 0 || tooLarge == 0 || ok+tooLarge != 1024 {
		t.Fatalf("%d answered, %d refused as too large, of 1024", ok, tooLarge)
	}
}

// answeredOrTooLarge sends a batch, checks that its answer stays within
// 32 MiB and holds an item for each request, and counts the items answered
// and those refused as too large.
func answeredOrTooLarge(t *testing.T, c *kmiptest.Client, req *gokmip.RequestMessage) (ok, tooLarge int) {
	t.Helper()
	out, err := c.Raw(ttlv.MarshalTTLV(req))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > 32<<20 {
		t.Fatalf("an answer of %d bytes", len(out))
	}
	var resp gokmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(out, &resp); err != nil || len(resp.BatchItem) != len(req.BatchItem) {
		t.Fatalf("response: %v", err)
	}
	for _, it := range resp.BatchItem {
		switch {
		case it.ResultStatus == gokmip.ResultStatusSuccess:
			ok++
		case it.ResultReason == gokmip.ResultReasonResponseTooLarge:
			tooLarge++
		}
	}
	return ok, tooLarge
}

// A Maximum Response Size that cannot hold even a bare failure per item is
// refused before anything runs: a Create would otherwise make its key and
// still answer Response Too Large.
func TestMaximumResponseSizeTooSmall(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "b", "all", "all")
	cert, _ := e.Credential(t, "b", "all")
	c := e.Dial(t, cert)
	send := func(max int32) *gokmip.ResponseMessage {
		t.Helper()
		req := batch(gokmip.V1_4, 0, createAES("m1"))
		req.Header.MaximumResponseSize = max
		resp, err := c.Send(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	before := countObjects(t, e, "b")
	resp := send(64)
	if it := resp.BatchItem[0]; it.ResultReason != gokmip.ResultReasonResponseTooLarge || !strings.Contains(it.ResultMessage, "nothing was run") {
		t.Fatalf("item %+v", it)
	}
	if n := countObjects(t, e, "b"); n != before {
		t.Fatalf("%d objects made by a refused message", n-before)
	}
	if it := send(4096).BatchItem[0]; it.ResultStatus != gokmip.ResultStatusSuccess {
		t.Fatalf("a Create with room for its answer: %v %q", it.ResultReason, it.ResultMessage)
	}
}

// An item that changes something runs only if its answer is sure to fit the
// Maximum Response Size, and once it ran it is answered as it ended: at no
// limit may a Create make a key and answer Response Too Large. An item that
// changes nothing (a Get) fails alone when its answer does not fit.
func TestMaximumResponseSizeItemByItem(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "b", "all", "all")
	cert, _ := e.Credential(t, "b", "all")
	c := e.Dial(t, cert)
	big := must[*payloads.RegisterResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.RegisterRequestPayload{
		ObjectType: gokmip.ObjectTypeSecretData, Object: secretData(fill(8192, 7))})).UniqueIdentifier
	var mixed, allRan int
	for limit := int32(100); limit <= 3000; limit += 25 {
		for _, opt := range []gokmip.BatchErrorContinuationOption{gokmip.BatchErrorContinuationOptionContinue, gokmip.BatchErrorContinuationOptionUndo} {
			name := func(k int) string { return fmt.Sprintf("fit-%d-%d-%d", limit, opt, k) }
			req := batch(gokmip.V1_4, opt, createAES(name(1)), createAES(name(2)), &payloads.GetRequestPayload{UniqueIdentifier: big})
			if opt == gokmip.BatchErrorContinuationOptionUndo {
				req = batch(gokmip.V1_4, opt, createAES(name(1)), &payloads.GetRequestPayload{UniqueIdentifier: big})
			}
			req.Header.MaximumResponseSize = limit
			before := countObjects(t, e, "b")
			resp, err := c.Send(req)
			if err != nil {
				t.Fatal(err)
			}
			created, tooLarge := 0, 0
			for _, it := range resp.BatchItem {
				switch {
				case it.Operation == gokmip.OperationCreate && it.ResultStatus == gokmip.ResultStatusSuccess:
					created++
				case it.ResultReason == gokmip.ResultReasonResponseTooLarge:
					tooLarge++
				case it.Operation == gokmip.OperationGet && it.ResultStatus == gokmip.ResultStatusSuccess:
					t.Fatalf("limit %d: an 8 KiB Get answered in full", limit)
				}
			}
			if got := countObjects(t, e, "b") - before; got != created {
				t.Fatalf("limit %d, %v: %d keys made, %d Creates answered success (answers %v, %d too large)", limit, opt, got, created, statuses(resp), tooLarge)
			}
			if opt == gokmip.BatchErrorContinuationOptionContinue {
				if created > 0 && tooLarge > 0 {
					mixed++
				}
				if created == 2 {
					allRan++
				}
			}
		}
	}
	if mixed == 0 || allRan == 0 {
		t.Fatalf("no limit let a Create run beside a Get too large (%d), or both Creates (%d)", mixed, allRan)
	}
}

// A batch item with a critical Message Extension the server does not
// recognise fails with Feature Not Supported (KMIP 1.4 §11, test case
// TC-72-10 of 1.0); a non-critical one is ignored.
func TestMessageExtensions(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "x", "all", "all")
	cert, _ := e.Credential(t, "x", "all")
	c := e.Dial(t, cert)
	for _, critical := range []bool{true, false} {
		req := batch(gokmip.V1_4, 0, &payloads.QueryRequestPayload{QueryFunction: []gokmip.QueryFunction{gokmip.QueryFunctionOperations}})
		req.BatchItem[0].MessageExtension = &gokmip.MessageExtension{VendorIdentification: "ACME", CriticalityIndicator: critical}
		resp, err := c.Send(req)
		if err != nil {
			t.Fatal(err)
		}
		it := resp.BatchItem[0]
		if critical && (it.ResultStatus != gokmip.ResultStatusOperationFailed || it.ResultReason != gokmip.ResultReasonFeatureNotSupported) {
			t.Fatalf("critical extension: %v %v %q", it.ResultStatus, it.ResultReason, it.ResultMessage)
		}
		if !critical && it.ResultStatus != gokmip.ResultStatusSuccess {
			t.Fatalf("non-critical extension: %v %v %q", it.ResultStatus, it.ResultReason, it.ResultMessage)
		}
	}
}
