package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/sqlite"
)

type rig struct {
	h   *hsm.HSM
	st  *sqlite.Store
	dir string
}

func newRig(t testing.TB) *rig {
	t.Helper()
	h := hsmtest.Open(t)
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &rig{h: h, st: st, dir: dir}
}

func (r *rig) broker(t testing.TB) *Broker {
	b := NewBroker(r.h, r.st, nil)
	if err := b.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func entry(i int, secret string) *Entry {
	return &Entry{
		RequestID: fmt.Sprintf("req-%d", i),
		Interface: REST,
		Auth:      Principal{TokenAccessor: "acc-1", Policies: []string{"default"}},
		Operation: "update",
		Path:      "keymgmt/key/k",
		Objects:   []string{"k"},
		Data:      map[string]any{"type": "aes256-gcm96"},
		Sensitive: map[string][]byte{"plaintext": []byte(secret)},
	}
}

func logPair(t testing.TB, b *Broker, e *Entry) {
	t.Helper()
	ctx := context.Background()
	if err := b.LogRequest(ctx, e); err != nil {
		t.Fatal(err)
	}
	e.Status = 200
	if err := b.LogResponse(ctx, e); err != nil {
		t.Fatal(err)
	}
}

func TestTrailVerifiesAndHidesSecrets(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	path := filepath.Join(r.dir, "audit.log")
	if err := b.Enable(context.Background(), Device{Path: "file", Type: "file", FilePath: path, HMACAccessor: true}); err != nil {
		t.Fatal(err)
	}
	secret := "the-plaintext-secret-1234567890"
	for i := range 5 {
		logPair(t, b, entry(i, secret))
	}
	data, _ := os.ReadFile(path)
	if bytes.Contains(data, []byte(secret)) || bytes.Contains(data, []byte("acc-1")) {
		t.Fatal("a sensitive value or an accessor is in the clear")
	}
	want, err := b.Hash("file", []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(want)) {
		t.Fatal("audit-hash of the secret is not in the trail")
	}
	rep, err := Verify([]string{path})
	if err != nil || rep.Problem != nil || rep.Events != 10 || rep.FirstSeq != 1 || rep.LastSeq != 10 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	// A restart (a new broker over the same store and file) continues the chain.
	b.Close()
	b2 := r.broker(t)
	logPair(t, b2, entry(9, secret))
	if rep, _ := Verify([]string{path}); rep.Problem != nil || rep.Events != 12 {
		t.Fatalf("after restart: %+v", rep.Problem)
	}
}

func TestTamperingIsDetected(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	path := filepath.Join(r.dir, "audit.log")
	if err := b.Enable(context.Background(), Device{Path: "file", Type: "file", FilePath: path}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		logPair(t, b, entry(i, "s"))
	}
	orig, _ := os.ReadFile(path)
	lines := strings.SplitAfter(strings.TrimSuffix(string(orig), "\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\n")
	}
	join := func(ls []string) string { return strings.Join(ls, "\n") + "\n" }
	cases := []struct {
		name   string
		body   string
		line   int
		substr string
	}{
		{"fail edited field", join(append(append([]string{}, lines[:3]...), append([]string{strings.Replace(lines[3], `"status":200`, `"status":403`, 1)}, lines[4:]...)...)), 4, "was changed"},
		{"fail edited with recomputed hash", join(append(append([]string{}, lines[:3]...), append([]string{rehash(strings.Replace(lines[3], `"status":200`, `"status":403`, 1))}, lines[4:]...)...)), 5, "does not chain"},
		{"fail deleted event", join(append(append([]string{}, lines[:2]...), lines[3:]...)), 3, "removed"},
		{"fail inserted copy", join(append(append([]string{}, lines[:3]...), append([]string{lines[1]}, lines[3:]...)...)), 4, "inserted or reordered"},
		{"fail swapped events", join(append(append([]string{}, lines[:2]...), append([]string{lines[3], lines[2]}, lines[4:]...)...)), 3, "reordered"},
		{"fail truncated tail", join(lines)[:len(join(lines))-20], len(lines), "truncated tail"},
		{"fail garbage line", join(append(append([]string{}, lines[:1]...), append([]string{"not json"}, lines[1:]...)...)), 2, "not an audit event"},
		// An edit that adds a second hash member, holding the original
		// hash, after recomputing the line's own: a JSON reader takes the
		// last (or a "Hash"), so the next line would still chain.
		{"fail edited, the old hash added as a second member", join(append(append([]string{}, lines[:3]...), append([]string{
			rehash(strings.TrimSuffix(strings.Replace(lines[3], `"status":200`, `"status":403`, 1), "}") + `,"Hash":"` + lines[3][len(hashPrefix):len(hashPrefix)+64] + `"}`)}, lines[4:]...)...)), 4, "given twice"},
		{"fail a removal hidden by seq members", join(append(append([]string{}, lines[:2]...), func() []string {
			var out []string
			for _, l := range lines[3:] {
				cl, _ := parseChainLine([]byte(l))
				out = append(out, rehash(strings.TrimSuffix(l, "}")+fmt.Sprintf(`,"seq":%d}`, cl.seq-1)))
			}
			return out
		}()...)), 3, "given twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "t.log")
			os.WriteFile(p, []byte(c.body), 0o600)
			rep, err := Verify([]string{p})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Problem == nil || rep.Problem.Line != c.line || !strings.Contains(rep.Problem.What, c.substr) {
				t.Fatalf("got %+v, want line %d %q", rep.Problem, c.line, c.substr)
			}
		})
	}
	t.Run("fail the first of an edit and a truncated tail", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "t.log")
		body := join(append(append([]string{}, lines[:2]...), append([]string{strings.Replace(lines[2], `"req-1"`, `"req-9"`, 1)}, lines[3:]...)...))
		os.WriteFile(p, []byte(body[:len(body)-20]), 0o600)
		rep, _ := Verify([]string{p})
		if rep.Problem == nil || rep.Problem.Line != 3 || !strings.Contains(rep.Problem.What, "was changed") || rep.Events != 2 {
			t.Fatalf("got %+v after %d events, want line 3 changed after 2", rep.Problem, rep.Events)
		}
		os.WriteFile(p, []byte(join(lines)[:len(join(lines))-20]), 0o600)
		if rep, _ := Verify([]string{p}); rep.Events != len(lines)-1 {
			t.Fatalf("a truncated tail after %d intact events, want %d", rep.Events, len(lines)-1)
		}
	})
	t.Run("fail deleted event, read from a pipe", func(t *testing.T) {
		// A trail given as a pipe (zcat old.gz | ...) cannot be read twice:
		// telling a removal from a reorder reads on in the same stream.
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		go func() {
			pw.WriteString(join(append(append([]string{}, lines[:2]...), lines[3:]...)))
			pw.Close()
		}()
		rep, err := Verify([]string{fmt.Sprintf("/dev/fd/%d", pr.Fd())})
		if err != nil || rep.Problem == nil || rep.Problem.Line != 3 || !strings.Contains(rep.Problem.What, "removed") {
			t.Fatalf("got %+v %v, want line 3 removed", rep, err)
		}
	})
	t.Run("fail last events cut at a line boundary", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "t.log")
		os.WriteFile(p, []byte(join(lines[:len(lines)-1])), 0o600)
		rep, _ := Verify([]string{p})
		if rep.Problem != nil || len(rep.Notes) == 0 || !strings.Contains(rep.Notes[len(rep.Notes)-1], "no response event") {
			t.Fatalf("got %+v", rep)
		}
	})
}

