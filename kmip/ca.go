package kmip

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsmca"
)

// The mount's internal CA is an hsmca CA: its key and the server's TLS key
// are HSM keys. Client keys are generated here, in Go, because they are
// handed to the client: the appliance keeps only their certificates.

// caProfile is what a mount's CA makes.
func caProfile(mount string) hsmca.Profile {
	return hsmca.Profile{KeyPrefix: "kmip/" + mount, CommonName: "Keyhold KMIP CA " + mount[:min(8, len(mount))], What: "KMIP CA", Backdate: time.Minute}
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
func newCA(ctx context.Context, h *hsm.HSM, mount, keyType string, bits int) (*hsmca.Record, error) {
	kt, err := caKeyType(keyType, bits)
	if err != nil {
		return nil, err
	}
	return hsmca.New(ctx, h, caProfile(mount), kt)
}

// clientSubject is the subject of a client certificate: the scope is the
// organization, the role the organizational unit, and the common name a
// random id. The store's credential record, found by serial, is what the
// server trusts; the subject makes the certificate readable.
func clientSubject(scope, role string) pkix.Name {
	return pkix.Name{CommonName: "kmip-" + randomHex(8), Organization: []string{scope}, OrganizationalUnit: []string{role}}
}

// issueClient certifies a client public key for a scope and role.
func issueClient(is *hsmca.Issuer, pub crypto.PublicKey, scope, role string, ttl time.Duration) (*x509.Certificate, error) {
	ku := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		Subject:     clientSubject(scope, role),
		NotAfter:    time.Now().Add(ttl),
		KeyUsage:    ku,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := is.Sign(tmpl, pub)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "could not issue the client certificate")
	}
	return x509.ParseCertificate(der)
}

// newClientKey generates a client key of a type and size.
func newClientKey(typ string, bits int) (crypto.Signer, error) {
	if err := checkKey("tls_client_key", typ, bits); err != nil {
		// A role or default stored before a size was refused (ec 224).
		return nil, fault.New(fault.BadInput, "%v; write a supported tls_client_key_type and tls_client_key_bits to the role (or default_tls_client_key_* to the config)", err)
	}
	if typ == "rsa" {
		return rsa.GenerateKey(rand.Reader, bits)
	}
	curve := map[int]elliptic.Curve{224: elliptic.P224(), 256: elliptic.P256(), 384: elliptic.P384(), 521: elliptic.P521()}[bits]
	return ecdsa.GenerateKey(curve, rand.Reader)
}
