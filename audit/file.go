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
	"strconv"
	"sync"
)

// zeroHash is the hash field of a line while its hash is computed, and the
// prev of the first event of a trail.
var zeroHash = bytes.Repeat([]byte{'0'}, 64)

// hashPrefix is how every line starts; the hash follows it.
const hashPrefix = `{"hash":"`

// fileSink appends events to a file with group commit. A writer queues its
// line (in sequence order); if nobody is writing, it writes the queue itself,
// else it waits to be told its line is written. A writer that needs
// durability then waits for an fsync that started after its line was
// written; if no fsync is running it runs one for everybody. Writes and
// fsyncs overlap, so a request event (which needs only the write: a device
// that cannot write is found before the request runs) never waits behind an
// fsync; the response event needs the fsync, which makes both durable before
// the response is sent. Each waiter is woken on its own channel.
type fileSink struct {
	path string

	mu           sync.Mutex
	idle         *sync.Cond // signalled when writing or syncing ends (reopen, close)
	f            *os.File
	seq          uint64 // last sequence number given out
	prev         string // hash of the last event given out
	buf          []byte // queued lines, not yet written
	bufLast      uint64 // seq of the last line in buf
	written      uint64 // every seq up to this one is written
	synced       uint64 // every seq up to this one is durable
	writing      bool   // a writer is writing the queue
	syncing      bool   // an fsync is running
	writeWaiters []pending
	syncWaiters  []pending
	broken       error  // a write or fsync failed; the sink resyncs before the next event
	failedAt     uint64 // seqs above synced and up to this one were lost with it
}

// pending is a writer waiting for its line to be written or synced.
type pending struct {
	seq  uint64
	done chan error
}

// maxRounds bounds the rounds a writer serves for others before it hands
// the rest to a goroutine, so its own request is not held up under load.
const maxRounds = 2

func openFileSink(path string) (*fileSink, error) {
	s := &fileSink{path: path}
	s.idle = sync.NewCond(&s.mu)
	if err := s.reopenLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// reopenLocked (re)opens the file for appending and resynchronises the chain
// from its last complete line. A new, empty file continues the chain held in
// memory (log rotation).
func (s *fileSink) reopenLocked() error {
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
		// What was written to the old file (log rotation) becomes durable
		// before the file is let go.
		if s.broken == nil && s.f.Sync() == nil {
			s.synced = s.written
			s.syncWaiters = release(s.syncWaiters, s.synced, nil)
		}
		s.f.Close()
	}
	s.f = f
	if s.broken != nil || s.prev == "" {
		// Start, or resync after a failure: the chain goes on from the
		// file's last complete event (lines lost with the failure are gone).
		if seq > 0 {
			s.seq, s.prev = seq, prev
		} else if s.prev == "" {
			s.prev = string(zeroHash)
		}
		s.buf, s.written, s.synced, s.failedAt = nil, s.seq, s.seq, 0
	}
	s.broken = nil
	return nil
}

// lastEvent returns the sequence number and hash of the last complete event
// in the file (0 and "" for an empty or missing file).
func lastEvent(path string) (uint64, string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0, "", err
	}
	// Read the tail: events are well under 1 MiB.
	const tail = 1 << 20
	off := st.Size() - tail
	if off < 0 {
		off = 0
	}
	data, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return 0, "", fmt.Errorf("audit: %w", err)
	}
	data = bytes.TrimRight(data, "\n")
	if len(data) == 0 {
		return 0, "", nil
	}
	line := data[bytes.LastIndexByte(data, '\n')+1:]
	var ev struct {
		Hash string `json:"hash"`
		Seq  uint64 `json:"seq"`
	}
	if err := json.Unmarshal(line, &ev); err != nil || len(ev.Hash) != 64 {
		return 0, "", fmt.Errorf("audit: the last line of %s is not a complete event; run `keyhold audit verify` on it", path)
	}
	return ev.Seq, ev.Hash, nil
}

// How long write waits.
type waitFor int

const (
	queued  waitFor = iota // the line is in the queue (a later durable line covers it)
	written                // the line is written to the file
	durable                // the line is fsynced
)

