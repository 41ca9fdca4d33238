package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// journalSink opens a sink on path and fails the test unless its journal
// takes records (direct I/O works on the test's file system).
func journalSink(t *testing.T, path string) *fileSink {
	t.Helper()
	s, err := openFileSink(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.records() == nil {
		t.Fatalf("no journal records: %v", s.noJournal)
	}
	return s
}

// writeEvents writes n events, each durable before the next is written.
func writeEvents(t *testing.T, s *fileSink, from, n int, pad int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		body := fmt.Sprintf(`{"type":"response","request_id":"r%d","pad":"%s"}`, i, strings.Repeat("x", pad))
		if err := s.write(durable, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
}

// crash lets the sink go as a crash would: its files are closed, nothing is
// synced and the journal stays.
func crash(s *fileSink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.flushing {
		s.idle.Wait()
	}
	s.f.Close()
	s.j.f.Close()
	s.f, s.j = nil, nil
}

// cutLog truncates the log after its first keep lines, plus extra bytes of
// the next one (a line the crash cut in half).
func cutLog(t *testing.T, path string, keep, extra int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for range keep {
		off += bytes.IndexByte(data[off:], '\n') + 1
	}
	if err := os.Truncate(path, int64(off+extra)); err != nil {
		t.Fatal(err)
	}
}

// reopenRecovering opens the sink again after a crash and checks how many
// lines it got back from the journal.
func reopenRecovering(t *testing.T, path string, want int) *fileSink {
	t.Helper()
	s := journalSink(t, path)
	t.Cleanup(func() { s.close() })
	if s.recovered != want {
		t.Fatalf("recovered %d lines, want %d", s.recovered, want)
	}
	return s
}

// reopenRecoveringInto is reopenRecovering, and the lines must have gone
// into the file into.
func reopenRecoveringInto(t *testing.T, path string, want int, into string) *fileSink {
	t.Helper()
	s := reopenRecovering(t, path, want)
	if s.recoveredInto != into {
		t.Fatalf("recovered into %s, want %s", s.recoveredInto, into)
	}
	return s
}

func verifyEvents(t *testing.T, want int, files ...string) {
	t.Helper()
	rep, err := Verify(files)
	if err != nil || rep.Problem != nil || rep.Events != want {
		t.Fatalf("verify %v: %+v %v (want %d events)", files, rep, err, want)
	}
}

func TestJournalRecoversLostLines(t *testing.T) {
	for _, c := range []struct {
		name        string
		keep, extra int
	}{
		{"cut at a line", 30, 0},
		{"cut in a line", 30, 17},
		{"cut before the newline", 29, -1}, // line 30 whole but for its newline
		{"log lost", 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			s := journalSink(t, path)
			writeEvents(t, s, 0, 50, 100)
			crash(s)
			if c.extra < 0 {
				cutLog(t, path, c.keep+1, 0)
				data, _ := os.ReadFile(path)
				os.WriteFile(path, data[:len(data)-1], 0o600)
			} else {
				cutLog(t, path, c.keep, c.extra)
			}
			if c.keep == 0 {
				os.Remove(path)
			}
			want := 50 - c.keep
			if c.extra < 0 {
				want = 50 - c.keep - 1
			}
			s = reopenRecovering(t, path, want)
			verifyEvents(t, 50, path)
			writeEvents(t, s, 50, 1, 10)
			verifyEvents(t, 51, path)
		})
	}
}

func TestJournalRefusesALogItDoesNotContinue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := journalSink(t, path)
	writeEvents(t, s, 0, 10, 10)
	crash(s)
	// Line 6 is replaced by a forged one that carries a valid hash of its own.
	cutLog(t, path, 5, 0)
	data, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	last, _ := parseChainLine(lines[len(lines)-1])
	forged := rehash(fmt.Sprintf(`{"hash":"%s","prev":"%s","seq":6,"type":"response","request_id":"forged"}`, zeroHash, last.hash))
	os.WriteFile(path, append(data, forged+"\n"...), 0o600)
	_, err := openFileSink(path)
	if err == nil || !strings.Contains(err.Error(), "does not continue") {
		t.Fatalf("open: %v", err)
	}
	// The journal is kept for whoever looks.
	if _, err := os.Stat(journalPath(path)); err != nil {
		t.Fatal(err)
	}
}

