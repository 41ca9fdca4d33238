package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
)

// Query selects events of a device's file, newest first, for the console's
// audit view (sys/audit-log). The file is read backwards from its end, so
// the newest events cost the same however long the file is; the scan stops
// at Limit matches or after MaxScanBytes.
type Query struct {
	Limit        int    // at most this many events
	BeforeSeq    uint64 // only events with a smaller seq (0: no bound), to page back
	Type         string // "request", "response" or "" for both
	Interface    string // rest, kmip, xks or "" for all
	Operation    string // case-insensitive; "" for all
	Object       string // an element of request.objects or a segment of request.path
	Principal    string // a substring of a principal field, an exact policy, or an accessor (also matched in its HMAC form)
	Result       string // "ok", "error" or "" for both (on response events)
	MaxScanBytes int64  // 0: DefaultMaxScanBytes
}

// DefaultMaxScanBytes bounds how much of a file one query reads.
const DefaultMaxScanBytes = 64 << 20

// Page is the answer to a Query.
type Page struct {
	Events     []json.RawMessage // the matching lines as written, newest first
	Scanned    int64             // bytes read
	More       bool              // the scan stopped before the start of the file
	Unreadable int               // lines that are not events (Verify tells more)
}

// Query runs q on the file of the device at path. A principal is also
// matched in the HMAC form the device writes accessors in.
func (b *Broker) Query(path string, q Query) (*Page, string, error) {
	b.mu.RLock()
	d := b.devices[path]
	b.mu.RUnlock()
	if d == nil {
		return nil, "", fault.New(fault.NotFound, "no audit device at %s/", path)
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	m := &matcher{q: q}
	if q.Principal != "" {
		m.principalHMAC = hmacValue(d.key, []byte(q.Principal))
	}
	p, err := readBackward(d.cfg.FilePath, q, m)
	return p, d.cfg.FilePath, err
}

// VerifyDevice checks the hash chain of the device's current file. A last
// line caught while it is being appended looks cut; the check is then
// repeated, and only a cut that stays is reported.
func (b *Broker) VerifyDevice(path string) (*Report, string, error) {
	b.mu.RLock()
	d := b.devices[path]
	b.mu.RUnlock()
	if d == nil {
		return nil, "", fault.New(fault.NotFound, "no audit device at %s/", path)
	}
	var r *Report
	var err error
	for try := 0; try < 3; try++ {
		r, err = Verify([]string{d.cfg.FilePath})
		if err != nil || r.Problem == nil || !strings.HasPrefix(r.Problem.What, "truncated tail") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r, d.cfg.FilePath, err
}

// matcher decides whether an event is selected.
type matcher struct {
	q             Query
	principalHMAC string
}

func (m *matcher) match(ev *Event) bool {
	q := m.q
	if q.BeforeSeq > 0 && ev.Seq >= q.BeforeSeq {
		return false
	}
	if q.Type != "" && ev.Type != q.Type {
		return false
	}
	if q.Interface != "" && ev.Interface != q.Interface {
		return false
	}
	if q.Operation != "" && !strings.EqualFold(ev.Request.Operation, q.Operation) {
		return false
	}
	if q.Object != "" && !slices.Contains(ev.Request.Objects, q.Object) &&
		!slices.Contains(strings.Split(ev.Request.Path, "/"), q.Object) {
		return false
	}
	if q.Principal != "" && !m.principal(&ev.Auth) {
		return false
	}
	switch q.Result {
	case "ok":
		return ev.Response != nil && !failed(ev.Response)
	case "error":
		return ev.Response != nil && failed(ev.Response)
	}
	return true
}

func failed(r *ResponseRecord) bool {
	return r.Status >= 400 || r.Error != "" || r.XKSErrorName != ""
}

func (m *matcher) principal(a *Principal) bool {
	p := m.q.Principal
	if a.TokenAccessor == p || (m.principalHMAC != "" && a.TokenAccessor == m.principalHMAC) || slices.Contains(a.Policies, p) {
		return true
	}
	for _, f := range []string{a.TokenAccessor, a.CertSerial, a.Scope, a.Role, a.AccessKeyID, a.PrincipalARN, a.RemoteAddr} {
		if f != "" && strings.Contains(strings.ToLower(f), strings.ToLower(p)) {
			return true
		}
	}
	return false
}

// readBackward reads the file from its end in chunks and hands each
// complete line, last first, to the matcher. An unterminated last line (an
// event being appended) is left out.
func readBackward(path string, q Query, m *matcher) (*Page, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, err, "the audit file cannot be read")
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, err, "the audit file cannot be read")
	}
	budget := q.MaxScanBytes
	if budget <= 0 {
		budget = DefaultMaxScanBytes
	}
	const chunk = 64 << 10
	page := &Page{Events: []json.RawMessage{}}
	pos := st.Size()
	// pieces hold a line whose beginning is not read yet, its last piece
	// first; each byte is copied once, when the line is whole. A line
	// longer than maxLine is no event: it is skipped, not kept.
	var pieces [][]byte
	piecesLen, skipping := 0, false
	line := func(head []byte) []byte {
		if len(pieces) == 0 {
			return head
		}
		out := make([]byte, 0, len(head)+piecesLen)
		out = append(out, head...)
		for k := len(pieces) - 1; k >= 0; k-- {
			out = append(out, pieces[k]...)
		}
		return out
	}
	dropTail := true // the bytes after the last newline are not a complete event
	full := false
	take := func(line []byte) {
		if dropTail {
			dropTail = false
			return
		}
		if len(line) == 0 {
			return
		}
		var ev Event
		if json.Unmarshal(line, &ev) != nil || ev.Seq == 0 {
			page.Unreadable++
			return
		}
		if m.match(&ev) {
			page.Events = append(page.Events, json.RawMessage(bytes.Clone(line)))
			full = len(page.Events) >= q.Limit
		}
	}
	for pos > 0 {
		if page.Scanned >= budget {
			page.More = true
			return page, nil
		}
		n := min(int64(chunk), pos)
		pos -= n
		buf := make([]byte, int(n))
		if _, err := f.ReadAt(buf, pos); err != nil {
			return nil, fault.Wrap(fault.Unavailable, err, "the audit file cannot be read")
		}
		page.Scanned += n
		end := len(buf)
		for !full {
			i := bytes.LastIndexByte(buf[:end], '\n')
			if i < 0 {
				break
			}
			if skipping {
				skipping, dropTail = false, false
				page.Unreadable++
			} else {
				take(line(buf[i+1 : end]))
			}
			pieces, piecesLen = pieces[:0], 0
			end = i
		}
		if full {
			page.More = pos > 0 || end > 0
			return page, nil
		}
		if !skipping {
			pieces, piecesLen = append(pieces, buf[:end]), piecesLen+end
			if piecesLen > maxLine {
				pieces, piecesLen, skipping = pieces[:0], 0, true
			}
		}
	}
	switch {
	case skipping:
		page.Unreadable++
	case !dropTail:
		take(line(nil)) // the first line of the file
	}
	return page, nil
}
