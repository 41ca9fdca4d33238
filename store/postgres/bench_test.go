package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyhold/keyhold/store/postgres"
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
		million.err = copyObjects(context.Background(), srv.URLWithPassword("postgres")+"&search_path="+schemaOf(url), n)
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

// copyObjects writes objects [0, n) and their attributes with COPY, then
// analyzes the tables so the planner knows their sizes.
func copyObjects(ctx context.Context, url string, n int) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	now := time.Now().UTC()
	const batch = 50_000
	for from := 0; from < n; from += batch {
		to := min(n, from+batch)
		var objs, attrs [][]any
		for i := from; i < to; i++ {
			o := storetest.BenchObject(i, now)
			seq := int64(i + 1)
			objs = append(objs, []any{seq, o.Mount, o.Scope, o.ID, o.Type, o.Value, o.CreatedAt, o.UpdatedAt})
			for p, a := range o.Attributes {
				var text []byte
				var num *int64
				if a.HasText {
					text = []byte(a.Text)
				}
				if a.HasNumber {
					v := a.Number
					num = &v
				}
				attrs = append(attrs, []any{seq, int32(p), []byte(a.Name), int32(a.Index), a.Value, text, num})
			}
		}
		if _, err := c.CopyFrom(ctx, pgx.Identifier{"kmip_objects"},
			[]string{"seq", "mount", "scope", "id", "type", "value", "created_at", "updated_at"}, pgx.CopyFromRows(objs)); err != nil {
			return fmt.Errorf("copy objects: %w", err)
		}
		if _, err := c.CopyFrom(ctx, pgx.Identifier{"kmip_attributes"},
			[]string{"object", "position", "name", "idx", "value", "text", "number"}, pgx.CopyFromRows(attrs)); err != nil {
			return fmt.Errorf("copy attributes: %w", err)
		}
	}
	if _, err := c.Exec(ctx, fmt.Sprintf("SELECT setval('kmip_objects_seq_seq', %d)", n+1)); err != nil {
		return err
	}
	_, err = c.Exec(ctx, "ANALYZE kmip_objects; ANALYZE kmip_attributes")
	return err
}