func TestJournalTornRecordIsNotRecovered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := journalSink(t, path)
	writeEvents(t, s, 0, 10, 10) // one record (one block) per event, after the head block
	crash(s)
	jf, err := os.OpenFile(journalPath(path), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The last record was cut by the crash: its write never returned, so
	// its line was never acknowledged.
	if _, err := jf.WriteAt([]byte("#"), 10*journalBlock+journalHeader+5); err != nil {
		t.Fatal(err)
	}
	jf.Close()
	cutLog(t, path, 8, 0)
	s = reopenRecovering(t, path, 1)
	verifyEvents(t, 9, path)
}

func TestJournalWrapsAround(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := journalSink(t, path)
	s.mu.Lock()
	s.j.size, s.j.max = 16*journalBlock, 16*journalBlock
	s.mu.Unlock()
	writeEvents(t, s, 0, 100, 1000) // one block each: six times round
	s.mu.Lock()
	inRound := int(s.j.off/journalBlock) - 1 // after the head
	s.mu.Unlock()
	crash(s)
	// Lines before the journal last started over were fsynced into the log
	// then; a crash can take only those after.
	if inRound == 0 || inRound >= 16 {
		t.Fatalf("%d records in the journal's last round", inRound)
	}
	cutLog(t, path, 100-inRound, 0)
	s = reopenRecovering(t, path, inRound)
	verifyEvents(t, 100, path)
}

func TestJournalStartsOverOnRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	s := journalSink(t, path)
	writeEvents(t, s, 0, 5, 10)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.reopen(); err != nil {
		t.Fatal(err)
	}
	writeEvents(t, s, 5, 5, 10)
	crash(s)
	// The new file lost everything: only its own lines come back, not the
	// old file's.
	os.Truncate(path, 0)
	s = reopenRecovering(t, path, 5)
	verifyEvents(t, 10, path+".1", path)
}

// A crash just after a rotation: the new file is empty and the journal
// holds nothing that belongs to it, but where the chain stood.
func TestJournalRotationThenCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := journalSink(t, path)
	writeEvents(t, s, 0, 5, 10)
	os.Rename(path, path+".1")
	if err := s.reopen(); err != nil {
		t.Fatal(err)
	}
	crash(s)
	s = reopenRecovering(t, path, 0) // none of the old file's lines
	writeEvents(t, s, 5, 1, 10)
	verifyEvents(t, 6, path+".1", path)
}

// The journal stays after a clean stop, so that a file rotated while the
// appliance was down continues the chain; disabling the device removes it.
func TestJournalAcrossStopAndDisable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := journalSink(t, path)
	writeEvents(t, s, 0, 3, 10)
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	os.Rename(path, path+".1")
	s = reopenRecovering(t, path, 0)
	writeEvents(t, s, 3, 1, 10)
	verifyEvents(t, 4, path+".1", path)
	if err := s.drop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(journalPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal after disable: %v", err)
	}
	// Enabled again on an empty file, the device starts a new chain.
	os.Remove(path)
	s = journalSink(t, path)
	defer s.close()
	writeEvents(t, s, 0, 1, 10)
	rep, err := Verify([]string{path})
	if err != nil || rep.Problem != nil || rep.FirstSeq != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
}

