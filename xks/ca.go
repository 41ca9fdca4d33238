package xks

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
)

// The internal CA and the server's TLS keys. Every private key here lives in
// the HSM (generated there, or imported and wrapped at once); certificates
// are signed and TLS handshakes are signed in the token through hsm.Signer.

// caRecord is a mount's internal CA, as stored.
type caRecord struct {
	CertPEM string `json:"cert_pem"`
	KeyID   string `json:"key_id"`
	KeyBlob []byte `json:"key_blob"`
}

// Validity of what the internal CA issues.
const (
	caValidity    = 10 * 365 * 24 * time.Hour
	leafValidity  = 397 * 24 * time.Hour
	leafRenewLeft = 30 * 24 * time.Hour
)

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// newCA generates a CA key (EC P-256) in the HSM and a self-signed certificate.
func newCA(ctx context.Context, h *hsm.HSM, mountID string) (*caRecord, error) {
	id := "xks/" + mountID + "/ca/" + randomID()
	blob, err := h.Generate(ctx, hsm.GenerateRequest{ID: id, Type: hsm.ECP256})
	if err != nil {
		return nil, err
	}
	signer, err := h.Signer(ctx, hsm.Key{ID: id, Blob: blob})
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Keyhold XKS internal CA " + mountID[:min(8, len(mountID))], Organization: []string{"Keyhold"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "could not create the internal CA")
	}
	return &caRecord{CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), KeyID: id, KeyBlob: blob}, nil
}

// issueServerCert generates a server key in the HSM and has the CA certify
// it for the names. It returns the chain PEM (leaf, CA) and the key.
func issueServerCert(ctx context.Context, h *hsm.HSM, mountID string, ca *caRecord, dnsNames, ips []string) (string, hsm.Key, error) {
	b, _ := pem.Decode([]byte(ca.CertPEM))
	if b == nil {
		return "", hsm.Key{}, fault.New(fault.Internal, "corrupt internal CA certificate")
	}
	caCert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", hsm.Key{}, fault.Wrap(fault.Internal, err, "corrupt internal CA certificate")
	}
	caSigner, err := h.Signer(ctx, hsm.Key{ID: ca.KeyID, Blob: ca.KeyBlob})
	if err != nil {
		return "", hsm.Key{}, err
	}
	id := "xks/" + mountID + "/tls/" + randomID()
	blob, err := h.Generate(ctx, hsm.GenerateRequest{ID: id, Type: hsm.ECP256})
	if err != nil {
		return "", hsm.Key{}, err
	}
	key := hsm.Key{ID: id, Blob: blob}
	leafSigner, err := h.Signer(ctx, key)
	if err != nil {
		return "", hsm.Key{}, err
	}
	serial, err := randomSerial()
	if err != nil {
		return "", hsm.Key{}, err
	}
	cn := "localhost"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Keyhold"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, leafSigner.Public(), caSigner)
	if err != nil {
		return "", hsm.Key{}, fault.Wrap(fault.Internal, err, "could not issue the server certificate")
	}
	chain := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + ca.CertPEM
	return chain, key, nil
}

// importServerKey checks that a PEM certificate chain and key match, then
// imports the key into the HSM (not exportable). The PEM key is not kept.
func importServerKey(ctx context.Context, h *hsm.HSM, mountID, certPEM, keyPEM string) (hsm.Key, error) {
	if _, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM)); err != nil {
		return hsm.Key{}, fault.New(fault.BadInput, "tls_cert and tls_key do not make a valid pair (PEM certificate chain and matching PEM private key)")
	}
	var der []byte
	for rest := []byte(keyPEM); ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "PRIVATE KEY" || b.Type == "EC PRIVATE KEY" || b.Type == "RSA PRIVATE KEY" {
			der = b.Bytes
			break
		}
	}
	if der == nil {
		return hsm.Key{}, fault.New(fault.BadInput, "tls_key holds no PEM private key")
	}
	id := "xks/" + mountID + "/tls/" + randomID()
	blob, err := h.Import(ctx, hsm.ImportRequest{ID: id, Material: der})
	if err != nil {
		return hsm.Key{}, err
	}
	return hsm.Key{ID: id, Blob: blob}, nil
}

// serverCertificate builds the tls.Certificate of a configuration, signing
// handshakes in the HSM.
func serverCertificate(ctx context.Context, h *hsm.HSM, c *Config) (tls.Certificate, error) {
	var out tls.Certificate
	for rest := []byte(c.TLSCertPEM); ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			out.Certificate = append(out.Certificate, b.Bytes)
		}
	}
	if len(out.Certificate) == 0 {
		return out, fault.New(fault.Internal, "no server certificate configured")
	}
	leaf, err := x509.ParseCertificate(out.Certificate[0])
	if err != nil {
		return out, fault.Wrap(fault.Internal, err, "corrupt server certificate")
	}
	signer, err := h.Signer(ctx, hsm.Key{ID: c.TLSKeyID, Blob: c.TLSKeyBlob})
	if err != nil {
		return out, err
	}
	out.Leaf = leaf
	out.PrivateKey = signer
	return out, nil
}
