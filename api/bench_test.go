package api

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// BenchmarkREST measures the key API over real HTTP (SoftHSM2 + SQLite
// behind it) with 8 concurrent clients, and reports requests per second
// and the 99th percentile latency.
//
//	go test -run '^$' -bench REST -count 6 ./api
func BenchmarkREST(b *testing.B) {
	env := newTestEnv(b)
	if err := env.client(b, testRootToken).Sys().Mount("keymgmt", &vault.MountInput{Type: "keymgmt"}); err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	do := func(method, path, body string) error {
		req, _ := http.NewRequest(method, env.ts.URL+path, strings.NewReader(body))
		req.Header.Set("X-Vault-Token", testRootToken)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
		}
		return nil
	}
	if err := do("POST", "/v1/keymgmt/key/read-me", `{"type":"ecdsa-p256"}`); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	cases := []struct {
		name string
		req  func() (string, string, string)
	}{
		{"create-aes256-gcm96", func() (string, string, string) {
			return "POST", fmt.Sprintf("/v1/keymgmt/key/aes-%d", seq.Add(1)), `{"type":"aes256-gcm96"}`
		}},
		{"create-rsa-2048", func() (string, string, string) {
			return "POST", fmt.Sprintf("/v1/keymgmt/key/rsa-%d", seq.Add(1)), `{"type":"rsa-2048"}`
		}},
		{"read", func() (string, string, string) { return "GET", "/v1/keymgmt/key/read-me", "" }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(4) // 4 × GOMAXPROCS clients
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					m, p, body := c.req()
					t0 := time.Now()
					if err := do(m, p, body); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			if len(lat) == 0 {
				return
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
