package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// queryRig is a broker with one file device holding n request/response
// pairs: every third on KMIP with a certificate principal, every fifth
// failed, each touching key "k<i>".
func queryRig(t *testing.T, n int) (*Broker, string) {
	t.Helper()
	r := newRig(t)
	b := r.broker(t)
	path := filepath.Join(r.dir, "audit.log")
	if err := b.Enable(context.Background(), Device{Path: "file", Type: "file", FilePath: path, HMACAccessor: true}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range n {
		e := entry(i, "secret")
		e.Objects = []string{fmt.Sprintf("k%d", i)}
		e.Path = "keymgmt/key/" + e.Objects[0]
		if i%3 == 0 {
			e.Interface, e.Operation, e.Path = KMIP, "Get", ""
			e.Auth = Principal{CertSerial: "4242", Scope: "finance", Role: "accounting"}
		}
		if err := b.LogRequest(ctx, e); err != nil {
			t.Fatal(err)
		}
		e.Status = 200
		if i%5 == 0 {
			e.Status, e.Error = 400, "bad input"
		}
		if err := b.LogResponse(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	return b, path
}

func seqs(t *testing.T, p *Page) []uint64 {
	t.Helper()
	out := []uint64{}
	for _, raw := range p.Events {
		var ev Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.Seq)
	}
	return out
}

func query(t *testing.T, b *Broker, q Query) *Page {
	t.Helper()
	p, _, err := b.Query("file", q)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestQueryReadsBackward checks the backward reader against a forward parse
// of the same file, across its 64 KiB chunk boundaries, and paging back by
// sequence number.
func TestQueryReadsBackward(t *testing.T) {
	b, path := queryRig(t, 400) // 800 events, well over one chunk
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 3*64<<10 {
		t.Fatalf("the trail is only %d bytes: the test does not cross chunks", len(data))
	}
	var forward []uint64
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var ev Event
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatal(err)
		}
		forward = append(forward, ev.Seq)
	}
	slices.Reverse(forward)
	all := query(t, b, Query{Limit: 10000})
	if got := seqs(t, all); !slices.Equal(got, forward) || all.More || all.Unreadable != 0 {
		t.Fatalf("backward read: %d events (more %v, unreadable %d), want %d", len(got), all.More, all.Unreadable, len(forward))
	}
	if all.Scanned != int64(len(data)) {
		t.Fatalf("scanned %d of %d bytes", all.Scanned, len(data))
	}
	first := query(t, b, Query{Limit: 3})
	if got := seqs(t, first); !slices.Equal(got, []uint64{800, 799, 798}) || !first.More {
		t.Fatalf("newest 3: %v more=%v", got, first.More)
	}
	next := query(t, b, Query{Limit: 3, BeforeSeq: 798})
	if got := seqs(t, next); !slices.Equal(got, []uint64{797, 796, 795}) {
		t.Fatalf("page back: %v", got)
	}
	last := query(t, b, Query{Limit: 2, BeforeSeq: 3})
	if got := seqs(t, last); !slices.Equal(got, []uint64{2, 1}) || last.More {
		t.Fatalf("oldest: %v more=%v", got, last.More)
	}
	cut := query(t, b, Query{Limit: 10000, MaxScanBytes: 64 << 10})
	if !cut.More || cut.Scanned != 64<<10 || len(cut.Events) == 0 || len(cut.Events) >= 800 {
		t.Fatalf("scan budget: %d events, %d bytes, more %v", len(cut.Events), cut.Scanned, cut.More)
	}
}

func TestQueryFilters(t *testing.T) {
	b, path := queryRig(t, 30)
	count := func(q Query) int {
		q.Limit = 1000
		return len(query(t, b, q).Events)
	}
	for _, c := range []struct {
		name string
		q    Query
		want int
	}{
		{"ok everything", Query{}, 60},
		{"ok responses", Query{Type: "response"}, 30},
		{"ok kmip", Query{Interface: KMIP}, 20},
		{"ok rest", Query{Interface: REST, Type: "request"}, 20},
		{"ok operation any case", Query{Operation: "get"}, 20},
		{"ok object k7", Query{Object: "k7"}, 2},
		{"ok object as a path segment only", Query{Object: "keymgmt"}, 40},
		{"ok object is not a substring match", Query{Object: "k"}, 0},
		{"ok certificate serial", Query{Principal: "4242"}, 20},
		{"ok kmip role", Query{Principal: "ACCOUNTING"}, 20},
		{"ok policy", Query{Principal: "default"}, 40},
		{"ok accessor through its HMAC", Query{Principal: "acc-1"}, 40},
		{"ok errors", Query{Result: "error"}, 6},
		{"ok successes", Query{Result: "ok", Interface: KMIP}, 8},
		{"ok nothing", Query{Principal: "nobody"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := count(c.q); got != c.want {
				t.Fatalf("%d events, want %d", got, c.want)
			}
		})
	}
	// The accessor is written only as its HMAC, yet found by its value.
	if data, _ := os.ReadFile(path); bytes.Contains(data, []byte("acc-1")) {
		t.Fatal("the accessor is in the file in the clear")
	}
	if _, _, err := b.Query("nope", Query{}); err == nil {
		t.Fatal("query of a missing device")
	}
}

// TestQuerySkipsPartialTail: an event being appended (no newline yet) is
// not answered, and a damaged line is counted, not answered.
func TestQuerySkipsPartialTail(t *testing.T) {
	b, path := queryRig(t, 3)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"hash":"00","seq":7}` + "\n" + `{"hash":"abc","prev":"`)
	f.Close()
	p := query(t, b, Query{Limit: 100})
	if got := seqs(t, p); len(got) != 7 || got[0] != 7 || got[1] != 6 || p.Unreadable != 0 {
		t.Fatalf("events %v unreadable %d", got, p.Unreadable)
	}
	rep, _, err := b.VerifyDevice("file")
	if err != nil || rep.Problem == nil {
		t.Fatalf("verify of a damaged file: %+v %v", rep, err)
	}
}

func TestVerifyDevice(t *testing.T) {
	b, path := queryRig(t, 5)
	rep, file, err := b.VerifyDevice("file")
	if err != nil || rep.Problem != nil || rep.Events != 10 || file != path {
		t.Fatalf("verify: %+v %s %v", rep, file, err)
	}
	data, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(data, []byte(`"k3"`), []byte(`"k9"`), 1), 0o600)
	rep, _, err = b.VerifyDevice("file")
	if err != nil || rep.Problem == nil || rep.Problem.Line != 7 {
		t.Fatalf("verify after an edit: %+v %v", rep, err)
	}
	if _, _, err := b.VerifyDevice("nope"); err == nil {
		t.Fatal("verify of a missing device")
	}
}

