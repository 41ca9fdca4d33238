package xks

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"strings"
	"time"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/store"
)

// What a mount keeps in the store's key/value space, under xks/<mount id>/:
//
//	config          Config (TLS key as an HSM blob)
//	ca              hsmca.Record (CA key as an HSM blob)
//	seal            hsmKeyRecord: the AES key that seals credential secrets
//	health          hsmKeyRecord: the test key of the deep health check
//	cred/<akid>     credRecord: prefix and the secret sealed under the seal key
//	key/<name>      Key (AES-256 as an HSM blob)
//	rule/<name>     Rule
//
// Nothing here is plaintext key material or a plaintext secret.

const kvRoot = "xks/"

func kvPath(mountID string, parts ...string) string {
	return kvRoot + mountID + "/" + strings.Join(parts, "/")
}

// hsmKeyRecord is a key of the proxy's own (seal key, health test key).
type hsmKeyRecord struct {
	ID   string `json:"id"`
	Blob []byte `json:"blob"`
}

func (r *hsmKeyRecord) key() hsm.Key { return hsm.Key{ID: r.ID, Blob: r.Blob} }

// credRecord is a stored SigV4 credential.
type credRecord struct {
	Prefix    string    `json:"prefix"`
	IV        []byte    `json:"iv"`
	Sealed    []byte    `json:"sealed"`
	Tag       []byte    `json:"tag"`
	CreatedAt time.Time `json:"created_at"`
}

// snapshot is everything a mount's data plane needs, read in one
// transaction; cfg is nil for a mount not yet configured.
type snapshot struct {
	cfg    *Config
	seal   *hsmKeyRecord
	health *hsmKeyRecord
	creds  map[string]*credRecord
	keys   map[string]*Key
	rules  []Rule
}

// readCreds reads a mount's credential records by access key id.
func readCreds(ctx context.Context, tx store.Tx, mountID string) (map[string]*credRecord, error) {
	ids, err := tx.List(ctx, kvPath(mountID, "cred")+"/")
	if err != nil {
		return nil, err
	}
	out := make(map[string]*credRecord, len(ids))
	for _, id := range ids {
		var c credRecord
		if err := store.GetJSON(ctx, tx, kvPath(mountID, "cred", id), &c); err != nil {
			return nil, err
		}
		out[id] = &c
	}
	return out, nil
}

func readSnapshot(ctx context.Context, st store.Store, mountID string) (*snapshot, error) {
	s := &snapshot{keys: map[string]*Key{}}
	err := st.View(ctx, func(tx store.Tx) error {
		var cfg Config
		switch err := store.GetJSON(ctx, tx, kvPath(mountID, "config"), &cfg); {
		case err == nil:
			s.cfg = &cfg
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		for name, dst := range map[string]**hsmKeyRecord{"seal": &s.seal, "health": &s.health} {
			var r hsmKeyRecord
			err := store.GetJSON(ctx, tx, kvPath(mountID, name), &r)
			if err == nil {
				*dst = &r
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		creds, err := readCreds(ctx, tx, mountID)
		if err != nil {
			return err
		}
		s.creds = creds
		names, err := tx.List(ctx, kvPath(mountID, "key")+"/")
		if err != nil {
			return err
		}
		for _, n := range names {
			var k Key
			if err := store.GetJSON(ctx, tx, kvPath(mountID, "key", n), &k); err != nil {
				return err
			}
			s.keys[n] = &k
		}
		rules, err := tx.List(ctx, kvPath(mountID, "rule")+"/")
		if err != nil {
			return err
		}
		for _, n := range rules {
			var r Rule
			if err := store.GetJSON(ctx, tx, kvPath(mountID, "rule", n), &r); err != nil {
				return err
			}
			s.rules = append(s.rules, r)
		}
		return nil
	})
	return s, err
}

// randomID is 128 random bits as lower-case base32.
func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// sealAAD binds a sealed secret to its mount, access key id and prefix.
func sealAAD(mountID, akid, prefix string) []byte {
	return []byte("keyhold-xks-credential\x00" + mountID + "\x00" + akid + "\x00" + prefix)
}

// seal encrypts a credential secret under the mount's seal key in the HSM.
func seal(ctx context.Context, h *hsm.HSM, k hsm.Key, aad, secret []byte) (*credRecord, error) {
	res, err := h.Encrypt(ctx, k, hsm.EncryptRequest{Algorithm: hsm.AESGCM, Plaintext: secret, AAD: aad})
	if err != nil {
		return nil, err
	}
	return &credRecord{IV: res.IV, Sealed: res.Ciphertext, Tag: res.Tag}, nil
}

func unseal(ctx context.Context, h *hsm.HSM, k hsm.Key, aad []byte, r *credRecord) ([]byte, error) {
	return h.Decrypt(ctx, k, hsm.DecryptRequest{Algorithm: hsm.AESGCM, Ciphertext: r.Sealed, IV: r.IV, Tag: r.Tag, AAD: aad})
}
