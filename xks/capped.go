package xks

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// unauthenticatedTimeout is how long a connection stays open without a
// request on it whose signature verified. AWS KMS sends its request as
// soon as its handshake ends; a client without credentials could
// otherwise keep its place under max_connections for as long as the
// server's timeouts allow: over HTTP/2, a connection that opens no stream
// waits for IdleTimeout (120 s), and one that sends a body slowly for
// ReadTimeout (30 s). 10 s is ReadHeaderTimeout, which bounds the wait for
// the first request of an HTTP/1.1 connection already.
var unauthenticatedTimeout = 10 * time.Second

// cappedListener closes a connection at once when max_connections (of the
// mount's current configuration, over all its listen addresses) are open
// already: every connection may hold a request body before its signature
// is checked, so their number bounds that memory.
type cappedListener struct {
	net.Listener
	rt          *runtime
	log         *slog.Logger
	mount       string
	authTimeout time.Duration // unauthenticatedTimeout when the listener started
	warned      atomic.Int64  // when a refusal was last logged (unix seconds)
}

func (l *cappedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		max := int64(l.rt.p.st.Load().cfg.ConnectionLimit())
		if l.rt.open.Add(1) > max {
			l.rt.open.Add(-1)
			l.rt.p.refused(refusedMaxConnections)
			c.Close()
			// At most one line every 10 s: a flood must not flood the log.
			if now := time.Now().Unix(); now-l.warned.Load() >= 10 {
				l.warned.Store(now)
				l.log.Warn("xks: connection refused: max_connections reached", "mount", l.mount, "remote", c.RemoteAddr().String(), "max_connections", max)
			}
			continue
		}
		cc := &countedConn{Conn: c, rt: l.rt}
		cc.timer = time.AfterFunc(l.authTimeout, cc.expire)
		return cc, nil
	}
}

// countedConn gives its place back when it is closed (once), and is closed
// if no request on it has authenticated within the listener's authTimeout.
type countedConn struct {
	net.Conn
	rt      *runtime
	once    sync.Once
	timer   *time.Timer  // set before the connection is served
	pending atomic.Int32 // requests in progress counted by proxy.admit
	// akid is the credential of its last authenticated request; nil until
	// one has authenticated.
	akid atomic.Pointer[string]
}

func (c *countedConn) Close() error {
	c.timer.Stop()
	_, err := c.close()
	return err
}

// close gives the connection's place back and closes it; it reports
// whether this call gave the place back (the first close). The place goes
// first: closing the socket wakes the server, which closes the connection
// too, and the first caller must be the one that decided to close it.
func (c *countedConn) close() (bool, error) {
	first := false
	c.once.Do(func() { c.rt.open.Add(-1); first = true })
	return first, c.Conn.Close()
}

// expire closes the connection unless a request on it has authenticated
// (whatever it is doing: in its TLS handshake, sending a request, or, over
// HTTP/2, open without a stream); the server then ends its requests.
func (c *countedConn) expire() {
	if c.akid.Load() == nil {
		if first, _ := c.close(); first {
			c.rt.p.refused(refusedUnauthTimeout)
		}
	}
}

// authenticated marks the connection (if any) as carrying a request whose
// signature verified with the credential akid: from then on it lives by the
// server's timeouts, while that credential exists (stillAuthenticated).
func (c *countedConn) authenticated(akid string) {
	if c == nil {
		return
	}
	// Load first: every request of an authenticated connection comes here,
	// and reading does not write the cache line.
	if a := c.akid.Load(); a == nil || *a != akid {
		// The first request, or a rotated credential.
		if c.akid.Swap(&akid) == nil {
			c.timer.Stop()
		}
	}
}

// stillAuthenticated reports whether a request on c has authenticated with
// a credential that st still has: one revoked since no longer vouches for
// the connection (it is counted and closed as unauthenticated ones are).
func (c *countedConn) stillAuthenticated(st *state) bool {
	if c == nil {
		return false
	}
	a := c.akid.Load()
	return a != nil && st != nil && st.credential(*a) != nil
}

// connKey is the request context key of its *countedConn.
type connKey struct{}

// connContext is the server's ConnContext: it gives requests their
// connection, so that an authenticated one can mark it.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if cc, ok := c.(*countedConn); ok {
		return context.WithValue(ctx, connKey{}, cc)
	}
	return ctx
}

// connOf is the connection a request came on (nil for a request that did
// not come through a cappedListener).
func connOf(ctx context.Context) *countedConn {
	cc, _ := ctx.Value(connKey{}).(*countedConn)
	return cc
}
