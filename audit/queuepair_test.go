package audit

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// QueuePair does not wait for a commit: with the disk stalled in the
// commit of another request's events, it returns at once. Its events are
// in the log, next to each other in the chain, and durable once the disk
// moves again, although no request waits for them.
func TestQueuePairDoesNotWaitForACommit(t *testing.T) {
	_, b, path := fileDevice(t)
	ctx := context.Background()
	stalled, release := make(chan struct{}, 1), make(chan struct{})
	stall := func() {
		select {
		case stalled <- struct{}{}:
		default:
		}
		<-release
	}
	stallCommit.Store(&stall)
	t.Cleanup(func() { stallCommit.Store(nil) })
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	durable := entry(1, "s")
	durable.Status = 200
	logged := make(chan error, 1)
	go func() { logged <- b.LogPair(ctx, durable) }()
	select {
	case <-stalled:
	case <-time.After(5 * time.Second):
		t.Fatal("the durable pair's commit did not start")
	}
	refused := entry(2, "s")
	refused.Status, refused.XKSErrorName = 429, "ThrottlingException"
	queued := make(chan error, 1)
	go func() { queued <- b.QueuePair(ctx, refused) }()
	select {
	case err := <-queued:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("QueuePair waited for the stalled commit")
	}
	select {
	case err := <-logged:
		t.Fatalf("LogPair returned (%v) while its commit was stalled", err)
	default:
	}
	s := b.devices["file"].sink
	s.mu.Lock()
	seq := s.seq
	s.mu.Unlock()

	stallCommit.Store(nil)
	close(release)
	released = true
	if err := <-logged; err != nil {
		t.Fatal(err)
	}
	sinkState(t, s, "the queued pair is durable", func() bool { return s.synced >= seq })
	evs := fileEvents(t, path)
	if len(evs) != 4 {
		t.Fatalf("%d events, want 4", len(evs))
	}
	req, resp := evs[2], evs[3]
	if req.RequestID != "req-2" || req.Type != "request" || resp.RequestID != "req-2" || resp.Type != "response" ||
		resp.Response.Status != 429 || resp.Response.XKSErrorName != "ThrottlingException" {
		t.Fatalf("the queued pair: %+v %+v", req, resp)
	}
	if rep, err := Verify([]string{path}); err != nil || rep.Problem != nil {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

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
