package kmip_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/kmip"
	"github.com/keyhold/keyhold/kmip/kmiptest"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// gauge reads keyhold_kmip_connections_open from the metrics.
func gauge(t *testing.T, e *kmiptest.Env) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "keyhold_kmip_connections_open "); ok {
			return v
		}
	}
	t.Fatal("no keyhold_kmip_connections_open metric")
	return ""
}

func TestManyLongLivedConnections(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "c", "all", "all")
	cert, _ := e.Credential(t, "c", "all")
	const n = 128
	clients := make([]*kmiptest.Client, n)
	for i := range clients {
		clients[i] = e.Dial(t, cert)
	}
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				it, err := c.Do(gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{})
				if err == nil && it.ResultStatus != gokmip.ResultStatusSuccess {
					err = errors.New("discover versions failed")
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		time.Sleep(50 * time.Millisecond) // idle between rounds: the connections stay open
	}
	if g := gauge(t, e); g != "128" {
		t.Fatalf("open connections gauge %s, want 128", g)
	}
	for _, c := range clients {
		c.Conn.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for gauge(t, e) != "0" {
		if time.Now().After(deadline) {
			t.Fatalf("gauge %s after closing every connection", gauge(t, e))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConnectionLimitAndIdleTimeout(t *testing.T) {
	maxConns, idle := 2, 300*time.Millisecond
	e := kmiptest.Start(t, kmiptest.Options{Config: kmip.ConfigInput{MaxConnections: &maxConns, IdleTimeout: &idle}})
	e.Role(t, "c", "all", "all")
	cert, _ := e.Credential(t, "c", "all")
	a, b := e.Dial(t, cert), e.Dial(t, cert)
	for _, c := range []*kmiptest.Client{a, b} {
		if it, err := c.Do(gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}); err != nil || it.ResultStatus != gokmip.ResultStatusSuccess {
			t.Fatalf("within the limit: %v", err)
		}
	}
	if err := exchange(e, e.TLSConfig(cert)); err == nil {
		t.Fatal("a third connection was served with max_connections 2")
	}
	// Idle past the timeout, the first two are closed, and there is room again.
	for _, c := range []*kmiptest.Client{a, b} {
		c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("an idle connection stayed open: %v", err)
		}
	}
	if err := exchange(e, e.TLSConfig(cert)); err != nil {
		t.Fatalf("after the idle connections closed: %v", err)
	}
}

func TestRestart(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "r", "all", "all")
	cert, _ := e.Credential(t, "r", "all")
	c := e.Dial(t, cert)
	id := must[*payloads.CreateResponsePayload](t, do(t, c, gokmip.V1_4, createAES("survivor"))).UniqueIdentifier

	// A configuration write restarts the listener: the open connection is
	// closed cleanly, a new one works.
	timeout := 20 * time.Second
	v, err := e.Manager.SetConfig(context.Background(), e.Mount, kmip.ConfigInput{ConnectionTimeout: &timeout})
	if err != nil {
		t.Fatal(err)
	}
	c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection to the old listener is still open")
	}
	e.Addr = v.Listening[0]
	c = e.Dial(t, cert)
	must[*payloads.GetResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: id}))

	// A new manager over the same store and token (the appliance restarted)
	// brings the listener back from the stored configuration.
	e.Manager.Close()
	m := kmip.New(kmip.Options{HSM: e.HSM, Store: e.Store, Logger: nil, Version: "test"})
	t.Cleanup(func() { m.Close() })
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addrs := m.Addrs(e.Mount)
	if len(addrs) != 1 {
		t.Fatalf("listening on %v after a restart", addrs)
	}
	e.Addr = addrs[0]
	c = e.Dial(t, cert)
	g := must[*payloads.GetResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: id}))
	if k, err := g.SymmetricKey(); err != nil || len(k) != 16 {
		t.Fatalf("the key after a restart: %d bytes, %v", len(k), err)
	}
}

// A connection timeout is whole seconds, from 1s to 1h: less would be
// shown as 0 and cut every client off.
func TestConnectionTimeoutBounds(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	for _, bad := range []time.Duration{time.Millisecond, 999 * time.Millisecond, 0, -time.Second, time.Hour + time.Second} {
		if _, err := e.Manager.SetConfig(context.Background(), e.Mount, kmip.ConfigInput{ConnectionTimeout: &bad}); fault.KindOf(err) != fault.BadInput {
			t.Errorf("connection_timeout %v: %v, want bad input", bad, err)
		}
	}
	ok := time.Second
	if _, err := e.Manager.SetConfig(context.Background(), e.Mount, kmip.ConfigInput{ConnectionTimeout: &ok}); err != nil {
		t.Fatalf("connection_timeout 1s: %v", err)
	}
}
