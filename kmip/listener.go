package kmip

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsmca"
	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/ovh/kmip-go"
)

// listener is a mount's TCP listeners and their connections.
type listener struct {
	m       *Manager
	srv     *server
	cfg     *Config
	tls     *tls.Config
	lns     []net.Listener
	slots   chan struct{} // max_connections
	ctx     context.Context
	cancel  context.CancelFunc
	closing atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[*conn]struct{}
}

// conn is one client connection.
type conn struct {
	tc   *tls.Conn
	busy atomic.Bool // a message is being read, served or answered
}

// listen binds every configured address and starts serving st.
func (m *Manager) listen(ctx context.Context, st *state) (*listener, error) {
	srv := &server{m: m, mount: st.mount, ops: operations()}
	srv.st.Store(st)
	l := &listener{m: m, srv: srv, cfg: st.cfg, conns: map[*conn]struct{}{}, slots: make(chan struct{}, st.cfg.MaxConnections)}
	tc, err := l.tlsConfig(ctx, st)
	if err != nil {
		return nil, err
	}
	l.tls = tc
	for _, a := range st.cfg.ListenAddrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, x := range l.lns {
				x.Close()
			}
			return nil, fault.Wrap(fault.BadInput, err, "cannot listen on %s", a)
		}
		l.lns = append(l.lns, ln)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	for _, ln := range l.lns {
		l.wg.Add(1)
		go l.accept(ln)
	}
	m.o.Logger.Info("kmip: listening", "mount", st.mount, "addresses", l.addrs(), "tls_min_version", st.cfg.TLSMinVersion)
	return l, nil
}

func (l *listener) addrs() []string {
	out := make([]string, 0, len(l.lns))
	for _, ln := range l.lns {
		out = append(out, ln.Addr().String())
	}
	return out
}

// tlsConfig is mutual TLS: the server key in the HSM, a client certificate
// issued by the mount's CA and naming a live credential, TLS 1.2 or 1.3 and
// the configured suites.
func (l *listener) tlsConfig(ctx context.Context, st *state) (*tls.Config, error) {
	cert, err := hsmca.ServerCertificate(ctx, l.m.o.HSM, st.cfg.ServerCertPEM, hsm.Key{ID: st.cfg.ServerKeyID, Blob: st.cfg.ServerKeyBlob})
	if err != nil {
		return nil, err
	}
	minV, err := tlsVersion(st.cfg.TLSMinVersion)
	if err != nil {
		return nil, err
	}
	suites, err := cipherSuiteIDs(st.cfg.cipherSuites())
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   minV,
		CipherSuites: suites,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    st.caPool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("kmip: no client certificate")
			}
			serial := cs.PeerCertificates[0].SerialNumber.String()
			if l.srv.st.Load().creds[serial] == nil && !l.m.knownAfterSync(serial, l.srv) {
				return errors.New("kmip: the client certificate is revoked or unknown")
			}
			return nil
		},
	}, nil
}

func (l *listener) accept(ln net.Listener) {
	defer l.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if l.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.m.o.Logger.Error("kmip: accept failed", "mount", l.srv.mount, "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		select {
		case l.slots <- struct{}{}:
		default:
			l.m.dbg.logf(l.ctx, l.m.dbg.connection, "connection refused: max_connections reached", "mount", l.srv.mount, "remote", nc.RemoteAddr().String())
			nc.Close()
			continue
		}
		c := &conn{tc: tls.Server(nc, l.tls)}
		l.mu.Lock()
		if l.closing.Load() {
			l.mu.Unlock()
			nc.Close()
			<-l.slots
			return
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serve(c)
	}
}

