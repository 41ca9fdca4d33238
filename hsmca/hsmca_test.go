package hsmca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/hsmca"
)

func parsePEM(t *testing.T, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := []byte(s); ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// TestCAIssuesServerCertificates makes a CA in SoftHSM2, has it certify a
// server key made there too, checks the chain with crypto/x509, and
// completes a TLS handshake whose server key signs in the token.
func TestCAIssuesServerCertificates(t *testing.T) {
	ctx := context.Background()
	h := hsmtest.Open(t)
	p := hsmca.Profile{KeyPrefix: "test/m1", CommonName: "Test CA m1", What: "test CA", Backdate: time.Hour}
	for _, kt := range []hsm.KeyType{hsm.ECP256, hsm.RSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			rec, err := hsmca.New(ctx, h, p, kt)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(rec.KeyID, "test/m1/ca/") || len(rec.KeyBlob) == 0 {
				t.Fatalf("record %q with a %d-byte blob", rec.KeyID, len(rec.KeyBlob))
			}
			ca := parsePEM(t, rec.CertPEM)
			if len(ca) != 1 || !ca[0].IsCA || ca[0].Subject.CommonName != "Test CA m1" || ca[0].CheckSignatureFrom(ca[0]) != nil {
				t.Fatalf("CA certificate %+v", ca)
			}
			if d := time.Until(ca[0].NotBefore); d > -59*time.Minute || d < -61*time.Minute {
				t.Errorf("CA valid from %v from now, want the one-hour backdate", d)
			}
			is, err := hsmca.Open(ctx, h, p, rec)
			if err != nil {
				t.Fatal(err)
			}
			chain, key, err := is.IssueServer(ctx, h, []string{"kh.example"}, []string{"127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			certs := parsePEM(t, chain)
			if len(certs) != 2 || !certs[1].Equal(ca[0]) || !strings.HasPrefix(key.ID, "test/m1/tls/") {
				t.Fatalf("chain of %d certificates, key %q", len(certs), key.ID)
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca[0])
			for _, name := range []string{"kh.example", "127.0.0.1"} {
				if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
					t.Errorf("verify for %s: %v", name, err)
				}
			}
			if hsmca.ExpiresWithin(chain, hsmca.RenewWithin) || !hsmca.ExpiresWithin(chain, hsmca.ServerValidity+time.Hour) {
				t.Error("ExpiresWithin does not read the leaf's expiry")
			}
			cert, err := hsmca.ServerCertificate(ctx, h, chain, key)
			if err != nil {
				t.Fatal(err)
			}
			handshake(t, cert, roots)
		})
	}
}

func handshake(t *testing.T, cert tls.Certificate, roots *x509.CertPool) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "kh.example"})
	if err != nil {
		t.Fatalf("handshake with the HSM-held server key: %v", err)
	}
	c.Close()
}

// TestSignBackdatesAndCertifies checks Sign, used for client certificates:
// a fresh serial, the profile's backdate, the CA's signature.
func TestSignBackdatesAndCertifies(t *testing.T) {
	ctx := context.Background()
	h := hsmtest.Open(t)
	p := hsmca.Profile{KeyPrefix: "test/m2", CommonName: "Test CA m2", What: "test CA", Backdate: time.Minute}
	rec, err := hsmca.New(ctx, h, p, hsm.ECP384)
	if err != nil {
		t.Fatal(err)
	}
	is, err := hsmca.Open(ctx, h, p, rec)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var serials []string
	for range 2 {
		der, err := is.Sign(&x509.Certificate{NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, client.Public())
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckSignatureFrom(parsePEM(t, rec.CertPEM)[0]); err != nil {
			t.Fatal(err)
		}
		if d := time.Until(c.NotBefore); d > -59*time.Second || d < -61*time.Second {
			t.Errorf("valid from %v from now, want the one-minute backdate", d)
		}
		serials = append(serials, c.SerialNumber.String())
	}
	if serials[0] == serials[1] {
		t.Error("two certificates share a serial")
	}
}

// TestOpenRefusesACorruptRecord: a record whose certificate cannot be read
// is an error naming the CA, never a panic.
func TestOpenRefusesACorruptRecord(t *testing.T) {
	h := hsmtest.Open(t)
	p := hsmca.Profile{KeyPrefix: "test/m3", CommonName: "Test CA m3", What: "test CA"}
	for _, pemText := range []string{"", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		if _, err := hsmca.Open(context.Background(), h, p, &hsmca.Record{CertPEM: pemText}); err == nil || !strings.Contains(err.Error(), "test CA") {
			t.Errorf("open %q: %v", pemText, err)
		}
	}
	if _, err := hsmca.ServerCertificate(context.Background(), h, "", hsm.Key{}); err == nil {
		t.Error("a server certificate from an empty chain")
	}
	if !hsmca.ExpiresWithin("not a certificate", time.Second) {
		t.Error("an unreadable chain does not count as expiring")
	}
}
