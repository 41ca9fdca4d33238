package xks

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// max_connections bounds the connections open at once: one more is closed
// before its handshake, a closed one frees its place, and the bound can be
// raised without a restart. A value out of range is refused.
func TestMaxConnections(t *testing.T) {
	ctx := context.Background()
	two := 2
	e := newTestEnv(t, ConfigInput{MaxConnections: &two})
	dial := func() (*tls.Conn, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr, &tls.Config{RootCAs: e.pool, ServerName: "localhost"})
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c, nil
	}
	var open []*tls.Conn
	for range 2 {
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	if c, err := dial(); err == nil {
		c.Close()
		t.Fatal("a third connection was served with max_connections=2")
	}
	// A closed connection gives its place back (once the server sees it).
	open[0].Close()
	var err error
	for range 50 {
		var c *tls.Conn
		if c, err = dial(); err == nil {
			open[0] = c
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("no connection after one closed: %v", err)
	}
	// Raised, it takes effect on the running listener.
	three := 3
	if _, err := e.m.SetConfig(ctx, e.mount, ConfigInput{MaxConnections: &three}); err != nil {
		t.Fatal(err)
	}
	c, err := dial()
	if err != nil {
		t.Fatalf("a third connection with max_connections=3: %v", err)
	}
	c.Close()
	for _, c := range open {
		c.Close()
	}
	for _, bad := range []int{0, -1, 1<<20 + 1} {
		if _, err := e.m.SetConfig(ctx, e.mount, ConfigInput{MaxConnections: &bad}); err == nil {
			t.Fatalf("max_connections=%d accepted", bad)
		}
	}
}
