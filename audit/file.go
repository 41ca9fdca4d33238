package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// zeroHash is the hash field of a line while its hash is computed, and the
// prev of the first event of a trail.
var zeroHash = bytes.Repeat([]byte{'0'}, 64)

// hashPrefix is how every line starts; the hash follows it.
const hashPrefix = `{"hash":"`

// fileSink appends events to a file with group commit. A writer puts its
// line in the queue (in sequence order) and, unless it only needs the line
// queued, waits on its own channel. One flusher goroutine, started when
// there is work and gone when there is none, runs cycles: if anybody waits
// for durability, let other runnable goroutines run first while more
// writers join (see flush), then write the whole queue, then, if anybody
// waits for durability, fsync, then wake the writers covered. Lines queued
// during an fsync go out in the next cycle, so a writer waits for the rest
// of the current cycle and one more. Writes and
// fsyncs never overlap: an append into the page an fsync is writing out can
// block until that fsync ends, and a cycle that fsyncs before the blocked
// write lands would leave its line for the cycle after.
//
// With a journal (journal.go) a cycle's durability is a record in the
// journal instead of an fsync of the log.
//
// A request event needs only to be queued (a device that cannot write is
// found before the request runs); the response event waits for the fsync,
// which makes both durable before the response is sent. Lines that nobody
// waits for (the events of an answer that changed and revealed nothing,
// QueuePair) are made durable by the next cycle that commits, and at the
// latest lazyCommit after they were written.
type fileSink struct {
	path string

	mu          sync.Mutex
	idle        *sync.Cond // signalled when the flusher stops (reopen, close)
	f           *os.File
	seq         uint64 // last sequence number given out
	prev        string // hash of the last event given out
	buf         []byte // queued lines, not yet written
	bufLast     uint64 // seq of the last line in buf
	written     uint64 // every seq up to this one is written
	writtenHash string // the hash of the line written last
	synced      uint64 // every seq up to this one is durable
	flushing    bool   // the flusher goroutine runs
	waiters     []pending
	needSync    uint64   // highest seq a waiter needs durable
	broken      error    // a write or fsync failed; the sink resyncs before the next event
	spare       [][]byte // buffers the flusher wrote, reused for the queue (at most two)

	j             *journal // makes lines durable in place of an fsync of the log (journal.go)
	noJournal     error    // why the journal takes no records: the log is fsynced instead
	recovered     int      // lines the log got back from the journal when it opened
	recoveredInto string   // the file they went to: the log, or the file it was renamed to before a crash
	cut           int64    // bytes of a partial last line, never made durable, cut off when it opened
	closed        bool     // closed or dropped: it writes nothing more
	lazy          bool     // a commit of lines written that nobody waits for is due (commitLazy)
	refused       *refusal // the journal refused the log at the last first open (a device that has not opened)

	// failures counts fail(); writtenAtFail[i%len] is what was written
	// when failure i+1 happened (the last few), so that a line only queued
	// can be told lost (lostSince).
	failures      uint64
	writtenAtFail [64]uint64
}

// queuedLine is where a line only queued stood: the sink's failure count
// and the line's sequence number when it was queued.
type queuedLine struct {
	failures, seq uint64
}

// pending is a writer waiting for its line to be written or made durable.
type pending struct {
	seq     uint64
	durable bool
	done    chan error
}

func newFileSink(path string) *fileSink {
	s := &fileSink{path: path}
	s.idle = sync.NewCond(&s.mu)
	return s
}

func openFileSink(path string) (*fileSink, error) {
	s := newFileSink(path)
	if err := s.reopenLocked(); err != nil {
		if s.broken == nil {
			s.broken = err // the journal is kept
		}
		s.close()
		return nil, err
	}
	return s, nil
}

// reopenLocked (re)opens the file for appending and resynchronises the chain
// from its last complete line. A new, empty file continues the chain held in
// memory (log rotation). A first open that fails leaves nothing behind: the
// next try starts over from the journal (a journal that could not be had
// this time, or was had before the log could not, may hold events the log
// lacks).
func (s *fileSink) reopenLocked() error {
	first := s.f == nil && s.j == nil && s.noJournal == nil
	err := s.reopenOnce()
	if err != nil && first && s.f == nil {
		if s.j != nil {
			s.j.f.Close()
			s.j = nil
		}
		s.noJournal = nil
	}
	return err
}

