package server

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/postgres/pgtest"
	"github.com/keyhold/keyhold/store/sqlite"
	"github.com/keyhold/keyhold/store/storetest"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// BenchmarkKMIP1M measures KMIP Get and Locate by name over the protocol,
// against an appliance node whose store holds KEYHOLD_BENCH_OBJECTS
// (default 1,000,000) objects in the client's scope, bulk-loaded by the
// benchmark beside a few hundred real keys made by KMIP Create (only those
// can be got: a bulk-loaded object holds no real blob). Each request waits
// for its answer on one connection; p50 and p99 are reported. make bench
// runs it once (-count 1): loading takes minutes.
func BenchmarkKMIP1M(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("KEYHOLD_BENCH_OBJECTS")); err == nil && v > 0 {
		n = v
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			c := newClusterOn(b, backend, pgtest.Options{Durable: true})
			c.env = []string{"KEYHOLD_NODE_LOG_LEVEL=info"}
			a := c.start("a")
			api := c.api
			api.t = b
			k := setupKMIP(b, api, a)
			mount := data(api.must(a, "GET", "sys/mounts/kmip", nil, 200))["uuid"].(string)
			cl := k.dial(b, a, k.cert)
			real := make([]string, 300)
			for i := range real {
				real[i] = kmipCreate(b, cl)
			}
			start := time.Now()
			now := start.UTC()
			var err error
			if backend == "postgres" {
				err = pgtest.CopyKMIPObjects(ctx, c.pgURL, n, 1<<40, func(i int) *store.KMIPObject {
					return storetest.BenchObjectIn(mount, "s1", i, now)
				})
			} else {
				var st *sqlite.Store
				if st, err = sqlite.Open(c.sqlitePath); err == nil {
					err = storetest.LoadBenchObjectsIn(ctx, st, mount, "s1", 0, n, 10_000)
					st.Close()
				}
			}
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: %d objects loaded in %v", backend, n, time.Since(start))
			b.Run("get", func(b *testing.B) {
				var lat []time.Duration
				for b.Loop() {
					t0 := time.Now()
					if _, err := tryKMIPGet(cl, real[rand.IntN(len(real))]); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				storetest.ReportPercentiles(b, lat)
			})
			b.Run("locate-by-name", func(b *testing.B) {
				var lat []time.Duration
				for b.Loop() {
					i := rand.IntN(n)
					t0 := time.Now()
					item, err := cl.Do(gokmip.V1_4, &payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
						{AttributeName: gokmip.AttributeNameName, AttributeValue: gokmip.Name{NameValue: storetest.BenchObjectName(i)}},
					}})
					lat = append(lat, time.Since(t0))
					if err != nil || item.ResultStatus != gokmip.ResultStatusSuccess {
						b.Fatalf("locate: %v %+v", err, item)
					}
					ids := item.ResponsePayload.(*payloads.LocateResponsePayload).UniqueIdentifier
					if len(ids) != 1 || ids[0] != storetest.BenchObjectID(i) {
						b.Fatalf("locate %d: %q", i, ids)
					}
				}
				storetest.ReportPercentiles(b, lat)
			})
		})
	}
}
