// Package audit records every request and response of the appliance as a
// hash-chained JSON-lines trail.
//
// Each line is one event and starts with {"hash":"<sha256>", where the hash
// is taken over the line with those 64 hex digits zeroed; the event also
// carries the sequence number and the hash of the event before it, so an
// edit, a removal, an insertion or a reordering shows (Verify). Sensitive
// values (key material, plaintext, ciphertext, secrets, tokens) are never
// written: the caller marks them and the device writes their HMAC-SHA256
// under its own key, which an investigator can reproduce with
// sys/audit-hash. A request fails if no enabled device can write its events
// (fail closed); writes are group-committed and fsynced before the caller
// proceeds.
package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
	"time"
)

// Interfaces that produce events.
const (
	REST = "rest"
	KMIP = "kmip"
	XKS  = "xks"
)

// Principal is who made a request.
type Principal struct {
	TokenAccessor string   `json:"token_accessor,omitempty"`
	Policies      []string `json:"policies,omitempty"`
	CertSerial    string   `json:"cert_serial,omitempty"`
	Scope         string   `json:"scope,omitempty"`
	Role          string   `json:"role,omitempty"`
	AccessKeyID   string   `json:"access_key_id,omitempty"`
	PrincipalARN  string   `json:"principal_arn,omitempty"`
	RemoteAddr    string   `json:"remote_addr,omitempty"`
}

// Entry is what a caller reports of one request (and, once served, its
// response). Values in Sensitive and SensitiveResponse are written only as
// HMACs.
type Entry struct {
	RequestID string
	Interface string
	Auth      Principal
	Operation string
	Path      string
	Objects   []string // object ids or key names the request touched

	Data      map[string]any    // request fields safe to write as they are
	Sensitive map[string][]byte // request fields written as HMACs
	// Token accessors among the request fields: written as HMACs by a
	// device that writes the principal's accessor so (hmac_accessor), as
	// they are by the others.
	Accessors map[string]string

	// Filled for the response event.
	Status            int
	Error             string
	KMIPResultReason  string
	XKSErrorName      string
	ResponseData      map[string]any
	SensitiveResponse map[string][]byte
	ResponseAccessors map[string]string // as Accessors, in the response

	// RequestTime is when the request arrived: the time of its request
	// event when LogPair writes it after the request was served (zero:
	// the time of writing).
	RequestTime time.Time

	queued *queuedLines // set by QueueRequest
}

// Event is one line of the trail, as read back. A line is written as
// {"hash":…,"prev":…,"seq":…, followed by the fields of eventBody}; the hash
// stays first.
type Event struct {
	Hash string `json:"hash"`
	Prev string `json:"prev"`
	Seq  uint64 `json:"seq"`
	eventBody
}

// eventBody is the part of an event that does not depend on its place in
// the chain, as read back; appendEvent writes it (before the sink's lock is
// taken), with the same encoding encoding/json gives this struct.
type eventBody struct {
	Time      time.Time       `json:"time"`
	Type      string          `json:"type"` // "request" or "response"
	RequestID string          `json:"request_id"`
	Interface string          `json:"interface"`
	Auth      Principal       `json:"auth"`
	Request   RequestRecord   `json:"request"`
	Response  *ResponseRecord `json:"response,omitempty"`
}

// RequestRecord is the request part of an event.
type RequestRecord struct {
	Operation string         `json:"operation"`
	Path      string         `json:"path,omitempty"`
	Objects   []string       `json:"objects,omitempty"`
	Data      map[string]any `json:"data,omitempty"`
}

// ResponseRecord is the response part of an event.
type ResponseRecord struct {
	Status           int            `json:"status,omitempty"`
	Error            string         `json:"error,omitempty"`
	KMIPResultReason string         `json:"kmip_result_reason,omitempty"`
	XKSErrorName     string         `json:"xks_error_name,omitempty"`
	Data             map[string]any `json:"data,omitempty"`
}

// HMACPrefix marks a value written as its HMAC.
const HMACPrefix = "hmac-sha256:"

// hmacValue is the written form of a sensitive value under a device key.
func hmacValue(key, v []byte) string {
	return string(appendHMAC(make([]byte, 0, len(HMACPrefix)+2*sha256.Size), key, v))
}

// appendHMAC appends the written form of a sensitive value (HMACPrefix and
// the hex HMAC-SHA256 of v under key).
func appendHMAC(dst, key, v []byte) []byte {
	p := macPoolFor(key)
	m := p.Get().(*macState)
	m.h.Reset()
	m.h.Write(v)
	m.sum = m.h.Sum(m.sum[:0])
	dst = append(dst, HMACPrefix...)
	dst = hex.AppendEncode(dst, m.sum)
	p.Put(m)
	return dst
}

// macState is a keyed HMAC and the buffer its sums go to (a local array
// passed to the hash.Hash interface would be allocated on every call).
type macState struct {
	h   hash.Hash
	sum []byte
}

// macPools holds, per device key, HMAC states keyed once: keying an HMAC
// costs two hash blocks and several allocations, more than hashing a short
// value, and every event hashes several values.
var macPools sync.Map // string(key) -> *sync.Pool of *macState

func macPoolFor(key []byte) *sync.Pool {
	if p, ok := macPools.Load(string(key)); ok {
		return p.(*sync.Pool)
	}
	k := bytes.Clone(key)
	p, _ := macPools.LoadOrStore(string(k), &sync.Pool{New: func() any {
		return &macState{h: hmac.New(sha256.New, k), sum: make([]byte, 0, sha256.Size)}
	}})
	return p.(*sync.Pool)
}
