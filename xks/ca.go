package xks

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsmca"
)

// The internal CA is an hsmca CA: its key and the server's TLS keys are HSM
// keys. A server key brought by the operator is imported and wrapped at
// once, so every private key here lives in the HSM.

// caProfile is what a mount's internal CA makes.
func caProfile(mountID string) hsmca.Profile {
	return hsmca.Profile{KeyPrefix: "xks/" + mountID, CommonName: "Keyhold XKS internal CA " + mountID[:min(8, len(mountID))], What: "internal CA", Backdate: time.Hour}
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
