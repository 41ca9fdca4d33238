package xks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/keyhold/keyhold/audit"
)

// Audit events of the data plane: who (the SigV4 access key id and the AWS
// principal of the request metadata), what (operation, key store prefix,
// external key id, KMS request metadata), the result (HTTP status and XKS
// errorName). Plaintext, ciphertext and AAD are written only as HMACs.

func (p *proxy) auditing() bool { return p.audit != nil && p.audit.Enabled() }

func (p *proxy) entry(r *http.Request, rec *logRecord, req *Request) *audit.Entry {
	e := &audit.Entry{
		Interface: audit.XKS,
		Operation: string(rec.route.Op),
		Path:      rec.route.Prefix,
		Auth:      audit.Principal{AccessKeyID: rec.akid, RemoteAddr: r.RemoteAddr},
	}
	if rec.route.KeyID != "" {
		e.Objects = []string{rec.route.KeyID}
	}
	if req != nil {
		m := req.Meta
		e.Auth.PrincipalARN = m.AWSPrincipalArn
		e.RequestID = m.KMSRequestID
		e.Data = make(map[string]any, 6)
		for _, f := range [...]struct{ k, v string }{
			{"kmsRequestId", m.KMSRequestID}, {"kmsOperation", m.KMSOperation}, {"kmsKeyArn", m.KMSKeyArn},
			{"kmsViaService", m.KMSViaService}, {"awsSourceVpc", m.AWSSourceVpc}, {"awsSourceVpce", m.AWSSourceVpce},
		} {
			if f.v != "" {
				e.Data[f.k] = f.v
			}
		}
		e.Sensitive = make(map[string][]byte, 3)
		for _, f := range [...]struct {
			k string
			v []byte
		}{{"plaintext", req.Plaintext}, {"additionalAuthenticatedData", req.AAD}, {"ciphertext", req.Ciphertext}} {
			if f.v != nil {
				e.Sensitive[f.k] = f.v
			}
		}
	}
	if e.RequestID == "" {
		// KMS names its requests; one without a name gets its own, which
		// costs a call to the random source that the named ones skip.
		e.RequestID = "xks-" + newRequestID()
	}
	return e
}

func (p *proxy) auditRequest(r *http.Request, rec *logRecord, req *Request) error {
	if !p.auditing() {
		return nil
	}
	e := p.entry(r, rec, req)
	e.RequestTime = time.Now()
	// The XKS operations change nothing, so the request event can wait for
	// the response event and go out with it (LogPair), durable before any
	// answer; what must hold now is that the trail can take it. A trail
	// that fails meanwhile withholds the answer.
	if err := p.audit.Ready(r.Context()); err != nil {
		return &Error{Name: InternalException, Msg: "the audit trail cannot be written; the request was refused", Err: err}
	}
	rec.entry = e
	return nil
}

// auditResponse writes the request and the response event (of a request
// refused before it was parsed, too). An error replaces the answer.
//
// The events of a request the throttle refused are queued (QueuePair), not
// waited for: the answer changes nothing and tells nothing a client could
// not know, and the throttle is there to spare the proxy's resources under
// a flood, the disk among them. They are durable with the next commit of
// the trail (within a second); a power loss before it takes them, not the
// events of any answer that was served.
func (p *proxy) auditResponse(r *http.Request, rec *logRecord, resp any, err error) error {
	if !p.auditing() {
		return nil
	}
	ctx := context.WithoutCancel(r.Context())
	e := rec.entry
	if e == nil {
		e = p.entry(r, rec, nil)
	}
	e.Status = http.StatusOK
	if err != nil {
		var me *methodError
		if errors.As(err, &me) {
			e.Status, e.XKSErrorName = http.StatusMethodNotAllowed, string(UnsupportedOperationException)
		} else {
			we := wireError(err)
			e.Status, e.XKSErrorName = status(we.Name), string(we.Name)
		}
	} else if out, ok := resp.(*EncryptResponse); ok {
		e.SensitiveResponse = map[string][]byte{"ciphertext": out.Ciphertext}
	} else if out, ok := resp.(*DecryptResponse); ok {
		e.SensitiveResponse = map[string][]byte{"plaintext": out.Plaintext}
	}
	log := p.audit.LogPair
	if rec.throttled {
		log = p.audit.QueuePair
	}
	if lerr := log(ctx, e); lerr != nil {
		return &Error{Name: InternalException, Msg: "the audit trail cannot be written", Err: lerr}
	}
	return nil
}

func newRequestID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
