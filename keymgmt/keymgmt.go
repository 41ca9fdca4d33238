// Package keymgmt is the key lifecycle of the Key Management engine: named
// keys with versions, rotation, a minimum enabled version and guarded
// deletion. Every version is generated in the HSM and stored only as a blob
// bound to the key's random id, its version and its type.
//
// Rotation generates the new version outside the store transaction (an RSA
// key can take seconds) and commits it only if the key's latest version is
// still the one it started from; rotations of one key in this process are
// also serialized by a lock, so they never lose or duplicate a version, and
// a crash leaves either the whole new version or nothing.
//
// Keys are also distributed to cloud KMSs (BYOK, Vault's kms/ paths): the
// providers (kms.go, credentials sealed in the HSM by seal.go) and each key's
// distribution record (distribution.go), one sub-package per cloud behind
// the contract of package provider. A rotation or a change of
// min_enabled_version is pushed to every provider the key is in, and a key
// is deleted only when it is distributed nowhere.
package keymgmt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/keymgmt/awskms"
	"github.com/keyhold/keyhold/keymgmt/azurekv"
	"github.com/keyhold/keyhold/keymgmt/gcpckms"
	"github.com/keyhold/keyhold/keymgmt/provider"
	"github.com/keyhold/keyhold/store"
)

// Types maps the engine's key types to the HSM's.
var Types = map[string]hsm.KeyType{
	"aes256-gcm96": hsm.AES256,
	"rsa-2048":     hsm.RSA2048,
	"rsa-3072":     hsm.RSA3072,
	"rsa-4096":     hsm.RSA4096,
	"ecdsa-p256":   hsm.ECP256,
	"ecdsa-p384":   hsm.ECP384,
	"ecdsa-p521":   hsm.ECP521,
}

// DefaultType is the type of a key created without one.
const DefaultType = "rsa-2048"

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Manager runs the key lifecycle over the HSM and the store.
type Manager struct {
	h     *hsm.HSM
	st    store.Store
	o     Options
	mu    sync.Mutex
	locks map[string]*keyLock
}

// Options configures the distribution of keys to cloud KMSs.
type Options struct {
	// Providers makes the providers of each kms provider type; default the
	// real clouds (awskms, azurekeyvault, gcpckms).
	Providers map[string]provider.Factory
	// ClientTimeout bounds one call to a cloud for providers without their
	// own timeout; default provider.DefaultTimeout.
	ClientTimeout time.Duration
	// ForbidSoftwareOAEP refuses wrapping schemes whose OAEP hash the token
	// cannot do, instead of OAEP-encrypting their one-time ephemeral key in
	// Go (the target key is wrapped in the token either way).
	ForbidSoftwareOAEP bool
}

// DefaultProviders are the real clouds.
func DefaultProviders() map[string]provider.Factory {
	return map[string]provider.Factory{
		provider.AWSKMS:        awskms.New,
		provider.AzureKeyVault: azurekv.New,
		provider.GCPCKMS:       gcpckms.New,
	}
}

type keyLock struct {
	sync.Mutex
	users int
}

// New returns a manager with the default options.
func New(h *hsm.HSM, st store.Store) *Manager { return NewWithOptions(h, st, Options{}) }

// NewWithOptions returns a manager.
func NewWithOptions(h *hsm.HSM, st store.Store, o Options) *Manager {
	if o.Providers == nil {
		o.Providers = DefaultProviders()
	}
	if o.ClientTimeout <= 0 {
		o.ClientTimeout = provider.DefaultTimeout
	}
	return &Manager{h: h, st: st, o: o, locks: map[string]*keyLock{}}
}

// Key is a named key and its versions.
type Key struct {
	Name              string
	Type              string
	LatestVersion     int
	MinEnabledVersion int
	DeletionAllowed   bool
	CreatedAt         time.Time
	UpdatedAt         time.Time
	Versions          []Version
}

// Version is one version of a key.
type Version struct {
	Version   int
	CreatedAt time.Time
	PublicKey string // PEM, for asymmetric keys
}

// Update changes a key's settings; nil fields are left as they are.
type Update struct {
	MinEnabledVersion *int
	DeletionAllowed   *bool
}

// reservedPrefix starts the names of keys Keyhold makes in clouds for its
// own use (Azure's key-exchange keys).
const reservedPrefix = "keyhold-kek-"

