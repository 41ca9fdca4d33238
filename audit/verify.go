package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// inserted or reordered, or a truncated tail. Files are read a line at a
// time, so a trail of any size takes little memory.
func Verify(files []string) (*Report, error) {
	v := &verifier{r: &Report{}}
	for fi, name := range files {
		if err := v.file(name, fi == len(files)-1); err != nil {
			return nil, err
		}
		if v.r.Problem != nil {
			return v.r, nil
		}
	}
	if v.lastReq != "" && !v.lastAnswered {
		v.r.Notes = append(v.r.Notes, fmt.Sprintf("the last request (%s) has no response event: the appliance stopped while serving it, or the tail was cut", v.lastReq))
	}
	return v.r, nil
}

// verifier is where Verify stands in the chain.
type verifier struct {
	r        *Report
	prevHash string
	prevSeq  uint64
	// lastAnswered: a response event with the id of the last request
	// event came after it (only the last request is reported: tracking
	// every id would grow with a hostile file).
	lastAnswered bool
	lastReq      string
}

// file checks the events of one file; a problem found goes to the report.
// In the last file, a last line without its newline that is not a whole
// event is a truncated tail.
func (v *verifier) file(name string, lastFile bool) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 256<<10)
	// A file being appended to is read up to the first end of file met, so
	// that the lines read are one snapshot.
	for n := 1; ; n++ {
		line, err := readLine(br)
		if errors.Is(err, errLongLine) {
			v.r.Problem = &Problem{File: name, Line: n, What: fmt.Sprintf("not an audit event (a line longer than %d bytes)", maxLine)}
			return nil
		}
		eof := errors.Is(err, io.EOF)
		if err != nil && !eof {
			return fmt.Errorf("audit: read %s: %w", name, err)
		}
		if len(line) == 0 {
			return nil
		}
		if line[len(line)-1] == '\n' {
			line = line[:len(line)-1]
		} else if lastFile && checkLine(line) != "" {
			v.r.Problem = &Problem{File: name, Line: n, What: "truncated tail: the last event is incomplete"}
			return nil
		}
		// Verify stops at the first problem, so telling a reorder from a
		// removal may read on in br.
		later := func(lo, hi uint64) (bool, error) {
			if eof {
				return false, nil
			}
			return seqLater(br, name, lo, hi)
		}
		if what, err := v.line(name, n, line, later); err != nil || what != nil {
			v.r.Problem = what
			return err
		}
		if eof {
			return nil
		}
	}
}

var errLongLine = errors.New("audit: line too long")

// readLine is br.ReadBytes('\n') that stops with errLongLine past maxLine
// bytes, so that a file without newlines is not read into memory whole.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		part, err := br.ReadSlice('\n')
		if len(line)+len(part) > maxLine+1 {
			return nil, errLongLine
		}
		line = append(line, part...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}

// line checks line n of file name and returns the problem with it, if
// any; later tells whether a later line of the file carries a seq between
// two others.
func (v *verifier) line(name string, n int, line []byte, later func(lo, hi uint64) (bool, error)) (*Problem, error) {
	r := v.r
	p := &Problem{File: name, Line: n}
	// The chain fields are read where the writer puts them, at the start
	// of the line, which the line's own hash covers (parseChainLine checks
	// it). A JSON reader would take the last of two "hash" members (or a
	// "Hash"): one added after an edit, to keep the next line chained,
	// must be found.
	cl, ok := parseChainLine(line)
	if !ok {
		// checkLine tells a changed event from a line that is none.
		if p.What = checkLine(line); p.What == "" {
			p.What = "not an audit event (changed, inserted or cut)"
		}
		return p, nil
	}
	var ev struct {
		Hash      string `json:"hash"`
		Seq       uint64 `json:"seq"`
		Prev      string `json:"prev"`
		Type      string `json:"type"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(line, &ev) != nil {
		p.What = "not an audit event (changed, inserted or cut)"
		return p, nil
	}
	if ev.Hash != cl.hash || ev.Prev != cl.prev || ev.Seq != cl.seq {
		p.What = "the event was changed (its hash, prev or seq is given twice)"
		return p, nil
	}
	p.Seq = ev.Seq
	switch {
	case r.Events == 0:
		r.FirstSeq = ev.Seq
		if ev.Seq == 1 && ev.Prev != string(zeroHash) {
			p.What = "the first event does not start a chain"
			return p, nil
		}
		if ev.Seq > 1 {
			r.Notes = append(r.Notes, fmt.Sprintf("the trail starts at seq %d: events before it are in files not given", ev.Seq))
		}
	case ev.Seq > v.prevSeq+1:
		reordered, err := later(v.prevSeq, ev.Seq)
		if err != nil {
			return nil, err
		}
		if reordered {
			p.What = fmt.Sprintf("events reordered (seq %d follows %d; a missing one comes later)", ev.Seq, v.prevSeq)
		} else {
			p.What = fmt.Sprintf("%d event(s) removed before this one (seq %d follows %d)", ev.Seq-v.prevSeq-1, ev.Seq, v.prevSeq)
		}
		return p, nil
	case ev.Seq <= v.prevSeq:
		p.What = fmt.Sprintf("event inserted or reordered (seq %d follows %d)", ev.Seq, v.prevSeq)
		return p, nil
	case ev.Prev != v.prevHash:
		p.What = "the event does not chain to the one before it (an event was replaced or inserted)"
		return p, nil
	}
	v.prevHash, v.prevSeq = ev.Hash, ev.Seq
	r.Events++
	r.LastSeq = ev.Seq
	if ev.Type == "request" {
		v.lastAnswered = false
		v.lastReq = ev.RequestID
	} else if ev.RequestID == v.lastReq {
		v.lastAnswered = true
	}
	return nil, nil
}

// ownHash is the hash a line carries when intact: the SHA-256 of the line
// with its hash field zeroed (the line must start with hashPrefix and 64
// characters).
func ownHash(line []byte) string {
	c := bytes.Clone(line)
	copy(c[len(hashPrefix):], zeroHash)
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:])
}

// checkLine checks one line's own hash; it returns what is wrong, or "".
func checkLine(line []byte) string {
	if !bytes.HasPrefix(line, []byte(hashPrefix)) || len(line) < len(hashPrefix)+64 {
		return "not an audit event (changed, inserted or cut)"
	}
	got := string(line[len(hashPrefix) : len(hashPrefix)+64])
	if ownHash(line) != got {
		if !json.Valid(line) {
			return "not an audit event (changed, inserted or cut)"
		}
		return "the event was changed (its hash does not match)"
	}
	return ""
}

// seqLater reports whether a line that br (reading file name) has still to
// give carries a seq between lo and hi; it reads on to the end of file.
func seqLater(br *bufio.Reader, name string, lo, hi uint64) (bool, error) {
	for {
		l, err := br.ReadBytes('\n')
		if cl, ok := parseChainLine(bytes.TrimSuffix(l, []byte{'\n'})); ok && cl.seq > lo && cl.seq < hi {
			return true, nil
		}
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("audit: read %s: %w", name, err)
		}
	}
}
