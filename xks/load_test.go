package xks

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The XKS load generator of `make bench`: Go clients that sign every
// request with the AWS SDK v4 signer and send it over HTTPS keep-alive
// connections to a real proxy (SoftHSM2 token, SQLite store, request log at
// Info as in production).
//
//   - BenchmarkXKSLoadOpenLoop: a fixed arrival rate (AWS's 1,800 req/s
//     quota per key store by default) for a fixed time; each latency is
//     measured from the request's scheduled send time, so a stalled server
//     cannot hide its queue (no coordinated omission). Half Encrypt, half
//     Decrypt.
//   - BenchmarkXKSLoadMaxEncrypt: closed-loop Encrypt at full speed against
//     the proxy and, in the same run, against a minimal baseline server with
//     the same HTTP/TLS stack, SigV4 check and parser but AES-GCM in Go, no
//     HSM, no store and no log.
//
// Settings (environment): XKS_LOAD_RATE (1800), XKS_LOAD_DURATION (60s),
// XKS_LOAD_MAX_DURATION (15s), XKS_LOAD_WORKERS (64).

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// loadTarget is a server under load and how to build its requests.
type loadTarget struct {
	base   string // https://host:port/prefix/kms/xks/v1/
	akid   string
	secret string
	client *http.Client
}

func newLoadClient(pool *x509.CertPool, conns int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
		ForceAttemptHTTP2:   false,
	}}
}

// send signs and sends one request; it reports whether it succeeded.
func (lt *loadTarget) send(tb testing.TB, target string, body []byte) error {
	req := sdkRequest(tb, lt.base+target, body, lt.akid, lt.secret, time.Now())
	resp, err := lt.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New("status " + strconv.Itoa(resp.StatusCode))
	}
	return nil
}

// loadBodies are one Encrypt body and one Decrypt body of a ciphertext made
// by the target, as AWS KMS sends them (GenerateDataKey: a 32-byte key with a
// KMS-sized AAD).
func loadBodies(tb testing.TB, lt *loadTarget, key string) (enc, dec []byte) {
	pt := randBytes(32)
	aad := randBytes(64)
	encReq := map[string]any{"requestMetadata": meta("GenerateDataKey"), "plaintext": pt,
		"additionalAuthenticatedData": aad, "encryptionAlgorithm": "AES_GCM"}
	enc = must(json.Marshal(encReq))
	req := sdkRequest(tb, lt.base+"keys/"+key+"/encrypt", enc, lt.akid, lt.secret, time.Now())
	resp, err := lt.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	var r EncryptResponse
	err = json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		tb.Fatalf("priming encrypt: %d %v", resp.StatusCode, err)
	}
	d := decBody(&r, "")
	d["additionalAuthenticatedData"] = aad
	d["requestMetadata"] = meta("Decrypt")
	return enc, must(json.Marshal(d))
}

func keyholdTarget(b *testing.B, workers int) (*testEnv, *loadTarget) {
	e := newTestEnv(b, ConfigInput{})
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	for _, rt := range e.m.mounts {
		rt.p.log = log
	}
	return e, &loadTarget{base: e.xksURL(testPrefix, ""), akid: e.akid, secret: e.secret, client: newLoadClient(e.pool, workers)}
}

func BenchmarkXKSLoadOpenLoop(b *testing.B) {
	rate := envInt("XKS_LOAD_RATE", 1800)
	dur := envDuration("XKS_LOAD_DURATION", 60*time.Second)
	workers := envInt("XKS_LOAD_WORKERS", 64)
	_, lt := keyholdTarget(b, workers)
	enc, dec := loadBodies(b, lt, "foo")
	for range b.N {
		lat, errs, elapsed := openLoop(b, lt, rate, dur, workers, func(i int) (string, []byte) {
			if i%2 == 0 {
				return "keys/foo/encrypt", enc
			}
			return "keys/foo/decrypt", dec
		})
		slices.Sort(lat)
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
		b.ReportMetric(ms(pct(lat, 0.50)), "p50-ms")
		b.ReportMetric(ms(pct(lat, 0.99)), "p99-ms")
		b.ReportMetric(ms(pct(lat, 0.999)), "p99.9-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		b.ReportMetric(float64(errs), "errors")
		b.ReportMetric(float64(rate), "target-req/s")
		b.ReportMetric(0, "ns/op")
	}
}

// openLoop sends rate requests a second for dur, each at its scheduled
// time, through a pool of workers (one keep-alive connection each); a
// request's latency runs from its scheduled time to the end of its answer.
func openLoop(tb testing.TB, lt *loadTarget, rate int, dur time.Duration, workers int, pick func(int) (string, []byte)) ([]time.Duration, int64, time.Duration) {
	type job struct {
		i   int
		due time.Time
	}
	n := int(dur.Seconds() * float64(rate))
	jobs := make(chan job, n)
	lat := make([]time.Duration, n)
	var errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				target, body := pick(j.i)
				if err := lt.send(tb, target, body); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				lat[j.i] = time.Since(j.due)
			}
		}()
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		jobs <- job{i: i, due: due}
	}
	close(jobs)
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		tb.Logf("first error: %v", e)
	}
	return lat, errs.Load(), time.Since(start)
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func BenchmarkXKSLoadMaxEncrypt(b *testing.B) {
	dur := envDuration("XKS_LOAD_MAX_DURATION", 15*time.Second)
	workers := envInt("XKS_LOAD_WORKERS", 64)
	e, lt := keyholdTarget(b, workers)
	bl := newBaseline(b, e.secret, e.akid)
	blt := &loadTarget{base: bl.base, akid: e.akid, secret: e.secret, client: newLoadClient(bl.pool, workers)}
	encK, _ := loadBodies(b, lt, "foo")
	encB, _ := loadBodies(b, blt, "foo")
	for range b.N {
		// Interleaved rounds, so background load on a shared machine falls
		// on both servers alike.
		const rounds = 3
		var kRate, bRate float64
		var kErrs, bErrs int64
		for range rounds {
			r, _, e := closedLoop(b, lt, dur/rounds, workers, "keys/foo/encrypt", encK)
			kRate, kErrs = kRate+r/rounds, kErrs+e
			r, _, e = closedLoop(b, blt, dur/rounds, workers, "keys/foo/encrypt", encB)
			bRate, bErrs = bRate+r/rounds, bErrs+e
		}
		b.ReportMetric(kRate, "keyhold-req/s")
		b.ReportMetric(bRate, "baseline-req/s")
		b.ReportMetric(100*kRate/bRate, "keyhold-%-of-baseline")
		b.ReportMetric(float64(kErrs+bErrs), "errors")
		b.ReportMetric(0, "ns/op")
	}
}

