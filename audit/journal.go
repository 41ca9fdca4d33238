package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"
)

// A file device makes its lines durable through a journal beside its log,
// ".NAME.journal" in the log's directory, instead of an fsync of the log per
// group. The journal is a file of blocks written once with zeros and then
// overwritten in place with O_DIRECT|O_DSYNC: a write into blocks that
// already exist changes no metadata, so making it durable needs no
// file-system journal commit and no writeback of the log's pages, only the
// block write and a cache flush. The log itself is written as before (a
// plain append, read by tail -f and log shippers) and fsynced only when the
// journal fills up, when the file is rotated and when the device closes.
//
// Each flush cycle that must make lines durable writes one record: a 64-byte
// header (magic, payload length, first and last sequence number, CRC-32C of
// header and payload) and the lines the log got since the last record,
// padded to whole blocks. Records follow the head (below) in the first
// block; when the next would not fit, the journal first grows (doubling, up
// to its maximum) or, at its maximum, the log is fsynced and the journal
// starts over.
//
// The journal starts over whenever the log has just been made durable
// (open, rotation, a full journal, a cycle too big for a record, close):
// its first block becomes the head, where the chain stands (the last
// event's sequence number and hash, so that an empty log continues the
// chain) and which file the records that follow belong to (device, inode,
// birth time).
//
// After a crash the log can lack lines whose responses were sent; opening
// the device appends them from the journal, to the file the head names if
// the log was renamed meanwhile. Records are read from the head on while
// each is whole (CRC), continues the previous one's sequence numbers and
// its lines continue the hash chain; a record left over from the journal's
// last round cannot continue the chain, and one cut short by the crash
// fails its CRC (its lines were never acknowledged).
const (
	journalMagic   = "KHJ1"
	journalHeader  = 64
	journalBlock   = 4096
	journalInitial = 1 << 20
	journalMax     = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// openDirect opens the journal for direct, synchronous writes; it is a
// variable so that tests can take the fallback path (an fsync of the log).
var openDirect = openDirectIO

type journal struct {
	path  string
	f     *os.File
	size  int64  // the file's size: blocks that exist and can be overwritten
	max   int64  // the size it grows to at most
	off   int64  // where the next record goes
	buf   []byte // block-aligned scratch for a record
	pend  []byte // lines written to the log and in no record yet
	first uint64 // sequence number of pend's first line
	last  uint64 // and of its last
	// pinned: an fsync of the log failed, so the journal may hold the only
	// durable copy of lines; it is never started over, and the device stays
	// failed until a restart recovers them.
	pinned error
	// direct: opened with O_DIRECT|O_DSYNC, so it takes records. Without
	// direct I/O it keeps only the chain's head (block 0, fsynced whenever
	// the journal starts over), and the log is fsynced per cycle instead.
	direct bool
}

// syncLog makes the log durable; if it cannot, a journal that takes records
// is pinned.
func (j *journal) syncLog(log *os.File) error {
	if j.pinned != nil {
		return j.pinned
	}
	if err := log.Sync(); err != nil {
		if !j.direct {
			return err // no records to keep: the next event resyncs the device
		}
		j.pinned = fmt.Errorf("audit: %s could not be made durable (%w); the journal %s keeps its events until a restart puts them back", log.Name(), err, j.path)
		return j.pinned
	}
	return nil
}

func journalPath(logPath string) string {
	return filepath.Join(filepath.Dir(logPath), "."+filepath.Base(logPath)+".journal")
}

// openJournal opens (or creates) the journal of the log at logPath without
// changing it; reset readies it. If direct I/O cannot be had (noDirect says
// why), the journal is opened for the chain's head alone.
func openJournal(logPath string) (j *journal, noDirect, err error) {
	path := journalPath(logPath)
	f, noDirect := openDirect(path)
	if noDirect != nil {
		if f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
			return nil, noDirect, err
		}
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, noDirect, err
	}
	return &journal{path: path, f: f, size: st.Size() &^ (journalBlock - 1), max: journalMax, direct: noDirect == nil}, noDirect, nil
}

// alignedBlocks returns n bytes (a multiple of the block size) starting on
// a block boundary, as direct I/O requires.
func alignedBlocks(n int) []byte {
	mem := make([]byte, n+journalBlock)
	a := int(uintptr(unsafe.Pointer(&mem[0])) & (journalBlock - 1))
	skip := 0
	if a != 0 {
		skip = journalBlock - a
	}
	return mem[skip : skip+n : skip+n]
}

// grow extends the file with zeroed blocks to size.
func (j *journal) grow(size int64) error {
	zero := alignedBlocks(min(int(size-j.size), 1<<20))
	for j.size < size {
		n := min(int64(len(zero)), size-j.size)
		if _, err := j.f.WriteAt(zero[:n], j.size); err != nil {
			return fmt.Errorf("audit: grow %s: %w", j.path, err)
		}
		j.size += n
	}
	return nil
}

