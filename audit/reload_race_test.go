package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
)

// hookStore runs before or after around each Update, as another node's
// change reaching this one at that moment would.
type hookStore struct {
	store.Store
	before, after func()
}

func (s *hookStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if s.before != nil {
		s.before()
	}
	err := s.Store.Update(ctx, fn)
	if s.after != nil {
		s.after()
	}
	return err
}

// reloadNow starts a Reload and gives it time to finish; Reload waits
// for a running Enable or Disable, so it may still be waiting on return.
func reloadNow(t *testing.T, b *Broker) <-chan error {
	done := make(chan error, 1)
	go func() { done <- b.Reload(context.Background()) }()
	select {
	case err := <-done:
		done <- err
	case <-time.After(200 * time.Millisecond):
	}
	return done
}

// openFiles counts this process's descriptors open on path.
func openFiles(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd here")
	}
	n := 0
	for _, e := range ents {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && p == path {
			n++
		}
	}
	return n
}

// hookedBroker is a broker on r's store through a hookStore.
func hookedBroker(t *testing.T, r *rig) (*Broker, *hookStore) {
	hs := &hookStore{Store: r.st}
	b := NewBroker(r.h, hs, nil)
	if err := b.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, hs
}

func TestReloadDuringEnableOpensNoSecondWriter(t *testing.T) {
	r := newRig(t)
	b, hs := hookedBroker(t, r)
	var reloaded <-chan error
	hs.after = func() { reloaded = reloadNow(t, b) }
	path := filepath.Join(r.dir, "audit.log")
	if err := b.Enable(context.Background(), Device{Path: "file", Type: "file", FilePath: path}); err != nil {
		t.Fatal(err)
	}
	hs.after = nil
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	if n := openFiles(t, path); n != 1 {
		t.Fatalf("%d descriptors write %s after an Enable with a Reload in it, want 1", n, path)
	}
}

func TestReloadDuringDisableKeepsTheDeviceClosed(t *testing.T) {
	r := newRig(t)
	b, hs := hookedBroker(t, r)
	ctx := context.Background()
	path := filepath.Join(r.dir, "audit.log")
	if err := b.Enable(ctx, Device{Path: "file", Type: "file", FilePath: path}); err != nil {
		t.Fatal(err)
	}
	var reloaded <-chan error
	hs.before = func() { reloaded = reloadNow(t, b) }
	if err := b.Disable(ctx, "file"); err != nil {
		t.Fatal(err)
	}
	hs.before = nil
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	if d := b.Devices(); len(d) != 0 {
		t.Fatalf("devices after Disable with a Reload in it: %v", d)
	}
	if n := openFiles(t, path); n != 0 {
		t.Fatalf("%d descriptors still write %s after its device was disabled", n, path)
	}
}

// Persist makes queued request events durable; after a failed write of the
// trail since they were queued it fails, since they may have been lost.
func TestPersistQueuedRequests(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	ctx := context.Background()
	path := filepath.Join(r.dir, "audit.log")
	if err := b.Enable(ctx, Device{Path: "file", Type: "file", FilePath: path}); err != nil {
		t.Fatal(err)
	}
	b.mu.RLock()
	s := b.devices["file"].sink
	b.mu.RUnlock()
	var es []*Entry
	for i := range 3 {
		e := entry(i, "s")
		if err := b.QueueRequest(ctx, e); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	if err := b.Persist(ctx, es...); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	synced, seq := s.synced, s.seq
	s.mu.Unlock()
	if synced < seq {
		t.Fatalf("after Persist, lines up to %d are durable of %d queued", synced, seq)
	}
	data, _ := os.ReadFile(path)
	for _, e := range es {
		if !strings.Contains(string(data), `"request_id":"`+e.RequestID+`"`) {
			t.Fatalf("persisted request %s is not in the log", e.RequestID)
		}
	}

	lost := entry(9, "s")
	if err := b.QueueRequest(ctx, lost); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.fail(errors.New("a write failed"))
	s.mu.Unlock()
	if err := b.Persist(ctx, lost); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("Persist of an event queued before a failed write: %v, want unavailable", err)
	}
	// Nothing queued: nothing to wait for.
	if err := b.Persist(ctx, nil, entry(10, "s")); err != nil {
		t.Fatalf("Persist of entries never queued: %v", err)
	}
}
