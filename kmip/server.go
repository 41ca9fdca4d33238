package kmip

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// server handles the messages of one mount: it decodes a request, runs its
// batch items and encodes the response. Connections and TLS are the
// listener's; the server sees a message and the authenticated peer.
type server struct {
	m     *Manager
	mount string
	st    atomic.Pointer[state]
	ops   map[kmip.Operation]opSpec
	seq   atomic.Uint64 // request ids
}

// peer is the authenticated client of a connection.
type peer struct {
	serial string // the client certificate's serial, decimal
	remote string
}

// supportedVersions are answered to Discover Versions, newest first.
var supportedVersions = []kmip.ProtocolVersion{kmip.V1_4, kmip.V1_3, kmip.V1_2, kmip.V1_1, kmip.V1_0}

func supported(v kmip.ProtocolVersion) bool {
	return v.ProtocolVersionMajor == 1 && v.ProtocolVersionMinor >= 0 && v.ProtocolVersionMinor <= 4
}

// maxBatchItems bounds the batch items of one request, so that one message
// cannot ask for an unbounded amount of HSM work.
const maxBatchItems = 1024

// maxResponseBytes bounds the answer to one message, whatever Maximum
// Response Size the client asks for: a small request of many RNG Retrieve
// or Get items could otherwise make the server hold and send a gigabyte.
// Values (random bytes, objects) may add up to maxValueBytes, or to the
// mount's max_message_bytes if that is larger (an object registered in one
// message can be fetched in one); items that would pass it fail with
// Response Too Large (RNG Retrieve and Get count what they return before
// they make it). The encoding gets 4 MiB more, and an answer that still
// comes out larger is refused whole.
const (
	maxResponseBytes = 32 << 20
	maxValueBytes    = maxResponseBytes - encodingRoom
	encodingRoom     = 4 << 20
)

// valueBudget is what the values of one answer may add up to.
func (b *batch) valueBudget() int {
	return max(maxValueBytes, b.st.cfg.MaxMessageBytes)
}

// parseLimits bound what a request may nest and hold.
var parseLimits = wire.Limits{MaxDepth: 24, MaxItems: 1 << 16}

