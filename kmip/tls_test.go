package kmip_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/kmip"
	"github.com/keyhold/keyhold/kmip/kmiptest"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// exchange dials with cfg and runs Discover Versions; an error means the
// server refused the connection (at the handshake, or at the first read
// under TLS 1.3, where the client finishes first).
func exchange(e *kmiptest.Env, cfg *tls.Config) error {
	c, err := e.DialConfig(cfg)
	if err != nil {
		return err
	}
	defer c.Conn.Close()
	it, err := c.Do(gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{})
	if err != nil {
		return err
	}
	if it.ResultStatus != gokmip.ResultStatusSuccess {
		return errors.New("discover versions failed")
	}
	return nil
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "intruder", Organization: []string{"s"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestTLS(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "s", "r", "all")
	cert, _ := e.Credential(t, "s", "r")
	with := func(f func(*tls.Config)) *tls.Config {
		c := e.TLSConfig(cert)
		f(c)
		return c
	}
	tests := []struct {
		name    string
		cfg     *tls.Config
		wantErr bool
	}{
		{name: "ok TLS 1.3", cfg: with(func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 })},
		{name: "ok TLS 1.2 AEAD", cfg: with(func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
		})},
		{name: "ok TLS 1.2 CBC-SHA256 as PyKMIP's suite list offers", cfg: with(func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
		})},
		{name: "fail TLS 1.1", cfg: with(func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS11, tls.VersionTLS11 }), wantErr: true},
		{name: "fail no forward secrecy", cfg: with(func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA256}
		}), wantErr: true},
		{name: "fail no client certificate", cfg: with(func(c *tls.Config) { c.Certificates = nil }), wantErr: true},
		{name: "fail certificate of another CA", cfg: with(func(c *tls.Config) { c.Certificates = []tls.Certificate{selfSigned(t)} }), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := exchange(e, tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestTLSConfiguration(t *testing.T) {
	min13, aead := "tls13", []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}
	e := kmiptest.Start(t, kmiptest.Options{Config: kmip.ConfigInput{TLSCipherSuites: &aead}})
	e.Role(t, "s", "r", "all")
	cert, _ := e.Credential(t, "s", "r")
	cbc := e.TLSConfig(cert)
	cbc.MaxVersion, cbc.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
	if err := exchange(e, cbc); err == nil {
		t.Fatal("a CBC suite was accepted with an AEAD-only list")
	}
	gcm := e.TLSConfig(cert)
	gcm.MaxVersion, gcm.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	if err := exchange(e, gcm); err != nil {
		t.Fatalf("a listed suite was refused: %v", err)
	}
	if _, err := e.Manager.SetConfig(context.Background(), e.Mount, kmip.ConfigInput{TLSMinVersion: &min13}); err != nil {
		t.Fatal(err)
	}
	v, _ := e.Manager.Config(context.Background(), e.Mount)
	e.Addr = v.Listening[0]
	if err := exchange(e, gcm); err == nil {
		t.Fatal("TLS 1.2 was accepted with tls_min_version tls13")
	}
	if err := exchange(e, e.TLSConfig(cert)); err != nil {
		t.Fatalf("TLS 1.3 after a restart: %v", err)
	}
	for _, bad := range [][]string{{"TLS_RSA_WITH_AES_128_CBC_SHA256"}, {"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"}, {"TLS_NOPE"}} {
		if _, err := e.Manager.SetConfig(context.Background(), e.Mount, kmip.ConfigInput{TLSCipherSuites: &bad}); err == nil {
			t.Errorf("suites %v were accepted", bad)
		}
	}
}

// A connection kept open does not outlive its client certificate: the
// handshake checked the certificate's validity once.
func TestExpiryEndsOpenConnections(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	e := kmiptest.Start(t, kmiptest.Options{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	e.Role(t, "s", "r", "all")
	cert, _ := e.Credential(t, "s", "r")
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	c := e.Dial(t, cert)
	must[*payloads.DiscoverVersionsResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}))
	clock.Store(leaf.NotAfter.Add(-time.Second).UnixNano())
	must[*payloads.DiscoverVersionsResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}))
	clock.Store(leaf.NotAfter.Add(time.Second).UnixNano())
	mustFail(t, do(t, c, gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}), gokmip.ResultReasonAuthenticationNotSuccessful)
	c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the connection stayed open: %v", err)
	}
}

func TestRevocationEndsOpenConnections(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "s", "r", "all")
	cert, serial := e.Credential(t, "s", "r")
	c := e.Dial(t, cert)
	must[*payloads.DiscoverVersionsResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}))
	if err := e.Manager.RevokeCredential(context.Background(), e.Mount, "s", "r", serial, ""); err != nil {
		t.Fatal(err)
	}
	mustFail(t, do(t, c, gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}), gokmip.ResultReasonAuthenticationNotSuccessful)
	c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the connection stayed open: %v", err)
	}
	if err := exchange(e, e.TLSConfig(cert)); err == nil {
		t.Fatal("a revoked certificate connects")
	}
	// Deleting the role refuses its credentials' operations.
	cert2, _ := e.Credential(t, "s", "r")
	c2 := e.Dial(t, cert2)
	// One exchange first: with TLS 1.3 the client's handshake can return
	// before the server has checked the certificate, and the role must be
	// deleted under an established connection, not during its handshake.
	must[*payloads.DiscoverVersionsResponsePayload](t, do(t, c2, gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}))
	if err := e.Manager.DeleteRole(context.Background(), e.Mount, "s", "r"); err != nil {
		t.Fatal(err)
	}
	it, err := c2.Do(gokmip.V1_4, &payloads.DiscoverVersionsRequestPayload{})
	if err != nil || it.ResultStatus == gokmip.ResultStatusSuccess {
		t.Fatalf("a deleted role's credential still works: %v %+v", err, it)
	}
}
