package xks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/hsmca"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/store"
)

// Options are what a Manager needs.
type Options struct {
	HSM     *hsm.HSM
	Store   store.Store
	Logger  *slog.Logger
	Version string
	Now     func() time.Time // the clock SigV4 checks against; time.Now if nil
	Metrics Metrics          // counts requests; may be nil
	Audit   Auditor          // the audit trail; nil audits nothing
	// Guard, if set, is asked before each data-plane request whether this
	// node's state is fresh enough to serve from (ha.Cluster.Guard: caught
	// up with the other nodes' changes within a second); a refusal is a
	// DependencyTimeoutException and nothing is served from stale state.
	Guard func(ctx context.Context) error
}

// Auditor writes request and response events (*audit.Broker is one). A
// request is refused before it runs if the trail could not take its events.
// QueuePair is LogPair without the wait for durability, for the answers of
// the throttle, which change and reveal nothing.
type Auditor interface {
	Enabled() bool
	Ready(ctx context.Context) error
	LogPair(ctx context.Context, e *audit.Entry) error
	QueuePair(ctx context.Context, e *audit.Entry) error
}

// Metrics counts XKS requests by key store (path prefix), operation and
// errorName ("" for success), and the connections and requests the proxy
// refuses to protect itself, by reason (refusal reasons); *metrics.Metrics
// is one.
type Metrics interface {
	XKSRequest(keystore, op, errName string)
	XKSRefused(reason string)
	Request(iface, op string, status int, d time.Duration)
	Error(iface, kind string)
}

// Manager runs the XKS listeners of every xks mount and carries out the
// administration the REST API asks for. Writes take effect at once: the
// data plane state is swapped atomically, and a configuration write that
// changes how the mount listens (sameListener) restarts its listener. It is
// safe for concurrent use.
type Manager struct {
	o      Options
	mu     sync.Mutex // serializes writes and listener changes
	mounts map[string]*runtime
	// pending: reloads of other nodes' changes not run yet; the mount
	// refuses requests meanwhile (its state may grant what was revoked).
	pending store.PendingReloads
}

// runtime is a mount's running listener.
type runtime struct {
	p        *proxy
	srv      *http.Server
	lns      []net.Listener
	open     atomic.Int64 // connections open over all of lns (max_connections)
	retrying atomic.Bool  // markStale's retry runs
	// gen counts the reloads begun under the manager's lock (a write or a
	// change stored meanwhile): markStale's retry reads without the lock
	// and keeps what it read only if no reload began in between.
	gen uint64
}

// New returns a Manager; call Start to bring up the configured listeners.
func New(o Options) *Manager {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Manager{o: o, mounts: map[string]*runtime{}}
}

// Start starts the listener of every configured xks mount. A mount that
// cannot start is logged and skipped so the rest of the appliance (and the
// REST API to fix it) still comes up.
func (m *Manager) Start(ctx context.Context) error {
	ids, err := store.ConfiguredMounts(ctx, m.o.Store, kvRoot)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		if err := m.startMount(ctx, id); err != nil {
			m.o.Logger.Error("xks: listener not started", "mount", id, "error", err)
		}
	}
	return nil
}

// Close stops every listener, letting requests in flight finish.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, rt := range m.mounts {
		rt.stop()
		delete(m.mounts, id)
	}
	return nil
}

// Addrs returns the addresses a mount's listener is bound to.
func (m *Manager) Addrs(mountID string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addrs(mountID)
}

func (m *Manager) addrs(mountID string) []string {
	rt := m.mounts[mountID]
	if rt == nil {
		return nil
	}
	var out []string
	for _, ln := range rt.lns {
		out = append(out, ln.Addr().String())
	}
	return out
}

// startMount renews an internal-CA certificate that is close to expiry,
// then loads the state and listens. Callers hold m.mu.
func (m *Manager) startMount(ctx context.Context, id string) error {
	snap, err := readSnapshot(ctx, m.o.Store, id)
	if err != nil {
		return err
	}
	if snap.cfg == nil {
		return fault.New(fault.NotFound, "the xks mount is not configured")
	}
	if snap.cfg.TLSInternalCA && hsmca.ExpiresWithin(snap.cfg.TLSCertPEM, hsmca.RenewWithin) {
		if err := m.issueInternal(ctx, id, snap.cfg); err != nil {
			return err
		}
		if err := m.o.Store.Update(ctx, func(tx store.Tx) error { return store.PutJSON(ctx, tx, kvPath(id, "config"), snap.cfg) }); err != nil {
			return err
		}
	}
	st, err := buildState(ctx, m.o.HSM, id, snap)
	if err != nil {
		return err
	}
	rt, err := m.listen(ctx, id, st)
	if err != nil {
		return err
	}
	m.mounts[id] = rt
	return nil
}