// handle serves one request message and returns the encoded response, and
// whether the connection must close after it (the peer's credential is
// gone). It never panics: a failure of the server becomes a General
// Failure answer.
func (s *server) handle(ctx context.Context, p *peer, msg []byte) (out []byte, closeConn bool) {
	dbg := s.m.dbg
	defer func() {
		if r := recover(); r != nil {
			s.m.o.Logger.Error("kmip: panic serving a request", "mount", s.mount, "panic", fmt.Sprint(r))
			out, closeConn = s.messageError(kmip.V1_0, &Error{Reason: kmip.ResultReasonGeneralFailure, Msg: "internal error"}), true
		}
	}()
	dbg.logf(ctx, dbg.decoding, "message framed", "mount", s.mount, "bytes", len(msg))
	root, err := wire.Parse(msg, parseLimits)
	if err != nil {
		dbg.logf(ctx, dbg.decoding, "message refused by the structural check", "mount", s.mount, "error", err)
		s.countRefused(ctx, p, err)
		v, ok := wire.PeekVersion(msg)
		if !ok || !supported(v) {
			v = kmip.V1_0
		}
		return s.messageError(v, err), false
	}
	if dbg.request {
		dbg.logf(ctx, true, "request", "mount", s.mount, "serial", p.serial, "message", wire.Render(msg, root))
	}
	version, _ := wire.Version(msg, root)
	req, err := wire.DecodeRequest(msg, root)
	if err != nil {
		dbg.logf(ctx, dbg.decoding, "request not decoded", "mount", s.mount, "error", err)
		s.countRefused(ctx, p, err)
		return s.messageError(version, err), false
	}
	dbg.logf(ctx, dbg.decoding, "request decoded", "mount", s.mount, "version", version.String(), "batch_items", len(req.Items))
	if len(req.Items) > maxBatchItems {
		err := errorf(kmip.ResultReasonInvalidMessage, "a request may hold at most %d batch items", maxBatchItems)
		s.countRefused(ctx, p, err)
		return s.messageError(version, err), false
	}
	if !supported(version) {
		err := errorf(kmip.ResultReasonInvalidMessage, "KMIP %s is not supported (1.0 to 1.4)", version)
		s.countRefused(ctx, p, err)
		return s.messageError(version, err), false
	}
	if err := s.m.sync(ctx); err != nil {
		s.m.o.Logger.Error("kmip: cannot catch up with the other nodes' changes", "mount", s.mount, "error", err)
		err := errorf(kmip.ResultReasonGeneralFailure, "the appliance cannot reach its database")
		s.countRefused(ctx, p, err)
		return s.messageError(version, err), false
	}
	if s.m.pending.Pending(s.mount) {
		err := errorf(kmip.ResultReasonGeneralFailure, "a change made on another node is being loaded; retry")
		s.countRefused(ctx, p, err)
		return s.messageError(version, err), false
	}
	st := s.st.Load()
	cred := st.creds[p.serial]
	if cred == nil {
		err := errorf(kmip.ResultReasonAuthenticationNotSuccessful, "the client certificate is revoked or unknown")
		s.countRefused(ctx, p, err)
		return s.messageError(version, err), true
	}
	// The handshake checked the certificate's validity; a connection kept
	// open must not outlive it.
	if !cred.NotAfter.IsZero() && s.m.o.Now().After(cred.NotAfter) {
		err := errorf(kmip.ResultReasonAuthenticationNotSuccessful, "the client certificate has expired")
		s.countRefused(ctx, p, err)
		return s.messageError(version, err), true
	}
	var fit *answerFit
	if limit := int(req.Header.MaximumResponseSize); limit > 0 {
		fit = s.newAnswerFit(version, req, limit)
		// An answer that cannot fit even as one bare failure per item
		// would be refused whole after the items ran: a Create would
		// make its key and answer Response Too Large. Nothing runs then.
		if least := fit.least(); least > limit {
			err := errorf(kmip.ResultReasonResponseTooLarge, "the Maximum Response Size of %d bytes cannot hold an answer to %d items (at least %d bytes); nothing was run", limit, len(req.Items), least)
			s.countRefused(ctx, p, err)
			return s.failAll(version, req, err), false
		}
	}
	b := &batch{
		s: s, st: st, p: p, cred: cred, role: st.role(cred.Scope, cred.Role),
		version: version, now: s.m.o.Now().UTC(),
		reqID: strconv.FormatUint(s.seq.Add(1), 36) + "-" + randomHex(6),
		fit:   fit,
	}
	items := b.run(ctx, req)
	resp := &kmip.ResponseMessage{
		Header: kmip.ResponseHeader{
			ProtocolVersion:        version,
			TimeStamp:              b.now.Truncate(time.Second),
			ClientCorrelationValue: req.Header.ClientCorrelationValue,
			BatchCount:             int32(len(items)),
		},
		BatchItem: items,
	}
	out, err = wire.EncodeResponse(resp)
	if err == nil && req.Header.MaximumResponseSize > 0 && len(out) > int(req.Header.MaximumResponseSize) {
		out, err = s.tooLarge(resp, int(req.Header.MaximumResponseSize))
	} else if limit := b.valueBudget() + encodingRoom; err == nil && len(out) > limit {
		out, err = s.tooLarge(resp, limit)
	}
	if err != nil {
		s.m.o.Logger.Error("kmip: cannot encode a response", "mount", s.mount, "error", err)
		return s.messageError(version, &Error{Reason: kmip.ResultReasonGeneralFailure, Msg: "internal error"}), false
	}
	s.debugResponse(ctx, out)
	return out, false
}

// failAll answers every item of req with err, none of them run.
func (s *server) failAll(v kmip.ProtocolVersion, req *wire.Request, err error) []byte {
	out, eerr := s.encodeAll(v, req, err)
	if eerr != nil {
		return s.messageError(v, err)
	}
	return out
}

