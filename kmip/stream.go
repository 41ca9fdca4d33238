package kmip

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/keyhold/keyhold/hsm"
	"github.com/ovh/kmip-go"
)

// Streams are the multi-part Encrypt and Decrypt operations in progress
// (KMIP 1.3 §4.29: Init Indicator, Correlation Value, Final Indicator).
// Each holds an hsm.Stream, and so a token session, between requests: they
// are bounded in number, end when idle, and are this node's (a stream
// cannot continue on another node). A Correlation Value is 16 random bytes
// and works only for the mount, scope, object and operation that began it.
type streams struct {
	mu  sync.Mutex
	m   map[string]*streamEntry
	now func() time.Time
}

type streamEntry struct {
	st     *hsm.Stream
	mount  string
	scope  string
	object string
	op     kmip.Operation
	alg    hsm.Algorithm
	last   time.Time
	bytes  int // data sent so far
}

const (
	maxStreams = 64
	streamIdle = 2 * time.Minute
	// maxGCMStreamBytes bounds the data of an AES-GCM stream: the token
	// holds a GCM decryption's data until its last part (no plaintext
	// before the tag is checked), as much as a one-shot operation takes.
	maxGCMStreamBytes = 16 << 20
)

func newStreams(now func() time.Time) *streams {
	return &streams{m: map[string]*streamEntry{}, now: now}
}

// sweep ends idle streams. Callers hold mu.
func (s *streams) sweep() {
	cut := s.now().Add(-streamIdle)
	for k, e := range s.m {
		if e.last.Before(cut) {
			e.st.Close()
			delete(s.m, k)
		}
	}
}

// later sweeps once a stream used now could have become idle, so that an
// abandoned stream gives its session back even if no other stream comes.
func (s *streams) later() {
	time.AfterFunc(streamIdle+time.Second, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.sweep()
	})
}

// add registers a stream and returns its Correlation Value.
func (s *streams) add(e *streamEntry) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.later()
	s.sweep()
	if len(s.m) >= maxStreams {
		return nil, errorf(kmip.ResultReasonGeneralFailure, "too many streamed operations are in progress (%d); finish some first", maxStreams)
	}
	cv := make([]byte, 16)
	rand.Read(cv)
	e.last = s.now()
	s.m[string(cv)] = e
	return cv, nil
}

// take returns the stream of a Correlation Value if it belongs to the
// caller, counting the n bytes of data the caller brings; final removes it
// from the table. An AES-GCM stream over maxGCMStreamBytes ends.
func (s *streams) take(cv []byte, mount, scope, object string, op kmip.Operation, final bool, n int) (*streamEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	e := s.m[string(cv)]
	if e == nil || e.mount != mount || e.scope != scope || e.op != op || (object != "" && e.object != object) {
		return nil, errorf(kmip.ResultReasonItemNotFound, "no streamed operation has this Correlation Value (it may have ended or been idle for %s)", streamIdle)
	}
	if e.bytes += n; e.alg == hsm.AESGCM && e.bytes > maxGCMStreamBytes {
		delete(s.m, string(cv))
		e.st.Close()
		return nil, invalidField("an AES-GCM stream carries at most %d bytes of data; the stream ended", maxGCMStreamBytes)
	}
	e.last = s.now()
	if final {
		delete(s.m, string(cv))
	} else {
		s.later()
	}
	return e, nil
}

// held is how many bytes of data the stream with Correlation Value cv has
// taken so far, or 0 if there is none (take then refuses it).
func (s *streams) held(cv []byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[string(cv)]; e != nil {
		return e.bytes
	}
	return 0
}

// drop ends a stream after a failure.
func (s *streams) drop(cv []byte) {
	s.mu.Lock()
	e := s.m[string(cv)]
	delete(s.m, string(cv))
	s.mu.Unlock()
	if e != nil {
		e.st.Close()
	}
}

// close ends every stream.
func (s *streams) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.m {
		e.st.Close()
		delete(s.m, k)
	}
}