// sinkWithoutDirectIO opens a sink on path as where direct I/O cannot be
// had; the test's later opens are the same.
func sinkWithoutDirectIO(t *testing.T, path string) *fileSink {
	t.Helper()
	saved := openDirect
	openDirect = func(string) (*os.File, error) { return nil, errors.New("not here") }
	t.Cleanup(func() { openDirect = saved })
	s, err := openFileSink(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Where direct I/O cannot be had, the log is fsynced instead, and the
// journal keeps only where the chain stands, so that a file rotated before a
// restart still continues the chain.
func TestNoJournalFallsBackToFsync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := sinkWithoutDirectIO(t, path)
	var err error
	if s.records() != nil || s.noJournal == nil {
		t.Fatal("journal records without direct I/O")
	}
	writeEvents(t, s, 0, 5, 10)
	verifyEvents(t, 5, path)
	if st, err := os.Stat(journalPath(path)); err != nil || st.Size() != journalBlock {
		t.Fatalf("journal file: %v %v (want the head alone)", st, err)
	}
	// Rotation, then a crash before any event in the new file.
	os.Rename(path, path+".1")
	if err := s.reopen(); err != nil {
		t.Fatal(err)
	}
	crash(s)
	if s, err = openFileSink(path); err != nil {
		t.Fatal(err)
	}
	writeEvents(t, s, 5, 2, 10)
	// A rotation while the appliance is stopped.
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	os.Rename(path, path+".2")
	if s, err = openFileSink(path); err != nil {
		t.Fatal(err)
	}
	writeEvents(t, s, 7, 1, 10)
	// Renamed without the device being told, then a crash.
	os.Rename(path, path+".3")
	writeEvents(t, s, 8, 2, 10)
	crash(s)
	if s, err = openFileSink(path); err != nil {
		t.Fatal(err)
	}
	writeEvents(t, s, 10, 1, 10)
	verifyEvents(t, 11, path+".1", path+".2", path+".3", path)
	if err := s.drop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(journalPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal after disable: %v", err)
	}
}

// Without direct I/O the journal holds no events, so a log that cannot be
// made durable at a rotation fails the device only until the next event
// resyncs it (with records, it stays failed until a restart: see
// TestJournalKeptWhenTheLogCannotBeMadeDurable).
func TestNoJournalRotationFailureResyncs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := sinkWithoutDirectIO(t, path)
	defer s.close()
	writeEvents(t, s, 0, 3, 10)
	s.mu.Lock()
	s.f.Close() // its fsync at the rotation fails
	s.mu.Unlock()
	os.Rename(path, path+".1")
	if err := s.reopen(); err == nil {
		t.Fatal("a rotation whose fsync failed succeeded")
	}
	writeEvents(t, s, 3, 2, 10)
	if rep, err := Verify([]string{path}); err != nil || rep.Problem != nil || rep.Events != 2 {
		t.Fatalf("after the resync: %+v %v", rep, err)
	}
}

// The end of a log is found however many blank lines follow its last
// event, and a last event of exactly the longest line read counts with or
// without its newline.
func TestLogTailEdges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := journalSink(t, path)
	writeEvents(t, s, 0, 3, 10)
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, bytes.Repeat([]byte{'\n'}, 3<<20))
	tl, err := readTail(path)
	if err != nil || tl.seq != 3 || tl.end != tl.size {
		t.Fatalf("after blank lines: %+v %v", tl, err)
	}

	path = filepath.Join(t.TempDir(), "audit.log")
	s = journalSink(t, path)
	writeEvents(t, s, 0, 1, 10)
	first, _ := os.ReadFile(path)
	// One more event, padded so that its line is maxLine bytes long.
	pad := 10 + maxLine - (len(first) - 1) // its seq has one digit, as the first's
	writeEvents(t, s, 1, 1, pad)
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if n := len(data) - len(first) - 1; n != maxLine {
		t.Fatalf("the long line has %d bytes, want %d", n, maxLine)
	}
	for _, trailing := range []bool{true, false} {
		if !trailing {
			os.Truncate(path, int64(len(data)-1))
		}
		if tl, err := readTail(path); err != nil || tl.seq != 2 || tl.end != tl.size {
			t.Fatalf("a last line of %d bytes (newline: %v): %+v %v", maxLine, trailing, tl, err)
		}
	}
}

// FuzzJournalLines: whatever a damaged journal holds, reading it neither
// panics nor returns lines that do not chain.
func FuzzJournalLines(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "audit.log")
	s, err := openFileSink(path)
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		if err := s.write(durable, fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			f.Fatal(err)
		}
	}
	if s.j != nil {
		data, _ := os.ReadFile(journalPath(path))
		f.Add(data[:3*journalBlock])
	}
	s.close()
	f.Add([]byte(journalMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		head, lines := journalLines(data)
		if head.seq > 0 && len(lines) > 0 && (lines[0].seq != head.seq+1 || lines[0].prev != head.hash) {
			t.Fatal("the first line does not continue the head")
		}
		for i := 1; i < len(lines); i++ {
			if lines[i].seq != lines[i-1].seq+1 || lines[i].prev != lines[i-1].hash {
				t.Fatalf("line %d does not chain", i)
			}
		}
	})
}

