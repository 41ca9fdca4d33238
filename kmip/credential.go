package kmip

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsmca"
	"github.com/keyhold/keyhold/store"
)

// Credential is a client certificate as the API returns it, in the asked
// format: "pem" (PEM certificate, PKCS#8 PEM key, CA chain in PEM),
// "pem_bundle" (as pem, with the certificate field holding the certificate
// and the CA) or "der" (base64 DER).
type Credential struct {
	SerialNumber string
	Certificate  string
	PrivateKey   string // empty for a signed CSR and for a lookup
	CAChain      []string
}

func checkFormat(format string) (string, error) {
	switch format {
	case "":
		return "pem", nil
	case "pem", "pem_bundle", "der":
		return format, nil
	}
	return "", fault.New(fault.BadInput, "format must be pem, pem_bundle or der, not %q", format)
}

// render formats a certificate, its key (if any) and the CA.
func render(format string, cert *x509.Certificate, key crypto.Signer, caPEM string) (*Credential, error) {
	caBlock, _ := pem.Decode([]byte(caPEM))
	if caBlock == nil {
		return nil, fault.New(fault.Internal, "corrupt KMIP CA certificate")
	}
	out := &Credential{SerialNumber: cert.SerialNumber.String()}
	var keyDER []byte
	if key != nil {
		var err error
		if keyDER, err = x509.MarshalPKCS8PrivateKey(key); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "cannot encode the client key")
		}
	}
	switch format {
	case "der":
		out.Certificate = base64.StdEncoding.EncodeToString(cert.Raw)
		out.CAChain = []string{base64.StdEncoding.EncodeToString(caBlock.Bytes)}
		if keyDER != nil {
			out.PrivateKey = base64.StdEncoding.EncodeToString(keyDER)
		}
	default:
		certPEM := hsmca.PEM(cert.Raw)
		out.Certificate = certPEM
		out.CAChain = []string{caPEM}
		if keyDER != nil {
			out.PrivateKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
		}
		if format == "pem_bundle" {
			// The chain, not the key: the key stays in its own field,
			// which the audit trail records only as an HMAC.
			out.Certificate = certPEM + caPEM
		}
	}
	return out, nil
}

// credContext reads what issuing a credential needs: the configuration,
// the CA and the role.
func (m *Manager) credContext(ctx context.Context, mount, scope, role string) (*Config, *hsmca.Record, *Role, error) {
	var cfg Config
	var ca hsmca.Record
	var r Role
	err := m.o.Store.View(ctx, func(tx store.Tx) error {
		if err := store.GetJSON(ctx, tx, kvPath(mount, "config"), &cfg); errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "the kmip mount is not configured")
		} else if err != nil {
			return err
		}
		if err := store.GetJSON(ctx, tx, kvPath(mount, "ca"), &ca); err != nil {
			return err
		}
		if err := store.GetJSON(ctx, tx, kvPath(mount, "role", scope, role), &r); errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "no role %q in scope %q", role, scope)
		} else if err != nil {
			return err
		}
		return nil
	})
	return &cfg, &ca, &r, err
}

// issue certifies pub for a role and records the credential.
func (m *Manager) issue(ctx context.Context, mount, scope, role string, pub crypto.PublicKey, cfg *Config, ca *hsmca.Record, r *Role) (*x509.Certificate, error) {
	is, err := hsmca.Open(ctx, m.o.HSM, caProfile(mount), ca)
	if err != nil {
		return nil, err
	}
	_, _, ttl := roleCredential(cfg, r)
	cert, err := issueClient(is, pub, scope, role, ttl)
	if err != nil {
		return nil, err
	}
	rec := credRecord{Scope: scope, Role: role, CertPEM: hsmca.PEM(cert.Raw), CreatedAt: m.o.Now().UTC(), NotAfter: cert.NotAfter.UTC()}
	err = m.write(ctx, mount, func(tx store.Tx) error {
		if err := needScope(ctx, tx, mount, scope); err != nil {
			return err
		}
		if _, err := tx.Get(ctx, kvPath(mount, "role", scope, role)); err != nil {
			return fault.New(fault.NotFound, "no role %q in scope %q", role, scope)
		}
		return store.PutJSON(ctx, tx, kvPath(mount, "cred", cert.SerialNumber.String()), rec)
	})
	return cert, err
}

// GenerateCredential makes a client key (of the role's type, else the
// mount's default) and certificate for a role. The key is returned once
// and not kept.
func (m *Manager) GenerateCredential(ctx context.Context, mount, scope, role, format string) (*Credential, error) {
	format, err := checkFormat(format)
	if err != nil {
		return nil, err
	}
	cfg, ca, r, err := m.credContext(ctx, mount, scope, role)
	if err != nil {
		return nil, err
	}
	typ, bits, _ := roleCredential(cfg, r)
	key, err := newClientKey(typ, bits)
	if err != nil {
		return nil, err
	}
	cert, err := m.issue(ctx, mount, scope, role, key.Public(), cfg, ca, r)
	if err != nil {
		return nil, err
	}
	return render(format, cert, key, ca.CertPEM)
}

