package xks

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsmca"
	"github.com/keyhold/keyhold/store"
)

// maxCredsPerPrefix bounds the active credentials of a prefix; the spec asks
// for at least two, so that one can be rotated while the other serves.
const maxCredsPerPrefix = 10

// Config returns a mount's configuration, or a NotFound fault.
func (m *Manager) Config(ctx context.Context, mountID string) (*ConfigView, error) {
	var c Config
	err := m.o.Store.View(ctx, func(tx store.Tx) error { return store.GetJSON(ctx, tx, kvPath(mountID, "config"), &c) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "the xks mount is not configured")
	}
	if err != nil {
		return nil, err
	}
	return &ConfigView{Config: c, URIPaths: uriPaths(c.Prefixes), Listening: m.Addrs(mountID)}, nil
}

// SetConfig writes a mount's configuration and (re)starts its listener. If
// the new listener cannot start, the old one is brought back and nothing is
// stored.
func (m *Manager) SetConfig(ctx context.Context, mountID string, in ConfigInput) (*ConfigView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var old *Config
	err := m.o.Store.View(ctx, func(tx store.Tx) error {
		var c Config
		err := store.GetJSON(ctx, tx, kvPath(mountID, "config"), &c)
		if err == nil {
			old = &c
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	cfg := &Config{}
	if old != nil {
		cp := *old
		cfg = &cp
	}
	newCert, err := cfg.apply(in)
	if err != nil {
		return nil, err
	}
	if newCert {
		if cfg.TLSInternalCA {
			err = m.issueInternal(ctx, mountID, cfg)
		} else {
			var k hsm.Key
			k, err = importServerKey(ctx, m.o.HSM, mountID, *in.TLSCertPEM, *in.TLSKeyPEM)
			cfg.TLSCertPEM, cfg.TLSKeyID, cfg.TLSKeyBlob = *in.TLSCertPEM, k.ID, k.Blob
		}
		if err != nil {
			return nil, err
		}
	}
	cfg.UpdatedAt = time.Now().UTC()
	if err := m.ensureKey(ctx, mountID, "seal"); err != nil {
		return nil, err
	}
	if err := m.ensureKey(ctx, mountID, "health"); err != nil {
		return nil, err
	}
	snap, err := readSnapshotWith(ctx, m.o.Store, mountID, cfg)
	if err != nil {
		return nil, err
	}
	st, err := buildState(ctx, m.o.HSM, mountID, snap)
	if err != nil {
		return nil, err
	}
	prev := m.mounts[mountID]
	if prev != nil && old != nil && sameListener(old, cfg) {
		// Prefixes and limits only: swap the state, keep connections.
		if err := m.o.Store.Update(ctx, func(tx store.Tx) error { return putConfig(ctx, tx, mountID, cfg) }); err != nil {
			return nil, err
		}
		prev.gen++ // a retry's earlier read is out of date
		prev.p.st.Store(st)
		prev.p.stale.Store(false)
		return &ConfigView{Config: *cfg, URIPaths: uriPaths(cfg.Prefixes), Listening: m.addrs(mountID)}, nil
	}
	if prev != nil {
		prev.stop()
		delete(m.mounts, mountID)
	}
	rt, err := m.listen(ctx, mountID, st)
	if err != nil {
		if prev != nil {
			if rerr := m.startMount(ctx, mountID); rerr != nil {
				m.o.Logger.Error("xks: could not bring the previous listener back", "mount", mountID, "error", rerr)
			}
		}
		return nil, err
	}
	if err := m.o.Store.Update(ctx, func(tx store.Tx) error { return putConfig(ctx, tx, mountID, cfg) }); err != nil {
		rt.stop()
		return nil, err
	}
	m.mounts[mountID] = rt
	return &ConfigView{Config: *cfg, URIPaths: uriPaths(cfg.Prefixes), Listening: m.addrs(mountID)}, nil
}

// putConfig stores a mount's configuration and revokes the credentials of
// the prefixes it no longer has: a key store that is removed takes its
// credentials with it, so adding the prefix again later does not bring
// them back.
func putConfig(ctx context.Context, tx store.Tx, mountID string, cfg *Config) error {
	if err := store.PutJSON(ctx, tx, kvPath(mountID, "config"), cfg); err != nil {
		return err
	}
	creds, err := readCreds(ctx, tx, mountID)
	if err != nil {
		return err
	}
	for id, c := range creds {
		if !contains(cfg.Prefixes, c.Prefix) {
			if err := tx.Delete(ctx, kvPath(mountID, "cred", id)); err != nil {
				return err
			}
		}
	}
	return nil
}

// readSnapshotWith reads a snapshot with cfg in place of the stored configuration.
func readSnapshotWith(ctx context.Context, st store.Store, mountID string, cfg *Config) (*snapshot, error) {
	snap, err := readSnapshot(ctx, st, mountID)
	if err != nil {
		return nil, err
	}
	snap.cfg = cfg
	return snap, nil
}

// issueInternal has the mount's CA (created on first use) issue a server
// certificate for the configured names, setting it in cfg.
func (m *Manager) issueInternal(ctx context.Context, mountID string, cfg *Config) error {
	ca, err := m.ensureCA(ctx, mountID)
	if err != nil {
		return err
	}
	is, err := hsmca.Open(ctx, m.o.HSM, caProfile(mountID), ca)
	if err != nil {
		return err
	}
	chain, k, err := is.IssueServer(ctx, m.o.HSM, cfg.TLSDNSNames, cfg.TLSIPAddresses)
	if err != nil {
		return err
	}
	cfg.TLSCertPEM, cfg.TLSKeyID, cfg.TLSKeyBlob = chain, k.ID, k.Blob
	return nil
}

func (m *Manager) ensureCA(ctx context.Context, mountID string) (*hsmca.Record, error) {
	var ca hsmca.Record
	err := m.o.Store.View(ctx, func(tx store.Tx) error { return store.GetJSON(ctx, tx, kvPath(mountID, "ca"), &ca) })
	if err == nil {
		return &ca, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	rec, err := hsmca.New(ctx, m.o.HSM, caProfile(mountID), hsm.ECP256)
	if err != nil {
		return nil, err
	}
	return rec, m.o.Store.Update(ctx, func(tx store.Tx) error { return store.PutJSON(ctx, tx, kvPath(mountID, "ca"), rec) })
}

// CA returns the PEM certificate of a mount's internal CA.
func (m *Manager) CA(ctx context.Context, mountID string) (string, error) {
	var ca hsmca.Record
	err := m.o.Store.View(ctx, func(tx store.Tx) error { return store.GetJSON(ctx, tx, kvPath(mountID, "ca"), &ca) })
	if errors.Is(err, store.ErrNotFound) {
		return "", fault.New(fault.NotFound, "this mount has no internal CA yet: write config with tls_internal_ca=true")
	}
	return ca.CertPEM, err
}

// ensureKey creates one of the proxy's own AES-256 keys (seal, health) if missing.
func (m *Manager) ensureKey(ctx context.Context, mountID, name string) error {
	p := kvPath(mountID, name)
	err := m.o.Store.View(ctx, func(tx store.Tx) error { _, err := tx.Get(ctx, p); return err })
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	id := p + "/" + randomID()
	blob, err := m.o.HSM.Generate(ctx, hsm.GenerateRequest{ID: id, Type: hsm.AES256})
	if err != nil {
		return err
	}
	return m.o.Store.Update(ctx, func(tx store.Tx) error { return store.PutJSON(ctx, tx, p, &hsmKeyRecord{ID: id, Blob: blob}) })
}

// NewCredential is a freshly generated SigV4 key pair: the only time the
// secret is shown.
type NewCredential struct {
	AccessKeyID     string
	SecretAccessKey string
	Prefix          string
	URIPath         string
	CreatedAt       time.Time
}

// CredentialInfo describes a stored credential (never its secret).
type CredentialInfo struct {
	AccessKeyID string
	Prefix      string
	URIPath     string
	CreatedAt   time.Time
}

// GenerateCredential makes a SigV4 key pair for a prefix: an access key id
// of 24 characters of [A-Z2-7] and a secret of 32 random bytes in Base64 (44
// characters, 256 bits), independent of each other. The secret is sealed
// under the mount's HSM seal key and takes effect at once.
func (m *Manager) GenerateCredential(ctx context.Context, mountID, prefix string) (*NewCredential, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prefix, err := NormalizePrefix(prefix)
	if err != nil {
		return nil, err
	}
	snap, err := readSnapshot(ctx, m.o.Store, mountID)
	if err != nil {
		return nil, err
	}
	if snap.cfg == nil {
		return nil, fault.New(fault.BadInput, "configure the xks mount first (write config with uri_path_prefixes)")
	}
	if !contains(snap.cfg.Prefixes, prefix) {
		return nil, fault.New(fault.BadInput, "prefix %q is not one of the configured uri_path_prefixes %q", prefix, snap.cfg.Prefixes)
	}
	n := 0
	for _, c := range snap.creds {
		if c.Prefix == prefix {
			n++
		}
	}
	if n >= maxCredsPerPrefix {
		return nil, fault.New(fault.Conflict, "prefix %q already has %d credentials; revoke one first", prefix, n)
	}
	if snap.seal == nil {
		return nil, fault.New(fault.Internal, "the mount has no seal key")
	}
	idb := make([]byte, 15)
	secret := make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return nil, err
	}
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	akid := base32.StdEncoding.EncodeToString(idb) // 24 characters of A-Z, 2-7
	sec := base64.StdEncoding.EncodeToString(secret)
	rec, err := seal(ctx, m.o.HSM, snap.seal.key(), sealAAD(mountID, akid, prefix), []byte(sec))
	if err != nil {
		return nil, err
	}
	rec.Prefix, rec.CreatedAt = prefix, time.Now().UTC()
	if err := m.o.Store.Update(ctx, func(tx store.Tx) error { return store.PutJSON(ctx, tx, kvPath(mountID, "cred", akid), rec) }); err != nil {
		return nil, err
	}
	if err := m.reload(ctx, mountID); err != nil {
		return nil, err
	}
	return &NewCredential{AccessKeyID: akid, SecretAccessKey: sec, Prefix: prefix, URIPath: URIPath(prefix), CreatedAt: rec.CreatedAt}, nil
}

// Credentials lists a mount's credentials, by prefix then creation.
func (m *Manager) Credentials(ctx context.Context, mountID string) ([]CredentialInfo, error) {
	var out []CredentialInfo
	err := m.o.Store.View(ctx, func(tx store.Tx) error {
		creds, err := readCreds(ctx, tx, mountID)
		if err != nil {
			return err
		}
		for id, c := range creds {
			out = append(out, CredentialInfo{AccessKeyID: id, Prefix: c.Prefix, URIPath: URIPath(c.Prefix), CreatedAt: c.CreatedAt})
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Prefix != out[j].Prefix {
			return out[i].Prefix < out[j].Prefix
		}
		return out[i].CreatedAt.Before(out[j].CreatedAt)
	})
	return out, err
}

// RevokeCredential deletes a credential; requests signed with it fail from now on.
func (m *Manager) RevokeCredential(ctx context.Context, mountID, akid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.o.Store.Update(ctx, func(tx store.Tx) error {
		p := kvPath(mountID, "cred", akid)
		if _, err := tx.Get(ctx, p); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fault.New(fault.NotFound, "no credential with access key id %q", akid)
			}
			return err
		}
		return tx.Delete(ctx, p)
	})
	if f, ok := fault.As(err); ok && f.Kind == fault.NotFound {
		// Gone from the store; make sure it is gone from the data plane too
		// (a revoke whose reload failed, then retried).
		if rerr := m.reload(ctx, mountID); rerr != nil {
			return rerr
		}
		return err
	}
	if err != nil {
		return err
	}
	return m.reload(ctx, mountID)
}

// CreateKey generates an AES-256 external key in the HSM that every key
// store of the mount may use.
func (m *Manager) CreateKey(ctx context.Context, mountID, name string, usage []string, enabled bool) (*Key, error) {
	return m.CreateKeyFor(ctx, mountID, name, usage, enabled, nil)
}

// CreateKeyFor is CreateKey for the key stores prefixes names (none: all).
func (m *Manager) CreateKeyFor(ctx context.Context, mountID, name string, usage []string, enabled bool, prefixes []string) (*Key, error) {
	if err := CheckKeyName(name); err != nil {
		return nil, err
	}
	usage, err := NormalizeUsage(usage)
	if err != nil {
		return nil, err
	}
	if prefixes, err = NormalizePrefixes(prefixes); err != nil {
		return nil, err
	}
	if len(prefixes) == 0 {
		prefixes = nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := kvPath(mountID, "key", name)
	err = m.o.Store.View(ctx, func(tx store.Tx) error { _, err := tx.Get(ctx, p); return err })
	if err == nil {
		return nil, fault.New(fault.Conflict, "key %q already exists", name)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	id := p + "/" + randomID()
	blob, err := m.o.HSM.Generate(ctx, hsm.GenerateRequest{ID: id, Type: hsm.AES256})
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	k := &Key{Name: name, ID: id, Usage: usage, Enabled: enabled, Prefixes: prefixes, Blob: blob, CreatedAt: now, UpdatedAt: now}
	err = m.o.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(ctx, p); err == nil {
			return fault.New(fault.Conflict, "key %q already exists", name)
		}
		return store.PutJSON(ctx, tx, p, k)
	})
	if err != nil {
		return nil, err
	}
	return k, m.reload(ctx, mountID)
}

// Key returns an external key, or a NotFound fault.
func (m *Manager) Key(ctx context.Context, mountID, name string) (*Key, error) {
	var k Key
	err := m.o.Store.View(ctx, func(tx store.Tx) error { return store.GetJSON(ctx, tx, kvPath(mountID, "key", name), &k) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "no key %q", name)
	}
	return &k, err
}

// UpdateKey enables or disables a key or changes its usage.
func (m *Manager) UpdateKey(ctx context.Context, mountID, name string, u KeyUpdate) (*Key, error) {
	var usage, prefixes []string
	if u.Usage != nil {
		var err error
		if usage, err = NormalizeUsage(u.Usage); err != nil {
			return nil, err
		}
	}
	if u.Prefixes != nil {
		var err error
		if prefixes, err = NormalizePrefixes(*u.Prefixes); err != nil {
			return nil, err
		}
		if len(prefixes) == 0 {
			prefixes = nil
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var k Key
	err := m.o.Store.Update(ctx, func(tx store.Tx) error {
		p := kvPath(mountID, "key", name)
		if err := store.GetJSON(ctx, tx, p, &k); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fault.New(fault.NotFound, "no key %q", name)
			}
			return err
		}
		if u.Usage != nil {
			k.Usage = usage
		}
		if u.Enabled != nil {
			k.Enabled = *u.Enabled
		}
		if u.Prefixes != nil {
			k.Prefixes = prefixes
		}
		k.UpdatedAt = time.Now().UTC()
		return store.PutJSON(ctx, tx, p, &k)
	})
	if err != nil {
		return nil, err
	}
	return &k, m.reload(ctx, mountID)
}

// DeleteKey deletes a key: its blob is gone and what it encrypted can no
// longer be decrypted.
func (m *Manager) DeleteKey(ctx context.Context, mountID, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.o.Store.Update(ctx, func(tx store.Tx) error {
		p := kvPath(mountID, "key", name)
		if _, err := tx.Get(ctx, p); errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "no key %q", name)
		}
		return tx.Delete(ctx, p)
	})
	if err != nil {
		return err
	}
	return m.reload(ctx, mountID)
}

