package hsm

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"math/big"
	"sort"

	"github.com/miekg/pkcs11"
)

// Capabilities is what the token was found to do when it was opened.
type Capabilities struct {
	// Mechanisms lists the token's mechanisms by PKCS#11 name (hex for names
	// this package does not know), sorted.
	Mechanisms []string `json:"mechanisms"`
	// OAEPHashes lists the hashes the token accepts for RSA-OAEP decryption
	// and key wrapping (with MGF1 over the same hash), e.g. "SHA-1".
	OAEPHashes []string `json:"oaep_hashes"`
	// RSAAESKeyWrap is true if the token has CKM_RSA_AES_KEY_WRAP.
	RSAAESKeyWrap bool `json:"rsa_aes_key_wrap"`

	mechs map[uint]bool
}

// Capabilities returns what the token was found to do.
func (h *HSM) Capabilities() Capabilities { return h.caps }

// HasMechanism reports whether the token lists the mechanism.
func (c Capabilities) HasMechanism(m uint) bool { return c.mechs[m] }

// OAEP reports whether the token does RSA-OAEP with the hash.
func (c Capabilities) OAEP(hash crypto.Hash) bool {
	for _, n := range c.OAEPHashes {
		if n == hash.String() {
			return true
		}
	}
	return false
}

func (h *HSM) detectCapabilities(ctx context.Context) error {
	ms, err := h.ctx.GetMechanismList(h.slot)
	if err != nil {
		return wrapErr("list mechanisms", err)
	}
	c := Capabilities{mechs: map[uint]bool{}}
	for _, m := range ms {
		c.mechs[m.Mechanism] = true
		c.Mechanisms = append(c.Mechanisms, mechanismName(m.Mechanism))
	}
	sort.Strings(c.Mechanisms)
	c.RSAAESKeyWrap = c.mechs[pkcs11.CKM_RSA_AES_KEY_WRAP]
	if c.mechs[pkcs11.CKM_RSA_PKCS_OAEP] {
		hashes, err := h.probeOAEP(ctx)
		if err != nil {
			return err
		}
		c.OAEPHashes = hashes
	}
	h.caps = c
	return nil
}

// probeOAEP imports a throw-away RSA key as a session object and tries an
// OAEP decryption with each hash: a token may list CKM_RSA_PKCS_OAEP and
// still refuse some hashes (SoftHSM2 2.6.1 takes SHA-1 only).
func (h *HSM) probeOAEP(ctx context.Context) ([]string, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, wrapErr("probe oaep", err)
	}
	var out []string
	err = h.do(ctx, "probe oaep", func(s *session) error {
		obj, err := h.ctx.CreateObject(s.h, rsaPrivateTemplate(priv, false))
		if err != nil {
			return err
		}
		defer h.ctx.DestroyObject(s.h, obj)
		msg := []byte("keyhold oaep probe")
		for _, hash := range []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			ct, err := rsa.EncryptOAEP(hash.New(), rand.Reader, &priv.PublicKey, msg, nil)
			if err != nil {
				return err
			}
			mech, err := oaepMechanism(hash)
			if err != nil {
				return err
			}
			if err := h.ctx.DecryptInit(s.h, []*pkcs11.Mechanism{mech}, obj); err != nil {
				if sessionLost(err) {
					return err
				}
				continue
			}
			pt, err := h.ctx.Decrypt(s.h, ct)
			if sessionLost(err) {
				return err
			}
			if err == nil && string(pt) == string(msg) {
				out = append(out, hash.String())
			}
		}
		return nil
	})
	return out, err
}

func rsaPrivateTemplate(k *rsa.PrivateKey, token bool) []*pkcs11.Attribute {
	k.Precompute()
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, token),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, k.N.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(k.E)).Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE_EXPONENT, k.D.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PRIME_1, k.Primes[0].Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PRIME_2, k.Primes[1].Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_1, k.Precomputed.Dp.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_2, k.Precomputed.Dq.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_COEFFICIENT, k.Precomputed.Qinv.Bytes()),
	}
}

var hashMechs = map[crypto.Hash]struct{ hash, mgf uint }{
	crypto.SHA1:   {pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1},
	crypto.SHA224: {pkcs11.CKM_SHA224, pkcs11.CKG_MGF1_SHA224},
	crypto.SHA256: {pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256},
	crypto.SHA384: {pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384},
	crypto.SHA512: {pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512},
}

func oaepMechanism(hash crypto.Hash) (*pkcs11.Mechanism, error) {
	hm, ok := hashMechs[hash]
	if !ok {
		return nil, errorf("oaep", KindUnsupported, "hash %v is not supported for OAEP", hash)
	}
	return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP,
		pkcs11.NewOAEPParams(hm.hash, hm.mgf, pkcs11.CKZ_DATA_SPECIFIED, nil)), nil
}

func mechanismName(m uint) string {
	if n, ok := mechNames[m]; ok {
		return n
	}
	return fmt.Sprintf("0x%08X", m)
}
