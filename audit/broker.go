package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/store"
)

const kvPrefix = "sys/audit/"

// Device is the configuration of an enabled audit device.
type Device struct {
	Path         string    `json:"path"`
	Type         string    `json:"type"` // "file"
	Description  string    `json:"description"`
	FilePath     string    `json:"file_path"`
	HMACAccessor bool      `json:"hmac_accessor"` // write token accessors as HMACs (Vault's default)
	CreatedAt    time.Time `json:"created_at"`
	// KeyID and KeyBlob are the device's HMAC key, generated in the HSM and
	// stored only wrapped; it is unwrapped into memory when the device opens.
	KeyID   string `json:"key_id"`
	KeyBlob []byte `json:"key_blob"`
}

type device struct {
	cfg  Device
	key  []byte
	sink *fileSink

	// A device that fails every write (one that has not opened, while
	// the others record) logs its failure once per failLogEvery, or when
	// it changes, not once per request.
	logMu    sync.Mutex
	logged   string
	loggedAt time.Time
}

// failLogEvery is how often a device that keeps failing in the same way
// says so in the server log.
const failLogEvery = 10 * time.Second

// failed logs a device's failure to write.
func (b *Broker) failed(d *device, err error) {
	msg := err.Error()
	d.logMu.Lock()
	quiet := msg == d.logged && time.Since(d.loggedAt) < failLogEvery
	if !quiet {
		d.logged, d.loggedAt = msg, time.Now()
	}
	d.logMu.Unlock()
	if !quiet {
		b.log.Error("audit device failed", "device", d.cfg.Path, "error", err)
	}
}

// Broker fans events out to the enabled devices.
type Broker struct {
	h   *hsm.HSM
	st  store.Store
	log *slog.Logger
	now func() time.Time

	mu      sync.RWMutex
	devices map[string]*device

	// admin serializes Enable, Disable and Reload: a device's file is
	// checked against the others', and a disabled device's journal
	// removed, with no other change of devices in between.
	admin sync.Mutex
}

// NewBroker returns a broker with no device; Load opens the stored ones.
func NewBroker(h *hsm.HSM, st store.Store, log *slog.Logger) *Broker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Broker{h: h, st: st, log: log, now: time.Now, devices: map[string]*device{}}
}

// Load opens every stored device. If none of them opens, the start fails:
// the appliance does not serve with an audit trail it cannot write. A
// device that does not open while others do (its file cannot be opened,
// or its journal does not continue its log) is kept as a failed device,
// as Reload keeps one: it records nothing and fails every write, the
// others record every request, and a request none of them can record is
// refused. Its files are left as they are; a write tries to open it again
// once they changed (or a few seconds later), and so does Reopen (SIGHUP).
// A device whose HMAC key cannot be had fails the start.
func (b *Broker) Load(ctx context.Context) error {
	var cfgs []Device
	err := b.st.View(ctx, func(tx store.Tx) error {
		var err error
		cfgs, err = storedDevices(ctx, tx)
		return err
	})
	if err != nil {
		return err
	}
	var failed []*device
	var errs []error
	opened := 0
	for _, c := range cfgs {
		if b.sharedFile(c) != "" {
			continue
		}
		d, err := b.open(ctx, c)
		if err != nil {
			err = fmt.Errorf("audit device %s: %w", c.Path, err)
			fd := b.broken(ctx, c, err)
			if fd == nil {
				return err
			}
			failed, errs = append(failed, fd), append(errs, err)
			continue
		}
		b.mu.Lock()
		b.devices[c.Path] = d
		b.mu.Unlock()
		opened++
	}
	if opened == 0 && len(failed) > 0 {
		return errors.Join(errs...)
	}
	for i, d := range failed {
		b.mu.Lock()
		b.devices[d.cfg.Path] = d
		b.mu.Unlock()
		b.log.Error("audit device did not open: it records nothing until it does, and the other devices record every request", "device", d.cfg.Path, "error", errs[i])
	}
	return nil
}

// storedDevices reads every stored device, sorted by path.
func storedDevices(ctx context.Context, tx store.Tx) ([]Device, error) {
	paths, err := tx.List(ctx, kvPrefix)
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var cfgs []Device
	for _, p := range paths {
		raw, err := tx.Get(ctx, kvPrefix+p)
		if err != nil {
			return nil, err
		}
		var d Device
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "corrupt audit device entry")
		}
		cfgs = append(cfgs, d)
	}
	return cfgs, nil
}