// reset starts the journal over once log, and the directory entry that
// names it, are durable: its first block becomes the chain's head (the
// sequence number and hash of the last event given out), so that no record
// in it counts any more and an empty log continues the chain.
func (j *journal) reset(log *os.File, seq uint64, hash string) error {
	if err := j.syncLog(log); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(j.path)); err == nil {
		d.Sync()
		d.Close()
	}
	if j.direct && j.size < journalInitial {
		if err := j.grow(journalInitial); err != nil {
			return err
		}
	}
	return j.writeHead(seq, hash, idOf(log))
}

// logID names the file a journal's records belong to, so that after a
// crash they go back into that file even if it was renamed (rotated without
// SIGHUP): its device, inode and birth time (an inode number alone is soon
// given to a new file). Zero where it cannot be had (idOf, idAt: not Linux,
// or a file system that keeps no birth time).
type logID struct {
	dev, ino uint64
	born     int64 // ns since the epoch
}

// The log's id follows the head in the first block: a magic of its own, the
// device, inode and birth time, and a CRC-32C of them (a head written
// without an id has zeros there).
const (
	idMagic = "KHI1"
	idOff   = journalHeader
	idLen   = 4 + 8 + 8 + 8
)

// writeHead writes the chain's head, and the id of the log the records
// that follow belong to, into the first block (the log holds every line up
// to the head durably) and makes the next record follow it.
func (j *journal) writeHead(seq uint64, hash string, id logID) error {
	head := alignedBlocks(journalBlock)
	if raw, err := hex.DecodeString(hash); err == nil && len(raw) == sha256.Size {
		copy(head, journalMagic)
		binary.LittleEndian.PutUint64(head[8:], seq)
		binary.LittleEndian.PutUint64(head[16:], seq)
		copy(head[28:], raw)
		binary.LittleEndian.PutUint32(head[24:], headCRC(head))
		if id != (logID{}) {
			b := head[idOff:]
			copy(b, idMagic)
			binary.LittleEndian.PutUint64(b[4:], id.dev)
			binary.LittleEndian.PutUint64(b[12:], id.ino)
			binary.LittleEndian.PutUint64(b[20:], uint64(id.born))
			binary.LittleEndian.PutUint32(b[idLen:], crc32.Checksum(b[:idLen], castagnoli))
		}
	}
	if _, err := j.f.WriteAt(head, 0); err != nil {
		return fmt.Errorf("audit: reset %s: %w", j.path, err)
	}
	if !j.direct {
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("audit: reset %s: %w", j.path, err)
		}
	}
	j.off, j.pend = journalBlock, j.pend[:0]
	return nil
}

// headCRC is the checksum of a head block: its first 24 bytes and the hash.
func headCRC(h []byte) uint32 {
	return headerCRC(h, h[28:28+sha256.Size])
}

// headerCRC is the checksum a header carries: of its first 24 bytes and of
// body (a record's payload, or a head's hash).
func headerCRC(h, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(h[:24], castagnoli), castagnoli, body)
}

// add notes lines (whole lines, sequence numbers first to last) just
// written to the log.
func (j *journal) add(lines []byte, first, last uint64) {
	if len(j.pend) == 0 {
		j.first = first
	}
	j.pend = append(j.pend, lines...)
	j.last = last
}

// commit makes every line added since the last commit durable, by a record
// or, if the journal cannot hold it, by an fsync of log.
func (j *journal) commit(log *os.File) error {
	if len(j.pend) == 0 {
		return nil
	}
	n := (journalHeader + len(j.pend) + journalBlock - 1) &^ (journalBlock - 1)
	if int64(n) <= j.max/4 && j.off+int64(n) > j.size && j.size < j.max {
		size := max(j.size*2, (j.off+int64(n)+journalInitial-1)&^(journalInitial-1))
		if err := j.grow(min(size, j.max)); err != nil {
			return err
		}
	}
	if int64(n) > j.max/4 || j.off+int64(n) > j.size {
		// Too big for a record, or the journal is full: the log is made
		// durable, and the journal starts over after it, from a head that
		// names the log (a later record must not follow a gap, and the
		// head is never overwritten by a record).
		if err := j.syncLog(log); err != nil {
			return err
		}
		last := j.pend[:len(j.pend)-1]
		last = last[bytes.LastIndexByte(last, '\n')+1:]
		l, ok := parseChainLine(last)
		if !ok {
			return fmt.Errorf("audit: %s: a line the flusher wrote does not parse", j.path)
		}
		return j.writeHead(l.seq, l.hash, idOf(log))
	}
	if len(j.buf) < n {
		j.buf = alignedBlocks(max(n, 2*len(j.buf)))
	}
	rec := j.buf[:n]
	copy(rec, journalMagic)
	binary.LittleEndian.PutUint32(rec[4:], uint32(len(j.pend)))
	binary.LittleEndian.PutUint64(rec[8:], j.first)
	binary.LittleEndian.PutUint64(rec[16:], j.last)
	copy(rec[journalHeader:], j.pend)
	clear(rec[journalHeader+len(j.pend):])
	binary.LittleEndian.PutUint32(rec[24:], headerCRC(rec, j.pend))
	clear(rec[28:journalHeader])
	if _, err := j.f.WriteAt(rec, j.off); err != nil {
		return fmt.Errorf("audit: write %s: %w", j.path, err)
	}
	j.off += int64(n)
	j.pend = j.pend[:0]
	return nil
}