func (s *fileSink) reopenOnce() error {
	if s.closed {
		return fmt.Errorf("audit: the device writing %s is closed", s.path)
	}
	if s.j != nil && s.j.pinned != nil {
		return s.j.pinned
	}
	var head chainLine // where the chain stood when the journal last started over
	if s.j == nil && s.noJournal == nil {
		// First open: the log gets back what a crash took from it.
		files := filesOf(s.path)
		if r := s.refused; r != nil && r.files == files && time.Since(r.at) < retryRefused {
			// A device that has not opened, tried again by a write:
			// neither file changed since the journal refused the log, so
			// reading the journal again (up to 64 MiB) would refuse it
			// again.
			return r.err
		}
		j, noDirect, err := openJournal(s.path)
		s.noJournal = noDirect
		if err != nil {
			s.noJournal = err
		} else {
			r, err := recoverFromJournal(s.path, j)
			if err != nil {
				j.f.Close()
				s.refused = &refusal{files: files, at: time.Now(), err: err}
				return err
			}
			s.refused = nil
			s.j, s.recovered, s.recoveredInto, s.cut, head = j, r.lines, r.into, r.cut, r.pos
		}
	}
	if s.prev == "" || s.broken != nil {
		// A partial last line that the journal did not hold was never made
		// durable, so no response counted on it: it goes. (On a resync, a
		// write that failed half way left it.)
		n, err := cutTornTail(s.path)
		if err != nil {
			return fmt.Errorf("audit: %s: %w", s.path, err)
		}
		s.cut += n
	}
	if s.f != nil && s.broken == nil {
		// Log rotation: what was written to the old file becomes durable,
		// and the journal starts over, before the new file is made, so
		// that a crash in between cannot put old lines into the new file.
		if err := s.restart(s.f); err != nil {
			s.fail(fmt.Errorf("audit: sync %s: %w", s.path, err))
			return s.broken
		}
		s.synced = s.written
		s.wake(nil)
	}
	if s.f != nil && s.broken != nil && s.records() != nil {
		// A resync after a failure: the lines the journal's records hold
		// for the old file (renamed meanwhile, perhaps) must be durable in
		// it before the journal starts over for the new one; if they
		// cannot be, the journal keeps them (pinned) until a restart.
		if err := s.j.syncLog(s.f); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", s.path, err)
	}
	seq, prev, err := lastEvent(s.path)
	if err != nil {
		f.Close()
		return err
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f = f
	if s.broken != nil || s.prev == "" {
		// Start, or resync after a failure: the chain goes on from the
		// file's last complete event (lines lost with the failure are
		// gone). A start on an empty file (rotated before a restart) goes
		// on from where the journal says the chain stood.
		switch {
		case seq > 0:
			s.seq, s.prev = seq, prev
		case s.prev == "" && head.seq > 0:
			s.seq, s.prev = head.seq, head.hash
		case s.prev == "":
			s.prev = string(zeroHash)
		default:
			// A resync onto an empty file (the log was renamed, the device
			// not told): the chain goes on from the last line written,
			// not from lines given out and lost with the failure.
			s.seq, s.prev = s.written, s.writtenHash
		}
		s.buf, s.written, s.writtenHash, s.synced = nil, s.seq, s.prev, s.seq
	}
	// The new file must be one that can be made durable.
	if err := s.restart(f); err != nil {
		s.fail(fmt.Errorf("audit: sync %s: %w", s.path, err))
		return s.broken
	}
	s.broken = nil
	return nil
}

// refusal is a journal's refusal of its log (recoverFromJournal), when it
// was, and what the two files looked like before the journal was read.
type refusal struct {
	files logAndJournal
	at    time.Time
	err   error
}

// retryRefused is how long a journal's refusal of its log stands while
// neither file changes (a failure to read one may pass); reopen (SIGHUP)
// tries again at once.
const retryRefused = 5 * time.Second

// fileState is what a file looks like from outside: its id, size and
// modification time (all zero if there is none).
type fileState struct {
	id    logID
	size  int64
	mtime int64
}

type logAndJournal struct{ log, journal fileState }

func stateOf(path string) fileState {
	st, err := os.Stat(path)
	if err != nil {
		return fileState{}
	}
	return fileState{id: idAt(path), size: st.Size(), mtime: st.ModTime().UnixNano()}
}

// filesOf is what the log at path and its journal look like.
func filesOf(path string) logAndJournal {
	return logAndJournal{stateOf(path), stateOf(journalPath(path))}
}

// restart makes the log f durable; with a journal, the journal then starts
// over from the chain's head.
func (s *fileSink) restart(f *os.File) error {
	if s.j != nil {
		return s.j.reset(f, s.seq, s.prev)
	}
	return f.Sync()
}

// lastEvent returns the sequence number and hash of the last complete event
// in the file (0 and "" for an empty or missing file).
func lastEvent(path string) (uint64, string, error) {
	t, err := readTail(path)
	if err != nil {
		return 0, "", err
	}
	if t.size > t.end {
		return 0, "", fmt.Errorf("audit: the last line of %s is not a complete event; run `keyhold audit verify` on it", path)
	}
	return t.seq, t.hash, nil
}

// logTail is where a log ends: its size, and the sequence number, hash and
// end (just past its newline, if it has one) of its last complete event. A
// partial line after that event (cut by a crash) lies between end and size.
type logTail struct {
	seq       uint64
	hash      string
	end, size int64
	newline   bool // the last complete event ends with a newline
}

// digits is the number of decimal digits of n.
func digits(n uint64) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// chainPrefixLen is what appendLineLocked puts in front of an event's body
// besides the sequence number's digits (the body's "{" is replaced by ",").
const chainPrefixLen = len(hashPrefix) + 64 + len(`","prev":"`) + 64 + len(`","seq":`)

// maxLine bounds the length of an event's line: the sink refuses a longer
// one (write), and readTail and Verify read no further. A request body of
// 1 MiB whose every byte is escaped (\u003c) stays under it.
const maxLine = 16 << 20

// readTail reads the end of the log at path (a missing file is empty). At
// most one partial line, of any length (a crash can leave the end of a file
// as zeros), is tolerated after the last complete event.
func readTail(path string) (logTail, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return logTail{}, nil
	}
	if err != nil {
		return logTail{}, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return logTail{}, err
	}
	t := logTail{size: st.Size(), end: st.Size()}
	nl, err := lastNewline(f, t.size)
	if err != nil {
		return logTail{}, err
	}
	// The line after the last newline is complete if it parses (a crash
	// can cut a line just before its newline), else partial.
	if n := t.size - (nl + 1); n > 0 {
		if n <= maxLine {
			line, err := readAt(f, nl+1, make([]byte, n))
			if err != nil {
				return logTail{}, err
			}
			if seq, hash, ok := eventChain(line); ok {
				t.seq, t.hash = seq, hash
				return t, nil
			}
		}
		t.end = nl + 1
	}
	// The last complete event ends at the last newline, blank lines apart:
	// end is where the content before the newlines ends.
	for end := nl; ; {
		if end <= 0 {
			return t, nil // no complete event: all of it (if anything) is partial
		}
		from := max(end-(maxLine+1), 0)
		data, err := readAt(f, from, make([]byte, end-from))
		if err != nil {
			return logTail{}, err
		}
		if trimmed := bytes.TrimRight(data, "\n"); len(trimmed) < len(data) {
			end = from + int64(len(trimmed)) // blank lines: look before them
			continue
		}
		i := bytes.LastIndexByte(data, '\n')
		if i < 0 && from > 0 {
			break // a line too long to be an event
		}
		seq, hash, ok := eventChain(data[i+1:])
		if !ok {
			break
		}
		t.seq, t.hash, t.newline = seq, hash, true
		return t, nil
	}
	return logTail{}, fmt.Errorf("audit: the last line of %s is not a complete event; run `keyhold audit verify` on it", path)
}