// rehash recomputes a line's own hash, as a forger would.
func rehash(line string) string {
	b := []byte(line)
	copy(b[len(hashPrefix):], ownHash(b))
	return string(b)
}

func TestRotationContinuesChain(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	path := filepath.Join(r.dir, "audit.log")
	if err := b.Enable(context.Background(), Device{Path: "file", Type: "file", FilePath: path}); err != nil {
		t.Fatal(err)
	}
	logPair(t, b, entry(1, "s"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Reopen(); err != nil {
		t.Fatal(err)
	}
	logPair(t, b, entry(2, "s"))
	rep, err := Verify([]string{path + ".1", path})
	if err != nil || rep.Problem != nil || rep.Events != 4 {
		t.Fatalf("%+v %v", rep, err)
	}
	rep, _ = Verify([]string{path})
	if rep.Problem != nil || rep.FirstSeq != 3 || len(rep.Notes) == 0 {
		t.Fatalf("second file alone: %+v", rep)
	}
	rep, _ = Verify([]string{path, path + ".1"})
	if rep.Problem == nil {
		t.Fatal("files in the wrong order verified")
	}
}

func TestFailClosed(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	path := filepath.Join(r.dir, "audit.log")
	if err := b.Enable(context.Background(), Device{Path: "file", Type: "file", FilePath: path}); err != nil {
		t.Fatal(err)
	}
	logPair(t, b, entry(1, "s"))
	// The file becomes unwritable: it now points at a device that is always full.
	os.Remove(path)
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	// Reopening onto a file that cannot be made durable is refused.
	if err := b.Reopen(); err == nil || !strings.Contains(err.Error(), "sync") {
		t.Fatalf("reopen onto /dev/full: %v", err)
	}
	err := b.LogRequest(context.Background(), entry(2, "s"))
	if err == nil || !strings.Contains(err.Error(), "cannot be written") {
		t.Fatalf("write to a full device: %v", err)
	}
	if err := b.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot be written") {
		t.Fatalf("ready with a full device: %v", err)
	}
	if err := b.LogPair(context.Background(), entry(2, "s")); err == nil || !strings.Contains(err.Error(), "cannot be written") {
		t.Fatalf("pair to a full device: %v", err)
	}
	// Disabled devices do not block; with none enabled, nothing is required.
	if err := b.Disable(context.Background(), "file"); err != nil {
		t.Fatal(err)
	}
	if err := b.LogRequest(context.Background(), entry(3, "s")); err != nil {
		t.Fatal(err)
	}
}

func TestEnableErrors(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		d    Device
		msg  string
	}{
		{"fail type", Device{Path: "x", Type: "syslog", FilePath: "/tmp/x"}, "unknown audit device type"},
		{"fail relative path", Device{Path: "x", Type: "file", FilePath: "audit.log"}, "absolute"},
		{"fail stdout", Device{Path: "x", Type: "file", FilePath: "stdout"}, "not supported"},
		{"fail no path", Device{Path: "x", Type: "file"}, "file_path is required"},
		{"fail unopenable", Device{Path: "x", Type: "file", FilePath: "/nonexistent-dir/a.log"}, "cannot open"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := b.Enable(ctx, c.d); err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestConcurrentWritersKeepOneChain(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	path := filepath.Join(r.dir, "audit.log")
	if err := b.Enable(context.Background(), Device{Path: "file", Type: "file", FilePath: path}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				logPair(t, b, entry(g*100+i, "s"))
			}
		}()
	}
	wg.Wait()
	rep, err := Verify([]string{path})
	if err != nil || rep.Problem != nil || rep.Events != 400 {
		t.Fatalf("%+v %v", rep, err)
	}
}

// Writers racing a device failure: none hangs, the ones after the failure
// get errors, and what reached the file before it still verifies.
func TestConcurrentWritersAndFailure(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	path := filepath.Join(r.dir, "audit.log")
	if err := b.Enable(context.Background(), Device{Path: "file", Type: "file", FilePath: path}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var okN, failN sync.Map
	start, stop := make(chan struct{}), make(chan struct{})
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e := entry(g*1000+i, "s")
				ctx := context.Background()
				err := b.QueueRequest(ctx, e)
				if err == nil {
					e.Status = 200
					err = b.LogResponse(ctx, e)
				}
				if err != nil {
					failN.Store(e.RequestID, true)
				} else {
					okN.Store(e.RequestID, true)
				}
			}
		}()
	}
	close(start)
	time.Sleep(20 * time.Millisecond)
	os.Rename(path, path+".old")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	// Reopening onto a file that cannot be made durable is refused.
	if err := b.Reopen(); err == nil || !strings.Contains(err.Error(), "sync") {
		t.Fatalf("reopen onto /dev/full: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("writers hung after the device failed")
	}
	fails := 0
	failN.Range(func(any, any) bool { fails++; return true })
	if fails == 0 {
		t.Fatal("no write failed on a full device")
	}
	rep, err := Verify([]string{path + ".old"})
	if err != nil || rep.Problem != nil {
		t.Fatalf("the trail before the failure: %+v %v", rep, err)
	}
	// Every response that succeeded is in the old file, after its request.
	data, _ := os.ReadFile(path + ".old")
	okN.Range(func(k, _ any) bool {
		if !bytes.Contains(data, []byte(`"request_id":"`+k.(string)+`"`)) {
			t.Errorf("acknowledged request %s is not in the trail", k)
		}
		return true
	})
}

