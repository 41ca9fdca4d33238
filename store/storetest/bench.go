package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/keyhold/keyhold/store"
)

// BenchMount and BenchScope hold the benchmark's objects.
const (
	BenchMount = "bench-mount"
	BenchScope = "bench-scope"
)

// BenchObjectID is the Unique Identifier of the benchmark's object i, shaped
// like the server's (random-looking hex), so index locality is realistic.
func BenchObjectID(i int) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	sum := sha256.Sum256(b[:])
	return hex.EncodeToString(sum[:16])
}

// BenchObjectName is the Name attribute of object i.
func BenchObjectName(i int) string { return fmt.Sprintf("bench-key-%08d", i) }

// BenchObject is object i of BenchMount and BenchScope.
func BenchObject(i int, now time.Time) *store.KMIPObject {
	return BenchObjectIn(BenchMount, BenchScope, i, now)
}

// BenchObjectIn is object i as the KMIP server stores a symmetric key, in a
// mount's scope: a value (not a real blob: it cannot be got) and its
// attributes with their index keys, as Locate reads them.
func BenchObjectIn(mount, scope string, i int, now time.Time) *store.KMIPObject {
	id := BenchObjectID(i)
	num := func(name string, n int64) store.KMIPAttribute {
		return store.KMIPAttribute{Name: name, Value: binary.BigEndian.AppendUint64(nil, uint64(n)), Number: n, HasNumber: true}
	}
	value := make([]byte, 96)
	copy(value, id)
	return &store.KMIPObject{
		Mount: mount, Scope: scope, ID: id, Type: "SymmetricKey", Value: value,
		CreatedAt: now, UpdatedAt: now,
		Attributes: []store.KMIPAttribute{
			{Name: "Unique Identifier", Value: []byte(id), Text: id, HasText: true},
			{Name: "Name", Value: []byte("n:" + BenchObjectName(i)), Text: BenchObjectName(i), HasText: true},
			num("Object Type", 2),
			num("Cryptographic Algorithm", 3),
			num("Cryptographic Length", 256),
			num("Cryptographic Usage Mask", 12),
			num("State", 2),
			num("Initial Date", now.Unix()),
			num("Fresh", 1),
		},
	}
}

// LoadBenchObjects creates objects [from, to) of BenchMount and BenchScope
// through the store interface, in transactions of batch objects.
func LoadBenchObjects(ctx context.Context, st store.Store, from, to, batch int) error {
	return LoadBenchObjectsIn(ctx, st, BenchMount, BenchScope, from, to, batch)
}

// LoadBenchObjectsIn is LoadBenchObjects into a mount's scope.
func LoadBenchObjectsIn(ctx context.Context, st store.Store, mount, scope string, from, to, batch int) error {
	now := time.Now().UTC()
	for start := from; start < to; start += batch {
		err := st.Update(ctx, func(tx store.Tx) error {
			for i := start; i < min(to, start+batch); i++ {
				if err := tx.CreateKMIPObject(ctx, BenchObjectIn(mount, scope, i, now)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// BenchLookups measures, over a store holding objects [0, n), a Get of a
// random object and a Locate of a random object by name (each its own View,
// as a KMIP request makes), and reports the 50th and 99th percentiles in
// milliseconds. It fails if an answer is wrong.
func BenchLookups(b *testing.B, st store.Store, n int) {
	ctx := context.Background()
	b.Run("get", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			i := rand.IntN(n)
			start := time.Now()
			var o *store.KMIPObject
			err := st.View(ctx, func(tx store.Tx) (err error) {
				o, err = tx.GetKMIPObject(ctx, BenchMount, BenchScope, BenchObjectID(i))
				return err
			})
			lat = append(lat, time.Since(start))
			if err != nil || o.ID != BenchObjectID(i) || len(o.Attributes) != 9 {
				b.Fatalf("get %d: %v", i, err)
			}
		}
		ReportPercentiles(b, lat)
	})
	b.Run("locate-by-name", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			i := rand.IntN(n)
			q := &store.KMIPQuery{Mount: BenchMount, Scope: BenchScope, Limit: 16, Filters: []store.KMIPFilter{
				{Name: "Name", Match: store.KMIPMatchText, Text: BenchObjectName(i)},
				{Name: "Object Type", Match: store.KMIPMatchRange, Min: 2, Max: 2},
			}}
			start := time.Now()
			var ids []string
			var total int
			err := st.View(ctx, func(tx store.Tx) (err error) {
				ids, total, err = tx.LocateKMIPObjects(ctx, q)
				return err
			})
			lat = append(lat, time.Since(start))
			if err != nil || total != 1 || len(ids) != 1 || ids[0] != BenchObjectID(i) {
				b.Fatalf("locate %d: %q %d %v", i, ids, total, err)
			}
		}
		ReportPercentiles(b, lat)
	})
}

// ReportPercentiles reports the p50 and p99 of latencies as the metrics
// p50-ms and p99-ms.
func ReportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