// close makes the log durable, starts the journal over from the chain's
// head and closes it.
func (j *journal) close(log *os.File, seq uint64, hash string) error {
	return errors.Join(j.reset(log, seq, hash), j.f.Close())
}

// remove makes the log durable, then removes the journal.
func (j *journal) remove(log *os.File) error {
	err := j.syncLog(log)
	if err == nil {
		err = os.Remove(j.path)
	}
	return errors.Join(err, j.f.Close())
}

// chainLine is a line of the trail with its chain fields.
type chainLine struct {
	seq        uint64
	hash, prev string
	raw        []byte // without its newline
}

// parseChainLine reads the chain fields at the start of a line as the sink
// writes them and checks the line's own hash.
func parseChainLine(line []byte) (chainLine, bool) {
	const prevField, seqField = `","prev":"`, `","seq":`
	p := len(hashPrefix)
	if !bytes.HasPrefix(line, []byte(hashPrefix)) || len(line) < p+64+len(prevField)+64+len(seqField)+2 {
		return chainLine{}, false
	}
	hash := string(line[p : p+64])
	p += 64
	if string(line[p:p+len(prevField)]) != prevField {
		return chainLine{}, false
	}
	p += len(prevField)
	prev := string(line[p : p+64])
	p += 64
	if string(line[p:p+len(seqField)]) != seqField {
		return chainLine{}, false
	}
	p += len(seqField)
	end := bytes.IndexByte(line[p:], ',')
	if end <= 0 {
		return chainLine{}, false
	}
	seq, err := strconv.ParseUint(string(line[p:p+end]), 10, 64)
	if err != nil || seq == 0 {
		return chainLine{}, false
	}
	if ownHash(line) != hash {
		return chainLine{}, false
	}
	return chainLine{seq: seq, hash: hash, prev: prev, raw: line}, true
}

// journalHead is where the chain stood when the journal last started over,
// and the id of the log its records belong to (zero if unknown).
type journalHead struct {
	chainLine
	id logID
}

// journalLines returns the chain's head, if the journal starts with one,
// and the lines of the journal's valid records, in order: records from the
// start (after the head, if there is one) while each is whole and continues
// the sequence numbers and the hash chain of the one before (or of the
// head).
func journalLines(data []byte) (journalHead, []chainLine) {
	var head journalHead
	off, headed := 0, false
	if len(data) >= journalHeader && string(data[:4]) == journalMagic && binary.LittleEndian.Uint32(data[4:]) == 0 {
		h := data[:journalHeader]
		seq := binary.LittleEndian.Uint64(h[8:])
		if binary.LittleEndian.Uint64(h[16:]) != seq || headCRC(h) != binary.LittleEndian.Uint32(h[24:]) {
			return head, nil
		}
		head.chainLine = chainLine{seq: seq, hash: hex.EncodeToString(h[28 : 28+sha256.Size])}
		if len(data) >= idOff+idLen+4 {
			b := data[idOff:]
			if string(b[:4]) == idMagic && crc32.Checksum(b[:idLen], castagnoli) == binary.LittleEndian.Uint32(b[idLen:]) {
				head.id = logID{dev: binary.LittleEndian.Uint64(b[4:]), ino: binary.LittleEndian.Uint64(b[12:]), born: int64(binary.LittleEndian.Uint64(b[20:]))}
			}
		}
		off, headed = journalBlock, true
	}
	var out []chainLine
	prev := head.chainLine
	for off+journalHeader <= len(data) {
		h := data[off : off+journalHeader]
		n := int(binary.LittleEndian.Uint32(h[4:]))
		first, last := binary.LittleEndian.Uint64(h[8:]), binary.LittleEndian.Uint64(h[16:])
		if string(h[:4]) != journalMagic || n == 0 || n > len(data)-off-journalHeader || first == 0 || last < first {
			break
		}
		payload := data[off+journalHeader : off+journalHeader+n]
		if headerCRC(h, payload) != binary.LittleEndian.Uint32(h[24:]) {
			break
		}
		if (headed || len(out) > 0) && first != prev.seq+1 {
			break
		}
		var rec []chainLine
		ok := payload[len(payload)-1] == '\n'
		for rest := payload; ok && len(rest) > 0; {
			i := bytes.IndexByte(rest, '\n')
			l, good := parseChainLine(rest[:i])
			rest = rest[i+1:]
			want := first + uint64(len(rec))
			switch {
			case !good || l.seq != want:
				ok = false
			case len(rec) > 0 && l.prev != rec[len(rec)-1].hash:
				ok = false
			case len(rec) == 0 && (headed || len(out) > 0) && l.prev != prev.hash:
				ok = false
			default:
				rec = append(rec, l)
			}
		}
		if !ok || rec[len(rec)-1].seq != last {
			break
		}
		out = append(out, rec...)
		prev = rec[len(rec)-1]
		off += (journalHeader + n + journalBlock - 1) &^ (journalBlock - 1)
	}
	return head, out
}