// readAt reads len(buf) bytes of f at off into buf; a file cut shorter
// meanwhile gives fewer.
func readAt(f *os.File, off int64, buf []byte) ([]byte, error) {
	k, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return buf[:k], nil
}

// lastNewline returns the offset of the last newline in the first size
// bytes of f, or -1 if there is none.
func lastNewline(f *os.File, size int64) (int64, error) {
	buf := make([]byte, min(size, 64<<10))
	for end := size; end > 0; {
		from := max(end-int64(len(buf)), 0)
		chunk, err := readAt(f, from, buf[:end-from])
		if err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			return from + int64(i), nil
		}
		end = from
	}
	return -1, nil
}

// cutTornTail moves a partial last line of the log at path to PATH.torn (so
// nothing is destroyed) and makes the log durable; it returns how many bytes
// it moved.
func cutTornTail(path string) (int64, error) {
	t, err := readTail(path)
	if err != nil || t.size <= t.end {
		return 0, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	keep, err := os.OpenFile(path+".torn", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(keep, io.NewSectionReader(f, t.end, t.size-t.end))
	if err == nil {
		_, err = keep.Write([]byte{'\n'})
	}
	if err == nil {
		err = keep.Sync()
	}
	keep.Close()
	if err != nil {
		return 0, err
	}
	if err := f.Truncate(t.end); err != nil {
		return 0, err
	}
	return t.size - t.end, f.Sync()
}

// lastHash returns the hash of the last line in buf (whole lines, as the
// sink queues them).
func lastHash(buf []byte) string {
	line := buf[bytes.LastIndexByte(buf[:len(buf)-1], '\n')+1:]
	return string(line[len(hashPrefix) : len(hashPrefix)+64])
}

// eventChain returns the sequence number and hash of an event's line.
func eventChain(line []byte) (uint64, string, bool) {
	var ev struct {
		Hash string `json:"hash"`
		Seq  uint64 `json:"seq"`
	}
	if err := json.Unmarshal(line, &ev); err != nil || len(ev.Hash) != 64 {
		return 0, "", false
	}
	return ev.Seq, ev.Hash, true
}

// How long write waits.
type waitFor int

const (
	queued  waitFor = iota // the line is in the queue (a later durable line covers it)
	written                // the line is written to the file
	durable                // the line is fsynced
)

// write queues the events (one line each, in order) and returns once they
// are queued, written or durable. A body is the JSON of an event's
// eventBody; the chain fields are put in front of it under the lock.
func (s *fileSink) write(wait waitFor, bodies ...[]byte) error {
	return s.writeNoting(wait, nil, bodies...)
}

// writeNoting is write that, if q is not nil, notes where the last line
// stands once queued.
func (s *fileSink) writeNoting(wait waitFor, q *queuedLine, bodies ...[]byte) error {
	for _, body := range bodies {
		if len(body) < 2 || body[0] != '{' {
			return fmt.Errorf("audit: malformed event body")
		}
	}
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	for i, body := range bodies {
		// With the chain fields in front, a line over maxLine could not
		// be read back when the device opens again.
		if n := chainPrefixLen + digits(s.seq+uint64(i)+1) + len(body); n > maxLine {
			s.mu.Unlock()
			return fmt.Errorf("audit: an event of %d bytes is over the %d bytes a line may hold", len(body), maxLine)
		}
	}
	if s.buf == nil {
		if n := len(s.spare); n > 0 {
			s.buf, s.spare = s.spare[n-1][:0], s.spare[:n-1]
		}
	}
	for _, body := range bodies {
		s.appendLineLocked(body)
	}
	seq := s.seq
	if q != nil {
		*q = queuedLine{failures: s.failures, seq: seq}
	}
	if !s.flushing {
		s.flushing = true
		go s.flush()
	}
	if wait == queued {
		s.mu.Unlock() // a later durable line, or the flusher, writes it
		return nil
	}
	ch := waitChans.Get().(chan error)
	s.waiters = append(s.waiters, pending{seq: seq, durable: wait == durable, done: ch})
	if wait == durable {
		s.needSync = seq
	}
	s.mu.Unlock()
	err := <-ch
	waitChans.Put(ch) // wake sent its one value; the channel is empty again
	return err
}

// queue writes bodies as write(queued) does and returns where the last
// one stands, for lostSince.
func (s *fileSink) queue(bodies ...[]byte) (queuedLine, error) {
	var q queuedLine
	err := s.writeNoting(queued, &q, bodies...)
	return q, err
}

// persist returns once the line only queued (q) is durable. It fails if
// a write failed since it was queued: the line may have been lost with it.
func (s *fileSink) persist(q queuedLine) error {
	s.mu.Lock()
	if s.failures != q.failures {
		s.mu.Unlock()
		return errors.New("audit: a queued event may have been lost with a failed write of the trail")
	}
	if q.seq <= s.synced {
		s.mu.Unlock()
		return nil
	}
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	ch := waitChans.Get().(chan error)
	s.waiters = append(s.waiters, pending{seq: q.seq, durable: true, done: ch})
	s.needSync = max(s.needSync, q.seq)
	if !s.flushing {
		s.flushing = true
		go s.flush()
	}
	s.mu.Unlock()
	err := <-ch
	waitChans.Put(ch)
	return err
}

// lostSince reports whether a line only queued (q) was lost with a failed
// write: a failure came after it was queued and before it was written.
// (Resynchronising after a failure reuses sequence numbers, so only the
// first failure after q is compared.)
func (s *fileSink) lostSince(q queuedLine) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures == q.failures {
		return false
	}
	if s.failures-q.failures > uint64(len(s.writtenAtFail)) {
		return true // no longer known: taken as lost
	}
	return q.seq > s.writtenAtFail[q.failures%uint64(len(s.writtenAtFail))]
}

// usableLocked fails if the sink cannot take a line: closed, or broken and
// its file cannot be reopened.
func (s *fileSink) usableLocked() error {
	if s.closed {
		return fmt.Errorf("audit: the device writing %s is closed", s.path)
	}
	if s.broken != nil {
		for s.flushing {
			s.idle.Wait()
		}
		return s.reopenLocked()
	}
	return nil
}

// ready fails if the sink could not take a line now.
func (s *fileSink) ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usableLocked()
}