func checkName(name string) error {
	if !nameRe.MatchString(name) {
		return fault.New(fault.BadInput, "invalid key name %q: 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// CheckType returns the HSM type of a key type, or a clear error.
func CheckType(typ string) (hsm.KeyType, error) {
	t, ok := Types[typ]
	if !ok {
		return "", fault.New(fault.BadInput, "unknown key type %q: use one of aes256-gcm96, rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384, ecdsa-p521", typ)
	}
	return t, nil
}

// bindID is the id a version's blob is bound to.
func bindID(keyID string, version int, typ string) string {
	return fmt.Sprintf("keymgmt:%s:%d:%s", keyID, version, typ)
}

// errLockLost ends what a key's lock guards once the lock is lost.
var errLockLost = fault.New(fault.Unavailable, "this node lost the key's lock (the database ended, or stopped answering, the session that held it) and stopped, since another node may now be changing the key; a distribution left part-way is retried")

// heldKey is the context key of the store lock that lock took.
type heldKey struct{}

// lock takes the key's lock: in this process, and on every node sharing
// the store. The context it returns carries the lock. It ends, with
// errLockLost as its cause, once the store's lock is known to be lost;
// checkHeld confirms the lock before a step that must not run without it.
// The context must not be used after unlock.
func (m *Manager) lock(ctx context.Context, keyID string) (context.Context, func(), error) {
	m.mu.Lock()
	l := m.locks[keyID]
	if l == nil {
		l = &keyLock{}
		m.locks[keyID] = l
	}
	l.users++
	m.mu.Unlock()
	l.Lock()
	local := func() {
		l.Unlock()
		m.mu.Lock()
		if l.users--; l.users == 0 {
			delete(m.locks, keyID)
		}
		m.mu.Unlock()
	}
	// Nodes sharing the store: the key's lock excludes the other nodes too
	// (a retry on the leader and an operator's write elsewhere).
	lk, ok := m.st.(store.Locker)
	if !ok {
		return ctx, local, nil
	}
	held, err := lk.Lock(ctx, "keymgmt-key:"+keyID)
	if err != nil {
		local()
		return nil, nil, err
	}
	lctx, cancel := context.WithCancelCause(context.WithValue(ctx, heldKey{}, held))
	done := make(chan struct{})
	go func() {
		select {
		case <-held.Lost():
			cancel(errLockLost)
		case <-done:
		}
	}()
	return lctx, func() {
		close(done)
		cancel(nil)
		held.Unlock()
		local()
	}, nil
}

// checkHeld confirms, with a round trip to the database, the key's lock
// that ctx carries (from lock); nil if it carries none (a single node).
// Cloud changes and the records of them are made only after it.
func checkHeld(ctx context.Context) error {
	held, _ := ctx.Value(heldKey{}).(store.HeldLock)
	if held == nil {
		return nil
	}
	// Not cut short by ctx: the lock's own context ends when it is lost,
	// and the answer must then be the loss.
	err := held.Check(context.WithoutCancel(ctx))
	if errors.Is(err, store.ErrLockLost) {
		return errLockLost
	}
	return err
}

func newKeyID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// generate makes one version's blob (and public key) in the HSM.
func (m *Manager) generate(ctx context.Context, keyID string, version int, typ string) ([]byte, []byte, error) {
	ht, err := CheckType(typ)
	if err != nil {
		return nil, nil, err
	}
	id := bindID(keyID, version, typ)
	blob, err := m.h.Generate(ctx, hsm.GenerateRequest{ID: id, Type: ht})
	if err != nil {
		return nil, nil, err
	}
	var pub []byte
	if ht.Asymmetric() {
		if pub, err = m.h.PublicKey(ctx, hsm.Key{ID: id, Blob: blob}); err != nil {
			return nil, nil, err
		}
	}
	return blob, pub, nil
}

// Create makes a key with its first version.
func (m *Manager) Create(ctx context.Context, mount, name, typ string) (*Key, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	// Azure Key Vault holds each distributed key's key-exchange key beside
	// it as keyhold-kek-NAME: a key of that name would be taken for it.
	if strings.HasPrefix(strings.ToLower(name), reservedPrefix) {
		return nil, fault.New(fault.BadInput, "key names starting with %q are reserved (the key-exchange keys of Azure distributions)", reservedPrefix)
	}
	if typ == "" {
		typ = DefaultType
	}
	if _, err := CheckType(typ); err != nil {
		return nil, err
	}
	keyID := newKeyID()
	blob, pub, err := m.generate(ctx, keyID, 1, typ)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	err = m.st.Update(ctx, func(tx store.Tx) error {
		k := &store.Key{Mount: mount, Name: name, ID: keyID, Type: typ, LatestVersion: 1, CreatedAt: now, UpdatedAt: now}
		if err := tx.CreateKey(ctx, k); err != nil {
			if errors.Is(err, store.ErrExists) {
				return fault.New(fault.Conflict, "key %q already exists", name)
			}
			return err
		}
		return tx.AddKeyVersion(ctx, &store.KeyVersion{KeyID: keyID, Version: 1, Blob: blob, PublicKey: pub, CreatedAt: now})
	})
	if err != nil {
		return nil, err
	}
	return m.Get(ctx, mount, name)
}

// Exists reports whether the mount has the key.
func (m *Manager) Exists(ctx context.Context, mount, name string) (bool, error) {
	err := m.st.View(ctx, func(tx store.Tx) error {
		_, err := tx.GetKey(ctx, mount, name)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Get returns a key and its versions.
func (m *Manager) Get(ctx context.Context, mount, name string) (*Key, error) {
	var out *Key
	err := m.st.View(ctx, func(tx store.Tx) error {
		k, err := tx.GetKey(ctx, mount, name)
		if err != nil {
			return notFound(err, name)
		}
		vs, err := tx.KeyVersions(ctx, k.ID)
		if err != nil {
			return err
		}
		out = &Key{Name: k.Name, Type: k.Type, LatestVersion: k.LatestVersion, MinEnabledVersion: k.MinEnabledVersion,
			DeletionAllowed: k.DeletionAllowed, CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt}
		for _, v := range vs {
			ver := Version{Version: v.Version, CreatedAt: v.CreatedAt}
			if len(v.PublicKey) > 0 {
				pub, err := m.checkedPublicKey(ctx, k, &v)
				if err != nil {
					return err
				}
				ver.PublicKey = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
			}
			out.Versions = append(out.Versions, ver)
		}
		return nil
	})
	return out, err
}

// checkedPublicKey returns a version's public key as its blob records it,
// checked by the blob's HMAC in the token: the store's own copy of it is
// not authenticated, and a public key shown is what callers encrypt to or
// verify with. A copy that differs is refused, not shown.
func (m *Manager) checkedPublicKey(ctx context.Context, k *store.Key, v *store.KeyVersion) ([]byte, error) {
	info, err := m.h.Inspect(ctx, hsm.Key{ID: bindID(k.ID, v.Version, k.Type), Blob: v.Blob})
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(info.PublicKey, v.PublicKey) {
		return nil, fault.New(fault.Internal, "key %q version %d: the stored public key is not the one its blob records (the store was altered)", k.Name, v.Version)
	}
	return info.PublicKey, nil
}

func notFound(err error, name string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fault.New(fault.NotFound, "no key named %q", name)
	}
	return err
}

// List returns the names of a mount's keys.
func (m *Manager) List(ctx context.Context, mount string) ([]string, error) {
	var names []string
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		names, err = tx.ListKeys(ctx, mount)
		return err
	})
	return names, err
}

// UpdateKey changes min_enabled_version and deletion_allowed. A change of
// min_enabled_version is pushed to every provider the key is distributed to
// (lower versions disabled there, the others enabled).
func (m *Manager) UpdateKey(ctx context.Context, mount, name string, u Update) (*Key, error) {
	var keyID string
	lctx := ctx // the lock's, for a change of min_enabled_version
	if u.MinEnabledVersion != nil {
		// The change, its mark on the distributions and its push run under
		// the key's lock: a sync under way would otherwise save its record
		// over the mark, and a push lost after that would never be retried.
		err := m.st.View(ctx, func(tx store.Tx) error {
			k, err := tx.GetKey(ctx, mount, name)
			if err != nil {
				return notFound(err, name)
			}
			keyID = k.ID
			return nil
		})
		if err != nil {
			return nil, err
		}
		var unlock func()
		lctx, unlock, err = m.lock(ctx, keyID)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	err := m.st.Update(lctx, func(tx store.Tx) error {
		k, err := tx.GetKey(lctx, mount, name)
		if err != nil {
			return notFound(err, name)
		}
		if u.MinEnabledVersion != nil && k.ID != keyID {
			return fault.New(fault.Conflict, "key %q was replaced while it was being updated; try again", name)
		}
		if u.MinEnabledVersion != nil {
			v := *u.MinEnabledVersion
			if v < 0 || v > k.LatestVersion {
				return fault.New(fault.BadInput, "min_enabled_version %d is out of range: 0 (all versions enabled) to the latest version %d", v, k.LatestVersion)
			}
			k.MinEnabledVersion = v
		}
		keyID = k.ID
		if u.DeletionAllowed != nil {
			k.DeletionAllowed = *u.DeletionAllowed
		}
		k.UpdatedAt = time.Now().UTC()
		if err := tx.UpdateKey(lctx, k); err != nil {
			return err
		}
		if u.MinEnabledVersion != nil {
			return m.markUnsynced(lctx, tx, mount, k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if u.MinEnabledVersion != nil {
		// Pushed even when unchanged: writing it again retries a failed push.
		err = m.propagate(lctx, mount, name, fmt.Sprintf("updated (min_enabled_version=%d)", *u.MinEnabledVersion))
	}
	k, gerr := m.Get(ctx, mount, name)
	if gerr != nil {
		return nil, gerr
	}
	return k, err
}

// Rotate adds a new version, generated in the HSM, and makes it the latest.
func (m *Manager) Rotate(ctx context.Context, mount, name string) (*Key, error) {
	for attempt := 0; attempt < 10; attempt++ {
		var k *store.Key
		err := m.st.View(ctx, func(tx store.Tx) error {
			var err error
			k, err = tx.GetKey(ctx, mount, name)
			return notFound(err, name)
		})
		if err != nil {
			return nil, err
		}
		lctx, unlock, err := m.lock(ctx, k.ID)
		if err != nil {
			return nil, err
		}
		done, err := m.rotateFrom(lctx, mount, name, k)
		if done && err == nil {
			err = m.propagate(lctx, mount, name, fmt.Sprintf("rotated to version %d", k.LatestVersion+1))
		}
		unlock()
		if err != nil && !done {
			return nil, err
		}
		if done {
			out, gerr := m.Get(ctx, mount, name)
			if gerr != nil {
				return nil, gerr
			}
			return out, err
		}
	}
	return nil, fault.New(fault.Conflict, "key %q is being rotated concurrently; try again", name)
}

// rotateFrom commits version k.LatestVersion+1 if the key is still at
// k.LatestVersion; it reports false if another writer got there first.
func (m *Manager) rotateFrom(ctx context.Context, mount, name string, k *store.Key) (bool, error) {
	// Under the lock, re-read: a rotation that held it may have moved on.
	err := m.st.View(ctx, func(tx store.Tx) error {
		cur, err := tx.GetKey(ctx, mount, name)
		if err != nil {
			return notFound(err, name)
		}
		if cur.ID != k.ID {
			return fault.New(fault.NotFound, "no key named %q", name)
		}
		*k = *cur
		return nil
	})
	if err != nil {
		return false, err
	}
	next := k.LatestVersion + 1
	blob, pub, err := m.generate(ctx, k.ID, next, k.Type)
	if err != nil {
		return false, err
	}
	done := false
	err = m.st.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.GetKey(ctx, mount, name)
		if err != nil {
			return notFound(err, name)
		}
		if cur.ID != k.ID || cur.LatestVersion != k.LatestVersion {
			return nil // moved on; the caller retries
		}
		now := time.Now().UTC()
		if err := tx.AddKeyVersion(ctx, &store.KeyVersion{KeyID: k.ID, Version: next, Blob: blob, PublicKey: pub, CreatedAt: now}); err != nil {
			if errors.Is(err, store.ErrExists) {
				return nil
			}
			return err
		}
		cur.LatestVersion, cur.UpdatedAt = next, now
		if err := tx.UpdateKey(ctx, cur); err != nil {
			return err
		}
		if err := m.markUnsynced(ctx, tx, mount, cur); err != nil {
			return err
		}
		done = true
		return nil
	})
	return done, err
}

// Delete removes a key and all its versions. It is refused unless the key
// allows deletion and is distributed to no KMS.
func (m *Manager) Delete(ctx context.Context, mount, name string) error {
	return m.st.Update(ctx, func(tx store.Tx) error {
		k, err := tx.GetKey(ctx, mount, name)
		if err != nil {
			return notFound(err, name)
		}
		if !k.DeletionAllowed {
			return fault.New(fault.BadInput, "deletion is not allowed for key %q; set deletion_allowed=true first", name)
		}
		kmss, err := m.kmsOf(ctx, tx, mount, name)
		if err != nil {
			return err
		}
		if len(kmss) > 0 {
			return fault.New(fault.Conflict, "key %q is distributed to kms %s; remove it there first (delete kms/<name>/key/%s)", name, strings.Join(kmss, ", "), name)
		}
		return tx.DeleteKey(ctx, mount, name)
	})
}
