package audit

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkLogPair: a request and a response event to one file device, from
// many concurrent writers (group commit), as a loaded server writes them.
//
//	go test -run '^$' -bench LogPair ./audit
func BenchmarkLogPair(b *testing.B) {
	r := newRig(b)
	br := r.broker(b)
	if err := br.Enable(context.Background(), Device{Path: "file", Type: "file", FilePath: filepath.Join(r.dir, "a.log")}); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			logPair(b, br, entry(i, "plaintext of the request"))
			i++
		}
	})
}
