package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"io"
	"time"
)

// Signer is a crypto.Signer whose private key is a blob of this HSM: the
// signature is made in the token (ECDSA, or RSA PKCS#1 v1.5 or PSS per the
// options). It lets crypto/x509 and crypto/tls sign with keys that never
// leave the token (internal CAs, TLS server keys).
type Signer struct {
	h   *HSM
	key Key
	pub crypto.PublicKey
}

var _ crypto.Signer = (*Signer)(nil)

// Signer returns a crypto.Signer over the key pair k.
func (h *HSM) Signer(ctx context.Context, k Key) (*Signer, error) {
	der, err := h.PublicKey(ctx, k)
	if err != nil {
		return nil, err
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, wrapErr("signer", err)
	}
	return &Signer{h: h, key: k, pub: pub}, nil
}

// Public returns the public half of the key.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// Sign signs a digest in the token. The interface carries no context, so
// one signature is bounded to 5 seconds.
func (s *Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	req := SignRequest{Hash: opts.HashFunc(), Digest: digest}
	switch s.pub.(type) {
	case *ecdsa.PublicKey:
		req.Algorithm = ECDSA
	case *rsa.PublicKey:
		req.Algorithm = RSAPKCS1
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			req.Algorithm = RSAPSS
			if pss.SaltLength > 0 {
				req.SaltLength = pss.SaltLength
			}
		}
	default:
		return nil, errorf("signer", KindUnsupported, "unsupported key type %T", s.pub)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.h.Sign(ctx, s.key, req)
}
