package keymgmt

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/keymgmt/provider"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/wrap"
)

// Distribution (Vault's kms/:name/key/:key_name): a key's versions copied to
// a cloud KMS. The record under keymgmt/<mount>/dist/<kms>/<key> says, for
// each version, how far its import went; every step that changes the cloud
// is recorded before the next, so a failure leaves a consistent record and
// writing the distribution again (or the next rotation, or a change of
// min_enabled_version) resumes it: sync is idempotent and brings the cloud to
// the key's state (every version imported, versions below
// min_enabled_version disabled, the others enabled, the latest current).

const sha256Hash = crypto.SHA256

// Distribution states.
const (
	StatusDistributing = "distributing" // an import is under way or failed part-way
	StatusDistributed  = "distributed"  // the cloud has the key's state
	StatusRemoving     = "removing"     // a removal is under way or failed part-way
)

type distRecord struct {
	KMS        string              `json:"kms"`
	Key        string              `json:"key"`
	KeyID      string              `json:"key_id"`
	Purposes   []string            `json:"purposes"`
	Protection string              `json:"protection"`
	State      provider.State      `json:"state"`
	Versions   []*provider.Version `json:"versions"`
	Status     string              `json:"status"`
	Error      string              `json:"error,omitempty"`
	CreatedAt  time.Time           `json:"created_at"`
	UpdatedAt  time.Time           `json:"updated_at"`
}

// Distribution is a key's copy in one provider, as shown to callers.
type Distribution struct {
	KMS        string
	Key        string
	Purposes   []string
	Protection string
	Status     string
	Error      string // the last failure, until a sync succeeds
	Versions   []provider.Version
}

func (r *distRecord) public() *Distribution {
	d := &Distribution{KMS: r.KMS, Key: r.Key, Purposes: r.Purposes, Protection: r.Protection, Status: r.Status, Error: r.Error}
	for _, v := range r.Versions {
		d.Versions = append(d.Versions, *v)
	}
	return d
}

func (r *distRecord) version(v int) *provider.Version {
	for _, x := range r.Versions {
		if x.Version == v {
			return x
		}
	}
	x := &provider.Version{Version: v, Progress: map[string]string{}}
	r.Versions = append(r.Versions, x)
	slices.SortFunc(r.Versions, func(a, b *provider.Version) int { return a.Version - b.Version })
	return x
}

func (r *distRecord) providerKey(typ string) provider.Key {
	return provider.Key{ID: r.KeyID, Name: r.Key, Type: typ, Purposes: r.Purposes, Protection: r.Protection}
}

func (m *Manager) getDist(ctx context.Context, tx store.Tx, mount, kms, key string) (*distRecord, error) {
	var r distRecord
	if err := store.GetJSON(ctx, tx, distPath(mount, kms, key), &r); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fault.New(fault.NotFound, "key %q is not distributed to kms %q", key, kms)
		}
		return nil, err
	}
	if r.State == nil {
		r.State = provider.State{}
	}
	return &r, nil
}

// DistributeRequest asks for a key to be distributed to a provider.
type DistributeRequest struct {
	KMS        string
	Key        string
	Purposes   []string
	Protection string // default hsm
}