// fileEvents reads the events of a trail file.
func fileEvents(t *testing.T, path string) []Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var ev Event
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// LogPair writes a request's two events one right after the other, the
// request event with the request's time, both durable when it returns;
// concurrent pairs never interleave, and each of several devices gets both
// under its own key.
func TestLogPair(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	ctx := context.Background()
	one := filepath.Join(r.dir, "one.log")
	if err := b.Enable(ctx, Device{Path: "one", Type: "file", FilePath: one, HMACAccessor: true}); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	arrived := time.Now().Add(-time.Minute).UTC()
	e := entry(1, "a secret of the request")
	e.RequestTime = arrived
	e.Status = 200
	e.SensitiveResponse = map[string][]byte{"ciphertext": []byte("a secret of the response")}
	if err := b.LogPair(ctx, e); err != nil {
		t.Fatal(err)
	}
	evs := fileEvents(t, one)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	req, resp := evs[0], evs[1]
	if req.Type != "request" || !req.Time.Equal(arrived) || req.Response != nil {
		t.Fatalf("request event %+v", req)
	}
	if resp.Type != "response" || resp.Time.Before(arrived) || resp.Response == nil || resp.Response.Status != 200 || resp.Seq != req.Seq+1 {
		t.Fatalf("response event %+v", resp)
	}
	if req.RequestID != resp.RequestID || !reflect.DeepEqual(req.Auth, resp.Auth) || !reflect.DeepEqual(req.Request, resp.Request) {
		t.Fatalf("the events' request parts differ:\n%+v\n%+v", req, resp)
	}
	data, _ := os.ReadFile(one)
	for _, secret := range []string{"a secret of the request", "a secret of the response", "acc-1"} {
		if bytes.Contains(data, []byte(secret)) {
			t.Fatalf("%q is in the trail in the clear", secret)
		}
	}

	// Concurrent pairs: each request's two events are neighbours.
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				e := entry(1000*(g+1)+i, "s")
				e.Status = 200
				if err := b.LogPair(ctx, e); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	evs = fileEvents(t, one)
	if len(evs) != 2+2*16*50 {
		t.Fatalf("%d events, want %d", len(evs), 2+2*16*50)
	}
	for i := 0; i < len(evs); i += 2 {
		if evs[i].Type != "request" || evs[i+1].Type != "response" || evs[i].RequestID != evs[i+1].RequestID {
			t.Fatalf("events %d and %d are not one request's pair: %s %s, %s %s", i, i+1, evs[i].Type, evs[i].RequestID, evs[i+1].Type, evs[i+1].RequestID)
		}
	}

	// Two devices: each writes both events under its own key.
	two := filepath.Join(r.dir, "two.log")
	if err := b.Enable(ctx, Device{Path: "two", Type: "file", FilePath: two}); err != nil {
		t.Fatal(err)
	}
	e = entry(2, "another secret")
	e.Status = 200
	if err := b.LogPair(ctx, e); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"one", "two"} {
		path := filepath.Join(r.dir, dev+".log")
		want, err := b.Hash(dev, []byte("another secret"))
		if err != nil {
			t.Fatal(err)
		}
		evs := fileEvents(t, path)
		req, resp := evs[len(evs)-2], evs[len(evs)-1]
		if req.Type != "request" || resp.Type != "response" || req.RequestID != "req-2" || resp.RequestID != "req-2" {
			t.Fatalf("%s: last events %s %s, %s %s", dev, req.Type, req.RequestID, resp.Type, resp.RequestID)
		}
		if req.Request.Data["plaintext"] != want || resp.Request.Data["plaintext"] != want {
			t.Fatalf("%s: plaintext written as %v / %v, want the device's HMAC %s", dev, req.Request.Data["plaintext"], resp.Request.Data["plaintext"], want)
		}
		if rep, err := Verify([]string{path}); err != nil || rep.Problem != nil {
			t.Fatalf("verify %s: %+v %v", dev, rep, err)
		}
	}
}