// A cycle too big for a record makes the log durable instead, and the
// journal starts over after it, so later records still count.
func TestJournalAfterARecordTooBig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := journalSink(t, path)
	s.mu.Lock()
	s.j.max = 16 * journalBlock // records of more than 4 blocks do not fit
	s.mu.Unlock()
	writeEvents(t, s, 0, 2, 10)
	writeEvents(t, s, 2, 1, 5*journalBlock)
	writeEvents(t, s, 3, 3, 10)
	crash(s)
	cutLog(t, path, 3, 0)
	s = reopenRecovering(t, path, 3)
	verifyEvents(t, 6, path)
}

// If the rotated file cannot be made durable, the journal keeps its lines
// and the device stays failed; the next start puts them back.
func TestJournalKeptWhenTheLogCannotBeMadeDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := journalSink(t, path)
	writeEvents(t, s, 0, 5, 10)
	s.mu.Lock()
	s.f.Close() // its fsync now fails, as after an I/O error
	s.mu.Unlock()
	os.Rename(path, path+".1")
	if err := s.reopen(); err == nil {
		t.Fatal("rotation succeeded without making the old file durable")
	}
	if err := s.write(durable, []byte(`{"n":1}`)); err == nil || !strings.Contains(err.Error(), "keeps its events") {
		t.Fatalf("write on a device whose journal is pinned: %v", err)
	}
	crash(s)
	cutLog(t, path+".1", 0, 0) // what the failed fsync did not write
	s = reopenRecoveringInto(t, path, 5, path+".1")
	writeEvents(t, s, 5, 1, 10)
	verifyEvents(t, 6, path+".1", path)
}

// A partial last line that no record holds was never durable: it moves to
// FILE.torn and the device opens.
func TestTornTailMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := journalSink(t, path)
	writeEvents(t, s, 0, 4, 10)
	if err := s.write(written, []byte(`{"type":"request","request_id":"r4"}`)); err != nil {
		t.Fatal(err)
	}
	crash(s)
	cutLog(t, path, 4, 30)
	s = reopenRecovering(t, path, 0)
	if s.cut != 30 {
		t.Fatalf("cut %d bytes, want 30", s.cut)
	}
	if torn, err := os.ReadFile(path + ".torn"); err != nil || len(torn) != 31 {
		t.Fatalf("torn file: %q %v", torn, err)
	}
	writeEvents(t, s, 4, 1, 10)
	verifyEvents(t, 5, path)
}

// A device closed or dropped writes nothing more and makes no new journal.
func TestClosedSinkRefusesWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := journalSink(t, path)
	writeEvents(t, s, 0, 1, 10)
	if err := s.drop(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.write(durable, []byte(`{"n":1}`)); err == nil || !strings.Contains(err.Error(), "closed") {
			t.Fatalf("write after drop: %v", err)
		}
	}
	if _, err := os.Stat(journalPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal after drop: %v", err)
	}
}