// Keys lists a mount's key names, sorted.
func (m *Manager) Keys(ctx context.Context, mountID string) ([]string, error) {
	var out []string
	err := m.o.Store.View(ctx, func(tx store.Tx) error {
		var err error
		out, err = tx.List(ctx, kvPath(mountID, "key")+"/")
		return err
	})
	return out, err
}

// PutRule creates or replaces a secondary authorization rule.
func (m *Manager) PutRule(ctx context.Context, mountID string, r *Rule) error {
	if err := r.Check(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.o.Store.Update(ctx, func(tx store.Tx) error { return store.PutJSON(ctx, tx, kvPath(mountID, "rule", r.Name), r) }); err != nil {
		return err
	}
	return m.reload(ctx, mountID)
}

// Rule returns a rule, or a NotFound fault.
func (m *Manager) Rule(ctx context.Context, mountID, name string) (*Rule, error) {
	var r Rule
	err := m.o.Store.View(ctx, func(tx store.Tx) error { return store.GetJSON(ctx, tx, kvPath(mountID, "rule", name), &r) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "no rule %q", name)
	}
	return &r, err
}

// DeleteRule deletes a rule.
func (m *Manager) DeleteRule(ctx context.Context, mountID, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.o.Store.Update(ctx, func(tx store.Tx) error {
		p := kvPath(mountID, "rule", name)
		if _, err := tx.Get(ctx, p); errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "no rule %q", name)
		}
		return tx.Delete(ctx, p)
	})
	if err != nil {
		return err
	}
	return m.reload(ctx, mountID)
}

