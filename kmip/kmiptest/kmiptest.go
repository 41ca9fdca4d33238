// Package kmiptest gives tests a running KMIP server: a fresh SoftHSM2 token,
// a SQLite store, a kmip.Manager with one mount listening on loopback, and
// client credentials issued by the mount's CA. It also has a raw TTLV client
// that sends messages byte for byte, so tests see exactly what the server
// answers.
package kmiptest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/kmip"
	"github.com/keyhold/keyhold/metrics"
	"github.com/keyhold/keyhold/softhsm"
	"github.com/keyhold/keyhold/store/sqlite"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// Env is a running KMIP server for a test.
type Env struct {
	Manager *kmip.Manager
	HSM     *hsm.HSM
	Store   *sqlite.Store
	Audit   *audit.Broker
	Metrics *metrics.Metrics
	Mount   string
	Addr    string // host:port of the listener, host 127.0.0.1
	CAPEM   string
	Dir     string
	Token   *softhsm.Token
}

// Options adjust the server of a test.
type Options struct {
	Config kmip.ConfigInput    // applied over the test defaults
	Getenv func(string) string // debug variables; none set if nil
	Logger *slog.Logger        // discards if nil (KEYHOLD_TEST_LOG=1 prints)
	HSM    func(*hsm.Config)   // adjusts the HSM configuration
	Now    func() time.Time    // the server's clock
	Audit  func(*audit.Broker) // enables devices before the server starts
}

// Start starts a server with one mount ("m-" + random), listening on
// 127.0.0.1 on a free port, with a generous connection timeout.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	ctx := context.Background()
	tok := softhsm.NewTestToken(t)
	hc := hsm.Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN}
	if o.HSM != nil {
		o.HSM(&hc)
	}
	mx := metrics.New()
	hc.Observe = mx.ObserveHSM
	h, err := hsm.Open(ctx, hc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
		if os.Getenv("KEYHOLD_TEST_LOG") != "" {
			logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	broker := audit.NewBroker(h, st, logger)
	if o.Audit != nil {
		o.Audit(broker)
	}
	t.Cleanup(broker.Close)
	m := kmip.New(kmip.Options{HSM: h, Store: st, Audit: broker, Metrics: mx, Logger: logger, Version: "test", Getenv: getenv, Now: o.Now})
	t.Cleanup(func() { m.Close() })
	e := &Env{Manager: m, HSM: h, Store: st, Audit: broker, Metrics: mx, Mount: "m-" + randomHex(6), Dir: dir, Token: tok}
	cfg := o.Config
	if cfg.ListenAddrs == nil {
		cfg.ListenAddrs = &[]string{"127.0.0.1:0"}
	}
	if cfg.ConnectionTimeout == nil {
		d := 30 * time.Second
		cfg.ConnectionTimeout = &d
	}
	v, err := m.SetConfig(ctx, e.Mount, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.Addr = v.Listening[0]
	if e.CAPEM, err = m.CA(ctx, e.Mount); err != nil {
		t.Fatal(err)
	}
	return e
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Role creates a scope (if needed) and a role with the given operation_*
// flags ("all" for operation_all).
func (e *Env) Role(t testing.TB, scope, role string, ops ...string) {
	t.Helper()
	ctx := context.Background()
	if err := e.Manager.CreateScope(ctx, e.Mount, scope); err != nil {
		t.Fatal(err)
	}
	in := kmip.RoleInput{Ops: map[string]bool{}}
	for _, op := range ops {
		in.Ops[op] = true
	}
	if _, err := e.Manager.PutRole(ctx, e.Mount, scope, role, in); err != nil {
		t.Fatal(err)
	}
}

// Credential issues a client certificate for a role and returns its TLS
// certificate and serial number.
func (e *Env) Credential(t testing.TB, scope, role string) (tls.Certificate, string) {
	t.Helper()
	c, err := e.Manager.GenerateCredential(context.Background(), e.Mount, scope, role, "pem")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return cert, c.SerialNumber
}

// WriteCredential issues a credential and writes cert.pem, key.pem and
// ca.pem in a new folder, for clients that read files (PyKMIP).
func (e *Env) WriteCredential(t testing.TB, scope, role string) (certFile, keyFile, caFile, serial string) {
	t.Helper()
	c, err := e.Manager.GenerateCredential(context.Background(), e.Mount, scope, role, "pem")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, caFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	for f, body := range map[string]string{certFile: c.Certificate, keyFile: c.PrivateKey, caFile: e.CAPEM} {
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile, caFile, c.SerialNumber
}

// TLSConfig is a client TLS configuration trusting the mount's CA.
func (e *Env) TLSConfig(cert tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(e.CAPEM))
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// Client is a raw KMIP client over one mutual-TLS connection.
type Client struct {
	Conn *tls.Conn
}

// Dial connects with a client certificate and completes the handshake.
func (e *Env) Dial(t testing.TB, cert tls.Certificate) *Client {
	t.Helper()
	c, err := e.DialConfig(e.TLSConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Conn.Close() })
	return c
}

// DialConfig connects with a TLS configuration.
func (e *Env) DialConfig(cfg *tls.Config) (*Client, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	tc, err := tls.DialWithDialer(d, "tcp", e.Addr, cfg)
	if err != nil {
		return nil, err
	}
	return &Client{Conn: tc}, nil
}

// Raw sends bytes as they are and reads one TTLV message back.
func (c *Client) Raw(msg []byte) ([]byte, error) {
	c.Conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Conn.Write(msg); err != nil {
		return nil, err
	}
	return ReadMessage(c.Conn)
}

// ReadMessage reads one TTLV message (of at most 96 MiB: a server's answer
// may reach its max_message_bytes, up to 64 MiB, and more).
func ReadMessage(r io.Reader) ([]byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[4:])
	if n > 96<<20 {
		return nil, fmt.Errorf("kmiptest: response of %d bytes", n)
	}
	msg := make([]byte, 8+int(n))
	copy(msg, h[:])
	_, err := io.ReadFull(r, msg[8:])
	return msg, err
}

// Send encodes a request, sends it and decodes the response.
func (c *Client) Send(req *gokmip.RequestMessage) (*gokmip.ResponseMessage, error) {
	out, err := c.Raw(ttlv.MarshalTTLV(req))
	if err != nil {
		return nil, err
	}
	var resp gokmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(out, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Do sends one operation in a request of a protocol version and returns
// its batch item.
func (c *Client) Do(v gokmip.ProtocolVersion, pl gokmip.OperationPayload) (*gokmip.ResponseBatchItem, error) {
	req := gokmip.NewRequestMessage(v, pl)
	resp, err := c.Send(&req)
	if err != nil {
		return nil, err
	}
	if len(resp.BatchItem) != 1 {
		return nil, fmt.Errorf("kmiptest: %d batch items in the response", len(resp.BatchItem))
	}
	return &resp.BatchItem[0], nil
}
