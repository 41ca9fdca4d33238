// Package server assembles the appliance process: it reads the
// configuration (or prepares dev mode), opens the HSM and the store, serves
// the REST API and shuts down cleanly.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/keyhold/keyhold/api"
	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/auth"
	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/ha"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/keymgmt"
	"github.com/keyhold/keyhold/kmip"
	"github.com/keyhold/keyhold/metrics"
	"github.com/keyhold/keyhold/ui"
	"github.com/keyhold/keyhold/xks"
)

// Options are what Run needs beside the configuration.
type Options struct {
	Logger    *slog.Logger
	Version   string
	RootToken string // dev mode: the root token to honour
	// ReplacedRootTokens are, in dev mode, the root tokens that RootToken
	// replaces (the folder's before -dev-root-token-id): revoked at start,
	// with their non-orphan children; then ReplacedRevoked, if set, is
	// called (DevReplacedRevoked forgets them).
	ReplacedRootTokens []string
	ReplacedRevoked    func() error
	// Ready, if set, is called with the listener's address once it accepts connections.
	Ready func(addr string)
}

// Run serves until ctx is cancelled, then shuts down: it stops accepting,
// lets requests in flight finish (up to 10 s), and closes the store and HSM.
func Run(ctx context.Context, cfg *Config, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc, err := cfg.HSMOptions()
	if err != nil {
		return err
	}
	mx := metrics.New()
	hc.Observe = mx.ObserveHSM
	h, err := hsm.Open(ctx, hc)
	if err != nil {
		return err
	}
	defer h.Close()
	mx.WatchHSM(h)
	info := h.Info()
	log.Info("hsm opened", "token", info.TokenLabel, "model", info.Model, "library", info.Library,
		"kek_version", h.KEKVersion(), "oaep_hashes", h.Capabilities().OAEPHashes)

	st, err := openStore(ctx, cfg.Storage, "")
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("store opened", "type", cfg.Storage.Type, "path", cfg.Storage.Path)

	if err := checkKEKs(ctx, h, st); err != nil {
		return err
	}

	// The cluster notes where the change log stands before anything below
	// loads what it caches from the store, so no other node's change is missed.
	hopts, retry := cfg.haOptions(st, log, opts.Version, "")
	cl := ha.New(hopts)
	if err := cl.Begin(ctx); err != nil {
		return err
	}
	if cl.Shared() {
		log.Info("cluster node", "node", cl.Name(), "node_id", cl.ID())
	}

	// Audit devices open before anything is served: a trail none of whose
	// devices opens stops the start (one that does not open while others
	// do is kept as a failed device, and the others record).
	trail := audit.NewBroker(h, st, log)
	if err := trail.Load(ctx); err != nil {
		return err
	}
	defer trail.Close()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := trail.Reopen(); err != nil {
				log.Error("audit: reopen after SIGHUP failed; a device that failed records nothing, and requests are refused while no device can record them", "error", err)
			} else {
				log.Info("audit: files reopened after SIGHUP")
			}
		}
	}()

	tokens := auth.New(st)
	kmo, err := cfg.KeyMgmtOptions(os.Getenv)
	if err != nil {
		return err
	}
	// With several nodes, the XKS data plane serves only from state caught
	// up with the other nodes within a second, and a KMIP request first
	// applies every change committed before it (revocations at once).
	var guard, sync func(context.Context) error
	if cl.Shared() {
		guard, sync = cl.Guard, cl.Sync
	}
	// The XKS proxy: one HTTPS listener per configured xks mount.
	xm := xks.New(xks.Options{HSM: h, Store: st, Logger: log, Version: opts.Version, Metrics: mx, Audit: trail, Guard: guard})
	defer xm.Close()
	// The KMIP server: one mutual-TLS listener per configured kmip mount.
	km := kmip.New(kmip.Options{HSM: h, Store: st, Audit: trail, Metrics: mx, Logger: log, Version: opts.Version, Sync: sync})
	defer km.Close()
	keys := keymgmt.NewWithOptions(h, st, kmo)
	handler := api.New(api.Deps{
		HSM:     h,
		Store:   st,
		Auth:    tokens,
		Keys:    keys,
		Logger:  log,
		Version: opts.Version,
		XKS:     xm,
		KMIP:    km,
		Audit:   trail,
		Metrics: mx,
		Cluster: cl,

		UnauthenticatedMetrics: cfg.Telemetry != nil && cfg.Telemetry.UnauthenticatedMetricsAccess,
	})
	if err := handler.Init(ctx, opts.RootToken); err != nil {
		return err
	}
	if len(opts.ReplacedRootTokens) > 0 {
		for _, old := range opts.ReplacedRootTokens {
			if old == opts.RootToken {
				continue
			}
			if err := tokens.Revoke(ctx, old); err != nil && fault.KindOf(err) != fault.NotFound {
				return fmt.Errorf("revoking a dev root token replaced by the new one: %w", err)
			}
		}
		if opts.ReplacedRevoked != nil {
			if err := opts.ReplacedRevoked(); err != nil {
				return err
			}
		}
	}
	if err := xm.Start(ctx); err != nil {
		return err
	}
	if err := km.Start(ctx); err != nil {
		return err
	}
	p := parts{hsm: h, tokens: tokens, trail: trail, api: handler, xks: xm, kmip: km, keys: keys}
	subscribe(cl, p, log)
	addJobs(cl, p, retry, log)
	cl.SetInfo(nodeInfo(cl, p))

	ln, err := net.Listen("tcp", cfg.Listener.Address)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		// The web console at /ui/, the REST API everywhere else, for the
		// Host names the listener answers.
		Handler:           hostGuard(ui.Wrap(handler), cfg.Listener.AllowedHosts, cfg.Listener.TLSDisable && loopbackOnly(ln.Addr())),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if !cfg.Listener.TLSDisable {
		cert, err := tls.LoadX509KeyPair(cfg.Listener.TLSCertFile, cfg.Listener.TLSKeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listener tls: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	addr := ln.Addr().String()
	log.Info("listening", "address", scheme+"://"+addr)
	if cfg.Listener.TLSDisable && !loopbackOnly(ln.Addr()) {
		log.Warn("listener: TLS is disabled on an address other hosts can reach; tokens, secrets and key material cross the network in the clear unless a TLS proxy on this host terminates in front of it; set listener.allowed_hosts to the names it is reached by", "address", addr)
	}
	cl.SetAPIAddr(scheme + "://" + addr)
	cl.Run(ctx)
	defer cl.Close()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if opts.Ready != nil {
		opts.Ready(scheme + "://" + addr)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("shutdown", "error", err)
	}
	return nil
}

// loopbackOnly tells whether a listener's address is reachable from this
// host only (a loopback address, not a wildcard).
func loopbackOnly(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}
