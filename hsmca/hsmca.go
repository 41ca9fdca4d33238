// Package hsmca is a certificate authority whose private keys live in the
// HSM. The CA key and the servers' TLS keys are generated in the token and
// kept only as blobs; certificates are signed, and TLS handshakes answered,
// in the token through hsm.Signer. The KMIP and XKS listeners each run one
// per mount.
package hsmca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
)

// Record is a CA as stored: its certificate and its key as an HSM blob.
type Record struct {
	CertPEM string `json:"cert_pem"`
	KeyID   string `json:"key_id"`
	KeyBlob []byte `json:"key_blob"`
}

// Validity of what a CA issues. A server certificate is renewed when it is
// RenewWithin of its expiry.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 397 * 24 * time.Hour
	RenewWithin    = 30 * 24 * time.Hour
)

// Profile says what one mount's CA makes.
type Profile struct {
	KeyPrefix  string        // HSM key ids: KeyPrefix + "/ca/…" and KeyPrefix + "/tls/…"
	CommonName string        // of the CA certificate
	What       string        // the CA in error messages, e.g. "KMIP CA"
	Backdate   time.Duration // certificates are valid from this long before they are made
}

func keyID(prefix, kind string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + "/" + kind + "/" + hex.EncodeToString(b)
}

// RandomSerial is a certificate serial number of 127 random bits.
func RandomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// PEM encodes a DER certificate.
func PEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// New generates a CA key of type kt in the HSM and a self-signed CA
// certificate.
func New(ctx context.Context, h *hsm.HSM, p Profile, kt hsm.KeyType) (*Record, error) {
	id := keyID(p.KeyPrefix, "ca")
	blob, err := h.Generate(ctx, hsm.GenerateRequest{ID: id, Type: kt})
	if err != nil {
		return nil, err
	}
	signer, err := h.Signer(ctx, hsm.Key{ID: id, Blob: blob})
	if err != nil {
		return nil, err
	}
	serial, err := RandomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: p.CommonName, Organization: []string{"Keyhold"}},
		NotBefore:             now.Add(-p.Backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "could not create the %s", p.What)
	}
	return &Record{CertPEM: PEM(der), KeyID: id, KeyBlob: blob}, nil
}

// Issuer is an open CA: its certificate and a signer in the HSM.
type Issuer struct {
	p      Profile
	cert   *x509.Certificate
	signer crypto.Signer
	pem    string
}

// Open opens a stored CA for issuing.
func Open(ctx context.Context, h *hsm.HSM, p Profile, rec *Record) (*Issuer, error) {
	b, _ := pem.Decode([]byte(rec.CertPEM))
	if b == nil {
		return nil, fault.New(fault.Internal, "corrupt %s certificate", p.What)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "corrupt %s certificate", p.What)
	}
	s, err := h.Signer(ctx, hsm.Key{ID: rec.KeyID, Blob: rec.KeyBlob})
	if err != nil {
		return nil, err
	}
	return &Issuer{p: p, cert: cert, signer: s, pem: rec.CertPEM}, nil
}

// Sign certifies pub with tmpl, whose NotBefore it backdates from now.
func (is *Issuer) Sign(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	serial, err := RandomSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-is.p.Backdate)
	return x509.CreateCertificate(rand.Reader, tmpl, is.cert, pub, is.signer)
}

// IssueServer generates a server key in the HSM and certifies it for the
// names. It returns the chain (leaf, CA) as PEM and the key.
func (is *Issuer) IssueServer(ctx context.Context, h *hsm.HSM, hosts, ips []string) (string, hsm.Key, error) {
	id := keyID(is.p.KeyPrefix, "tls")
	blob, err := h.Generate(ctx, hsm.GenerateRequest{ID: id, Type: hsm.ECP256})
	if err != nil {
		return "", hsm.Key{}, err
	}
	key := hsm.Key{ID: id, Blob: blob}
	leaf, err := h.Signer(ctx, key)
	if err != nil {
		return "", hsm.Key{}, err
	}
	cn := "localhost"
	if len(hosts) > 0 {
		cn = hosts[0]
	} else if len(ips) > 0 {
		cn = ips[0]
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"Keyhold"}},
		NotAfter:    time.Now().Add(ServerValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    hosts,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := is.Sign(tmpl, leaf.Public())
	if err != nil {
		return "", hsm.Key{}, fault.Wrap(fault.Internal, err, "could not issue the server certificate of the %s", is.p.What)
	}
	return PEM(der) + is.pem, key, nil
}

// ServerCertificate is a listener's certificate from its PEM chain, its key
// signing handshakes in the HSM.
func ServerCertificate(ctx context.Context, h *hsm.HSM, chainPEM string, key hsm.Key) (tls.Certificate, error) {
	var out tls.Certificate
	for rest := []byte(chainPEM); ; {
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
	signer, err := h.Signer(ctx, key)
	if err != nil {
		return out, err
	}
	out.Leaf, out.PrivateKey = leaf, signer
	return out, nil
}

// ExpiresWithin reports whether the first certificate of a PEM chain
// expires within d (or cannot be read).
func ExpiresWithin(chainPEM string, d time.Duration) bool {
	b, _ := pem.Decode([]byte(chainPEM))
	if b == nil {
		return true
	}
	c, err := x509.ParseCertificate(b.Bytes)
	return err != nil || time.Until(c.NotAfter) < d
}