// closedLoop runs workers that each send Encrypt after Encrypt for dur.
func closedLoop(tb testing.TB, lt *loadTarget, dur time.Duration, workers int, target string, body []byte) (rate float64, ops, errs int64) {
	var done, failed atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := lt.send(tb, target, body); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		tb.Logf("first error: %v", e)
	}
	return float64(done.Load()) / time.Since(start).Seconds(), done.Load(), failed.Load()
}

// baseline is the minimal XKS server the proxy is compared with: the same
// net/http + crypto/tls stack, the same SigV4 check and request parser and
// the same AAD construction, with AES-GCM in Go and nothing else.
type baseline struct {
	base string
	pool *x509.CertPool
}

func newBaseline(tb testing.TB, secret, akid string) *baseline {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := newCertFor(tb, key)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	block, _ := aes.NewCipher(randBytes(32))
	gcm, _ := cipher.NewGCM(block)
	cred := &credential{AccessKeyID: akid, Prefix: testPrefix, secret: []byte(secret)}
	lim := Limits{MaxPlaintext: DefaultPlaintext, MaxAAD: DefaultAAD}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, ok := parseRoute(r.URL.Path)
		if !ok || r.Method != http.MethodPost {
			writeError(w, xerr(InvalidURIPathException, "bad path"))
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if _, xe := verifySigV4(r, body, time.Now(), func(id string) *credential {
			if id == akid {
				return cred
			}
			return nil
		}); xe != nil {
			writeError(w, xe)
			return
		}
		req, xe := ParseRequest(rt.Op, body, lim)
		if xe != nil {
			writeError(w, xe)
			return
		}
		iv := randBytes(12)
		out := gcm.Seal(nil, iv, req.Plaintext, gcmAAD(req.AAD, ciphertextMetadata))
		n := len(out) - 16
		writeJSON(w, http.StatusOK, &EncryptResponse{Ciphertext: out[:n], CiphertextMetadata: ciphertextMetadata, IV: iv, Tag: out[n:]})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{ca.Raw}, PrivateKey: key, Leaf: ca}}}}
	go srv.ServeTLS(ln, "", "")
	tb.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return &baseline{base: "https://localhost:" + port + "/" + testPrefix + "/kms/xks/v1/", pool: pool}
}

func newCertFor(tb testing.TB, key *ecdsa.PrivateKey) *x509.Certificate {
	tmpl := &x509.Certificate{SerialNumber: bigOne(), DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// Micro-benchmarks of the data plane's own costs (run by the main bench).

func BenchmarkSigV4Verify(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 300)
	cr := sdkRequest(b, "https://h:8443/p/kms/xks/v1/keys/k/encrypt", body, tAKID, tSecret, time.Now())
	hdr := cr.Header.Clone()
	cred := testCred()
	lookup := func(string) *credential { return cred }
	r, _ := http.NewRequest(http.MethodPost, "https://h:8443/p/kms/xks/v1/keys/k/encrypt", nil)
	r.Header = hdr
	r.ContentLength = int64(len(body))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := verifySigV4(r, body, time.Now(), lookup); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEncryptRequest(b *testing.B) {
	body := must(json.Marshal(encBody("SGVsbG8gV29ybGQhSGVsbG8gV29ybGQhSGVsbG8gV29ybGQh", tcAAD, true)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(OpEncrypt, body, testLimits); err != nil {
			b.Fatal(err)
		}
	}
}

func bigOne() *big.Int { return big.NewInt(1) }
