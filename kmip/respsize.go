package kmip

import (
	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/ovh/kmip-go"
)

// answerFit keeps a batch's answer within the client's Maximum Response
// Size item by item, so that an item that changes something never runs when
// its answer might not fit, and is never reported as failed once it ran.
//
// The answer grows by each item's encoded answer. Before an item that may
// change state runs, the answers so far, a bound on its own answer and a
// bare failure for every later item must fit; if not, it fails with
// Response Too Large without running. An item that changes nothing (Get,
// Get Attributes, ...) runs, and its answer becomes Response Too Large if
// it does not fit.
type answerFit struct {
	s     *server
	v     kmip.ProtocolVersion
	req   *wire.Request
	limit int
	used  int   // the message without items, and the items answered so far
	rest  []int // rest[i]: the bare failures of items i.. together
	base  int   // an encoded response message without items
}

// changeAnswerRoom bounds what the answer of an item that may change state
// adds to its request's size: the Unique Identifiers, attributes and
// padding it returns that the request did not hold, or a failure message;
// an RSA-8192 Encrypt or Sign of one byte answers 1 KiB. A Delete
// Attribute also returns the attribute it deleted, and the last part of a
// streamed operation what the token held back (it checks that itself:
// call.room).
const changeAnswerRoom = 2 << 10

func (s *server) newAnswerFit(v kmip.ProtocolVersion, req *wire.Request, limit int) *answerFit {
	f := &answerFit{s: s, v: v, req: req, limit: limit, rest: make([]int, len(req.Items)+1)}
	f.base = f.encodedSize(nil)
	f.used = f.base
	bare := errorf(kmip.ResultReasonResponseTooLarge, "")
	for i := len(req.Items) - 1; i >= 0; i-- {
		r := failed(req.Items[i], bare)
		f.rest[i] = f.rest[i+1] + f.itemSize(&r)
	}
	return f
}

// least is the size of the smallest answer: each item a bare failure.
func (f *answerFit) least() int { return f.base + f.rest[0] }

// encodedSize is the size of an answer to the request holding only r (or
// no item).
func (f *answerFit) encodedSize(r *kmip.ResponseBatchItem) int {
	resp := &kmip.ResponseMessage{Header: kmip.ResponseHeader{ProtocolVersion: f.v, TimeStamp: f.s.m.o.Now().UTC(),
		ClientCorrelationValue: f.req.Header.ClientCorrelationValue, BatchCount: int32(len(f.req.Items))}}
	if r != nil {
		resp.BatchItem = []kmip.ResponseBatchItem{*r}
	}
	out, err := wire.EncodeResponse(resp)
	if err != nil {
		return 1 << 30 // fits nothing
	}
	return len(out)
}

// itemSize is what item r adds to an answer.
func (f *answerFit) itemSize(r *kmip.ResponseBatchItem) int { return f.encodedSize(r) - f.base }

// bound is the most the answer of item it may take if it changes state.
func answerBound(it wire.Item) int {
	n := it.Size + changeAnswerRoom
	if it.Operation == kmip.OperationDeleteAttribute {
		n += maxAttributeBytes + attrOverhead
	}
	return n
}

// admits reports whether item i (which may change state) may run.
func (f *answerFit) admits(i int, it wire.Item) error {
	if f.used+answerBound(it)+f.rest[i+1] > f.limit {
		return errorf(kmip.ResultReasonResponseTooLarge, "the answer to this item might not fit in the Maximum Response Size of %d bytes; it was not run", f.limit)
	}
	return nil
}

// settle adds item i's answer r to the answer, first replacing it by a
// Response Too Large failure if it does not fit (only an item that changed
// nothing can come to that). It reports whether r was replaced.
func (f *answerFit) settle(i int, r *kmip.ResponseBatchItem) bool {
	n := f.itemSize(r)
	if f.used+n+f.rest[i+1] <= f.limit {
		f.used += n
		return false
	}
	*r = failed(f.req.Items[i], errorf(kmip.ResultReasonResponseTooLarge, "the answer to this item does not fit in the Maximum Response Size of %d bytes", f.limit))
	if n = f.itemSize(r); f.used+n+f.rest[i+1] > f.limit {
		*r = failed(f.req.Items[i], errorf(kmip.ResultReasonResponseTooLarge, ""))
		n = f.rest[i] - f.rest[i+1]
	}
	f.used += n
	return true
}

// room fails with Response Too Large, before the operation changes
// anything, if an answer of about n bytes would not fit the client's
// Maximum Response Size: for an operation whose answer the request does
// not bound (the last part of a stream returns what the token held back).
func (c *call) room(n int) error {
	f := c.b.fit
	if f == nil || f.used+n+f.rest[c.index+1] <= f.limit {
		return nil
	}
	return errorf(kmip.ResultReasonResponseTooLarge, "the answer to this item (about %d bytes) would not fit in the Maximum Response Size of %d bytes; nothing was done", n, f.limit)
}

// fits is room for an answer that is built before the operation changes
// anything (a Get clears Fresh once it has its answer): it measures the
// encoded answer itself.
func (c *call) fits(op kmip.Operation, payload kmip.OperationPayload) error {
	f := c.b.fit
	if f == nil {
		return nil
	}
	r := kmip.ResponseBatchItem{Operation: op, UniqueBatchItemID: c.itemID, ResultStatus: kmip.ResultStatusSuccess, ResponsePayload: payload}
	return c.room(f.itemSize(&r))
}
