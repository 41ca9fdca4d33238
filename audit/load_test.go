package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/logbuf"
)

// unjournaled leaves the device at path of b as a crash would, with its
// journal holding the last events, then has the log lose them and get a
// forged line in their place: the journal no longer continues the log.
func unjournaled(t *testing.T, b *Broker, dev, path string) {
	t.Helper()
	crash(b.devices[dev].sink)
	cutLog(t, path, 2, 0)
	data, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	last, _ := parseChainLine(lines[len(lines)-1])
	forged := rehash(fmt.Sprintf(`{"hash":"%s","prev":"%s","seq":%d,"type":"response","request_id":"forged"}`, zeroHash, last.hash, last.seq+1))
	if err := os.WriteFile(path, append(data, forged+"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A device whose journal does not continue its log does not stop the
// start while another device opens: it is kept as a failed device, its
// files untouched, the other device records every request, and a request
// that no device can record is refused. Once its files change (the
// journal moved aside), a write opens it. Its failure is logged once, not
// per request.
func TestLoadKeepsADeviceThatDoesNotOpenAsFailed(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	b1 := NewBroker(r.h, r.st, nil)
	a, other := filepath.Join(r.dir, "a.log"), filepath.Join(r.dir, "other.log")
	for dev, path := range map[string]string{"a": a, "other": other} {
		if err := b1.Enable(ctx, Device{Path: dev, Type: "file", FilePath: path}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		logPair(t, b1, entry(i, "s"))
	}
	unjournaled(t, b1, "a", a)
	b1.Close()
	logA, journalA := mustRead(t, a), mustRead(t, journalPath(a))

	var logs logbuf.Buffer
	b2 := NewBroker(r.h, r.st, slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(b2.Close)
	if err := b2.Load(ctx); err != nil {
		t.Fatalf("load: %v", err)
	}
	if ds := b2.Devices(); len(ds) != 2 || !b2.Enabled() {
		t.Fatalf("devices after load: %+v", ds)
	}
	if !strings.Contains(logs.String(), "device=a") || !strings.Contains(logs.String(), "does not continue") {
		t.Fatalf("the server log does not name the device and its cause:\n%s", logs.String())
	}
	for i := 10; i < 30; i++ {
		logPair(t, b2, entry(i, "s"))
	}
	if n := strings.Count(logs.String(), `msg="audit device failed"`); n != 1 {
		t.Fatalf("the failed device's failure was logged %d times over 20 requests, want once:\n%s", n, logs.String())
	}
	evs := fileEvents(t, other)
	if last := evs[len(evs)-1]; last.RequestID != "req-29" {
		t.Fatalf("the other device's last event is of %s, want req-29", last.RequestID)
	}
	if !bytes.Equal(mustRead(t, a), logA) || !bytes.Equal(mustRead(t, journalPath(a)), journalA) {
		t.Fatal("the failed device's log or journal changed")
	}

	// With the other device failing too, nothing can record: refused.
	failWrites(t, b2.devices["other"].sink, other)
	e := entry(40, "s")
	e.Status = 200
	if err := b2.LogPair(ctx, e); err == nil {
		t.Fatal("a request was let through with no device able to record it")
	}

	// The journal moved aside: the next write opens the device.
	if err := os.Rename(journalPath(a), filepath.Join(r.dir, "a.journal.kept")); err != nil {
		t.Fatal(err)
	}
	logPair(t, b2, entry(41, "s"))
	evs = fileEvents(t, a)
	if last := evs[len(evs)-1]; last.RequestID != "req-41" {
		t.Fatalf("the device's last event is of %s once its journal was moved aside, want req-41", last.RequestID)
	}
}

// With no device that opens, the start fails, and the files are left as
// they are.
func TestLoadFailsWhenNoDeviceOpens(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	b1 := NewBroker(r.h, r.st, nil)
	a := filepath.Join(r.dir, "a.log")
	if err := b1.Enable(ctx, Device{Path: "a", Type: "file", FilePath: a}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		logPair(t, b1, entry(i, "s"))
	}
	unjournaled(t, b1, "a", a)
	b1.Close()
	logA, journalA := mustRead(t, a), mustRead(t, journalPath(a))
	b2 := NewBroker(r.h, r.st, nil)
	t.Cleanup(b2.Close)
	if err := b2.Load(ctx); err == nil || !strings.Contains(err.Error(), "does not continue") {
		t.Fatalf("load with its only device's journal not continuing its log: %v", err)
	}
	if !bytes.Equal(mustRead(t, a), logA) || !bytes.Equal(mustRead(t, journalPath(a)), journalA) {
		t.Fatal("the device's log or journal changed")
	}
}

// A device that has not opened reads its journal again only once its log
// or journal changed (or after retryRefused), not on every write; Reopen
// (SIGHUP) reads it at once.
func TestRefusedJournalIsNotReadOnEveryWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := journalSink(t, path)
	writeEvents(t, s, 0, 5, 10)
	crash(s)
	cutLog(t, path, 2, 0)
	data := mustRead(t, path)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	last, _ := parseChainLine(lines[len(lines)-1])
	forged := rehash(fmt.Sprintf(`{"hash":"%s","prev":"%s","seq":3,"type":"response","request_id":"forged"}`, zeroHash, last.hash))
	os.WriteFile(path, append(data, forged+"\n"...), 0o600)

	s = newFileSink(path)
	s.broken = fmt.Errorf("did not open")
	t.Cleanup(func() { s.close() })
	tries := func() time.Time {
		t.Helper()
		if err := s.write(durable, []byte(`{"type":"response"}`)); err == nil || !strings.Contains(err.Error(), "does not continue") {
			t.Fatalf("write: %v", err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.refused.at
	}
	first := tries()
	if again := tries(); !again.Equal(first) {
		t.Fatal("the journal was read again with neither file changed")
	}
	// The log changes (appended to by someone): read again.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(rehash(fmt.Sprintf(`{"hash":"%s","prev":"%s","seq":4,"type":"response","request_id":"forged2"}`, zeroHash, ownHashOf(forged))) + "\n")
	f.Close()
	second := tries()
	if second.Equal(first) {
		t.Fatal("the journal was not read again after the log changed")
	}
	if err := s.reopen(); err == nil {
		t.Fatal("reopen opened a device whose journal does not continue its log")
	}
	s.mu.Lock()
	third := s.refused.at
	s.mu.Unlock()
	if third.Equal(second) {
		t.Fatal("reopen did not read the journal again")
	}
}

// ownHashOf is the hash a rehashed line carries.
func ownHashOf(line string) string {
	return line[len(hashPrefix) : len(hashPrefix)+64]
}

// A device that has not opened, whose first try could not reach its
// journal (its directory was gone), reads the journal on the next try: the
// lines a crash took from the log go back into it, and the device keeps
// its journal.
func TestDeviceThatHasNotOpenedRetriesItsJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.log")
	s := journalSink(t, path)
	writeEvents(t, s, 0, 5, 10)
	crash(s)
	cutLog(t, path, 2, 0)
	away := dir + ".away"
	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	s = newFileSink(path)
	s.broken = errors.New("did not open")
	t.Cleanup(func() { s.close() })
	if err := s.write(durable, []byte(`{"type":"response","request_id":"r5"}`)); err == nil {
		t.Fatal("a device without its directory took a line")
	}
	if err := os.Rename(away, dir); err != nil {
		t.Fatal(err)
	}
	if err := s.write(durable, []byte(`{"type":"response","request_id":"r5"}`)); err != nil {
		t.Fatal(err)
	}
	if s.recovered != 3 || s.records() == nil {
		t.Fatalf("recovered %d lines from the journal (want 3), journal records: %v", s.recovered, s.records() != nil)
	}
	verifyEvents(t, 6, path)
}