// Lines longer than a chunk are put together once (an event of 300 KiB
// reads back whole), and a line longer than maxLine is skipped as
// unreadable instead of carried: the events around it still read.
func TestQueryLongLines(t *testing.T) {
	b, path := queryRig(t, 2)
	big := entry(7, "s")
	big.Data["blob"] = string(bytes.Repeat([]byte("b"), 300<<10))
	logPair(t, b, big)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bytes.Repeat([]byte("x"), maxLine+1000))
	f.Write([]byte("\n"))
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	p, err := readBackward(path, Query{Limit: 100, MaxScanBytes: 64 << 20}, &matcher{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// Carrying the long line by copying it into each chunk read would
	// allocate gigabytes; reading it once is about its size.
	if n := after.TotalAlloc - before.TotalAlloc; n > 8*maxLine {
		t.Fatalf("reading back allocated %d MiB", n>>20)
	}
	if got := seqs(t, p); !slices.Equal(got, []uint64{6, 5, 4, 3, 2, 1}) || p.Unreadable != 1 {
		t.Fatalf("events %v, unreadable %d", got, p.Unreadable)
	}
	var ev Event
	if err := json.Unmarshal(p.Events[0], &ev); err != nil || len(ev.Request.Data["blob"].(string)) != 300<<10 {
		t.Fatalf("the long event: %v", err)
	}
}
