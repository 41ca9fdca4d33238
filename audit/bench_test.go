package audit

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkLogPair: a request's two events to one file device, from many
// concurrent writers (group commit), as a loaded server writes them, the
// three ways the interfaces write them: request event made durable, then the
// response event (REST, KMIP operations that change something); request
// event queued, then the response event (KMIP Get); both at once after the
// request ran (XKS, LogPair). cpu-us/op is the process's CPU time per
// request.
//
//	go test -run '^$' -bench LogPair ./audit
func BenchmarkLogPair(b *testing.B) {
	ctx := context.Background()
	modes := []struct {
		name string
		log  func(br *Broker, e *Entry) error
	}{
		{"durable+response", func(br *Broker, e *Entry) error {
			if err := br.LogRequest(ctx, e); err != nil {
				return err
			}
			respond(e)
			return br.LogResponse(ctx, e)
		}},
		{"queued+response", func(br *Broker, e *Entry) error {
			if err := br.QueueRequest(ctx, e); err != nil {
				return err
			}
			respond(e)
			return br.LogResponse(ctx, e)
		}},
		{"ready+pair", func(br *Broker, e *Entry) error {
			if err := br.Ready(ctx); err != nil {
				return err
			}
			respond(e)
			return br.LogPair(ctx, e)
		}},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			r := newRig(b)
			br := r.broker(b)
			if err := br.Enable(ctx, Device{Path: "file", Type: "file", FilePath: filepath.Join(r.dir, "a.log")}); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(32)
			cpu := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if err := m.log(br, entry(i, "plaintext of the request")); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/1e3/float64(b.N), "cpu-us/op")
		})
	}
}

// respond fills in a response as an XKS Encrypt's.
func respond(e *Entry) {
	e.Status = 200
	e.SensitiveResponse = map[string][]byte{"ciphertext": []byte("0123456789abcdef0123456789abcdef0123456789abcdef")}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