// A crash can leave the end of a log as zeros (blocks allocated, data never
// written), more than any line: what the journal holds comes back in their
// place, and zeros it does not cover move to FILE.torn.
func TestLongZeroTail(t *testing.T) {
	zeros := bytes.Repeat([]byte{0}, 3<<20)
	t.Run("journal covers it", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		s := journalSink(t, path)
		writeEvents(t, s, 0, 6, 100)
		crash(s)
		cutLog(t, path, 2, 0)
		appendFile(t, path, zeros)
		s = reopenRecovering(t, path, 4)
		writeEvents(t, s, 6, 1, 10)
		verifyEvents(t, 7, path)
	})
	t.Run("never durable", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		s := journalSink(t, path)
		writeEvents(t, s, 0, 4, 100)
		crash(s)
		appendFile(t, path, zeros)
		s = reopenRecovering(t, path, 0)
		if s.cut != int64(len(zeros)) {
			t.Fatalf("cut %d bytes, want %d", s.cut, len(zeros))
		}
		if st, err := os.Stat(path + ".torn"); err != nil || st.Size() != int64(len(zeros))+1 {
			t.Fatalf("torn file: %v %v", st, err)
		}
		writeEvents(t, s, 4, 1, 10)
		verifyEvents(t, 5, path)
	})
	t.Run("nothing but zeros", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		if err := os.WriteFile(path, zeros, 0o600); err != nil {
			t.Fatal(err)
		}
		s := reopenRecovering(t, path, 0)
		if s.cut != int64(len(zeros)) {
			t.Fatalf("cut %d bytes, want %d", s.cut, len(zeros))
		}
		writeEvents(t, s, 0, 2, 10)
		verifyEvents(t, 2, path)
	})
}

func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