// serve runs one connection: the handshake within the connection timeout,
// then messages one after the other. An idle connection may wait for its
// next message up to the idle timeout; once a message starts, reading it,
// serving it and writing the answer are bounded by the connection timeout
// (reading and writing) and the server's work.
func (l *listener) serve(c *conn) {
	ctx, dbg := l.ctx, l.m.dbg
	remote := c.tc.RemoteAddr().String()
	if mx := l.m.o.Metrics; mx != nil {
		mx.KMIPConnection(1)
		defer mx.KMIPConnection(-1)
	}
	defer func() {
		c.tc.Close()
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		<-l.slots
		l.wg.Done()
		dbg.logf(ctx, dbg.connection, "connection closed", "mount", l.srv.mount, "remote", remote)
	}()
	timeout := l.cfg.ConnectionTimeout
	c.tc.SetDeadline(time.Now().Add(timeout))
	if err := c.tc.HandshakeContext(ctx); err != nil {
		dbg.logf(ctx, dbg.connection, "handshake failed", "mount", l.srv.mount, "remote", remote, "error", err)
		return
	}
	cs := c.tc.ConnectionState()
	p := &peer{serial: cs.PeerCertificates[0].SerialNumber.String(), remote: remote}
	if dbg.connection {
		leaf := cs.PeerCertificates[0]
		dbg.logf(ctx, true, "connection open", "mount", l.srv.mount, "remote", remote, "serial", p.serial,
			"subject", leaf.Subject.String(), "tls_version", tls.VersionName(cs.Version), "cipher_suite", tls.CipherSuiteName(cs.CipherSuite))
	}
	for !l.closing.Load() {
		if l.cfg.IdleTimeout > 0 {
			c.tc.SetReadDeadline(time.Now().Add(l.cfg.IdleTimeout))
		} else {
			c.tc.SetReadDeadline(time.Time{})
		}
		c.tc.SetWriteDeadline(time.Time{})
		msg, err := wire.ReadMessage(c.tc, l.cfg.MaxMessageBytes, func() {
			c.busy.Store(true)
			c.tc.SetReadDeadline(time.Now().Add(timeout))
		})
		if err != nil {
			var fe *wire.FrameError
			if errors.As(err, &fe) {
				dbg.logf(ctx, dbg.decoding, "message refused by framing", "mount", l.srv.mount, "remote", remote, "error", err)
				l.srv.countRefused(ctx, p, err)
				// The stream cannot be followed any further: answer (in
				// KMIP 1.0, the version being unknown) and close.
				out := l.srv.messageError(kmip.V1_0, errorf(kmip.ResultReasonInvalidMessage, "%s", fe.Msg))
				c.tc.SetWriteDeadline(time.Now().Add(timeout))
				c.tc.Write(out)
			} else if !errors.Is(err, wire.ErrEmpty) && !isClosed(err) {
				dbg.logf(ctx, dbg.connection, "read failed", "mount", l.srv.mount, "remote", remote, "error", err)
			}
			return
		}
		out, closeConn := l.srv.handle(ctx, p, msg)
		c.tc.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := c.tc.Write(out); err != nil {
			dbg.logf(ctx, dbg.connection, "write failed", "mount", l.srv.mount, "remote", remote, "error", err)
			return
		}
		c.busy.Store(false)
		if closeConn {
			return
		}
	}
}

func isClosed(err error) bool {
	var ne net.Error
	return errors.Is(err, net.ErrClosed) || (errors.As(err, &ne) && ne.Timeout()) || strings.Contains(err.Error(), "connection reset")
}

// stop closes the listeners, lets each connection finish the message it is
// serving (up to 5 s), and closes them all.
func (l *listener) stop() {
	l.mu.Lock()
	l.closing.Store(true)
	for _, ln := range l.lns {
		ln.Close()
	}
	for c := range l.conns {
		if !c.busy.Load() {
			c.tc.SetReadDeadline(time.Now()) // wakes an idle reader
		}
	}
	l.mu.Unlock()
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		l.mu.Lock()
		for c := range l.conns {
			c.tc.Close()
		}
		l.mu.Unlock()
		<-done
	}
	l.cancel()
	l.m.o.Logger.Info("kmip: listener stopped", "mount", l.srv.mount)
}