// appendLineLocked gives body the next sequence number and chains it onto
// the last line given out.
func (s *fileSink) appendLineLocked(body []byte) {
	seq := s.seq + 1
	start := len(s.buf)
	s.buf = append(s.buf, hashPrefix...)
	s.buf = append(s.buf, zeroHash...)
	s.buf = append(s.buf, `","prev":"`...)
	s.buf = append(s.buf, s.prev...)
	s.buf = append(s.buf, `","seq":`...)
	s.buf = strconv.AppendUint(s.buf, seq, 10)
	s.buf = append(s.buf, ',')
	s.buf = append(s.buf, body[1:]...)
	line := s.buf[start:]
	sum := sha256.Sum256(line)
	h := hex.EncodeToString(sum[:])
	copy(line[len(hashPrefix):], h)
	s.buf = append(s.buf, '\n')
	s.seq, s.prev, s.bufLast = seq, h, seq
}

// waitChans are the channels writers wait on, reused: each gets exactly one
// value (wake) per wait, which the writer takes before putting it back.
var waitChans = sync.Pool{New: func() any { return make(chan error, 1) }}

// maxYields bounds how many times a flush lets other goroutines run first.
const maxYields = 16

// lazyCommit is how long lines written that nobody waits for may stay
// without a commit: a flood of them costs at most one commit a lazyCommit
// (and one per 4 MiB of them), and a power loss takes at most the lines of
// the last lazyCommit.
const lazyCommit = time.Second

