package xks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/fault"
)

const kmsClientCN = "cks.kms.us-east-1.amazonaws.com"

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func (c *testCert) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der}))
}

func (c *testCert) tls() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.der}, PrivateKey: c.key, Leaf: c.cert}
}

// files writes the certificate and key as PEM files for curl.
func (c *testCert) files(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	kd, err := x509.MarshalECPrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := filepath.Join(dir, name+"_cert.pem"), filepath.Join(dir, name+"_key.pem")
	if err := os.WriteFile(cf, []byte(c.pem()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

// newCert makes a certificate for cn, signed by parent (self-signed if nil).
func newCert(t *testing.T, cn string, parent *testCert, isCA bool, notBefore, notAfter time.Time) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore, NotAfter: notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: isCA,
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCert{cert: c, key: key, der: der}
}

func TestMutualTLS(t *testing.T) {
	now := time.Now()
	year := now.Add(365 * 24 * time.Hour)
	ca := newCert(t, "client CA", nil, true, now.Add(-time.Hour), year)
	otherCA := newCert(t, "other CA", nil, true, now.Add(-time.Hour), year)
	caPEM := ca.pem()
	e := newTestEnv(t, ConfigInput{ClientCAPEM: &caPEM, AllowedSubjects: &[]string{kmsClientCN}})
	certs := map[string]*testCert{
		"ok":                         newCert(t, kmsClientCN, ca, false, now.Add(-time.Hour), year),
		"fail expired":               newCert(t, kmsClientCN, ca, false, now.Add(-48*time.Hour), now.Add(-24*time.Hour)),
		"fail self-signed":           newCert(t, kmsClientCN, nil, false, now.Add(-time.Hour), year),
		"fail wrong CA":              newCert(t, kmsClientCN, otherCA, false, now.Add(-time.Hour), year),
		"fail wrong subject":         newCert(t, "cks.kms.evil.example.com", ca, false, now.Add(-time.Hour), year),
		"fail no client certificate": nil,
	}
	body := must(json.Marshal(healthBody()))
	url := e.xksURL(testPrefix, "health")
	for name, c := range certs {
		t.Run("go "+name, func(t *testing.T) {
			tc := &tls.Config{RootCAs: e.pool}
			if c != nil {
				tc.Certificates = []tls.Certificate{c.tls()}
			}
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
			resp, err := client.Do(sdkRequest(t, url, body, e.akid, e.secret, time.Now()))
			if name == "ok" {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d", resp.StatusCode)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("the handshake succeeded (status %d)", resp.StatusCode)
			}
		})
		if c == nil {
			continue
		}
		t.Run("curl "+name, func(t *testing.T) {
			cf, kf := c.files(t, t.TempDir(), "client")
			cmd := exec.Command("curl", url, "--silent", "--show-error", "--cacert", e.caFile, "--key", kf, "--cert", cf,
				"-H", "Content-Type:application/json", "--aws-sigv4", "aws:amz:us-east-1:kms-xks-proxy",
				"--user", e.akid+":"+e.secret, "--data-binary", string(body), "-w", "%{http_code}", "-o", "/dev/null")
			out, err := cmd.CombinedOutput()
			if name == "ok" {
				if err != nil || string(out) != "200" {
					t.Fatalf("curl: %v %s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("curl got through: %s", out)
			}
			t.Logf("curl refused as expected: %s", out)
		})
	}
}

// A client CA alone would admit every certificate it issued (AWS KMS's come
// from a public CA): a subject or DNS name is required with it.
func TestMutualTLSNeedsASubject(t *testing.T) {
	ca := newCert(t, "client CA", nil, true, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	caPEM := ca.pem()
	c := &Config{ListenAddrs: []string{"127.0.0.1:0"}, Prefixes: []string{""}, TLSCertPEM: "cert", TLSKeyBlob: []byte{1}}
	if _, err := c.apply(ConfigInput{ClientCAPEM: &caPEM}); fault.KindOf(err) != fault.BadInput || !strings.Contains(err.Error(), "mtls_client_ca needs mtls_allowed_subjects") {
		t.Fatalf("a client CA without a subject: %v", err)
	}
	if _, err := c.apply(ConfigInput{ClientCAPEM: &caPEM, AllowedDNSNames: &[]string{kmsClientCN}}); err != nil {
		t.Fatalf("a client CA with a DNS name: %v", err)
	}
}