func (s *server) encodeAll(v kmip.ProtocolVersion, req *wire.Request, err error) ([]byte, error) {
	resp := &kmip.ResponseMessage{
		Header: kmip.ResponseHeader{ProtocolVersion: v, TimeStamp: s.m.o.Now().UTC().Truncate(time.Second),
			ClientCorrelationValue: req.Header.ClientCorrelationValue, BatchCount: int32(len(req.Items))},
	}
	for _, it := range req.Items {
		resp.BatchItem = append(resp.BatchItem, failed(it, err))
	}
	return wire.EncodeResponse(resp)
}

// tooLarge replaces every payload by a Response Too Large failure.
func (s *server) tooLarge(resp *kmip.ResponseMessage, limit int) ([]byte, error) {
	for i := range resp.BatchItem {
		it := &resp.BatchItem[i]
		it.ResultStatus, it.ResultReason = kmip.ResultStatusOperationFailed, kmip.ResultReasonResponseTooLarge
		it.ResultMessage = fmt.Sprintf("the response is larger than the Maximum Response Size of %d bytes", limit)
		it.ResponsePayload = nil
	}
	return wire.EncodeResponse(resp)
}

func (s *server) debugResponse(ctx context.Context, out []byte) {
	if !s.m.dbg.response {
		return
	}
	root, err := wire.Parse(out, wire.Limits{})
	if err != nil {
		s.m.dbg.logf(ctx, true, "response does not parse", "mount", s.mount, "error", err)
		return
	}
	s.m.dbg.logf(ctx, true, "response", "mount", s.mount, "message", wire.Render(out, root))
}

// messageError is the answer to a message that cannot be served at all: one
// batch item without an operation, carrying the failure.
func (s *server) messageError(v kmip.ProtocolVersion, err error) []byte {
	reason, msg, internal := reasonOf(err)
	if internal {
		s.m.o.Logger.Error("kmip: request failed", "mount", s.mount, "error", err)
	}
	resp := &kmip.ResponseMessage{
		Header: kmip.ResponseHeader{ProtocolVersion: v, TimeStamp: s.m.o.Now().UTC().Truncate(time.Second), BatchCount: 1},
		BatchItem: []kmip.ResponseBatchItem{{
			ResultStatus: kmip.ResultStatusOperationFailed, ResultReason: reason, ResultMessage: msg,
		}},
	}
	out, eerr := wire.EncodeResponse(resp)
	if eerr != nil {
		resp.Header.ProtocolVersion = kmip.V1_0
		out, _ = wire.EncodeResponse(resp)
	}
	s.debugResponse(context.Background(), out)
	return out
}

// countRefused records a message refused before any batch item ran, in the
// metrics and, when auditing, the audit trail.
func (s *server) countRefused(ctx context.Context, p *peer, err error) {
	reason, msg, _ := reasonOf(err)
	if mx := s.m.o.Metrics; mx != nil {
		mx.Request("kmip", "message", statusOf(reason, true), 0)
		mx.Error("kmip", ttlv.EnumStr(reason))
	}
	if a := s.m.o.Audit; a != nil && a.Enabled() {
		e := &audit.Entry{
			RequestID: "refused-" + randomHex(8), Interface: audit.KMIP, Operation: "message",
			Auth: audit.Principal{CertSerial: p.serial, RemoteAddr: p.remote},
		}
		if a.LogRequest(ctx, e) == nil {
			e.Status, e.Error, e.KMIPResultReason = statusOf(reason, true), msg, ttlv.EnumStr(reason)
			_ = a.LogResponse(context.WithoutCancel(ctx), e)
		}
	}
}

// batch is the processing of one request message's batch items.
type batch struct {
	s       *server
	st      *state
	p       *peer
	cred    *credRecord
	role    *Role
	version kmip.ProtocolVersion
	now     time.Time
	reqID   string
	// placeholder is the ID Placeholder (KMIP 1.4 §2.1.? "ID Placeholder"):
	// the id the last Create, Register, Re-key or single-result Locate
	// returned, used by later items that omit their Unique Identifier.
	placeholder string
	tx          store.Tx   // the transaction of an Undo batch
	written     []string   // cache keys of the objects an Undo batch changed
	spent       int        // bytes of values the answer carries so far (spend)
	fit         *answerFit // the client's Maximum Response Size, if it set one
}