// stallCommit, if set, runs before each commit of a cycle (a journal record
// or an fsync of the log), without the sink's lock: tests stall the disk
// with it.
var stallCommit atomic.Pointer[func()]

// flush runs cycles until there is nothing to write and nobody to wake.
func (s *fileSink) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.broken == nil && (len(s.buf) > 0 || s.needSync > s.synced) {
		if s.needSync > s.synced {
			// A flush costs about as much for one line as for many. Let
			// the goroutines that can run (requests on their way to their
			// response events) run first, while the group keeps growing;
			// with nothing else to run, this returns at once.
			for range maxYields {
				n := len(s.waiters)
				s.mu.Unlock()
				runtime.Gosched()
				s.mu.Lock()
				if len(s.waiters) == n {
					break
				}
			}
		}
		if len(s.buf) > 0 {
			buf, first, last, f, j := s.buf, s.written+1, s.bufLast, s.f, s.records()
			s.buf = nil
			s.mu.Unlock()
			_, err := f.Write(buf)
			if err == nil && j != nil {
				j.add(buf, first, last)
			}
			s.mu.Lock()
			if err == nil {
				s.written, s.writtenHash = last, lastHash(buf)
			}
			// Two spares: the queue fills one while the flusher writes
			// another, so the queue needs no new buffer in a busy cycle.
			if len(s.spare) < 2 && cap(buf) <= 1<<20 {
				s.spare = append(s.spare, buf[:0])
			}
			if err != nil {
				s.fail(fmt.Errorf("audit: write %s: %w", s.path, err))
				break
			}
		}
		// Lines nobody waits for are committed too once they add up.
		if s.needSync > s.synced || s.records() != nil && len(s.j.pend) > 4<<20 {
			target, f, j := s.written, s.f, s.records()
			s.mu.Unlock()
			if stall := stallCommit.Load(); stall != nil {
				(*stall)()
			}
			var err error
			if j != nil {
				err = j.commit(f)
			} else {
				err = f.Sync()
			}
			s.mu.Lock()
			if err != nil {
				s.fail(fmt.Errorf("audit: sync %s: %w", s.path, err))
				break
			}
			s.synced = max(s.synced, target)
		}
		s.wake(nil)
	}
	if s.broken == nil && s.written > s.synced && !s.lazy {
		// Lines written that nobody waited for: committed within
		// lazyCommit, if no cycle that commits comes first.
		s.lazy = true
		time.AfterFunc(lazyCommit, s.commitLazy)
	}
	s.flushing = false
	s.idle.Broadcast()
}