// The request event of a request that changes something is durable before
// the request runs: a power loss after the change is committed must not
// take its only event with it.
func TestRequestEventDurableBeforeTheChange(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	if err := b.Enable(context.Background(), Device{Path: "file", Type: "file", FilePath: filepath.Join(r.dir, "audit.log")}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := b.LogRequest(context.Background(), entry(i, "s")); err != nil {
			t.Fatal(err)
		}
		s := b.devices["file"].sink
		s.mu.Lock()
		seq, synced := s.seq, s.synced
		s.mu.Unlock()
		if synced < seq {
			t.Fatalf("request %d: LogRequest returned with line %d given out and only %d durable", i, seq, synced)
		}
	}
}

// Two devices never write one file, whether named alike or through
// another name: two hash chains would interleave in it, and they would
// share one journal.
func TestTwoDevicesRefuseOneFile(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	ctx := context.Background()
	path := filepath.Join(r.dir, "audit.log")
	if err := b.Enable(ctx, Device{Path: "file", Type: "file", FilePath: path}); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(r.dir, "same.log")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, r.dir + "/./audit.log", link} {
		err := b.Enable(ctx, Device{Path: "dup", Type: "file", FilePath: p})
		if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), "file/") {
			t.Errorf("a second device on %s: %v, want a conflict naming file/", p, err)
		}
	}
	if err := b.Enable(ctx, Device{Path: "other", Type: "file", FilePath: filepath.Join(r.dir, "other.log")}); err != nil {
		t.Fatalf("a device on another file: %v", err)
	}
}