// Rules lists a mount's rule names, sorted.
func (m *Manager) Rules(ctx context.Context, mountID string) ([]string, error) {
	var out []string
	err := m.o.Store.View(ctx, func(tx store.Tx) error {
		var err error
		out, err = tx.List(ctx, kvPath(mountID, "rule")+"/")
		return err
	})
	return out, err
}

// Purge deletes everything a mount keeps, inside the caller's transaction
// (the mount's removal); call Stop once it has committed. A mount that still
// holds keys is only purged with force, as its keys are destroyed.
func (m *Manager) Purge(ctx context.Context, tx store.Tx, mountID string, force bool) error {
	keys, err := tx.List(ctx, kvPath(mountID, "key")+"/")
	if err != nil {
		return err
	}
	if len(keys) > 0 && !force {
		return fault.New(fault.Conflict, "the xks mount still holds %d key(s); disable it with force=true to destroy them", len(keys))
	}
	paths, err := tx.List(ctx, kvPath(mountID, ""))
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := tx.Delete(ctx, kvPath(mountID, p)); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops a mount's listener (the mount was removed).
func (m *Manager) Stop(mountID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rt := m.mounts[mountID]; rt != nil {
		rt.stop()
		delete(m.mounts, mountID)
	}
}

// sameListener reports whether two configurations listen alike (addresses,
// server certificate and key, mutual TLS), so a write need not restart.
func sameListener(a, b *Config) bool {
	return slices.Equal(a.ListenAddrs, b.ListenAddrs) && a.TLSCertPEM == b.TLSCertPEM && a.TLSKeyID == b.TLSKeyID &&
		a.ClientCAPEM == b.ClientCAPEM && slices.Equal(a.AllowedSubjects, b.AllowedSubjects) &&
		slices.Equal(a.AllowedDNSNames, b.AllowedDNSNames)
}
