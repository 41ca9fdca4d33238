package audit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
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
