package postgres_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/postgres"
	"github.com/keyhold/keyhold/store/postgres/pgtest"
	"github.com/keyhold/keyhold/store/storetest"
)

// benchObjects is how many KMIP objects the lookup benchmark loads
// (KEYHOLD_BENCH_OBJECTS, default 1,000,000).
func benchObjects() int {
	if n, err := strconv.Atoi(os.Getenv("KEYHOLD_BENCH_OBJECTS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// million is the benchmark's loaded store, made once per test binary
// (make bench runs the benchmark several times).
var million struct {
	once sync.Once
	st   *postgres.Store
	err  error
}

// BenchmarkKMIPLookups1M bulk-loads the objects with COPY (as an operator
// migrating into Keyhold would), then measures Get and Locate by name
// through the store, each in its own read transaction.
func BenchmarkKMIPLookups1M(b *testing.B) {
	n := benchObjects()
	million.once.Do(func() {
		url := location(b)
		million.st, million.err = postgres.Open(context.Background(), postgres.Config{URL: url, Password: srv.Password})
		if million.err != nil {
			return
		}
		start := time.Now()
		now := time.Now().UTC()
		million.err = pgtest.CopyKMIPObjects(context.Background(), srv.URLWithPassword("postgres")+"&search_path="+schemaOf(url), n, 1,
			func(i int) *store.KMIPObject { return storetest.BenchObject(i, now) })
		b.Logf("loaded %d objects in %v", n, time.Since(start))
	})
	if million.err != nil {
		b.Fatal(million.err)
	}
	storetest.BenchLookups(b, million.st, n)
}

func schemaOf(url string) string {
	const k = "search_path="
	for i := len(url) - len(k); i >= 0; i-- {
		if url[i:i+len(k)] == k {
			return url[i+len(k):]
		}
	}
	return ""
}
