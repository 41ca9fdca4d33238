package keymgmt

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/store"
)

// Provider credentials are stored sealed: AES-256-GCM in the HSM under a seal
// key of the mount (itself a blob bound to the mount), with the mount and the
// provider's name as AAD so a sealed value cannot be moved to another provider.

type sealed struct {
	IV         []byte `json:"iv"`
	Ciphertext []byte `json:"ciphertext"`
	Tag        []byte `json:"tag"`
}

func sealPath(mount string) string { return "keymgmt/" + mount + "/seal" }
func sealID(mount string) string   { return "keymgmt-seal:" + mount }

func credentialsAAD(mount, kms string) []byte {
	return []byte("keyhold-kms-credentials\x00" + mount + "\x00" + kms)
}

// sealKey returns the mount's seal key, generating it on first use.
func (m *Manager) sealKey(ctx context.Context, mount string) (hsm.Key, error) {
	k := hsm.Key{ID: sealID(mount)}
	err := m.st.View(ctx, func(tx store.Tx) error {
		b, err := tx.Get(ctx, sealPath(mount))
		k.Blob = b
		return err
	})
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return k, err
	}
	blob, err := m.h.Generate(ctx, hsm.GenerateRequest{ID: k.ID, Type: hsm.AES256})
	if err != nil {
		return k, err
	}
	err = m.st.Update(ctx, func(tx store.Tx) error {
		b, err := tx.Get(ctx, sealPath(mount))
		if err == nil {
			blob = b // another writer made it first
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return tx.Put(ctx, sealPath(mount), blob)
	})
	k.Blob = blob
	return k, err
}

func (m *Manager) sealCredentials(ctx context.Context, mount, kms string, creds map[string]string) (*sealed, error) {
	k, err := m.sealKey(ctx, mount)
	if err != nil {
		return nil, err
	}
	pt, err := json.Marshal(creds)
	if err != nil {
		return nil, err
	}
	res, err := m.h.Encrypt(ctx, k, hsm.EncryptRequest{Algorithm: hsm.AESGCM, Plaintext: pt, AAD: credentialsAAD(mount, kms)})
	clear(pt)
	if err != nil {
		return nil, err
	}
	return &sealed{IV: res.IV, Ciphertext: res.Ciphertext, Tag: res.Tag}, nil
}

func (m *Manager) unsealCredentials(ctx context.Context, mount, kms string, s *sealed) (map[string]string, error) {
	if s == nil {
		return map[string]string{}, nil
	}
	k, err := m.sealKey(ctx, mount)
	if err != nil {
		return nil, err
	}
	return m.unsealWith(ctx, k, mount, kms, s)
}

// unsealCredentialsTx is unsealCredentials inside a write transaction: the
// seal key is read through tx, not through a transaction of its own (a
// second one, waiting for a connection the write holds, could hang).
func (m *Manager) unsealCredentialsTx(ctx context.Context, tx store.Tx, mount, kms string, s *sealed) (map[string]string, error) {
	if s == nil {
		return map[string]string{}, nil
	}
	b, err := tx.Get(ctx, sealPath(mount))
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "the seal key of the mount cannot be read")
	}
	return m.unsealWith(ctx, hsm.Key{ID: sealID(mount), Blob: b}, mount, kms, s)
}

func (m *Manager) unsealWith(ctx context.Context, k hsm.Key, mount, kms string, s *sealed) (map[string]string, error) {
	pt, err := m.h.Decrypt(ctx, k, hsm.DecryptRequest{Algorithm: hsm.AESGCM, Ciphertext: s.Ciphertext, IV: s.IV, Tag: s.Tag, AAD: credentialsAAD(mount, kms)})
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "the credentials of kms %q cannot be unsealed", kms)
	}
	var creds map[string]string
	err = json.Unmarshal(pt, &creds)
	clear(pt)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "the credentials of kms %q are corrupt", kms)
	}
	return creds, nil
}