// spend counts n bytes of values toward the answer's maxValueBytes, or
// refuses the item that would carry them.
func (b *batch) spend(n int) error {
	if budget := b.valueBudget(); b.spent+n > budget {
		return errorf(kmip.ResultReasonResponseTooLarge, "the answer to this message would carry more than the server's %d bytes of values", budget)
	}
	b.spent += n
	return nil
}

// errUndo aborts the transaction of an Undo batch.
var errUndo = errors.New("kmip: batch undone")

// run executes the batch items in order (Batch Order Option does not change
// that: processing in order is always allowed) under the Batch Error
// Continuation Option: Stop (the default) answers the items up to the first
// failure; Continue answers every item; Undo runs the batch in one
// transaction and, if an item fails, undoes the others, whose status
// becomes Operation Undone.
func (b *batch) run(ctx context.Context, req *wire.Request) []kmip.ResponseBatchItem {
	opt := req.Header.BatchErrorContinuationOption
	if opt == 0 {
		opt = kmip.BatchErrorContinuationOptionStop
	}
	switch opt {
	case kmip.BatchErrorContinuationOptionStop, kmip.BatchErrorContinuationOptionContinue:
		var out []kmip.ResponseBatchItem
		for i, it := range req.Items {
			r, ev := b.item(ctx, i, it)
			b.fitAnswer(i, &r)
			b.finish(ctx, ev, &r)
			out = append(out, r)
			if r.ResultStatus != kmip.ResultStatusSuccess && opt == kmip.BatchErrorContinuationOptionStop {
				break
			}
		}
		return out
	case kmip.BatchErrorContinuationOptionUndo:
		return b.runUndo(ctx, req)
	}
	out := make([]kmip.ResponseBatchItem, len(req.Items))
	for i, it := range req.Items {
		out[i] = failed(it, errorf(kmip.ResultReasonInvalidField, "unknown Batch Error Continuation Option %d", opt))
	}
	return out
}

// An Undo batch runs in one store transaction, which holds the store's
// write lock: every other write, of every scope and mount, waits for it.
// So an Undo batch holds at most maxUndoItems items, generates no key pairs
// (RSA key generation can take seconds), and an item that would start
// after undoTimeBudget fails, which undoes the batch.
const maxUndoItems = 64

// undoTimeBudget bounds when an item of an Undo batch may start;
// undoItemGrace how long after that the items' context ends, which stops
// a long store query (a Locate) of the item then running.
var (
	undoTimeBudget = 2 * time.Second
	undoItemGrace  = time.Second
)

// undoRefusal is why a whole Undo batch is refused before it runs, or nil.
func undoRefusal(req *wire.Request) error {
	if len(req.Items) > maxUndoItems {
		return errorf(kmip.ResultReasonFeatureNotSupported, "an Undo batch may hold at most %d items (it holds the store's write lock while it runs); use Stop or Continue", maxUndoItems)
	}
	for _, it := range req.Items {
		if it.Operation == kmip.OperationCreateKeyPair || it.Operation == kmip.OperationReKeyKeyPair {
			return errorf(kmip.ResultReasonFeatureNotSupported, "an Undo batch cannot generate key pairs (%s): it holds the store's write lock while it runs; use Stop or Continue", ttlv.EnumStr(it.Operation))
		}
	}
	return nil
}

