// Package metrics holds the appliance's Prometheus metrics: requests and
// latencies per interface and operation, errors by kind, HSM operation
// latencies, session-pool use, unwrap-cache hits and misses, open KMIP
// connections and XKS requests per key store. One registry per appliance,
// passed to whoever records; no global registry.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/keyhold/keyhold/hsm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the appliance's metric set.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	errors     *prometheus.CounterVec
	hsmLatency *prometheus.HistogramVec
	kmipConns  prometheus.Gauge
	xks        *prometheus.CounterVec
	xksRefused *prometheus.CounterVec
}

// New creates the metric set.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "keyhold", Name: "requests_total", Help: "Requests served, by interface, operation and status.",
	}, []string{"interface", "operation", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "keyhold", Name: "request_duration_seconds", Help: "Request latency by interface and operation.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"interface", "operation"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "keyhold", Name: "errors_total", Help: "Failed requests by interface and error kind.",
	}, []string{"interface", "kind"})
	m.hsmLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "keyhold", Subsystem: "hsm", Name: "operation_duration_seconds", Help: "HSM operation latency, waiting for a session included.",
		Buckets: []float64{.00002, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1, 5},
	}, []string{"operation", "result"})
	m.kmipConns = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "keyhold", Subsystem: "kmip", Name: "connections_open", Help: "Open KMIP connections.",
	})
	m.xks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "keyhold", Subsystem: "xks", Name: "requests_total", Help: "XKS requests by key store (URI path prefix), operation and error name.",
	}, []string{"keystore", "operation", "error"})
	m.xksRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "keyhold", Subsystem: "xks", Name: "refused_total",
		Help: "XKS connections closed and requests refused to bound the proxy's load, by reason: max_connections (a connection over the bound, closed before its handshake), unauthenticated_timeout (a connection none of whose requests authenticated, closed after 10 s), in_progress and connection_in_progress (a request over the bound on requests in progress before authentication, of the proxy or of its connection), rate_limit.",
	}, []string{"reason"})
	m.reg.MustRegister(m.requests, m.latency, m.errors, m.hsmLatency, m.kmipConns, m.xks, m.xksRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Request records one served request.
func (m *Metrics) Request(iface, op string, status int, d time.Duration) {
	m.requests.WithLabelValues(iface, op, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(iface, op).Observe(d.Seconds())
}

// Error records a failed request by its kind.
func (m *Metrics) Error(iface, kind string) { m.errors.WithLabelValues(iface, kind).Inc() }

// ObserveHSM is an hsm.Config.Observe hook.
func (m *Metrics) ObserveHSM(op string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = string(hsm.KindOf(err))
	}
	m.hsmLatency.WithLabelValues(op, result).Observe(d.Seconds())
}

// KMIPConnection adds delta (+1 open, -1 closed) to the open KMIP connections.
func (m *Metrics) KMIPConnection(delta int) { m.kmipConns.Add(float64(delta)) }

// XKSRequest records an XKS request of a key store; errName is "" on success.
func (m *Metrics) XKSRequest(keystore, op, errName string) {
	m.xks.WithLabelValues(keystore, op, errName).Inc()
}

// XKSRefused records a connection or request the XKS proxy refused to bound
// its load.
func (m *Metrics) XKSRefused(reason string) { m.xksRefused.WithLabelValues(reason).Inc() }

// WatchHSM exports the session pool and unwrap cache of h.
func (m *Metrics) WatchHSM(h *hsm.HSM) {
	m.reg.MustRegister(&hsmCollector{h: h})
}

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var (
	poolSizeDesc  = prometheus.NewDesc("keyhold_hsm_sessions", "Sessions in the HSM session pool.", nil, nil)
	poolInUseDesc = prometheus.NewDesc("keyhold_hsm_sessions_in_use", "HSM sessions in use.", nil, nil)
	cacheHitsDesc = prometheus.NewDesc("keyhold_hsm_unwrap_cache_hits_total", "Key uses served from the unwrap cache.", nil, nil)
	cacheMissDesc = prometheus.NewDesc("keyhold_hsm_unwrap_cache_misses_total", "Key uses that needed an unwrap.", nil, nil)
	cacheSizeDesc = prometheus.NewDesc("keyhold_hsm_unwrap_cache_entries", "Unwrapped keys held in the cache.", nil, nil)
)

type hsmCollector struct{ h *hsm.HSM }

func (c *hsmCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolSizeDesc, poolInUseDesc, cacheHitsDesc, cacheMissDesc, cacheSizeDesc} {
		ch <- d
	}
}

func (c *hsmCollector) Collect(ch chan<- prometheus.Metric) {
	size, inUse := c.h.PoolStats()
	st := c.h.CacheStats()
	ch <- prometheus.MustNewConstMetric(poolSizeDesc, prometheus.GaugeValue, float64(size))
	ch <- prometheus.MustNewConstMetric(poolInUseDesc, prometheus.GaugeValue, float64(inUse))
	ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(cacheMissDesc, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(cacheSizeDesc, prometheus.GaugeValue, float64(st.Size))
}
