package server

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/keyhold/keyhold/store/postgres/pgtest"
)

// BenchmarkNodes runs KMIP Create, KMIP Get and XKS Encrypt against real
// appliance processes: one node on SQLite, one node on PostgreSQL, and two
// nodes on one PostgreSQL with the clients split between them (node B got
// A's KEKs through the ceremony). PostgreSQL runs with fsync on. Eight
// client goroutines, each with its own connection. On a 2-core machine the
// nodes, the database and the clients share the same two cores, so a second
// node cannot add throughput here; the figures show what it costs.
func BenchmarkNodes(b *testing.B) {
	for _, setup := range []struct {
		name    string
		backend string
		nodes   int
	}{
		{"sqlite-1node", "sqlite", 1},
		{"postgres-1node", "postgres", 1},
		{"postgres-2nodes", "postgres", 2},
	} {
		b.Run(setup.name, func(b *testing.B) {
			c := newClusterOn(b, setup.backend, pgtest.Options{Durable: true})
			c.env = []string{"KEYHOLD_NODE_LOG_LEVEL=info"}
			nodes := []*node{c.start("a")}
			if setup.nodes == 2 {
				c.receive("b")
				nodes = append(nodes, c.start("b"))
			}
			api := c.api
			api.t = b
			k := setupKMIP(b, api, nodes...)
			x := setupXKS(b, api, nodes...)
			seed := k.dial(b, nodes[0], k.cert)
			ids := make([]string, 200)
			for i := range ids {
				ids[i] = kmipCreate(b, seed)
			}
			parallel := func(b *testing.B, body func(i int, pb *testing.PB)) {
				var next atomic.Int64
				b.SetParallelism(4)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) { body(int(next.Add(1)), pb) })
			}
			b.Run("kmip-create", func(b *testing.B) {
				parallel(b, func(i int, pb *testing.PB) {
					cl, err := k.tryDial(nodes[i%len(nodes)].name, k.cert)
					if err != nil {
						b.Error(err)
						return
					}
					defer cl.Conn.Close()
					for pb.Next() {
						if _, err := tryKMIPCreate(cl); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			b.Run("kmip-get", func(b *testing.B) {
				parallel(b, func(i int, pb *testing.PB) {
					cl, err := k.tryDial(nodes[i%len(nodes)].name, k.cert)
					if err != nil {
						b.Error(err)
						return
					}
					defer cl.Conn.Close()
					for pb.Next() {
						if _, err := tryKMIPGet(cl, ids[rand.IntN(len(ids))]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			b.Run("xks-encrypt", func(b *testing.B) {
				parallel(b, func(i int, pb *testing.PB) {
					xn := *x[i%len(x)]
					xn.http = &http.Client{Transport: xn.http.Transport.(*http.Transport).Clone()}
					for pb.Next() {
						if st, body, err := xn.tryPost("keys/k1/encrypt", encryptBody([]byte("benchmark plaintext"))); err != nil || st != 200 {
							b.Error(fmt.Errorf("encrypt: %d %s %v", st, body, err))
							return
						}
					}
				})
			})
		})
	}
}
