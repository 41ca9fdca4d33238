package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
)

// Problem is the first place where a trail is not intact.
type Problem struct {
	File string
	Line int    // 1-based
	Seq  uint64 // of the event at that line, when it could be read
	What string
}

func (p *Problem) String() string {
	if p.Seq > 0 {
		return fmt.Sprintf("%s:%d (seq %d): %s", p.File, p.Line, p.Seq, p.What)
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.What)
}

// Report is the result of Verify.
type Report struct {
	Events   int
	FirstSeq uint64
	LastSeq  uint64
	Problem  *Problem // nil when the chain is intact
	// Notes are facts that are not tampering by themselves, such as a
	// trail that starts after seq 1 (an earlier file rotated away) or a last
	// request without its response (a crash, or a cut tail).
	Notes []string
}

// Verify checks the chain across files given in order (a rotated trail:
// oldest first) and reports the first event that was changed, removed,
// inserted or reordered, or a truncated tail.
func Verify(files []string) (*Report, error) {
	r := &Report{}
	var prevHash string
	var prevSeq uint64
	pending := map[string]bool{} // request ids without a response yet
	var lastReq string
	for fi, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		lines := bytes.Split(data, []byte{'\n'})
		last := len(lines) - 1
		if len(lines[last]) == 0 {
			lines = lines[:last]
		} else if fi == len(files)-1 {
			// The file does not end with a newline: its last line was cut.
			if problem := checkLine(lines[last]); problem != "" {
				r.Problem = &Problem{File: name, Line: last + 1, What: "truncated tail: the last event is incomplete"}
				return r, nil
			}
		}
		for i, line := range lines {
			p := &Problem{File: name, Line: i + 1}
			if what := checkLine(line); what != "" {
				p.What = what
				r.Problem = p
				return r, nil
			}
			var ev struct {
				Hash      string `json:"hash"`
				Seq       uint64 `json:"seq"`
				Prev      string `json:"prev"`
				Type      string `json:"type"`
				RequestID string `json:"request_id"`
			}
			json.Unmarshal(line, &ev)
			p.Seq = ev.Seq
			switch {
			case r.Events == 0:
				r.FirstSeq = ev.Seq
				if ev.Seq == 1 && ev.Prev != string(zeroHash) {
					p.What = "the first event does not start a chain"
					r.Problem = p
					return r, nil
				}
				if ev.Seq > 1 {
					r.Notes = append(r.Notes, fmt.Sprintf("the trail starts at seq %d: events before it are in files not given", ev.Seq))
				}
			case ev.Seq > prevSeq+1 && seqLater(lines[i+1:], prevSeq, ev.Seq):
				p.What = fmt.Sprintf("events reordered (seq %d follows %d; a missing one comes later)", ev.Seq, prevSeq)
				r.Problem = p
				return r, nil
			case ev.Seq > prevSeq+1:
				p.What = fmt.Sprintf("%d event(s) removed before this one (seq %d follows %d)", ev.Seq-prevSeq-1, ev.Seq, prevSeq)
				r.Problem = p
				return r, nil
			case ev.Seq <= prevSeq:
				p.What = fmt.Sprintf("event inserted or reordered (seq %d follows %d)", ev.Seq, prevSeq)
				r.Problem = p
				return r, nil
			case ev.Prev != prevHash:
				p.What = "the event does not chain to the one before it (an event was replaced or inserted)"
				r.Problem = p
				return r, nil
			}
			prevHash, prevSeq = ev.Hash, ev.Seq
			r.Events++
			r.LastSeq = ev.Seq
			if ev.Type == "request" {
				pending[ev.RequestID] = true
				lastReq = ev.RequestID
			} else {
				delete(pending, ev.RequestID)
			}
		}
	}
	if pending[lastReq] {
		r.Notes = append(r.Notes, fmt.Sprintf("the last request (%s) has no response event: the appliance stopped while serving it, or the tail was cut", lastReq))
	}
	return r, nil
}

// checkLine checks one line's own hash; it returns what is wrong, or "".
func checkLine(line []byte) string {
	if !bytes.HasPrefix(line, []byte(hashPrefix)) || len(line) < len(hashPrefix)+64 {
		return "not an audit event (changed, inserted or cut)"
	}
	got := string(line[len(hashPrefix) : len(hashPrefix)+64])
	c := bytes.Clone(line)
	copy(c[len(hashPrefix):], zeroHash)
	sum := sha256.Sum256(c)
	if hex.EncodeToString(sum[:]) != got {
		if !json.Valid(line) {
			return "not an audit event (changed, inserted or cut)"
		}
		return "the event was changed (its hash does not match)"
	}
	return ""
}

// seqLater reports whether a later line carries a seq between lo and hi.
func seqLater(lines [][]byte, lo, hi uint64) bool {
	for _, l := range lines {
		var ev struct {
			Seq uint64 `json:"seq"`
		}
		if json.Unmarshal(l, &ev) == nil && ev.Seq > lo && ev.Seq < hi {
			return true
		}
	}
	return false
}
