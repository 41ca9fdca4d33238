package xks

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// cappedListener closes a connection at once when max_connections (of the
// mount's current configuration, over all its listen addresses) are open
// already: every connection may hold a request body before its signature
// is checked, so their number bounds that memory.
type cappedListener struct {
	net.Listener
	rt     *runtime
	log    *slog.Logger
	mount  string
	warned atomic.Int64 // when a refusal was last logged (unix seconds)
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
			c.Close()
			// At most one line every 10 s: a flood must not flood the log.
			if now := time.Now().Unix(); now-l.warned.Load() >= 10 {
				l.warned.Store(now)
				l.log.Warn("xks: connection refused: max_connections reached", "mount", l.mount, "remote", c.RemoteAddr().String(), "max_connections", max)
			}
			continue
		}
		return &countedConn{Conn: c, rt: l.rt}, nil
	}
}

// countedConn gives its place back when it is closed (once).
type countedConn struct {
	net.Conn
	rt   *runtime
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.rt.open.Add(-1) })
	return err
}