// The log renamed (rotated) without the device being told, then a crash:
// the journal's lines go back into the renamed file, where they belong, and
// the new file continues the chain after them. Whether the crash took them
// from the renamed file or not, nothing is lost and nothing is doubled.
func TestJournalAfterRenameWithoutReopen(t *testing.T) {
	for _, lost := range []bool{true, false} {
		t.Run(fmt.Sprintf("lines lost %v", lost), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			s := journalSink(t, path)
			writeEvents(t, s, 0, 5, 10)
			os.Rename(path, path+".1")
			writeEvents(t, s, 5, 3, 10) // still into the renamed file
			crash(s)
			want := 0
			if lost {
				cutLog(t, path+".1", 5, 0)
				want = 3
			}
			s = reopenRecoveringInto(t, path, want, path+".1")
			writeEvents(t, s, 8, 1, 10)
			verifyEvents(t, 8, path+".1")
			verifyEvents(t, 9, path+".1", path)
		})
	}
	// The journal has gone round (wrapped) since the last open: its head
	// still names the log.
	t.Run("after the journal went round", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		s := journalSink(t, path)
		s.mu.Lock()
		s.j.size, s.j.max = 16*journalBlock, 16*journalBlock
		s.mu.Unlock()
		writeEvents(t, s, 0, 40, 1000)
		os.Rename(path, path+".1")
		writeEvents(t, s, 40, 3, 1000)
		crash(s)
		s = reopenRecoveringInto(t, path, 0, path+".1")
		writeEvents(t, s, 43, 1, 10)
		verifyEvents(t, 44, path+".1", path)
	})
	// A partial last line in the renamed file moves to its .torn, as one in
	// the log does.
	t.Run("torn tail in the renamed file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		s := journalSink(t, path)
		writeEvents(t, s, 0, 3, 10)
		os.Rename(path, path+".1")
		writeEvents(t, s, 3, 2, 10)
		crash(s)
		appendFile(t, path+".1", []byte(`{"hash":"cut sho`))
		s = reopenRecovering(t, path, 0)
		if s.cut != 16 {
			t.Fatalf("cut %d bytes, want 16", s.cut)
		}
		if _, err := os.Stat(path + ".1.torn"); err != nil {
			t.Fatal(err)
		}
		writeEvents(t, s, 5, 1, 10)
		verifyEvents(t, 6, path+".1", path)
	})
	// A write error after a rename the device was not told of: the resync
	// must not start the journal over for the new file while the renamed
	// one may lack what the records hold.
	t.Run("resync after a write error", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		s := journalSink(t, path)
		writeEvents(t, s, 0, 3, 10)
		os.Rename(path, path+".1")
		writeEvents(t, s, 3, 2, 10)
		s.mu.Lock()
		s.f.Close() // the next write fails, and so does an fsync of it
		s.mu.Unlock()
		if err := s.write(durable, []byte(`{"n":1}`)); err == nil {
			t.Fatal("a write to a closed log succeeded")
		}
		if err := s.write(durable, []byte(`{"n":2}`)); err == nil || !strings.Contains(err.Error(), "keeps its events") {
			t.Fatalf("resync: %v", err)
		}
		crash(s)
		cutLog(t, path+".1", 3, 0) // the power cut took what was not synced
		s = reopenRecoveringInto(t, path, 2, path+".1")
		writeEvents(t, s, 5, 1, 10)
		verifyEvents(t, 6, path+".1", path)
	})
	// A write error that leaves the old file fine to fsync: the new file
	// continues the chain from the last line written, not from the lines
	// given out and lost with the error.
	t.Run("resync onto the new file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		s := journalSink(t, path)
		writeEvents(t, s, 0, 3, 10)
		os.Rename(path, path+".1")
		writeEvents(t, s, 3, 2, 10)
		failWrites(t, s, path+".1")
		if err := s.write(durable, []byte(`{"lost":1}`)); err == nil {
			t.Fatal("a write to a read-only log succeeded")
		}
		writeEvents(t, s, 5, 1, 10)
		verifyEvents(t, 6, path+".1", path)
	})
	// A write that failed half way leaves a partial line: the resync moves
	// it aside, as a start does.
	t.Run("resync after a partial line", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		s := journalSink(t, path)
		writeEvents(t, s, 0, 3, 10)
		appendFile(t, path, []byte(`{"hash":"half a li`))
		failWrites(t, s, path)
		if err := s.write(durable, []byte(`{"lost":1}`)); err == nil {
			t.Fatal("a write to a read-only log succeeded")
		}
		writeEvents(t, s, 3, 1, 10)
		verifyEvents(t, 4, path)
		if _, err := os.Stat(path + ".torn"); err != nil {
			t.Fatal(err)
		}
	})
	// The log deleted, and its inode given to a new file with a rotation's
	// name: that file is not the log (it was born later) and is left alone.
	// The head is made to name the new file's device and inode, so that the
	// test does not depend on the file system handing the inode out again.
	t.Run("inode reused", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "audit.log")
		s := journalSink(t, path)
		writeEvents(t, s, 0, 3, 10)
		crash(s)
		os.Remove(path)
		gz := path + ".2.gz"
		if err := os.WriteFile(gz, []byte{0x1f, 0x8b, 8, 0, 1, 2, 3}, 0o600); err != nil {
			t.Fatal(err)
		}
		id := idAt(gz)
		if id == (logID{}) {
			t.Skip("the file system keeps no birth time")
		}
		id.born--
		setHeadID(t, path, id)
		s = reopenRecoveringInto(t, path, 3, path)
		if data, _ := os.ReadFile(gz); !bytes.Equal(data, []byte{0x1f, 0x8b, 8, 0, 1, 2, 3}) {
			t.Fatalf("the other file was changed: %q", data)
		}
	})
	// Only a file whose name begins with the log's is taken for it: one
	// that merely has its inode (reused) is left alone.
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	s := journalSink(t, path)
	writeEvents(t, s, 0, 2, 10)
	os.Rename(path, filepath.Join(dir, "other"))
	crash(s)
	s = reopenRecoveringInto(t, path, 2, path)
	// A head written before heads named their log: the lines go to the
	// log's path, as they did.
	path = filepath.Join(t.TempDir(), "audit.log")
	s = journalSink(t, path)
	writeEvents(t, s, 0, 2, 10)
	os.Rename(path, path+".1")
	crash(s)
	jf, err := os.OpenFile(journalPath(path), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	jf.WriteAt(make([]byte, idLen+4), idOff)
	jf.Close()
	s = reopenRecoveringInto(t, path, 2, path)
}

// failWrites makes the sink's writes fail while its log stays fine to
// fsync: the file at path, open read-only, takes the place of its log.
func failWrites(t *testing.T, s *fileSink, path string) {
	t.Helper()
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.f.Close()
	s.f = ro
	s.mu.Unlock()
}

// setHeadID writes id as the log id of the head of the journal of the log
// at path.
func setHeadID(t *testing.T, path string, id logID) {
	t.Helper()
	f, err := os.OpenFile(journalPath(path), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, idLen+4)
	copy(b, idMagic)
	binary.LittleEndian.PutUint64(b[4:], id.dev)
	binary.LittleEndian.PutUint64(b[12:], id.ino)
	binary.LittleEndian.PutUint64(b[20:], uint64(id.born))
	binary.LittleEndian.PutUint32(b[idLen:], crc32.Checksum(b[:idLen], castagnoli))
	if _, err := f.WriteAt(b, idOff); err != nil {
		t.Fatal(err)
	}
}

