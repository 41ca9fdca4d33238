package xks

import (
	"context"
	"crypto/subtle"
	"errors"
	"sync"
	"time"

	"github.com/keyhold/keyhold/hsm"
)

// encrypt is the Encrypt API: AES-256-GCM in the HSM with a 12-byte IV made
// by the token, the spec's length-prefixed AAD over the caller's AAD and our
// ciphertextMetadata, and the tag returned separately. With a CDIV requested
// the value is computed first, then the output is decrypted in the HSM and
// compared with the input before anything is returned (spec Appendix C).
func (p *proxy) encrypt(ctx context.Context, k *Key, req *Request) (*EncryptResponse, error) {
	if !k.Enabled {
		return nil, xerr(InvalidStateException, "the external key is disabled")
	}
	if !k.can(UsageEncrypt) {
		return nil, xerr(InvalidKeyUsageException, "the external key does not allow ENCRYPT")
	}
	if req.CDIV && !k.can(UsageDecrypt) {
		return nil, xerr(InvalidKeyUsageException, "a ciphertext data integrity value needs a test decryption; the external key does not allow DECRYPT")
	}
	hk := hsm.Key{ID: k.ID, Blob: k.Blob}
	aad := gcmAAD(req.AAD, ciphertextMetadata)
	res, err := p.h.Encrypt(ctx, hk, hsm.EncryptRequest{Algorithm: hsm.AESGCM, Plaintext: req.Plaintext, AAD: aad})
	if err != nil {
		return nil, err
	}
	out := &EncryptResponse{Ciphertext: res.Ciphertext, CiphertextMetadata: ciphertextMetadata, IV: res.IV, Tag: res.Tag}
	if len(out.IV) != 12 || len(out.Tag) != 16 || len(out.Ciphertext) != len(req.Plaintext) {
		return nil, &Error{Name: InternalException, Msg: "internal error", Err: errors.New("the HSM returned a malformed AES-GCM result")}
	}
	if req.CDIV {
		out.CDIV = cdiv(req.AAD, out.CiphertextMetadata, out.IV, out.Ciphertext, out.Tag)
		pt, err := p.h.Decrypt(ctx, hk, hsm.DecryptRequest{Algorithm: hsm.AESGCM, Ciphertext: out.Ciphertext, IV: out.IV, Tag: out.Tag, AAD: aad})
		if err != nil || subtle.ConstantTimeCompare(pt, req.Plaintext) != 1 {
			return nil, &Error{Name: InternalException, Msg: "the ciphertext failed its integrity check", Err: errors.Join(errors.New("test decryption after encrypt did not give back the plaintext"), err)}
		}
	}
	return out, nil
}

// decrypt is the Decrypt API. Every failure of the decryption itself is
// InvalidCiphertextException and says nothing more.
func (p *proxy) decrypt(ctx context.Context, k *Key, req *Request) (*DecryptResponse, error) {
	if !k.Enabled {
		return nil, xerr(InvalidStateException, "the external key is disabled")
	}
	if !k.can(UsageDecrypt) {
		return nil, xerr(InvalidKeyUsageException, "the external key does not allow DECRYPT")
	}
	if len(req.IV) != 12 {
		// This proxy only ever makes 12-byte IVs, so no 16-byte one can be ours.
		return nil, xerr(InvalidCiphertextException, "the ciphertext, tag, IV or additional authenticated data is invalid")
	}
	pt, err := p.h.Decrypt(ctx, hsm.Key{ID: k.ID, Blob: k.Blob}, hsm.DecryptRequest{
		Algorithm: hsm.AESGCM, Ciphertext: req.Ciphertext, IV: req.IV, Tag: req.Tag,
		AAD: gcmAAD(req.AAD, req.CiphertextMetadata),
	})
	if err != nil {
		return nil, err
	}
	return &DecryptResponse{Plaintext: pt}, nil
}

// healthTTL is how long a deep health check result is reused: well within
// the spec's one minute.
const (
	healthTTL     = 30 * time.Second
	healthFailTTL = 5 * time.Second
)

// healthCache keeps the last deep health check.
type healthCache struct {
	mu  sync.Mutex
	at  time.Time
	err error
}

// healthStatus is GetHealthStatus: a deep check (AES-GCM round trip with the
// mount's own test key, never a customer key) cached up to healthTTL.
func (p *proxy) healthStatus(ctx context.Context, st *state) (*HealthResponse, error) {
	if err := p.deepCheck(ctx, st); err != nil {
		return nil, &Error{Name: InternalException, Msg: "the HSM failed its health check", Err: err}
	}
	info := p.h.Info()
	return &HealthResponse{
		FleetSize:   1,
		ProxyVendor: "Keyhold",
		ProxyModel:  "Keyhold XKS Proxy " + p.version,
		EKMVendor:   info.Manufacturer,
		EKMFleet: []EKMDetails{{
			ID:           info.TokenLabel + "/" + info.SerialNumber,
			Model:        info.Model + " " + info.FirmwareVersion + " (" + info.Library + " " + info.LibraryVersion + ")",
			HealthStatus: "ACTIVE",
		}},
	}, nil
}

func (p *proxy) deepCheck(ctx context.Context, st *state) error {
	c := &p.health
	c.mu.Lock()
	defer c.mu.Unlock()
	now := p.now()
	ttl := healthTTL
	if c.err != nil {
		ttl = healthFailTTL
	}
	if !c.at.IsZero() && now.Sub(c.at) < ttl {
		return c.err
	}
	// The check answers every caller for a while: one caller's giving up
	// (AWS KMS cancels after 250 ms) must not become everyone's failure.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	c.err = roundTrip(rctx, p.h, st.health)
	c.at = now
	return c.err
}

// roundTrip encrypts and decrypts a random block with the test key.
func roundTrip(ctx context.Context, h *hsm.HSM, k *hsmKeyRecord) error {
	if k == nil {
		return errors.New("no health check key")
	}
	probe, err := h.Random(ctx, 32)
	if err != nil {
		return err
	}
	aad := []byte("keyhold-xks-health")
	res, err := h.Encrypt(ctx, k.key(), hsm.EncryptRequest{Algorithm: hsm.AESGCM, Plaintext: probe, AAD: aad})
	if err != nil {
		return err
	}
	pt, err := h.Decrypt(ctx, k.key(), hsm.DecryptRequest{Algorithm: hsm.AESGCM, Ciphertext: res.Ciphertext, IV: res.IV, Tag: res.Tag, AAD: aad})
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(pt, probe) != 1 {
		return errors.New("health round trip gave back other data")
	}
	return nil
}