func (m *Manager) newProxy(id string) *proxy {
	return &proxy{mountID: id, h: m.o.HSM, log: m.o.Logger, now: m.o.Now, version: m.o.Version, metrics: m.o.Metrics, audit: m.o.Audit, guard: m.o.Guard,
		pending: func() bool { return m.pending.Pending(id) }, limits: map[string]*bucket{}}
}

// listen starts a listener on every configured address with the state's
// TLS configuration.
func (m *Manager) listen(ctx context.Context, id string, st *state) (*runtime, error) {
	tc, err := m.tlsConfig(ctx, st.cfg)
	if err != nil {
		return nil, err
	}
	p := m.newProxy(id)
	p.st.Store(st)
	rt := &runtime{p: p, srv: &http.Server{
		Handler:           p,
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		// A connection idles up to 120 s between requests (over HTTP/2,
		// while it has no stream). Only an authenticated client keeps one
		// that long: an answer to a request that did not authenticate
		// closes its connection (proxy.go), and a connection none of
		// whose requests has authenticated is closed
		// unauthenticatedTimeout (10 s) after it was accepted (capped.go).
		// A shorter idle timeout would not keep a flood out then, and it
		// would cost AWS KMS, which reuses its connections: each new one
		// is a TLS handshake (signed in the HSM) within KMS's 250 ms
		// budget, and a request sent just as the server closes an idle
		// connection fails.
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 32 << 10,
		ConnContext:    connContext,
		// What HTTP/2 buffers of bodies not yet read, per connection and
		// stream (the defaults are 1 MiB each): with max_connections
		// connections open this bounds the memory unauthenticated clients
		// can fill. MaxConcurrentStreams stays at its default (250): the
		// requests in progress on connections that have not authenticated
		// are bounded by max_connections over all connections and by 8 on
		// one (proxy.admit), and one over it is answered at once; fewer
		// streams would only narrow what KMS may run on one connection.
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerConnection: 256 << 10,
			MaxReceiveBufferPerStream:     256 << 10,
		},
		ErrorLog: slog.NewLogLogger(m.o.Logger.Handler(), slog.LevelDebug),
	}}
	for _, a := range st.cfg.ListenAddrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range rt.lns {
				l.Close()
			}
			return nil, fault.Wrap(fault.BadInput, err, "cannot listen on %s", a)
		}
		rt.lns = append(rt.lns, &cappedListener{Listener: ln, rt: rt, log: m.o.Logger, mount: id, authTimeout: unauthenticatedTimeout})
	}
	for _, ln := range rt.lns {
		go func(ln net.Listener) {
			if err := rt.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.o.Logger.Error("xks: listener stopped", "mount", id, "address", ln.Addr().String(), "error", err)
			}
		}(ln)
	}
	m.o.Logger.Info("xks: listening", "mount", id, "addresses", m.addrsOf(rt), "uri_paths", uriPaths(st.cfg.Prefixes), "mtls", st.cfg.ClientCAPEM != "")
	return rt, nil
}

func (m *Manager) addrsOf(rt *runtime) []string {
	var out []string
	for _, ln := range rt.lns {
		out = append(out, ln.Addr().String())
	}
	return out
}

func uriPaths(prefixes []string) []string {
	var out []string
	for _, p := range prefixes {
		out = append(out, URIPath(p))
	}
	return out
}

// stop shuts the listener down, letting requests in flight finish (5 s).
func (rt *runtime) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rt.srv.Shutdown(ctx); err != nil {
		rt.srv.Close()
	}
	for _, ln := range rt.lns {
		ln.Close()
	}
}