// Distribute copies every version of the key to the provider and brings its
// state there in line with the key's. Writing the same distribution again
// (with its purposes and protection, or with none) resumes one that failed;
// changing purpose or protection of an existing one is refused (remove it
// first).
func (m *Manager) Distribute(ctx context.Context, mount string, req DistributeRequest) (*Distribution, error) {
	if strings.HasPrefix(strings.ToLower(req.Key), reservedPrefix) {
		// A key made with such a name before it was reserved: in Azure it
		// would be taken for another key's key-exchange key.
		return nil, fault.New(fault.BadInput, "key names starting with %q are reserved (the key-exchange keys of Azure distributions); this key cannot be distributed", reservedPrefix)
	}
	purposes, err := provider.NormalizePurposes(req.Purposes)
	if err != nil {
		return nil, err
	}
	var kr *kmsRecord
	var key *store.Key
	exists := false
	err = m.st.View(ctx, func(tx store.Tx) error {
		var err error
		if kr, err = m.getKMS(ctx, tx, mount, req.KMS); err != nil {
			return err
		}
		if key, err = tx.GetKey(ctx, mount, req.Key); err != nil {
			return notFound(err, req.Key)
		}
		if r, err := m.getDist(ctx, tx, mount, req.KMS, req.Key); err == nil && r.KeyID == key.ID {
			exists = true
			if len(purposes) == 0 {
				// Writing an existing distribution again without
				// purposes retries it as it is.
				purposes = r.Purposes
				if req.Protection == "" {
					req.Protection = r.Protection
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if req.Protection == "" {
		req.Protection = provider.ProtectionHSM
	}
	if req.Protection != provider.ProtectionHSM && req.Protection != provider.ProtectionSoftware {
		return nil, fault.New(fault.BadInput, "protection must be hsm or software, got %q", req.Protection)
	}
	prov, err := m.providerFor(ctx, mount, kr)
	if err != nil {
		return nil, err
	}
	defer closeProvider(prov)
	pk := provider.Key{ID: key.ID, Name: key.Name, Type: key.Type, Purposes: purposes, Protection: req.Protection}
	if err := prov.Check(pk); err != nil {
		return nil, err
	}
	if !exists {
		// A new distribution is refused before its record is made; an
		// existing one is checked by sync before a version is imported.
		if err := m.checkSoftwareOAEP(kr); err != nil {
			return nil, err
		}
	}
	ctx, unlock, err := m.lock(ctx, key.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	err = m.st.Update(ctx, func(tx store.Tx) error {
		// The provider was built from the kms as it was read first: one
		// deleted or pointed elsewhere since would put the key where no
		// record says it is, and its removal would miss it.
		curKMS, err := m.getKMS(ctx, tx, mount, req.KMS)
		if fault.KindOf(err) == fault.NotFound {
			return fault.New(fault.Conflict, "kms %q was deleted while key %q was being distributed there; nothing was distributed", req.KMS, req.Key)
		}
		if err != nil {
			return err
		}
		if !sameTarget(kr, curKMS) {
			return fault.New(fault.Conflict, "kms %q changed (its endpoint, key collection or credentials) while key %q was being distributed there; nothing was distributed, try again", req.KMS, req.Key)
		}
		cur, err := tx.GetKey(ctx, mount, req.Key)
		if err != nil {
			return notFound(err, req.Key)
		}
		if cur.ID != key.ID {
			return fault.New(fault.Conflict, "key %q changed while it was being distributed; try again", req.Key)
		}
		r, err := m.getDist(ctx, tx, mount, req.KMS, req.Key)
		if err == nil {
			if r.KeyID != key.ID {
				return fault.New(fault.Conflict, "kms %q holds an older key named %q; remove it first", req.KMS, req.Key)
			}
			if !slices.Equal(r.Purposes, purposes) || r.Protection != req.Protection {
				return fault.New(fault.Conflict, "key %q is distributed to kms %q with purpose %s and protection %s; remove it first to change them",
					req.Key, req.KMS, strings.Join(r.Purposes, ","), r.Protection)
			}
			if r.Status == StatusRemoving {
				return fault.New(fault.Conflict, "key %q is being removed from kms %q; finish the removal (delete) first", req.Key, req.KMS)
			}
			return nil
		}
		if fault.KindOf(err) != fault.NotFound {
			return err
		}
		now := time.Now().UTC()
		return store.PutJSON(ctx, tx, distPath(mount, req.KMS, req.Key), &distRecord{
			KMS: req.KMS, Key: req.Key, KeyID: key.ID, Purposes: purposes, Protection: req.Protection,
			State: provider.State{}, Status: StatusDistributing, CreatedAt: now, UpdatedAt: now,
		})
	})
	if err != nil {
		return nil, err
	}
	return m.sync(ctx, mount, req.KMS, req.Key, prov)
}

// sameTarget reports whether two reads of a kms record point at the same
// place with the same credentials: provider, key collection, endpoint and
// sealed credentials (sealed afresh by every write that gives them).
func sameTarget(a, b *kmsRecord) bool {
	if a.Provider != b.Provider || a.KeyCollection != b.KeyCollection || a.Endpoint != b.Endpoint || (a.Credentials == nil) != (b.Credentials == nil) {
		return false
	}
	if a.Credentials == nil {
		return true
	}
	return bytes.Equal(a.Credentials.IV, b.Credentials.IV) && bytes.Equal(a.Credentials.Ciphertext, b.Credentials.Ciphertext) &&
		bytes.Equal(a.Credentials.Tag, b.Credentials.Tag)
}

// checkSoftwareOAEP refuses, before anything is made in the cloud, a
// distribution whose wraps would need OAEP in software when that is
// forbidden: the AWS and GCP schemes of oaep_hash=sha256 on a token without
// OAEP-SHA-256 (Azure's BYOK scheme is OAEP-SHA-1, which every token does).
func (m *Manager) checkSoftwareOAEP(kr *kmsRecord) error {
	if !m.o.ForbidSoftwareOAEP || kr.OAEPHash != "sha256" || kr.Provider == provider.AzureKeyVault || m.h.Capabilities().OAEP(crypto.SHA256) {
		return nil
	}
	return fault.New(fault.Unsupported, "kms %q wraps with RSA-OAEP SHA-256, which the token cannot do, and OAEP of the ephemeral key in software is forbidden (keymgmt forbid_software_oaep); set oaep_hash=sha1 on the kms to use the token's", kr.Name)
}

// errRemoving: sync refuses a distribution whose removal is under way.
var errRemoving = errors.New("keymgmt: the distribution is being removed")

// sync brings one distribution to the key's state. The caller holds the key's lock.
func (m *Manager) sync(ctx context.Context, mount, kms, keyName string, prov provider.Provider) (*Distribution, error) {
	var r *distRecord
	var kr *kmsRecord
	var key *store.Key
	var versions []store.KeyVersion
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		if r, err = m.getDist(ctx, tx, mount, kms, keyName); err != nil {
			return err
		}
		if r.Status == StatusRemoving {
			// A removal is under way or failed part-way: finishing it is the
			// retry job's, and a rotation must not bring the key back.
			return fault.Wrap(fault.Conflict, errRemoving, "the distribution of %q to %s is being removed", keyName, kms)
		}
		if key, err = tx.GetKey(ctx, mount, keyName); err != nil {
			return notFound(err, keyName)
		}
		if kr, err = m.getKMS(ctx, tx, mount, kms); err != nil {
			return err
		}
		versions, err = tx.KeyVersions(ctx, key.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if r.KeyID != key.ID {
		return nil, fault.New(fault.Conflict, "kms %q holds an older key named %q; remove it first", kms, keyName)
	}
	save := func(ctx context.Context) error {
		r.UpdatedAt = time.Now().UTC()
		// The record is saved even when the request's context is done: the
		// cloud already changed. But not once the key's lock is lost: the
		// node that holds it now keeps the record.
		ctx = context.WithoutCancel(ctx)
		if err := checkHeld(ctx); err != nil {
			return err
		}
		return m.st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(ctx, tx, distPath(mount, kms, keyName), r) })
	}
	failed := func(err error) (*Distribution, error) {
		r.Status, r.Error = StatusDistributing, errorText(err)
		if serr := save(ctx); serr != nil {
			return nil, errors.Join(err, serr)
		}
		return nil, err
	}
	pk := r.providerKey(key.Type)
	// An import that fails stops the imports, but not the pass that
	// follows: versions below min_enabled_version that are in the cloud
	// (imported enabled, or imported before the minimum rose) are disabled
	// whatever a later import does.
	var importErr error
	for _, kv := range versions {
		v := r.version(kv.Version)
		if v.Imported {
			continue
		}
		if r.Status != StatusDistributing {
			r.Status = StatusDistributing
			if err := save(ctx); err != nil {
				return nil, err
			}
		}
		if err := m.checkSoftwareOAEP(kr); err != nil {
			importErr = err // before the cloud makes anything for the version
			break
		}
		if err := checkHeld(ctx); err != nil {
			importErr = err
			break
		}
		req := &provider.ImportRequest{Key: pk, State: r.State, Version: v, Versions: r.Versions, Save: save,
			MinEnabledVersion: key.MinEnabledVersion,
			Wrap:              m.wrapFunc(hsm.Key{ID: bindID(key.ID, kv.Version, key.Type), Blob: kv.Blob}, key.Type)}
		if err := prov.Import(ctx, req); err != nil {
			importErr = err
			break
		}
		if v.Imported && v.Enabled && v.Version < key.MinEnabledVersion {
			// Imported enabled (the cloud cannot import disabled): disabled
			// before the next version's import, so that no version below
			// min_enabled_version stays usable in the cloud while the next
			// ones are imported, or after one of them fails.
			if err := checkHeld(ctx); err != nil {
				importErr = err
				break
			}
			if err := prov.SetEnabled(ctx, pk, r.State, v, false); err != nil {
				importErr = err
				break
			}
			v.Enabled = false
			if err := save(ctx); err != nil {
				return nil, err
			}
		}
	}
	for _, v := range r.Versions {
		want := v.Version >= key.MinEnabledVersion
		if v.Imported && v.Enabled != want {
			if err := checkHeld(ctx); err != nil {
				return failed(errors.Join(importErr, err))
			}
			if err := prov.SetEnabled(ctx, pk, r.State, v, want); err != nil {
				return failed(errors.Join(importErr, err))
			}
			v.Enabled = want
			if err := save(ctx); err != nil {
				return nil, err
			}
		}
	}
	if importErr != nil {
		return failed(importErr)
	}
	if err := checkHeld(ctx); err != nil {
		return failed(err)
	}
	if err := prov.MakeCurrent(ctx, pk, r.State, r.version(key.LatestVersion), r.Versions); err != nil {
		return failed(err)
	}
	r.Status, r.Error = StatusDistributed, ""
	if err := save(ctx); err != nil {
		return nil, err
	}
	return r.public(), nil
}

// closeProvider releases a provider's connections if it holds any.
func closeProvider(p provider.Provider) {
	if c, ok := p.(io.Closer); ok {
		c.Close()
	}
}

// errorText is what a failure leaves in the record: the fault's showable
// message, never an internal cause.
func errorText(err error) string {
	if e, ok := fault.As(err); ok {
		return e.Msg
	}
	var he *hsm.Error
	if errors.As(err, &he) {
		return string(he.Kind) + ": " + he.Msg
	}
	return "internal error"
}

// wrapFunc builds import blobs of one key version in the HSM.
func (m *Manager) wrapFunc(k hsm.Key, typ string) provider.WrapFunc {
	return func(ctx context.Context, scheme wrap.Scheme, pub *rsa.PublicKey, kid string) (*wrap.Result, error) {
		ht, err := CheckType(typ)
		if err != nil {
			return nil, err
		}
		return wrap.Wrap(ctx, m.h, wrap.Request{Scheme: scheme, Key: k, KeyType: ht, WrappingKey: pub,
			AllowSoftwareOAEP: !m.o.ForbidSoftwareOAEP, KID: kid})
	}
}

// ReadDistribution returns a key's distribution to a provider.
func (m *Manager) ReadDistribution(ctx context.Context, mount, kms, key string) (*Distribution, error) {
	var out *Distribution
	err := m.st.View(ctx, func(tx store.Tx) error {
		r, err := m.getDist(ctx, tx, mount, kms, key)
		if err != nil {
			return err
		}
		out = r.public()
		return nil
	})
	return out, err
}

// ListDistributed returns the names of the keys distributed to a provider.
func (m *Manager) ListDistributed(ctx context.Context, mount, kms string) ([]string, error) {
	var out []string
	err := m.st.View(ctx, func(tx store.Tx) error {
		if _, err := m.getKMS(ctx, tx, mount, kms); err != nil {
			return err
		}
		var err error
		out, err = m.distributedTo(ctx, tx, mount, kms)
		return err
	})
	return out, err
}

// KeyKMS returns the names of the providers a key is distributed to.
func (m *Manager) KeyKMS(ctx context.Context, mount, key string) ([]string, error) {
	var out []string
	err := m.st.View(ctx, func(tx store.Tx) error {
		if _, err := tx.GetKey(ctx, mount, key); err != nil {
			return notFound(err, key)
		}
		var err error
		out, err = m.kmsOf(ctx, tx, mount, key)
		return err
	})
	return out, err
}

// kmsOf lists the providers a key is distributed to.
func (m *Manager) kmsOf(ctx context.Context, tx store.Tx, mount, key string) ([]string, error) {
	paths, err := tx.List(ctx, distPrefix(mount))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range paths {
		kms, k, ok := strings.Cut(p, "/")
		if ok && k == key {
			out = append(out, kms)
		}
	}
	return out, nil
}

// RemoveDistribution deletes the key from the provider (only there) and
// forgets the distribution. A failure part-way leaves it marked removing;
// deleting again finishes the job.
func (m *Manager) RemoveDistribution(ctx context.Context, mount, kms, keyName string) error {
	var r *distRecord
	var kr *kmsRecord
	var typ string
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		if r, err = m.getDist(ctx, tx, mount, kms, keyName); err != nil {
			return err
		}
		if kr, err = m.getKMS(ctx, tx, mount, kms); err != nil {
			return err
		}
		k, err := tx.GetKey(ctx, mount, keyName)
		if err != nil {
			return notFound(err, keyName)
		}
		typ = k.Type
		return nil
	})
	if fault.KindOf(err) == fault.NotFound && r == nil {
		return nil // like Vault: deleting what is not there succeeds
	}
	if err != nil {
		return err
	}
	prov, err := m.providerFor(ctx, mount, kr)
	if err != nil {
		return err
	}
	defer closeProvider(prov)
	ctx, unlock, err := m.lock(ctx, r.KeyID)
	if err != nil {
		return err
	}
	defer unlock()
	// Read the record again under the key's lock: a rotation that held the
	// lock meanwhile may have added versions to it, and they must go too.
	if err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		r, err = m.getDist(ctx, tx, mount, kms, keyName)
		return err
	}); fault.KindOf(err) == fault.NotFound {
		return nil
	} else if err != nil {
		return err
	}
	r.Status = StatusRemoving
	save := func(ctx context.Context) error {
		r.UpdatedAt = time.Now().UTC()
		ctx = context.WithoutCancel(ctx)
		if err := checkHeld(ctx); err != nil {
			return err
		}
		return m.st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(ctx, tx, distPath(mount, kms, keyName), r) })
	}
	if err := save(ctx); err != nil { // confirms the lock first
		return err
	}
	if err := prov.Remove(ctx, r.providerKey(typ), r.State, r.Versions); err != nil {
		r.Error = errorText(err)
		if serr := save(ctx); serr != nil {
			return errors.Join(err, serr)
		}
		return err
	}
	if err := checkHeld(ctx); err != nil {
		return err
	}
	return m.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, distPath(mount, kms, keyName)) })
}