// write queues the event and returns once it is queued, written or durable.
// body is the JSON of the event's eventBody; the chain fields are put in
// front of it under the lock.
func (s *fileSink) write(body []byte, wait waitFor) error {
	if len(body) < 2 || body[0] != '{' {
		return fmt.Errorf("audit: malformed event body")
	}
	s.mu.Lock()
	if s.broken != nil {
		for s.writing || s.syncing {
			s.idle.Wait()
		}
		if err := s.reopenLocked(); err != nil {
			s.mu.Unlock()
			return err
		}
	}
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

	// Phase 1: the line is written.
	if s.writing && wait == queued {
		s.mu.Unlock() // the writer at work takes it in its next round
		return nil
	}
	if s.writing {
		ch := make(chan error, 1)
		s.writeWaiters = append(s.writeWaiters, pending{seq, ch})
		s.mu.Unlock()
		if err := <-ch; err != nil {
			return err
		}
		s.mu.Lock()
	} else {
		s.writeRounds(maxRounds)
	}
	if err := s.lost(seq); err != nil || wait != durable || s.synced >= seq {
		s.mu.Unlock()
		return err
	}
	// Phase 2: the line is durable.
	if s.syncing {
		ch := make(chan error, 1)
		s.syncWaiters = append(s.syncWaiters, pending{seq, ch})
		s.mu.Unlock()
		return <-ch
	}
	s.syncRounds(maxRounds)
	err := s.lost(seq)
	if err == nil && s.synced < seq {
		err = fmt.Errorf("audit: internal error: line %d not synced", seq) // cannot happen: a round covers it
	}
	s.mu.Unlock()
	return err
}

// lost returns the sink's error if the line seq was lost with it.
func (s *fileSink) lost(seq uint64) error {
	if s.broken != nil && seq > s.synced && seq <= s.failedAt {
		return s.broken
	}
	return nil
}

// writeRounds writes the queue, up to n rounds (n < 0: until it is empty),
// then hands any rest to a goroutine. Called and returns with s.mu held.
func (s *fileSink) writeRounds(n int) {
	s.writing = true
	for ; len(s.buf) > 0 && n != 0; n-- {
		buf, last, f := s.buf, s.bufLast, s.f
		s.buf = nil
		s.mu.Unlock()
		_, err := f.Write(buf)
		s.mu.Lock()
		if err != nil {
			s.fail(fmt.Errorf("audit: write %s: %w", s.path, err))
			break
		}
		s.written = last
		s.writeWaiters = release(s.writeWaiters, last, nil)
	}
	if len(s.buf) > 0 && s.broken == nil {
		go func() {
			s.mu.Lock()
			s.writeRounds(-1)
			s.mu.Unlock()
		}()
		return
	}
	s.writing = false
	s.idle.Broadcast()
}

// syncRounds fsyncs what is written, up to n rounds (n < 0: while anyone
// waits), then hands any rest to a goroutine. Called and returns with s.mu held.
func (s *fileSink) syncRounds(n int) {
	s.syncing = true
	for first := true; n != 0 && (first || len(s.syncWaiters) > 0); n-- {
		first = false
		target, f := s.written, s.f
		s.mu.Unlock()
		err := f.Sync()
		s.mu.Lock()
		if err != nil {
			s.fail(fmt.Errorf("audit: sync %s: %w", s.path, err))
			break
		}
		if target > s.synced {
			s.synced = target
		}
		s.syncWaiters = release(s.syncWaiters, target, nil)
	}
	if len(s.syncWaiters) > 0 && s.broken == nil {
		go func() {
			s.mu.Lock()
			s.syncRounds(-1)
			s.mu.Unlock()
		}()
		return
	}
	s.syncing = false
	s.idle.Broadcast()
}

// release wakes the waiters up to seq upto and returns the others.
func release(ws []pending, upto uint64, err error) []pending {
	keep := ws[:0]
	for _, w := range ws {
		if w.seq <= upto {
			w.done <- err
		} else {
			keep = append(keep, w)
		}
	}
	return keep
}

// fail marks every line given out and not yet durable as lost (lines queued
// behind a failed write chain onto lines that never reached the file) and
// wakes their writers with the error. The next event resyncs the chain.
func (s *fileSink) fail(err error) {
	s.broken = err
	s.failedAt = s.seq
	s.buf = nil
	s.writeWaiters = release(s.writeWaiters, s.seq, err)
	s.syncWaiters = release(s.syncWaiters, s.seq, err)
}

// reopen closes and reopens the file (after log rotation).
func (s *fileSink) reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.writing || s.syncing {
		s.idle.Wait()
	}
	return s.reopenLocked()
}

func (s *fileSink) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.writing || s.syncing {
		s.idle.Wait()
	}
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