// tlsConfig is the listener's TLS: 1.2 or later with forward-secret AEAD
// suites only, the server key in the HSM, and, when a client CA is set,
// mutual TLS that ends the handshake for a certificate not chained to that
// CA or not carrying an allowed subject CN or DNS name.
func (m *Manager) tlsConfig(ctx context.Context, c *Config) (*tls.Config, error) {
	cert, err := hsmca.ServerCertificate(ctx, m.o.HSM, c.TLSCertPEM, hsm.Key{ID: c.TLSKeyID, Blob: c.TLSKeyBlob})
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
	if c.ClientCAPEM == "" {
		return tc, nil
	}
	pool, err := parseCertPool(c.ClientCAPEM)
	if err != nil {
		return nil, err
	}
	tc.ClientAuth = tls.RequireAndVerifyClientCert
	tc.ClientCAs = pool
	subjects, names := c.AllowedSubjects, c.AllowedDNSNames
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("xks: no client certificate")
		}
		if len(subjects) == 0 && len(names) == 0 {
			return nil
		}
		leaf := cs.PeerCertificates[0]
		if contains(subjects, leaf.Subject.CommonName) {
			return nil
		}
		for _, n := range leaf.DNSNames {
			if contains(names, n) {
				return nil
			}
		}
		return fmt.Errorf("xks: client certificate subject %q is not allowed", leaf.Subject.CommonName)
	}
	return tc, nil
}

// reloadTimeout bounds one reload of a mount's state.
const reloadTimeout = 30 * time.Second

// reloadRetry is how long a stale mount waits between reloads.
var reloadRetry = time.Second

// reload re-reads a running mount's state after a write. Callers hold m.mu.
// The write is stored already, so the reload runs to its end even if the
// caller's request is cancelled. If it fails, the data plane must not go on
// with the old state (a revoked credential, a disabled key): the mount
// refuses every request until a reload succeeds, and reloads are retried in
// the background.
func (m *Manager) reload(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reloadTimeout)
	defer cancel()
	err := m.reloadOnce(ctx, id)
	if err != nil {
		m.markStale(id, err)
	}
	return err
}

func (m *Manager) reloadOnce(ctx context.Context, id string) error {
	rt := m.mounts[id]
	if rt == nil {
		return nil
	}
	rt.gen++
	st, err := m.load(ctx, id)
	if err != nil || st == nil {
		return err
	}
	rt.p.st.Store(st)
	rt.p.stale.Store(false)
	return nil
}

// load reads a mount's state from the store and builds it in the HSM (nil
// if the mount has no configuration any more).
func (m *Manager) load(ctx context.Context, id string) (*state, error) {
	snap, err := readSnapshot(ctx, m.o.Store, id)
	if err != nil {
		return nil, err
	}
	if snap.cfg == nil {
		return nil, nil
	}
	return buildState(ctx, m.o.HSM, id, snap)
}

// markStale makes a running mount refuse requests after a reload failed,
// and retries the reload until it succeeds or the mount stops. Callers hold
// m.mu.
func (m *Manager) markStale(id string, err error) {
	rt := m.mounts[id]
	if rt == nil {
		return
	}
	m.o.Logger.Error("xks: a mount's credentials and keys could not be reloaded; it refuses requests until they are", "mount", id, "error", err)
	rt.p.stale.Store(true)
	if rt.retrying.Swap(true) {
		return // a retry is running
	}
	go func() {
		// retrying is cleared under the lock on every way out, so that a
		// reload failing just after (markStale) starts a retry of its own.
		stop := func() {
			rt.retrying.Store(false)
			m.mu.Unlock()
		}
		for {
			time.Sleep(reloadRetry)
			m.mu.Lock()
			if m.mounts[id] != rt || !rt.p.stale.Load() {
				stop()
				return
			}
			gen := rt.gen
			m.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
			st, err := m.load(ctx, id)
			cancel()
			m.mu.Lock()
			if m.mounts[id] != rt || !rt.p.stale.Load() {
				stop()
				return
			}
			if err != nil || rt.gen != gen {
				m.mu.Unlock()
				continue
			}
			if st == nil {
				// No configuration any more: the mount is on its way out
				// (the change that removed it stops it); it stays refusing.
				stop()
				return
			}
			rt.p.st.Store(st)
			rt.p.stale.Store(false)
			stop()
			m.o.Logger.Info("xks: a mount's credentials and keys were reloaded", "mount", id)
			return
		}
	}()
}