func (b *batch) runUndo(ctx context.Context, req *wire.Request) []kmip.ResponseBatchItem {
	if err := undoRefusal(req); err != nil {
		out := make([]kmip.ResponseBatchItem, len(req.Items))
		for i, it := range req.Items {
			out[i] = failed(it, err)
		}
		return out
	}
	var out []kmip.ResponseBatchItem
	var evs []*itemEvent
	start := time.Now()
	ictx, cancel := context.WithDeadline(ctx, start.Add(undoTimeBudget+undoItemGrace))
	defer cancel()
	pastBudget := errorf(kmip.ResultReasonGeneralFailure, "the Undo batch ran past %v, the longest it may hold the store's write lock; it was undone", undoTimeBudget)
	err := b.s.m.o.Store.Update(ctx, func(tx store.Tx) error {
		b.tx = tx
		defer func() { b.tx = nil }()
		out, evs = nil, nil
		for i, it := range req.Items {
			if i > 0 && time.Since(start) > undoTimeBudget {
				out, evs = append(out, failed(it, pastBudget)), append(evs, &itemEvent{op: it.Operation, err: pastBudget})
				return errUndo
			}
			r, ev := b.item(ictx, i, it)
			if r.ResultStatus != kmip.ResultStatusSuccess && ictx.Err() != nil {
				r, ev.err = failed(it, pastBudget), pastBudget
			}
			b.fitAnswer(i, &r)
			out, evs = append(out, r), append(evs, ev)
			if r.ResultStatus != kmip.ResultStatusSuccess {
				return errUndo
			}
		}
		// No change commits before its request event is durable.
		if a := b.s.m.o.Audit; a != nil {
			entries := make([]*audit.Entry, 0, len(evs))
			for _, ev := range evs {
				entries = append(entries, ev.entry)
			}
			if err := a.Persist(ictx, entries...); err != nil {
				b.s.m.o.Logger.Error("kmip: audit trail unavailable; Undo batch undone", "mount", b.s.mount, "error", err)
				return &Error{Reason: kmip.ResultReasonGeneralFailure, Msg: "the audit trail cannot be written; the batch was undone", Err: err}
			}
		}
		return nil
	})
	if len(b.written) > 0 {
		b.s.m.cache.endWrite(b.written)
		b.written = nil
	}
	if err != nil {
		if !errors.Is(err, errUndo) && len(out) > 0 {
			// Every item succeeded but the commit failed: the last item
			// carries the failure, the others are undone.
			last := len(out) - 1
			out[last], evs[last].err = failed(req.Items[last], err), err
		}
		// An undone item's answer carries a Result Reason, which KMIP
		// requires of every status but Success and Pending (clients such as
		// PyKMIP cannot decode an answer without one): it was undone
		// because the requester asked for Undo.
		undone := "undone: another item of the batch failed, and its Batch Error Continuation Option is Undo"
		if b.fit != nil {
			undone = "" // within a Maximum Response Size: no more room than the answer counted
		}
		for i := range out {
			if out[i].ResultStatus == kmip.ResultStatusSuccess {
				out[i] = kmip.ResponseBatchItem{Operation: out[i].Operation, UniqueBatchItemID: out[i].UniqueBatchItemID,
					ResultStatus: kmip.ResultStatusOperationUndone, ResultReason: kmip.ResultReasonOperationCanceledByRequester, ResultMessage: undone}
			}
		}
	}
	for i := range out {
		b.finish(ctx, evs[i], &out[i])
	}
	return out
}

// fitAnswer keeps item i's answer within the client's Maximum Response
// Size (answerFit). A Locate whose answer is replaced leaves no ID
// Placeholder behind, as one that found nothing.
func (b *batch) fitAnswer(i int, r *kmip.ResponseBatchItem) {
	if b.fit != nil && b.fit.settle(i, r) && r.Operation == kmip.OperationLocate {
		b.placeholder = ""
	}
}

// failed is the answer of an item that failed with err.
func failed(it wire.Item, err error) kmip.ResponseBatchItem {
	reason, msg, _ := reasonOf(err)
	return kmip.ResponseBatchItem{
		Operation: it.Operation, UniqueBatchItemID: it.ID,
		ResultStatus: kmip.ResultStatusOperationFailed, ResultReason: reason, ResultMessage: msg,
	}
}

// itemEvent is what is left to record of an item once it ran: its audit
// entry (nil if not audited), its start time and error.
type itemEvent struct {
	op    kmip.Operation
	entry *audit.Entry
	start time.Time
	err   error
	notes map[string]any // written with the response event
}