// sharedFile returns the path of an open device that writes c's file, and
// says in the server log that c stays closed: two devices on one file
// (stored before they were refused, or enabled on two nodes at once) would
// interleave two hash chains in it and share one journal.
func (b *Broker) sharedFile(c Device) string {
	b.mu.RLock()
	other := b.writing(c.FilePath)
	b.mu.RUnlock()
	if other != "" {
		b.log.Error("audit device not opened: another device writes its file; disable one of them", "device", c.Path, "file", c.FilePath, "other", other)
	}
	return other
}

func (b *Broker) open(ctx context.Context, c Device) (*device, error) {
	key, err := b.h.Export(ctx, hsm.Key{ID: c.KeyID, Blob: c.KeyBlob})
	if err != nil {
		return nil, err
	}
	sink, err := openFileSink(c.FilePath)
	if err != nil {
		return nil, err
	}
	if sink.recovered > 0 {
		b.log.Warn("audit device recovered events from its journal that a crash had taken from its log", "device", c.Path, "events", sink.recovered, "file", sink.recoveredInto)
	}
	if sink.cut > 0 {
		into := sink.recoveredInto
		if into == "" {
			into = c.FilePath
		}
		b.log.Warn("audit device moved a partial last line of its log, never made durable (a crash), to FILE.torn", "device", c.Path, "bytes", sink.cut, "file", into+".torn")
	}
	if sink.noJournal != nil {
		b.log.Info("audit device cannot write journal records (no direct I/O): it fsyncs its log instead", "device", c.Path, "reason", sink.noJournal)
	}
	return &device{cfg: c, key: key, sink: sink}, nil
}

// Enable adds a file device at path. The file is created (mode 0600) and
// must be writable now.
func (b *Broker) Enable(ctx context.Context, d Device) error {
	if d.Type != "file" {
		return fault.New(fault.BadInput, "unknown audit device type %q (file)", d.Type)
	}
	if d.FilePath == "" {
		return fault.New(fault.BadInput, "file_path is required")
	}
	if d.FilePath == "stdout" || d.FilePath == "discard" {
		return fault.New(fault.BadInput, "file_path=%s is not supported: events must be durable in a file before a response is sent; give an absolute path", d.FilePath)
	}
	if !filepath.IsAbs(d.FilePath) {
		return fault.New(fault.BadInput, "file_path must be an absolute path")
	}
	b.admin.Lock()
	defer b.admin.Unlock()
	b.mu.RLock()
	_, taken := b.devices[d.Path]
	other := b.writing(d.FilePath)
	b.mu.RUnlock()
	if taken {
		return fault.New(fault.Conflict, "an audit device is already enabled at %s/", d.Path)
	}
	if other != "" {
		return errFileTaken(other, d.FilePath)
	}
	d.KeyID = fmt.Sprintf("audit:%s:%d", d.Path, b.now().UnixNano())
	blob, err := b.h.Generate(ctx, hsm.GenerateRequest{ID: d.KeyID, Type: hsm.HMACSHA256, Exportable: true})
	if err != nil {
		return err
	}
	d.KeyBlob = blob
	d.CreatedAt = b.now().UTC()
	dev, err := b.open(ctx, d)
	if err != nil {
		return fault.Wrap(fault.BadInput, err, "cannot open the audit file %s", d.FilePath)
	}
	raw, _ := json.Marshal(d)
	err = b.st.Update(ctx, func(tx store.Tx) error {
		// Another node may have enabled a device on this file meanwhile,
		// under this name or another one for it (a link).
		cfgs, err := storedDevices(ctx, tx)
		if err != nil {
			return err
		}
		same := sameFileAs(d.FilePath)
		for _, c := range cfgs {
			if same(c.FilePath) {
				return errFileTaken(c.Path, d.FilePath)
			}
		}
		return tx.Put(ctx, kvPrefix+d.Path, raw)
	})
	if err != nil {
		dev.sink.close()
		return err
	}
	b.mu.Lock()
	b.devices[d.Path] = dev
	b.mu.Unlock()
	return nil
}

// Disable removes the device at path.
func (b *Broker) Disable(ctx context.Context, path string) error {
	b.admin.Lock()
	defer b.admin.Unlock()
	b.mu.Lock()
	d := b.devices[path]
	delete(b.devices, path)
	b.mu.Unlock()
	if d == nil {
		return nil
	}
	d.sink.drop()
	macPools.Delete(string(d.key))
	return b.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, kvPrefix+path) })
}

