package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"

	// The payload types register themselves with kmip-go's operation
	// registry; without them every payload decodes as unknown.
	_ "github.com/ovh/kmip-go/payloads"
)

// Request is a decoded request message.
type Request struct {
	Header kmip.RequestHeader
	Items  []Item
}

// Item is one batch item. Operation and ID are read even when the payload
// cannot be decoded; Err then says why, and Payload is nil.
type Item struct {
	Operation kmip.Operation
	ID        []byte // Unique Batch Item ID, echoed in the response
	Payload   kmip.OperationPayload
	Err       error
	Size      int // bytes of the encoded batch item
}

// DecodeError is a request that Parse accepted but whose header or batch
// structure does not decode as a KMIP request.
type DecodeError struct{ Msg string }

func (e *DecodeError) Error() string { return "kmip: " + e.Msg }

// UnsupportedError is a well-formed batch item that asks for something the
// server does not do (a critical Message Extension): Feature Not Supported.
type UnsupportedError struct{ Msg string }

func (e *UnsupportedError) Error() string { return "kmip: " + e.Msg }

// Version returns the protocol version a parsed request message declares,
// if its header carries a well-formed one; an error response is written in
// it.
func Version(msg []byte, root *Node) (kmip.ProtocolVersion, bool) {
	if root == nil || root.Tag != kmip.TagRequestMessage {
		return kmip.ProtocolVersion{}, false
	}
	h := root.Child(kmip.TagRequestHeader)
	if h == nil {
		return kmip.ProtocolVersion{}, false
	}
	pv := h.Child(kmip.TagProtocolVersion)
	if pv == nil {
		return kmip.ProtocolVersion{}, false
	}
	major, minor := pv.Child(kmip.TagProtocolVersionMajor), pv.Child(kmip.TagProtocolVersionMinor)
	if major == nil || minor == nil || major.Type != ttlv.TypeInteger || minor.Type != ttlv.TypeInteger {
		return kmip.ProtocolVersion{}, false
	}
	return kmip.ProtocolVersion{
		ProtocolVersionMajor: int32(binary.BigEndian.Uint32(major.Value(msg))),
		ProtocolVersionMinor: int32(binary.BigEndian.Uint32(minor.Value(msg))),
	}, true
}

// PeekVersion reads the protocol version of a message that Parse refused,
// if it starts as a well-formed request does (Request Message, Request
// Header, Protocol Version with its two Integers), so that the Invalid
// Message answer can be in the client's version.
func PeekVersion(msg []byte) (kmip.ProtocolVersion, bool) {
	if len(msg) < 56 {
		return kmip.ProtocolVersion{}, false
	}
	at := func(off, tag int, typ ttlv.Type, length uint32) bool {
		h := msg[off : off+HeaderSize]
		return int(h[0])<<16|int(h[1])<<8|int(h[2]) == tag && ttlv.Type(h[3]) == typ &&
			(length == 0 || binary.BigEndian.Uint32(h[4:]) == length)
	}
	if !at(0, kmip.TagRequestMessage, ttlv.TypeStructure, 0) || !at(8, kmip.TagRequestHeader, ttlv.TypeStructure, 0) ||
		!at(16, kmip.TagProtocolVersion, ttlv.TypeStructure, 32) || !at(24, kmip.TagProtocolVersionMajor, ttlv.TypeInteger, 4) ||
		!at(40, kmip.TagProtocolVersionMinor, ttlv.TypeInteger, 4) {
		return kmip.ProtocolVersion{}, false
	}
	return kmip.ProtocolVersion{
		ProtocolVersionMajor: int32(binary.BigEndian.Uint32(msg[32:])),
		ProtocolVersionMinor: int32(binary.BigEndian.Uint32(msg[48:])),
	}, true
}