// Two enables of one file at once: one is refused.
func TestConcurrentEnablesOfOneFile(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	for round := range 10 {
		path := filepath.Join(r.dir, fmt.Sprintf("audit-%d.log", round))
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				errs[i] = b.Enable(context.Background(), Device{Path: fmt.Sprintf("d%d-%d", round, i), Type: "file", FilePath: path})
			})
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: %v, %v; want one device enabled and one refused", round, errs[0], errs[1])
		}
	}
}

// Nodes sharing the store: a device another node enables on a file a
// stored device writes is refused; one stored anyway (before such devices
// were refused) is left closed when this node loads or reloads the
// devices, so the file keeps one hash chain.
func TestASecondStoredDeviceOnOneFileStaysClosed(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	node1, node2 := r.broker(t), r.broker(t)
	path := filepath.Join(r.dir, "audit.log")
	if err := node1.Enable(ctx, Device{Path: "a", Type: "file", FilePath: path}); err != nil {
		t.Fatal(err)
	}
	err := node2.Enable(ctx, Device{Path: "b", Type: "file", FilePath: path})
	if fault.KindOf(err) != fault.Conflict {
		t.Fatalf("another node's device on the same file: %v, want a conflict", err)
	}
	// Nor under another name for it: the store write compares the files,
	// though node2's open devices do not show this one.
	link := filepath.Join(r.dir, "same.log")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	err = node2.Enable(ctx, Device{Path: "b", Type: "file", FilePath: link})
	if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), "a/") {
		t.Fatalf("another node's device on a link to a/'s file: %v, want a conflict naming a/", err)
	}
	if n := openFiles(t, path); n != 1 {
		t.Fatalf("%d descriptors write %s, want 1", n, path)
	}
	// A device on that file stored anyway.
	if err := node2.Enable(ctx, Device{Path: "b", Type: "file", FilePath: filepath.Join(r.dir, "b.log")}); err != nil {
		t.Fatal(err)
	}
	if err := r.st.Update(ctx, func(tx store.Tx) error {
		var d Device
		if err := store.GetJSON(ctx, tx, kvPrefix+"b", &d); err != nil {
			return err
		}
		d.FilePath = path
		return store.PutJSON(ctx, tx, kvPrefix+"b", d)
	}); err != nil {
		t.Fatal(err)
	}
	// Left out of this node's trail: not ErrDevicesFailing, so the change
	// is not taken in.
	if err := node1.Reload(ctx); err == nil || !strings.Contains(err.Error(), "a/") || errors.Is(err, ErrDevicesFailing) {
		t.Fatalf("reload with a second device on the file: %v, want it named, not as a failing device", err)
	}
	node3 := r.broker(t) // Load
	for _, n := range []*Broker{node1, node3} {
		if ds := n.Devices(); len(ds) != 1 || ds[0].Path != "a" {
			t.Fatalf("devices open: %+v, want a/ alone", ds)
		}
	}
	for i := range 3 {
		logPair(t, node1, entry(i, "s"))
	}
	if rep, err := Verify([]string{path}); err != nil || rep.Problem != nil {
		t.Fatalf("verify: %+v %v", rep.Problem, err)
	}
}