// Devices lists the enabled devices, sorted by path.
func (b *Broker) Devices() []Device {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]Device, 0, len(b.devices))
	for _, d := range b.devices {
		out = append(out, d.cfg)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Hash returns the HMAC a device writes for value, so an investigator can
// find it in the trail.
func (b *Broker) Hash(path string, value []byte) (string, error) {
	b.mu.RLock()
	d := b.devices[path]
	b.mu.RUnlock()
	if d == nil {
		return "", fault.New(fault.NotFound, "no audit device at %s/", path)
	}
	return hmacValue(d.key, value), nil
}

// Reopen reopens every device's file (after log rotation, on SIGHUP); the
// chain continues in the new file.
func (b *Broker) Reopen() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var errs []error
	for _, d := range b.devices {
		if err := d.sink.reopen(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close closes every device's file.
func (b *Broker) Close() {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, d := range b.devices {
		d.sink.close()
	}
}

// errFileTaken refuses a device on a file that the device at other writes:
// two devices on one file would interleave two hash chains in it and share
// one journal, which the first to be disabled removes.
func errFileTaken(other, path string) error {
	return fault.New(fault.Conflict, "the audit device at %s/ already writes %s", other, path)
}

// writing returns the path of the enabled device that writes the file at
// path (the same name, or the same file under another name), or "". b.mu
// is held.
func (b *Broker) writing(path string) string {
	same := sameFileAs(path)
	for p, dev := range b.devices {
		if same(dev.cfg.FilePath) {
			return p
		}
	}
	return ""
}

// sameFileAs returns a test of whether a path names the file at path: the
// same name, or the same file under another name (a link). path is looked
// up once.
func sameFileAs(path string) func(string) bool {
	st, serr := os.Stat(path)
	return func(other string) bool {
		if filepath.Clean(other) == filepath.Clean(path) {
			return true
		}
		if serr != nil {
			return false
		}
		st2, err := os.Stat(other)
		return err == nil && os.SameFile(st, st2)
	}
}

// Enabled reports whether any device is enabled.
func (b *Broker) Enabled() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.devices) > 0
}

// LogRequest writes the request event of a request that changes something
// and returns once it is durable, so that no change outlives a crash
// without its event. It fails, and the caller must then refuse the
// request, if devices are enabled and none could write it.
func (b *Broker) LogRequest(ctx context.Context, e *Entry) error {
	return b.log1(e, "request", durable)
}

// QueueRequest queues the request event of a request that changes nothing
// (an XKS Encrypt, a KMIP Get): it fails at once if no device is healthy, and
// the event is written with the next line. Such a request must still wait
// for LogResponse before it answers: if the trail fails meanwhile, the
// response is withheld.
func (b *Broker) QueueRequest(ctx context.Context, e *Entry) error {
	if e.queued == nil {
		e.queued = &queuedLines{m: map[*fileSink]queuedLine{}}
	}
	return b.log1(e, "request", queued)
}

// queuedLines are where the request event of an entry stood in each sink
// when QueueRequest queued it; LogResponse fails on a sink that lost it.
type queuedLines struct {
	mu sync.Mutex
	m  map[*fileSink]queuedLine
}

func (q *queuedLines) set(s *fileSink, l queuedLine) {
	q.mu.Lock()
	q.m[s] = l
	q.mu.Unlock()
}

func (q *queuedLines) get(s *fileSink) (queuedLine, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	l, ok := q.m[s]
	return l, ok
}

// Persist returns once the request events of es, which QueueRequest
// queued, are durable on some device that queued them: a batch that runs
// its changes in one transaction queues its items' request events and
// makes them durable at once, before it commits. It fails, and the caller
// must then not commit, if no device could.
func (b *Broker) Persist(ctx context.Context, es ...*Entry) error {
	b.mu.RLock()
	devs := make([]*device, 0, len(b.devices))
	for _, d := range b.devices {
		devs = append(devs, d)
	}
	b.mu.RUnlock()
	if len(devs) == 0 {
		return nil // no device enabled now: nothing to write, as log1 has it
	}
	for _, e := range es {
		if e == nil || e.queued == nil {
			continue
		}
		ok := false
		var errs []error
		for _, d := range devs {
			q, queued := e.queued.get(d.sink)
			if !queued {
				continue
			}
			if err := d.sink.persist(q); err != nil {
				b.failed(d, err)
				errs = append(errs, err)
				continue
			}
			ok = true
		}
		if !ok {
			if len(errs) == 0 {
				errs = append(errs, errors.New("audit: no enabled device holds the queued event"))
			}
			return fault.Wrap(fault.Unavailable, errors.Join(errs...), "the audit trail cannot be written; the request was refused")
		}
	}
	return nil
}

// LogResponse writes the response event and makes the trail durable (the
// request event with it); the caller sends its response only if this
// succeeds.
func (b *Broker) LogResponse(ctx context.Context, e *Entry) error {
	return b.log1(e, "response", durable)
}

// Ready fails, as LogRequest would, if devices are enabled and none could
// write an event now; it writes nothing. A request that changes nothing
// (an XKS Encrypt) checks it before it runs and writes both its events with
// LogPair once it is served.
func (b *Broker) Ready(ctx context.Context) error {
	return b.log1(nil, "", 0)
}

// LogPair writes the request event (with the time e.RequestTime, when set)
// and the response event of e, one right after the other in the chain, and
// returns once both are durable; the caller sends its response only if
// this succeeds. The two events share one encoding of the request.
func (b *Broker) LogPair(ctx context.Context, e *Entry) error {
	return b.log1(e, pair, durable)
}

// QueuePair writes the request and the response event of e as LogPair
// does, but returns once they are queued, without waiting for them to be
// durable: for an answer that changes nothing and reveals nothing (a
// request refused by a throttle), whose events need not hold the answer
// back, nor make a flood of such requests cost a disk flush each. The
// events are made durable with the next commit of the device (another
// request's, or one the device makes itself within lazyCommit). It fails,
// as LogPair does, if no device could take them.
func (b *Broker) QueuePair(ctx context.Context, e *Entry) error {
	return b.log1(e, pair, queued)
}

// pair is the event type log1 takes for LogPair's two events.
const pair = "pair"

// eventBufs are the buffers events are encoded into; the sink copies an
// event into its queue, so the buffer is free again once write returns.
var eventBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// log1 writes the event(s) of e of type typ (request, response or pair) to
// every device; with a nil e it only checks that a device could write.
func (b *Broker) log1(e *Entry, typ string, wait waitFor) error {
	b.mu.RLock()
	var only *device
	if len(b.devices) == 1 {
		for _, d := range b.devices {
			only = d
		}
	}
	var devs []*device
	if len(b.devices) > 1 {
		devs = make([]*device, 0, len(b.devices))
		for _, d := range b.devices {
			devs = append(devs, d)
		}
	}
	b.mu.RUnlock()
	now := b.now()
	if only != nil {
		// The common case, without a slice or a goroutine per event.
		if err := b.write(only, e, typ, wait, now); err != nil {
			b.failed(only, err)
			return fault.Wrap(fault.Unavailable, err, "the audit trail cannot be written; the request was refused")
		}
		return nil
	}
	if len(devs) == 0 {
		return nil
	}
	errs := make([]error, len(devs))
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.write(d, e, typ, wait, now)
		}()
	}
	wg.Wait()
	ok := false
	for i, err := range errs {
		if err == nil {
			ok = true
		} else {
			b.failed(devs[i], err)
		}
	}
	if !ok {
		return fault.Wrap(fault.Unavailable, errors.Join(errs...), "the audit trail cannot be written; the request was refused")
	}
	return nil
}