// SignCredential certifies the key of a PEM certificate signing request
// for a role. The request's subject is not used: the scope and role are.
func (m *Manager) SignCredential(ctx context.Context, mount, scope, role, csrPEM, format string) (*Credential, error) {
	format, err := checkFormat(format)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode([]byte(csrPEM))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, fault.New(fault.BadInput, "csr must be a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fault.New(fault.BadInput, "csr cannot be parsed")
	}
	if k, ok := csr.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() > maxRSABits {
		return nil, fault.New(fault.BadInput, "csr: RSA keys of more than %d bits are not supported", maxRSABits)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fault.New(fault.BadInput, "csr is not signed by its key")
	}
	cfg, ca, r, err := m.credContext(ctx, mount, scope, role)
	if err != nil {
		return nil, err
	}
	// The request's key must be what the role's credentials are (as
	// Vault's engine has it): no weaker key, none the listener cannot use.
	typ, bits, _ := roleCredential(cfg, r)
	if err := checkKey("tls_client_key", typ, bits); err != nil {
		// A role or default stored before a size was refused (ec 224).
		return nil, fault.New(fault.BadInput, "role %q of scope %q: %v; write a supported tls_client_key_type and tls_client_key_bits to the role (or default_tls_client_key_* to the config)", role, scope, err)
	}
	if gotTyp, gotBits := publicKeyKind(csr.PublicKey); gotTyp != typ || gotBits != bits {
		return nil, fault.New(fault.BadInput, "csr: role %q of scope %q takes %s %d keys, and the request's key is %s %d", role, scope, typ, bits, gotTyp, gotBits)
	}
	cert, err := m.issue(ctx, mount, scope, role, csr.PublicKey, cfg, ca, r)
	if err != nil {
		return nil, err
	}
	return render(format, cert, nil, ca.CertPEM)
}

// publicKeyKind names a public key as the key type and bits settings do.
func publicKeyKind(pub crypto.PublicKey) (string, int) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "rsa", k.N.BitLen()
	case *ecdsa.PublicKey:
		return "ec", k.Curve.Params().BitSize
	}
	return fmt.Sprintf("%T", pub), 0
}

// credential returns a credential of a role by serial.
func (m *Manager) credential(ctx context.Context, mount, scope, role, serial string) (*credRecord, error) {
	var c credRecord
	err := m.o.Store.View(ctx, func(tx store.Tx) error { return store.GetJSON(ctx, tx, kvPath(mount, "cred", serial), &c) })
	if errors.Is(err, store.ErrNotFound) || (err == nil && (c.Scope != scope || c.Role != role)) {
		return nil, fault.New(fault.NotFound, "no credential with serial number %q for role %q of scope %q", serial, role, scope)
	}
	return &c, err
}

// LookupCredential returns a credential's certificate and CA chain.
func (m *Manager) LookupCredential(ctx context.Context, mount, scope, role, serial, format string) (*Credential, error) {
	format, err := checkFormat(format)
	if err != nil {
		return nil, err
	}
	serial, err = normalizeSerial(serial)
	if err != nil {
		return nil, err
	}
	c, err := m.credential(ctx, mount, scope, role, serial)
	if err != nil {
		return nil, err
	}
	caPEM, err := m.CA(ctx, mount)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode([]byte(c.CertPEM))
	if b == nil {
		return nil, fault.New(fault.Internal, "corrupt credential certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "corrupt credential certificate")
	}
	return render(format, cert, nil, caPEM)
}

// Credentials lists the serial numbers of a role's credentials.
func (m *Manager) Credentials(ctx context.Context, mount, scope, role string) ([]string, error) {
	var out []string
	err := m.o.Store.View(ctx, func(tx store.Tx) error {
		serials, err := tx.List(ctx, kvPath(mount, "cred", ""))
		if err != nil {
			return err
		}
		for _, s := range serials {
			var c credRecord
			if err := store.GetJSON(ctx, tx, kvPath(mount, "cred", s), &c); err != nil {
				return err
			}
			if c.Scope == scope && c.Role == role {
				out = append(out, s)
			}
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// RevokeCredential revokes a role's credential, named by serial number or
// by its PEM certificate. New connections with it are refused at once, and
// a connection already open fails its next request and is closed.
func (m *Manager) RevokeCredential(ctx context.Context, mount, scope, role, serial, certPEM string) error {
	switch {
	case serial != "" && certPEM != "":
		return fault.New(fault.BadInput, "give serial_number or certificate, not both")
	case certPEM != "":
		b, _ := pem.Decode([]byte(certPEM))
		if b == nil {
			return fault.New(fault.BadInput, "certificate must be PEM")
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return fault.New(fault.BadInput, "certificate cannot be parsed")
		}
		serial = cert.SerialNumber.String()
	case serial == "":
		return fault.New(fault.BadInput, "serial_number or certificate is required")
	}
	serial, err := normalizeSerial(serial)
	if err != nil {
		return err
	}
	if _, err := m.credential(ctx, mount, scope, role, serial); err != nil {
		return err
	}
	return m.write(ctx, mount, func(tx store.Tx) error { return tx.Delete(ctx, kvPath(mount, "cred", serial)) })
}

// normalizeSerial accepts a serial number in decimal or in colon-separated
// hex (as openssl prints it) and returns it in decimal.
func normalizeSerial(s string) (string, error) {
	s = strings.TrimSpace(s)
	n, ok := new(big.Int).SetString(s, 10)
	if !ok && strings.Contains(s, ":") {
		n, ok = new(big.Int).SetString(strings.ReplaceAll(s, ":", ""), 16)
	}
	if !ok || n.Sign() <= 0 {
		return "", fault.New(fault.BadInput, "invalid serial number %q", s)
	}
	return n.String(), nil
}