// A device enabled on a file while the device that wrote it is being
// disabled gets a journal of its own, not the one the disable removes.
func TestEnableDuringTheDisableOfTheSameFile(t *testing.T) {
	r := newRig(t)
	b := r.broker(t)
	ctx := context.Background()
	for round := range 20 {
		path := filepath.Join(r.dir, fmt.Sprintf("audit-%d.log", round))
		a, bb := fmt.Sprintf("a%d", round), fmt.Sprintf("b%d", round)
		if err := b.Enable(ctx, Device{Path: a, Type: "file", FilePath: path}); err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			if err := b.QueueRequest(ctx, entry(i, "s")); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		var enableErr error
		wg.Go(func() { b.Disable(ctx, a) })
		wg.Go(func() {
			for {
				b.mu.RLock()
				_, still := b.devices[a]
				b.mu.RUnlock()
				if !still {
					break
				}
				runtime.Gosched()
			}
			enableErr = b.Enable(ctx, Device{Path: bb, Type: "file", FilePath: path})
		})
		wg.Wait()
		if enableErr != nil {
			t.Fatal(enableErr)
		}
		b.mu.RLock()
		s := b.devices[bb].sink
		b.mu.RUnlock()
		s.mu.Lock()
		j := s.j
		s.mu.Unlock()
		if j == nil {
			continue // no direct I/O here: no journal
		}
		st1, err1 := j.f.Stat()
		st2, err2 := os.Stat(journalPath(path))
		if err1 != nil || err2 != nil || !os.SameFile(st1, st2) {
			t.Fatalf("round %d: device %s/ writes a journal that is no longer %s (%v)", round, bb, journalPath(path), err2)
		}
	}
}