// readOnly are the operations that change no stored state (a Get applies
// date-driven state in memory only), whose request event need only be queued,
// and whose answer may run before its size is known (the request does not
// bound what a Locate or an RNG Retrieve returns: an answer too large for
// the client's Maximum Response Size becomes Response Too Large). Two
// write something: a Locate first stores the state changes its scope's
// dates have already made (sweepDue: what any request computes from the
// dates anyway, so nothing a client asked for, and done again if lost),
// and the first Get of an object clears its Fresh attribute, checking the
// Maximum Response Size itself before it writes (call.fits).
var readOnly = map[kmip.Operation]bool{
	kmip.OperationGet:              true,
	kmip.OperationGetAttributes:    true,
	kmip.OperationGetAttributeList: true,
	kmip.OperationLocate:           true,
	kmip.OperationRNGRetrieve:      true,
	kmip.OperationQuery:            true,
	kmip.OperationDiscoverVersions: true,
}

// item runs one batch item: decoding error, operation lookup, the role's
// permission, the audit request event (fail closed), then the operation.
func (b *batch) item(ctx context.Context, i int, it wire.Item) (kmip.ResponseBatchItem, *itemEvent) {
	ev := &itemEvent{op: it.Operation, start: time.Now()}
	fail := func(err error) (kmip.ResponseBatchItem, *itemEvent) {
		ev.err = err
		return failed(it, err), ev
	}
	c := &call{b: b, index: i, itemID: it.ID, sensitive: requestSensitive(it.Payload), respSensitive: map[string][]byte{}}
	if id := requestedID(it.Payload); id != "" {
		c.objects = append(c.objects, id)
	}
	ev.entry = b.auditEntry(i, it, c)
	if ev.entry != nil {
		logRequest := b.s.m.o.Audit.LogRequest
		// An item that changes nothing has its event go out with the
		// response event, durable before the answer is sent. An item of an
		// Undo batch changes nothing until the batch commits, and the batch
		// makes its items' request events durable at once before that
		// (runUndo): not one flush per item under the store's write lock.
		if readOnly[it.Operation] && it.Err == nil || b.tx != nil {
			logRequest = b.s.m.o.Audit.QueueRequest
		}
		if err := logRequest(ctx, ev.entry); err != nil {
			b.s.m.o.Logger.Error("kmip: audit trail unavailable; batch item refused", "mount", b.s.mount, "error", err)
			ev.entry = nil
			return fail(&Error{Reason: kmip.ResultReasonGeneralFailure, Msg: "the audit trail cannot be written; the operation was refused", Err: err})
		}
	}
	if it.Err != nil {
		return fail(it.Err)
	}
	spec, ok := b.s.ops[it.Operation]
	if !ok {
		return fail(errorf(kmip.ResultReasonOperationNotSupported, "operation %s is not supported", ttlv.EnumStr(it.Operation)))
	}
	if spec.since > versionNumber(b.version) {
		return fail(errorf(kmip.ResultReasonOperationNotSupported, "operation %s is not part of KMIP %s", ttlv.EnumStr(it.Operation), b.version))
	}
	if !b.role.allows(it.Operation) {
		return fail(permissionDenied("role %q of scope %q may not %s", b.cred.Role, b.cred.Scope, opNames[it.Operation]))
	}
	if b.fit != nil && !readOnly[it.Operation] {
		if err := b.fit.admits(i, it); err != nil {
			return fail(err)
		}
	}
	payload, err := b.call(ctx, spec, c, it.Payload)
	if ev.entry != nil {
		ev.entry.Objects = c.objects
		ev.entry.Sensitive = c.sensitive
		ev.entry.SensitiveResponse = c.respSensitive
		ev.notes = c.notes
	}
	if err != nil {
		return fail(err)
	}
	return kmip.ResponseBatchItem{
		Operation: it.Operation, UniqueBatchItemID: it.ID, ResultStatus: kmip.ResultStatusSuccess, ResponsePayload: payload,
	}, ev
}

