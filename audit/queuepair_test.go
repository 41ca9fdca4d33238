package audit

import (
	"path/filepath"
	"testing"
	"time"
)

// Lines written that nobody waits for are committed within lazyCommit
// even if nothing is written after them: a crash that takes them from the
// log then finds them in the journal.
func TestLinesNobodyWaitsForAreCommitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := journalSink(t, path)
	if err := s.write(durable, []byte(`{"type":"response","request_id":"r0"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.write(queued, []byte(`{"type":"request","request_id":"r1"}`), []byte(`{"type":"response","request_id":"r1"}`)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sinkState(t, s, "the queued lines are durable", func() bool { return s.synced >= 3 })
	if d := time.Since(start); d > lazyCommit+time.Second {
		t.Fatalf("committed after %v, want within %v", d, lazyCommit)
	}
	crash(s)
	cutLog(t, path, 1, 0)
	reopenRecovering(t, path, 2)
	verifyEvents(t, 3, path)
}