// write encodes the event(s) of e for d and hands them to d's sink; with a
// nil e it asks the sink whether it could take a line.
func (b *Broker) write(d *device, e *Entry, typ string, wait waitFor, now time.Time) error {
	if e == nil {
		return d.sink.ready()
	}
	bp := eventBufs.Get().(*[]byte)
	defer putEventBuf(bp)
	if typ != pair {
		if typ == "response" && e.queued != nil {
			// A request event that was only queued can have been lost with
			// a failed write, and the trail resynchronised since: the
			// response must then be withheld, as if this write failed.
			if q, ok := e.queued.get(d.sink); ok && d.sink.lostSince(q) {
				return errors.New("audit: the request's event was lost with a failed write of the trail")
			}
		}
		body, _, err := appendEventReusing((*bp)[:0], e, typ, d.key, d.cfg.HMACAccessor, now, nil)
		if err != nil {
			return fmt.Errorf("audit: encode event: %w", err)
		}
		*bp = body
		if wait == queued && e.queued != nil {
			q, err := d.sink.queue(body)
			if err == nil {
				e.queued.set(d.sink, q)
			}
			return err
		}
		return d.sink.write(wait, body)
	}
	reqTime := now
	if !e.RequestTime.IsZero() {
		reqTime = e.RequestTime
	}
	buf, at, err := appendEventReusing((*bp)[:0], e, "request", d.key, d.cfg.HMACAccessor, reqTime, nil)
	if err != nil {
		return fmt.Errorf("audit: encode event: %w", err)
	}
	n := len(buf)
	// The response event repeats the request section just written (an
	// append that moves buf leaves the old array, which section still
	// reads, as it was).
	buf, _, err = appendEventReusing(buf, e, "response", d.key, d.cfg.HMACAccessor, now, buf[at[0]:at[1]])
	if err != nil {
		return fmt.Errorf("audit: encode event: %w", err)
	}
	*bp = buf
	return d.sink.write(wait, buf[:n], buf[n:])
}

// putEventBuf returns an event buffer to the pool unless it grew large.
func putEventBuf(bp *[]byte) {
	if cap(*bp) <= 64<<10 {
		*bp = (*bp)[:0]
		eventBufs.Put(bp)
	}
}
