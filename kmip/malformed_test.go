package kmip_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/keyhold/keyhold/kmip"
	"github.com/keyhold/keyhold/kmip/kmiptest"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// item encodes one TTLV item with an explicit length and raw value bytes.
func item(tag int, typ ttlv.Type, length int, value []byte) []byte {
	out := []byte{byte(tag >> 16), byte(tag >> 8), byte(tag), byte(typ)}
	out = binary.BigEndian.AppendUint32(out, uint32(length))
	return append(out, value...)
}

// request wraps a body in a Request Message of the right length.
func request(body []byte) []byte {
	return item(gokmip.TagRequestMessage, ttlv.TypeStructure, len(body), body)
}

func discoverRequest() []byte {
	m := gokmip.NewRequestMessage(gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{})
	return ttlv.MarshalTTLV(&m)
}

// invalidMessage fails t unless out is a response with one failed batch
// item of Result Reason Invalid Message, and returns its version.
func invalidMessage(t *testing.T, out []byte) gokmip.ProtocolVersion {
	t.Helper()
	var resp gokmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(out, &resp); err != nil {
		t.Fatalf("the answer does not decode: %v", err)
	}
	if len(resp.BatchItem) != 1 || resp.BatchItem[0].ResultStatus != gokmip.ResultStatusOperationFailed ||
		resp.BatchItem[0].ResultReason != gokmip.ResultReasonInvalidMessage {
		t.Fatalf("answer: %+v", resp.BatchItem)
	}
	return resp.Header.ProtocolVersion
}

func TestMalformedInput(t *testing.T) {
	timeout := time.Second
	e := kmiptest.Start(t, kmiptest.Options{Config: kmip.ConfigInput{ConnectionTimeout: &timeout}})
	e.Role(t, "s", "r", "all")
	cert, _ := e.Credential(t, "s", "r")
	valid := discoverRequest()

	nested := item(gokmip.TagAttributeValue, ttlv.TypeInteger, 4, make([]byte, 8))
	for range 200 {
		nested = item(gokmip.TagAttributeValue, ttlv.TypeStructure, len(nested), nested)
	}
	badPadding := bytes.Clone(valid)
	at := bytes.Index(badPadding, []byte{0x42, 0x00, 0x0D, byte(ttlv.TypeInteger), 0, 0, 0, 4}) // Batch Count
	if at < 0 {
		t.Fatal("no Batch Count in the request")
	}
	badPadding[at+8+4+3] = 0x55 // its padding
	wrongInner := bytes.Clone(valid)
	binary.BigEndian.PutUint32(wrongInner[12:], 0xFFFF) // the Request Header's length runs past the end

	// Answered with Invalid Message, and the connection goes on.
	for _, tt := range []struct {
		name string
		msg  []byte
	}{
		{"length past the end of the parent", wrongInner},
		{"bad padding", badPadding},
		{"unknown tag", request(item(0x42FFFE, ttlv.TypeInteger, 4, make([]byte, 8)))},
		{"unknown type", request(item(gokmip.TagBatchCount, 0x0F, 4, make([]byte, 8)))},
		{"integer of the wrong length", request(item(gokmip.TagBatchCount, ttlv.TypeInteger, 16, make([]byte, 16)))},
		{"deep nesting", request(nested)},
		{"not a request", request(nil)},
		{"batch count mismatch", func() []byte {
			m := gokmip.NewRequestMessage(gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{})
			m.Header.BatchCount = 5
			return ttlv.MarshalTTLV(&m)
		}()},
		{"too many batch items", func() []byte {
			pls := make([]gokmip.OperationPayload, 1025)
			for i := range pls {
				pls[i] = &payloads.DiscoverVersionsRequestPayload{}
			}
			m := gokmip.NewRequestMessage(gokmip.V1_4, pls...)
			return ttlv.MarshalTTLV(&m)
		}()},
		{"unsupported version", func() []byte {
			m := gokmip.NewRequestMessage(gokmip.ProtocolVersion{ProtocolVersionMajor: 2, ProtocolVersionMinor: 0}, &payloads.DiscoverVersionsRequestPayload{})
			return ttlv.MarshalTTLV(&m)
		}()},
	} {
		t.Run("fail "+tt.name, func(t *testing.T) {
			c := e.Dial(t, cert)
			out, err := c.Raw(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if v := invalidMessage(t, out); (tt.name == "bad padding" || tt.name == "batch count mismatch") && v != gokmip.V1_4 {
				t.Fatalf("answered in KMIP %v, not the request's 1.4", v)
			}
			out, err = c.Raw(valid)
			if err != nil {
				t.Fatalf("the connection did not go on: %v", err)
			}
			var resp gokmip.ResponseMessage
			if err := ttlv.UnmarshalTTLV(out, &resp); err != nil || resp.BatchItem[0].ResultStatus != gokmip.ResultStatusSuccess {
				t.Fatalf("after the refusal: %v %+v", err, resp.BatchItem)
			}
		})
	}

	// Answered with Invalid Message, then closed: the stream cannot be followed.
	for _, tt := range []struct {
		name string
		msg  []byte
	}{
		{"2 GiB declared length", item(gokmip.TagRequestMessage, ttlv.TypeStructure, 1<<31, nil)},
		{"4 GiB declared length", item(gokmip.TagRequestMessage, ttlv.TypeStructure, 1<<32-1, make([]byte, 64))},
		{"a response message", item(gokmip.TagResponseMessage, ttlv.TypeStructure, 0, nil)},
	} {
		t.Run("fail "+tt.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			c := e.Dial(t, cert)
			out, err := c.Raw(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			invalidMessage(t, out)
			c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("the connection stayed open: %v", err)
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
				t.Fatalf("refusing the message allocated %d MiB", grown>>20)
			}
		})
	}

	// Truncated: the server waits up to the connection timeout, then closes.
	t.Run("fail truncated message", func(t *testing.T) {
		c := e.Dial(t, cert)
		if _, err := c.Conn.Write(valid[:len(valid)-5]); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("got %v, want the connection closed", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("closed after %v", d)
		}
	})

	// The server survived all of it.
	if err := exchange(e, e.TLSConfig(cert)); err != nil {
		t.Fatalf("after the malformed input: %v", err)
	}
}