// An event whose line would be over maxLine is refused (the request fails)
// instead of written: the device could not read it back when it opens
// again. Verify reports a longer line without reading it into memory whole.
func TestOverlongEventRefused(t *testing.T) {
	r, b, path := fileDevice(t)
	logPair(t, b, entry(0, "s"))
	big := entry(1, "s")
	big.Data["blob"] = strings.Repeat("<", maxLine/6+1) // each "<" is written \u003c
	if err := b.LogPair(context.Background(), big); err == nil {
		t.Fatal("an event over maxLine was written")
	}
	logPair(t, b, entry(2, "s"))
	b.Close()
	again := r.broker(t)
	if err := again.Load(context.Background()); err != nil {
		t.Fatalf("the device does not open again: %v", err)
	}
	if rep, err := Verify([]string{path}); err != nil || rep.Problem != nil || rep.Events != 4 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	long := filepath.Join(t.TempDir(), "long.log")
	if err := os.WriteFile(long, bytes.Repeat([]byte("x"), maxLine+10), 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify([]string{long}); err != nil || rep.Problem == nil || !strings.Contains(rep.Problem.What, "longer than") {
		t.Fatalf("a line longer than maxLine: %+v %v", rep, err)
	}
}

// A request event that was only queued (QueueRequest: a KMIP Get) and lost
// with a failed write withholds the response, although the trail has
// resynchronised meanwhile and could take the response event.
func TestQueuedRequestLostWithholdsTheResponse(t *testing.T) {
	_, b, path := fileDevice(t)
	ctx := context.Background()
	logPair(t, b, entry(0, "s"))
	s := b.devices["file"].sink
	failWrites(t, s, path) // the queued line's write will fail
	e := entry(1, "s")
	if err := b.QueueRequest(ctx, e); err != nil {
		t.Fatal(err)
	}
	sinkState(t, s, "the failed write was noticed", func() bool { return s.broken != nil && !s.flushing })
	e.Status = 200
	if err := b.LogResponse(ctx, e); err == nil {
		t.Fatal("the response of a request whose event was lost was let through")
	}
	// Requests after it are served again, and the trail is intact.
	e2 := entry(2, "s")
	if err := b.QueueRequest(ctx, e2); err != nil {
		t.Fatal(err)
	}
	e2.Status = 200
	if err := b.LogResponse(ctx, e2); err != nil {
		t.Fatalf("the next request: %v", err)
	}
	if rep, err := Verify([]string{path}); err != nil || rep.Problem != nil {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	// A queued request event written before a later failure is not lost:
	// its response goes through.
	e3 := entry(3, "s")
	if err := b.QueueRequest(ctx, e3); err != nil {
		t.Fatal(err)
	}
	q, _ := e3.queued.get(s)
	sinkState(t, s, "the queued line was written", func() bool { return s.written >= q.seq })
	failWrites(t, s, path)
	if err := s.write(durable, []byte(`{"lost":1}`)); err == nil {
		t.Fatal("a write to a read-only log succeeded")
	}
	e3.Status = 200
	if err := b.LogResponse(ctx, e3); err != nil {
		t.Fatalf("the response of a request whose event was written before the failure: %v", err)
	}
}

// sinkState waits until cond, checked under the sink's lock, holds.
func sinkState(t *testing.T, s *fileSink, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 5 s: %s", what)
		}
	}
}

// fileDevice is a broker of a new rig with a file device at path.
func fileDevice(t *testing.T) (*rig, *Broker, string) {
	t.Helper()
	r := newRig(t)
	b := r.broker(t)
	path := filepath.Join(r.dir, "audit.log")
	if err := b.Enable(context.Background(), Device{Path: "file", Type: "file", FilePath: path}); err != nil {
		t.Fatal(err)
	}
	return r, b, path
}