// commitLazy has the flusher commit the lines given out that are not
// durable yet (see lazyCommit).
func (s *fileSink) commitLazy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lazy = false
	if s.closed || s.broken != nil || s.seq <= s.synced {
		return
	}
	s.needSync = max(s.needSync, s.seq)
	if !s.flushing {
		s.flushing = true
		go s.flush()
	}
}

// records returns the journal if it takes records (direct I/O), else nil:
// the log is then fsynced per cycle.
func (s *fileSink) records() *journal {
	if s.j != nil && s.j.direct {
		return s.j
	}
	return nil
}

// wake wakes, with err, every waiter whose line has reached what it waits
// for (all of them if err is set), and keeps the others waiting.
func (s *fileSink) wake(err error) {
	keep := s.waiters[:0]
	for _, w := range s.waiters {
		switch {
		case err != nil, w.durable && w.seq <= s.synced, !w.durable && w.seq <= s.written:
			w.done <- err
		default:
			keep = append(keep, w)
		}
	}
	s.waiters = keep
}

// fail marks every line given out and not yet durable as lost (lines queued
// behind a failed write chain onto lines that never reached the file) and
// wakes their writers with the error. The next event resyncs the chain.
func (s *fileSink) fail(err error) {
	s.writtenAtFail[s.failures%uint64(len(s.writtenAtFail))] = s.written
	s.failures++
	s.broken = err
	s.buf = nil
	s.needSync = 0
	s.wake(err)
}

// reopen closes and reopens the file (after log rotation); a device that
// has not opened tries to, reading its journal again.
func (s *fileSink) reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.flushing {
		s.idle.Wait()
	}
	s.refused = nil
	return s.reopenLocked()
}

// close closes the files. The journal stays, started over from the chain's
// head once the log is durable, so that the next start continues the chain
// even in a file rotated meanwhile.
func (s *fileSink) close() error {
	return s.shut(false)
}

// drop closes the files and removes the journal (the device is disabled).
func (s *fileSink) drop() error {
	return s.shut(true)
}

func (s *fileSink) shut(remove bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.flushing {
		s.idle.Wait()
	}
	s.closed = true
	var err error
	if s.j != nil {
		switch {
		case s.f != nil && remove && s.j.pinned == nil:
			err = s.j.remove(s.f)
		case s.f != nil && !remove && s.broken == nil:
			err = s.j.close(s.f, s.seq, s.prev)
		default:
			// A failed device keeps its journal as it is: it may hold the
			// only durable copy of lines, which a restart puts back.
			err = s.j.f.Close()
		}
		s.j = nil
	}
	if s.f == nil {
		return err
	}
	err = errors.Join(err, s.f.Close())
	s.f = nil
	return err
}