// DecodeRequest decodes a request message that Parse accepted. A defect of
// the header or of the message's layout fails the whole message; a batch
// item whose payload does not decode carries its own error.
func DecodeRequest(msg []byte, root *Node) (req *Request, err error) {
	defer func() {
		if p := recover(); p != nil {
			req, err = nil, &DecodeError{Msg: fmt.Sprintf("the request cannot be decoded (%v)", p)}
		}
	}()
	if root.Tag != kmip.TagRequestMessage || root.Type != ttlv.TypeStructure {
		return nil, &DecodeError{Msg: "not a Request Message"}
	}
	if len(root.Children) < 2 || root.Children[0].Tag != kmip.TagRequestHeader {
		return nil, &DecodeError{Msg: "a Request Message is a Request Header followed by batch items"}
	}
	req = &Request{}
	if err := repeatedField(msg, root.Children[0], repeatable[kmip.TagRequestHeader], 0); err != nil {
		return nil, err
	}
	if err := ttlv.UnmarshalTTLV(root.Children[0].Raw(msg), &req.Header); err != nil {
		return nil, &DecodeError{Msg: "malformed Request Header: " + decodeText(err)}
	}
	for _, c := range root.Children[1:] {
		if c.Tag != kmip.TagBatchItem || c.Type != ttlv.TypeStructure {
			return nil, &DecodeError{Msg: fmt.Sprintf("unexpected %s item in a Request Message", ttlv.TagString(c.Tag))}
		}
		req.Items = append(req.Items, decodeItem(msg, c))
	}
	if int(req.Header.BatchCount) != len(req.Items) {
		return nil, &DecodeError{Msg: fmt.Sprintf("Batch Count is %d but the message holds %d batch items", req.Header.BatchCount, len(req.Items))}
	}
	return req, nil
}

func decodeItem(msg []byte, n *Node) Item {
	it := Item{Size: n.End - n.Start}
	if op := n.Child(kmip.TagOperation); op != nil && op.Type == ttlv.TypeEnumeration {
		it.Operation = kmip.Operation(binary.BigEndian.Uint32(op.Value(msg)))
	}
	if id := n.Child(kmip.TagUniqueBatchItemID); id != nil && id.Type == ttlv.TypeByteString {
		it.ID = append([]byte(nil), id.Value(msg)...)
	}
	if it.Operation == 0 {
		it.Err = &DecodeError{Msg: "a batch item without an Operation"}
		return it
	}
	if err := repeatedField(msg, n, nil, it.Operation); err != nil {
		it.Err = err
		return it
	}
	var bi kmip.RequestBatchItem
	dec, err := ttlv.NewTTLVDecoder(n.Raw(msg))
	if err == nil {
		err = dec.TagAny(kmip.TagBatchItem, &bi)
	}
	if err != nil {
		it.Err = &DecodeError{Msg: "malformed " + ttlv.EnumStr(it.Operation) + " request: " + decodeText(err)}
		return it
	}
	if ext := bi.MessageExtension; ext != nil && ext.CriticalityIndicator {
		// KMIP 1.4 §6.16, §11: a critical extension the server does not
		// recognise fails the item; a non-critical one is ignored.
		it.Err = &UnsupportedError{Msg: "critical Message Extension not recognized (vendor " + strconv.Quote(ext.VendorIdentification) + ")"}
		return it
	}
	it.Payload = bi.RequestPayload
	if newPayload, ok := localRequests[it.Operation]; ok {
		pn := n.Child(kmip.TagRequestPayload)
		if pn == nil {
			it.Payload, it.Err = nil, &DecodeError{Msg: "a " + ttlv.EnumStr(it.Operation) + " request without a Request Payload"}
			return it
		}
		if it.Payload, err = decodeLocal(pn.Raw(msg), newPayload); err != nil {
			it.Err = &DecodeError{Msg: "malformed " + ttlv.EnumStr(it.Operation) + " request: " + decodeText(err)}
		}
	}
	return it
}

// decodeText is the codec's error text: it names tags and types, never values.
func decodeText(err error) string {
	var e ttlv.ErrEncoding
	if errors.As(err, &e) {
		return e.Unwrap().Error()
	}
	return err.Error()
}

// EncodeResponse encodes a response message. The protocol version of its
// header decides which version-dependent fields are written.
func EncodeResponse(m *kmip.ResponseMessage) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("kmip: cannot encode the response: %v", p)
		}
	}()
	return ttlv.MarshalTTLV(m), nil
}