// markUnsynced marks, in the transaction that changes key k's versions or
// min_enabled_version, each of its distributions that was up to date as
// distributing again: if the push that follows never starts or stops
// part-way (the node dies, a provider cannot be built), the retry job still
// finds the distribution and brings the cloud up to date.
func (m *Manager) markUnsynced(ctx context.Context, tx store.Tx, mount string, k *store.Key) error {
	kmss, err := m.kmsOf(ctx, tx, mount, k.Name)
	if err != nil {
		return err
	}
	for _, kms := range kmss {
		r, err := m.getDist(ctx, tx, mount, kms, k.Name)
		if err != nil {
			return err
		}
		if r.KeyID != k.ID || r.Status != StatusDistributed {
			continue // another key's, or already unfinished
		}
		r.Status, r.UpdatedAt = StatusDistributing, time.Now().UTC()
		if err := store.PutJSON(ctx, tx, distPath(mount, kms, k.Name), r); err != nil {
			return err
		}
	}
	return nil
}

// noteFailure records in a distribution that its sync could not run, so
// that the retry job takes it up at once.
func (m *Manager) noteFailure(ctx context.Context, mount, kms, keyName string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	if err := checkHeld(ctx); err != nil {
		return err // the node that holds the key's lock now keeps the records
	}
	return m.st.Update(ctx, func(tx store.Tx) error {
		r, err := m.getDist(ctx, tx, mount, kms, keyName)
		if err != nil || r.Status == StatusRemoving {
			return err
		}
		r.Status, r.Error, r.UpdatedAt = StatusDistributing, errorText(cause), time.Now().UTC()
		return store.PutJSON(ctx, tx, distPath(mount, kms, keyName), r)
	})
}

