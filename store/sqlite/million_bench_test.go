package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/store/sqlite"
	"github.com/keyhold/keyhold/store/storetest"
)

// million is the benchmark's loaded store, made once per test binary (make
// bench runs the benchmark several times); the file goes when the process
// ends.
var million struct {
	once sync.Once
	st   *sqlite.Store
	err  error
}

// BenchmarkKMIPLookups1M loads KEYHOLD_BENCH_OBJECTS (default 1,000,000)
// KMIP objects through the store in transactions of 10,000, then measures
// Get and Locate by name, each in its own read transaction.
func BenchmarkKMIPLookups1M(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("KEYHOLD_BENCH_OBJECTS")); err == nil && v > 0 {
		n = v
	}
	million.once.Do(func() {
		dir, err := os.MkdirTemp("", "keyhold-bench-")
		if err != nil {
			million.err = err
			return
		}
		million.st, million.err = sqlite.Open(filepath.Join(dir, "k.db"))
		if million.err != nil {
			return
		}
		start := time.Now()
		million.err = storetest.LoadBenchObjects(context.Background(), million.st, 0, n, 10_000)
		b.Logf("loaded %d objects in %v", n, time.Since(start))
	})
	if million.err != nil {
		b.Fatal(million.err)
	}
	storetest.BenchLookups(b, million.st, n)
}
