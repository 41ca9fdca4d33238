package xks

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"testing"
	"time"
)

// An operator's own certificate and key (RSA and EC): the key is imported
// into the HSM, the PEM is not kept, and handshakes (RSA-PSS in TLS 1.3,
// PKCS#1 v1.5 in TLS 1.2, ECDSA) are signed in the token.
func TestProvidedServerCertificate(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, key := range map[string]crypto.Signer{"rsa": rsaKey, "ec": ecKey} {
		t.Run(name, func(t *testing.T) {
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "localhost"},
				DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
				KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
			if err != nil {
				t.Fatal(err)
			}
			p8, _ := x509.MarshalPKCS8PrivateKey(key)
			certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
			keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}))
			e := newTestEnvNoCA(t, ConfigInput{TLSCertPEM: &certPEM, TLSKeyPEM: &keyPEM})
			cert, _ := x509.ParseCertificate(der)
			pool := x509.NewCertPool()
			pool.AddCert(cert)
			body := must(json.Marshal(healthBody()))
			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
					TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: v, MaxVersion: v}}}
				st, b := do(t, client, sdkRequest(t, e.xksURL(testPrefix, "health"), body, e.akid, e.secret, time.Now()))
				wantOK(t, st, b, &HealthResponse{})
			}
			cfg := must(e.m.Config(t.Context(), e.mount))
			if cfg.TLSInternalCA || cfg.TLSKeyID == "" {
				t.Fatalf("config %+v", cfg)
			}
		})
	}
}

// newTestEnvNoCA is newTestEnv for a configuration with its own certificate.
func newTestEnvNoCA(t *testing.T, cfg ConfigInput) *testEnv {
	return newTestEnvCA(t, cfg, false)
}