// propagate syncs every distribution of a key after a rotation or a change
// of min_enabled_version. The caller holds the key's lock. Failures are
// recorded in each distribution and returned together; the key's own change
// stands.
func (m *Manager) propagate(ctx context.Context, mount, keyName, what string) error {
	var kmss []string
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		kmss, err = m.kmsOf(ctx, tx, mount, keyName)
		return err
	})
	if err != nil {
		return err
	}
	var msgs []string
	var first error
	for _, kms := range kmss {
		if context.Cause(ctx) == errLockLost {
			// The rest is the job of the node that holds the lock now.
			if first == nil {
				first = errLockLost
			}
			msgs = append(msgs, fmt.Sprintf("kms %s: %s", kms, errorText(errLockLost)))
			continue
		}
		var kr *kmsRecord
		err := m.st.View(ctx, func(tx store.Tx) error {
			var err error
			kr, err = m.getKMS(ctx, tx, mount, kms)
			return err
		})
		var prov provider.Provider
		if err == nil {
			prov, err = m.providerFor(ctx, mount, kr)
		}
		if err == nil {
			_, err = m.sync(ctx, mount, kms, keyName, prov)
			closeProvider(prov)
		} else if nerr := m.noteFailure(ctx, mount, kms, keyName, err); nerr != nil {
			err = errors.Join(err, nerr)
		}
		if errors.Is(err, errRemoving) {
			continue // the retry job finishes the removal
		}
		if err != nil {
			if first == nil {
				first = err
			}
			msgs = append(msgs, fmt.Sprintf("kms %s: %s", kms, errorText(err)))
		}
	}
	if first == nil {
		return nil
	}
	kind := fault.KindOf(first)
	if kind == fault.Internal {
		kind = fault.Unavailable
	}
	return &fault.Error{Kind: kind, Err: first, Msg: fmt.Sprintf("key %q was %s, but its distribution failed (%s); write kms/<name>/key/%s again to retry",
		keyName, what, strings.Join(msgs, "; "), keyName)}
}