// recovery is what opening a device took back from its journal.
type recovery struct {
	lines int       // lines appended to the log
	into  string    // the file they went to: the log, or the file it was renamed to
	cut   int64     // bytes of a partial last line of a renamed log moved to FILE.torn
	pos   chainLine // where the chain stands for a log at the path that holds no event
}

// recoverFromJournal appends to the log the lines its journal holds and it
// lacks (a crash can lose lines of the log whose responses were sent),
// cutting off a partial last line first, and makes the log durable. The log
// is the file at logPath or, if the records belong to another file next to
// it (the log was renamed, and the device not told, before the crash), that
// file; a partial last line left in such a file moves to FILE.torn, as
// reopenLocked does for the log at logPath. The chain goes on from the
// journal's head (seq 0 if none: a new chain) or from the renamed file's
// end. A journal that does not continue the log (the log was edited or
// replaced) is an error: the device does not open until somebody looks.
func recoverFromJournal(logPath string, j *journal) (recovery, error) {
	r := recovery{into: logPath}
	data, err := os.ReadFile(j.path)
	if err != nil {
		return r, fmt.Errorf("audit: read %s: %w", j.path, err)
	}
	head, lines := journalLines(data)
	r.pos = head.chainLine
	if head.id != (logID{}) && idAt(logPath) != head.id {
		if p := findLog(logPath, head.id); p != "" {
			r.into = p
		}
	}
	if r.lines, err = replay(r.into, j.path, lines); err != nil || r.into == logPath {
		return r, err
	}
	if r.cut, err = cutTornTail(r.into); err != nil {
		return r, fmt.Errorf("audit: %s: %w", r.into, err)
	}
	t, err := readTail(r.into)
	if err != nil {
		return r, err
	}
	if t.seq > 0 {
		r.pos = chainLine{seq: t.seq, hash: t.hash}
	}
	return r, nil
}

// findLog returns the path of the regular file with the given id among
// those next to logPath whose names begin with its name (audit.log.1,
// audit.log-20261127: a rotation's names), or "".
func findLog(logPath string, id logID) string {
	dir, base := filepath.Split(logPath)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), base) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if idAt(p) == id {
			return p
		}
	}
	return ""
}

// replay appends to the log the lines it lacks.
func replay(logPath, journalPath string, lines []chainLine) (int, error) {
	if len(lines) == 0 {
		return 0, nil
	}
	t, err := readTail(logPath)
	if err != nil {
		return 0, err
	}
	from := 0
	if t.seq > 0 {
		if lines[len(lines)-1].seq <= t.seq {
			return 0, nil
		}
		from = -1
		for i, l := range lines {
			if l.seq == t.seq+1 {
				from = i
				break
			}
		}
		if from < 0 || lines[from].prev != t.hash {
			return 0, fmt.Errorf("audit: the journal %s does not continue %s (the log ends at event %d, the journal holds events %d to %d); run `keyhold audit verify` on the log and move the journal aside to open the device",
				journalPath, logPath, t.seq, lines[0].seq, lines[len(lines)-1].seq)
		}
	}
	var out []byte
	if t.size > t.end {
		// A partial last line: the crash cut it, and the journal has it whole.
	} else if t.size > 0 && !t.newline {
		out = append(out, '\n')
	}
	for _, l := range lines[from:] {
		out = append(out, l.raw...)
		out = append(out, '\n')
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("audit: open %s: %w", logPath, err)
	}
	defer f.Close()
	if t.size > t.end {
		if err := f.Truncate(t.end); err != nil {
			return 0, fmt.Errorf("audit: recover %s: %w", logPath, err)
		}
	}
	if _, err := f.WriteAt(out, min(t.size, t.end)); err != nil {
		return 0, fmt.Errorf("audit: recover %s: %w", logPath, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("audit: recover %s: %w", logPath, err)
	}
	return len(lines) - from, nil
}
