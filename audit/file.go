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
	"sync"
)

// zeroHash is the hash field of a line while its hash is computed, and the
// prev of the first event of a trail.
var zeroHash = bytes.Repeat([]byte{'0'}, 64)

// hashPrefix is how every line starts; the hash follows it.
const hashPrefix = `{"hash":"`

// fileSink appends events to a file with group commit: writers queue their
// lines in sequence order and wait; one flush writes and fsyncs every queued
// line and wakes all their writers with the result.
type fileSink struct {
	path string

	mu       sync.Mutex
	f        *os.File
	seq      uint64 // last sequence number given out
	prev     string // hash of the last event given out
	buf      []byte // queued lines
	waiters  []chan error
	broken   error // set when a write failed; the sink resyncs before the next event
	flushing bool
	cond     *sync.Cond
}

func openFileSink(path string) (*fileSink, error) {
	s := &fileSink{path: path}
	s.cond = sync.NewCond(&s.mu)
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
		s.f.Close()
	}
	s.f = f
	if seq > 0 {
		s.seq, s.prev = seq, prev
	} else if s.prev == "" {
		s.prev = string(zeroHash)
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

// write queues the event and waits until it is durable.
func (s *fileSink) write(ev *Event) error {
	s.mu.Lock()
	if s.broken != nil {
		if err := s.reopenLocked(); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	ev.Seq = s.seq + 1
	ev.Prev = s.prev
	ev.Hash = string(zeroHash)
	line, err := json.Marshal(ev)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("audit: encode event: %w", err)
	}
	sum := sha256.Sum256(line)
	h := hex.EncodeToString(sum[:])
	copy(line[len(hashPrefix):], h)
	ev.Hash = h
	s.seq, s.prev = ev.Seq, h
	s.buf = append(append(s.buf, line...), '\n')
	done := make(chan error, 1)
	s.waiters = append(s.waiters, done)
	if !s.flushing {
		s.flushing = true
		go s.flush()
	}
	s.mu.Unlock()
	return <-done
}

// flush writes and syncs everything queued, in rounds, until the queue is empty.
func (s *fileSink) flush() {
	s.mu.Lock()
	for len(s.buf) > 0 {
		buf, waiters, f := s.buf, s.waiters, s.f
		s.buf, s.waiters = nil, nil
		s.mu.Unlock()
		_, err := f.Write(buf)
		if err == nil {
			err = f.Sync()
		}
		s.mu.Lock()
		if err != nil {
			err = fmt.Errorf("audit: write %s: %w", s.path, err)
			s.broken = err
			// Events queued behind the failed batch chain onto events that
			// never reached the file: fail them too.
			for _, w := range s.waiters {
				w <- err
			}
			s.buf, s.waiters = nil, nil
		}
		for _, w := range waiters {
			w <- err
		}
	}
	s.flushing = false
	s.cond.Broadcast()
	s.mu.Unlock()
}

// reopen closes and reopens the file (after log rotation).
func (s *fileSink) reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.flushing {
		s.cond.Wait()
	}
	return s.reopenLocked()
}

func (s *fileSink) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.flushing {
		s.cond.Wait()
	}
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
