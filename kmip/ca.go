package kmip

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
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

// The mount's internal CA. Its key is generated in the HSM and kept only as
// a blob; certificates are signed in the token through hsm.Signer. The
// server's TLS key is an HSM key too, so handshakes are signed in the token.
// Client keys are generated here, in Go, because they are handed to the
// client: the appliance keeps only their certificates.

// caRecord is a mount's CA, as stored.
type caRecord struct {
	CertPEM string `json:"cert_pem"`
	KeyID   string `json:"key_id"`
	KeyBlob []byte `json:"key_blob"`
}

// Validity of what the CA issues.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 397 * 24 * time.Hour
	serverRenewAt  = 30 * 24 * time.Hour // renewed at start when this close to expiry
	backdate       = time.Minute
)

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// caKeyType is the HSM key type of a CA key.
func caKeyType(typ string, bits int) (hsm.KeyType, error) {
	switch {
	case typ == "ec" && bits == 256:
		return hsm.ECP256, nil
	case typ == "ec" && bits == 384:
		return hsm.ECP384, nil
	case typ == "ec" && bits == 521:
		return hsm.ECP521, nil
	case typ == "rsa" && bits == 2048:
		return hsm.RSA2048, nil
	case typ == "rsa" && bits == 3072:
		return hsm.RSA3072, nil
	case typ == "rsa" && bits == 4096:
		return hsm.RSA4096, nil
	}
	return "", fault.New(fault.BadInput, "no HSM key type for a %s CA key of %d bits", typ, bits)
}

// newCA generates the CA key in the HSM and a self-signed CA certificate.
func newCA(ctx context.Context, h *hsm.HSM, mount, keyType string, bits int) (*caRecord, error) {
	kt, err := caKeyType(keyType, bits)
	if err != nil {
		return nil, err
	}
	id := "kmip/" + mount + "/ca/" + randomHex(8)
	blob, err := h.Generate(ctx, hsm.GenerateRequest{ID: id, Type: kt})
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
		Subject:               pkix.Name{CommonName: "Keyhold KMIP CA " + mount[:min(8, len(mount))], Organization: []string{"Keyhold"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "could not create the KMIP CA")
	}
	return &caRecord{CertPEM: pemCert(der), KeyID: id, KeyBlob: blob}, nil
}

func pemCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// issuer is an open CA: its certificate and a signer in the HSM.
type issuer struct {
	cert   *x509.Certificate
	signer crypto.Signer
	pem    string
}

func openCA(ctx context.Context, h *hsm.HSM, ca *caRecord) (*issuer, error) {
	b, _ := pem.Decode([]byte(ca.CertPEM))
	if b == nil {
		return nil, fault.New(fault.Internal, "corrupt KMIP CA certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "corrupt KMIP CA certificate")
	}
	s, err := h.Signer(ctx, hsm.Key{ID: ca.KeyID, Blob: ca.KeyBlob})
	if err != nil {
		return nil, err
	}
	return &issuer{cert: cert, signer: s, pem: ca.CertPEM}, nil
}

// issueServer generates the server's key in the HSM and certifies it for
// the names. It returns the chain (leaf, CA) as PEM and the key.
func (is *issuer) issueServer(ctx context.Context, h *hsm.HSM, mount string, hosts, ips []string) (string, hsm.Key, error) {
	id := "kmip/" + mount + "/tls/" + randomHex(8)
	blob, err := h.Generate(ctx, hsm.GenerateRequest{ID: id, Type: hsm.ECP256})
	if err != nil {
		return "", hsm.Key{}, err
	}
	key := hsm.Key{ID: id, Blob: blob}
	leaf, err := h.Signer(ctx, key)
	if err != nil {
		return "", hsm.Key{}, err
	}
	serial, err := randomSerial()
	if err != nil {
		return "", hsm.Key{}, err
	}
	cn := "localhost"
	if len(hosts) > 0 {
		cn = hosts[0]
	} else if len(ips) > 0 {
		cn = ips[0]
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Keyhold"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     hosts,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.cert, leaf.Public(), is.signer)
	if err != nil {
		return "", hsm.Key{}, fault.Wrap(fault.Internal, err, "could not issue the KMIP server certificate")
	}
	return pemCert(der) + is.pem, key, nil
}

// clientSubject is the subject of a client certificate: the scope is the
// organization, the role the organizational unit, and the common name a
// random id. The store's credential record, found by serial, is what the
// server trusts; the subject makes the certificate readable.
func clientSubject(scope, role string) pkix.Name {
	return pkix.Name{CommonName: "kmip-" + randomHex(8), Organization: []string{scope}, OrganizationalUnit: []string{role}}
}

// issueClient certifies a client public key for a scope and role.
func (is *issuer) issueClient(pub crypto.PublicKey, scope, role string, ttl time.Duration) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	ku := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      clientSubject(scope, role),
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(ttl),
		KeyUsage:     ku,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.cert, pub, is.signer)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "could not issue the client certificate")
	}
	return x509.ParseCertificate(der)
}

// newClientKey generates a client key of a type and size.
func newClientKey(typ string, bits int) (crypto.Signer, error) {
	if err := checkKey("tls_client_key", typ, bits); err != nil {
		return nil, err
	}
	if typ == "rsa" {
		return rsa.GenerateKey(rand.Reader, bits)
	}
	curve := map[int]elliptic.Curve{224: elliptic.P224(), 256: elliptic.P256(), 384: elliptic.P384(), 521: elliptic.P521()}[bits]
	return ecdsa.GenerateKey(curve, rand.Reader)
}

// serverCertificate is the listener's certificate, its key signing in the HSM.
func serverCertificate(ctx context.Context, h *hsm.HSM, c *Config) (tls.Certificate, error) {
	var out tls.Certificate
	for rest := []byte(c.ServerCertPEM); ; {
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
		return out, fault.New(fault.Internal, "no KMIP server certificate")
	}
	leaf, err := x509.ParseCertificate(out.Certificate[0])
	if err != nil {
		return out, fault.Wrap(fault.Internal, err, "corrupt KMIP server certificate")
	}
	signer, err := h.Signer(ctx, hsm.Key{ID: c.ServerKeyID, Blob: c.ServerKeyBlob})
	if err != nil {
		return out, err
	}
	out.Leaf, out.PrivateKey = leaf, signer
	return out, nil
}

// certExpiresWithin reports whether the first certificate of a PEM chain
// expires within d (or cannot be read).
func certExpiresWithin(chainPEM string, d time.Duration) bool {
	b, _ := pem.Decode([]byte(chainPEM))
	if b == nil {
		return true
	}
	c, err := x509.ParseCertificate(b.Bytes)
	return err != nil || time.Until(c.NotAfter) < d
}