// call runs an item's operation. A panic in it (a bug) fails the item with
// General Failure, logged, instead of the whole message: the item's response
// event is still written, and the transaction of an Undo batch rolls back.
func (b *batch) call(ctx context.Context, spec opSpec, c *call, pl kmip.OperationPayload) (out kmip.OperationPayload, err error) {
	defer func() {
		if r := recover(); r != nil {
			b.s.m.o.Logger.Error("kmip: panic in an operation", "mount", b.s.mount, "panic", fmt.Sprint(r))
			out, err = nil, &Error{Reason: kmip.ResultReasonGeneralFailure, Msg: "internal error"}
		}
	}()
	return spec.fn(ctx, c, pl)
}

// finish writes an item's response audit event and metrics. If the audit
// trail cannot take the response event, the item's answer becomes a
// failure: the client is not told of a result the trail does not hold.
func (b *batch) finish(ctx context.Context, ev *itemEvent, r *kmip.ResponseBatchItem) {
	failedNow := r.ResultStatus != kmip.ResultStatusSuccess
	reason := r.ResultReason
	if ev.err != nil {
		if _, _, internal := reasonOf(ev.err); internal {
			b.s.m.o.Logger.Error("kmip: operation failed", "mount", b.s.mount, "operation", ttlv.EnumStr(ev.op), "error", ev.err)
		}
	}
	if e := ev.entry; e != nil {
		e.Status = statusOf(reason, failedNow)
		e.ResponseData = map[string]any{"result_status": ttlv.EnumStr(r.ResultStatus)}
		for k, v := range ev.notes {
			e.ResponseData[k] = v
		}
		if failedNow {
			e.KMIPResultReason, e.Error = ttlv.EnumStr(reason), r.ResultMessage
		}
		if err := b.s.m.o.Audit.LogResponse(context.WithoutCancel(ctx), e); err != nil {
			b.s.m.o.Logger.Error("kmip: audit trail unavailable; response withheld", "mount", b.s.mount, "error", err)
			msg := "the audit trail cannot be written"
			if b.fit != nil {
				// Within a Maximum Response Size the failure is bare: it
				// takes no more room than the answer already counted.
				msg = ""
			}
			*r = kmip.ResponseBatchItem{
				Operation: r.Operation, UniqueBatchItemID: r.UniqueBatchItemID, ResultStatus: kmip.ResultStatusOperationFailed,
				ResultReason: kmip.ResultReasonGeneralFailure, ResultMessage: msg,
			}
			failedNow, reason = true, kmip.ResultReasonGeneralFailure
		}
	}
	if mx := b.s.m.o.Metrics; mx != nil {
		op := ttlv.EnumStr(ev.op)
		if op == "" {
			op = "unknown"
		}
		mx.Request("kmip", op, statusOf(reason, failedNow), time.Since(ev.start))
		if failedNow {
			mx.Error("kmip", ttlv.EnumStr(reason))
		}
	}
}

// auditEntry describes a batch item for the audit trail, or returns nil
// when no audit device is enabled.
func (b *batch) auditEntry(i int, it wire.Item, c *call) *audit.Entry {
	a := b.s.m.o.Audit
	if a == nil || !a.Enabled() {
		return nil
	}
	return &audit.Entry{
		RequestID: b.reqID + "/" + strconv.Itoa(i),
		Interface: audit.KMIP,
		Auth:      audit.Principal{CertSerial: b.p.serial, Scope: b.cred.Scope, Role: b.cred.Role, RemoteAddr: b.p.remote},
		Operation: ttlv.EnumStr(it.Operation),
		Objects:   c.objects,
		Data:      map[string]any{"protocol_version": b.version.String(), "batch_item": i, "mount": b.s.mount},
		Sensitive: c.sensitive,
	}
}

// requestedID returns the Unique Identifier a request payload names, if any.
func requestedID(pl kmip.OperationPayload) string {
	if pl == nil {
		return ""
	}
	v := reflect.ValueOf(pl)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return ""
	}
	f := v.Elem().FieldByName("UniqueIdentifier")
	if f.IsValid() && f.Kind() == reflect.String {
		return f.String()
	}
	return ""
}
