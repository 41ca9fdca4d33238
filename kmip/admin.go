package kmip

import (
	"context"
	"errors"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsmca"
	"github.com/keyhold/keyhold/store"
)

// ConfigView is a mount's configuration as the API shows it.
type ConfigView struct {
	Config    Config
	Listening []string
}

// Config returns a mount's configuration, or a NotFound fault.
func (m *Manager) Config(ctx context.Context, mount string) (*ConfigView, error) {
	var c Config
	err := m.o.Store.View(ctx, func(tx store.Tx) error { return store.GetJSON(ctx, tx, kvPath(mount, "config"), &c) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "the kmip mount is not configured")
	}
	if err != nil {
		return nil, err
	}
	return &ConfigView{Config: c, Listening: m.Addrs(mount)}, nil
}

// SetConfig writes a mount's configuration: the first write creates the
// mount's CA (its key in the HSM) and seal key; every write (re)starts the
// listener. If the new listener cannot start, the previous one is brought
// back and nothing is stored.
func (m *Manager) SetConfig(ctx context.Context, mount string, in ConfigInput) (*ConfigView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cfg := defaultConfig()
	var ca *hsmca.Record
	err := m.o.Store.View(ctx, func(tx store.Tx) error {
		if err := store.GetJSON(ctx, tx, kvPath(mount, "config"), &cfg); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var rec hsmca.Record
		switch err := store.GetJSON(ctx, tx, kvPath(mount, "ca"), &rec); {
		case err == nil:
			ca = &rec
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	newCert, err := cfg.apply(in, ca != nil)
	if err != nil {
		return nil, err
	}
	if ca == nil {
		if ca, err = newCA(ctx, m.o.HSM, mount, cfg.TLSCAKeyType, cfg.TLSCAKeyBits); err != nil {
			return nil, err
		}
		if err := m.o.Store.Update(ctx, func(tx store.Tx) error { return store.PutJSON(ctx, tx, kvPath(mount, "ca"), ca) }); err != nil {
			return nil, err
		}
	}
	if err := m.ensureSealKey(ctx, mount); err != nil {
		return nil, err
	}
	if newCert {
		if err := m.issueServer(ctx, mount, ca, &cfg); err != nil {
			return nil, err
		}
	}
	cfg.UpdatedAt = m.o.Now().UTC()
	st, err := readState(ctx, m.o.Store, m.o.HSM, mount)
	if err != nil {
		return nil, err
	}
	st.cfg = &cfg
	prev := m.mounts[mount]
	if prev != nil {
		prev.stop()
		delete(m.mounts, mount)
	}
	l, err := m.listen(ctx, st)
	if err != nil {
		if prev != nil {
			if rerr := m.startMount(ctx, mount); rerr != nil {
				m.o.Logger.Error("kmip: could not bring the previous listener back", "mount", mount, "error", rerr)
			}
		}
		return nil, err
	}
	if err := m.o.Store.Update(ctx, func(tx store.Tx) error { return store.PutJSON(ctx, tx, kvPath(mount, "config"), &cfg) }); err != nil {
		l.stop()
		return nil, err
	}
	m.mounts[mount] = l
	return &ConfigView{Config: cfg, Listening: l.addrs()}, nil
}

// issueServer has the CA certify a new server key for the configured names.
func (m *Manager) issueServer(ctx context.Context, mount string, ca *hsmca.Record, cfg *Config) error {
	is, err := hsmca.Open(ctx, m.o.HSM, caProfile(mount), ca)
	if err != nil {
		return err
	}
	chain, key, err := is.IssueServer(ctx, m.o.HSM, cfg.ServerHostnames, cfg.ServerIPs)
	if err != nil {
		return err
	}
	cfg.ServerCertPEM, cfg.ServerKeyID, cfg.ServerKeyBlob = chain, key.ID, key.Blob
	return nil
}

// ensureSealKey creates the mount's seal key (AES-256 in the HSM) once.
func (m *Manager) ensureSealKey(ctx context.Context, mount string) error {
	path := kvPath(mount, "seal")
	err := m.o.Store.View(ctx, func(tx store.Tx) error {
		_, err := tx.Get(ctx, path)
		return err
	})
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return err
	}
	id := "kmip/" + mount + "/seal/" + randomHex(8)
	blob, err := m.o.HSM.Generate(ctx, hsm.GenerateRequest{ID: id, Type: hsm.AES256})
	if err != nil {
		return err
	}
	return m.o.Store.Update(ctx, func(tx store.Tx) error { return store.PutJSON(ctx, tx, path, keyRecord{ID: id, Blob: blob}) })
}

// CA returns the PEM certificate of a mount's CA.
func (m *Manager) CA(ctx context.Context, mount string) (string, error) {
	var ca hsmca.Record
	err := m.o.Store.View(ctx, func(tx store.Tx) error { return store.GetJSON(ctx, tx, kvPath(mount, "ca"), &ca) })
	if errors.Is(err, store.ErrNotFound) {
		return "", fault.New(fault.NotFound, "the kmip mount has no CA yet: write its config first")
	}
	return ca.CertPEM, err
}

// write runs an administrative write and then refreshes the running
// listener's state.
func (m *Manager) write(ctx context.Context, mount string, fn func(tx store.Tx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.o.Store.Update(ctx, fn); err != nil {
		return err
	}
	return m.reload(ctx, mount)
}

// CreateScope creates a scope; creating an existing scope succeeds.
func (m *Manager) CreateScope(ctx context.Context, mount, scope string) error {
	if err := checkName("scope", scope); err != nil {
		return err
	}
	return m.write(ctx, mount, func(tx store.Tx) error {
		if _, err := tx.Get(ctx, kvPath(mount, "scope", scope)); err == nil {
			return nil
		}
		return store.PutJSON(ctx, tx, kvPath(mount, "scope", scope), scopeRecord{CreatedAt: m.o.Now().UTC()})
	})
}

// Scopes lists a mount's scopes.
func (m *Manager) Scopes(ctx context.Context, mount string) ([]string, error) {
	var out []string
	err := m.o.Store.View(ctx, func(tx store.Tx) (err error) {
		out, err = tx.List(ctx, kvPath(mount, "scope", ""))
		return err
	})
	return out, err
}

// DeleteScope deletes a scope with its roles and credentials. While the
// scope holds objects it needs force, which destroys them.
func (m *Manager) DeleteScope(ctx context.Context, mount, scope string, force bool) error {
	defer m.cache.clearAll()
	return m.write(ctx, mount, func(tx store.Tx) error {
		if _, err := tx.Get(ctx, kvPath(mount, "scope", scope)); errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "no scope %q", scope)
		} else if err != nil {
			return err
		}
		n, err := tx.CountKMIPObjects(ctx, mount, scope)
		if err != nil {
			return err
		}
		if n > 0 && !force {
			return fault.New(fault.Conflict, "scope %q holds %d object(s); delete it with force=true to destroy them", scope, n)
		}
		if _, err := tx.DeleteKMIPObjects(ctx, mount, scope); err != nil {
			return err
		}
		roles, err := tx.List(ctx, kvPath(mount, "role", scope, ""))
		if err != nil {
			return err
		}
		for _, r := range roles {
			if err := tx.Delete(ctx, kvPath(mount, "role", scope, r)); err != nil {
				return err
			}
		}
		if err := m.deleteCreds(ctx, tx, mount, scope, ""); err != nil {
			return err
		}
		return tx.Delete(ctx, kvPath(mount, "scope", scope))
	})
}

// deleteCreds removes the credentials of a scope (and role, if not "").
func (m *Manager) deleteCreds(ctx context.Context, tx store.Tx, mount, scope, role string) error {
	serials, err := tx.List(ctx, kvPath(mount, "cred", ""))
	if err != nil {
		return err
	}
	for _, s := range serials {
		var c credRecord
		if err := store.GetJSON(ctx, tx, kvPath(mount, "cred", s), &c); err != nil {
			return err
		}
		if c.Scope == scope && (role == "" || c.Role == role) {
			if err := tx.Delete(ctx, kvPath(mount, "cred", s)); err != nil {
				return err
			}
		}
	}
	return nil
}

func needScope(ctx context.Context, tx store.Tx, mount, scope string) error {
	if _, err := tx.Get(ctx, kvPath(mount, "scope", scope)); errors.Is(err, store.ErrNotFound) {
		return fault.New(fault.NotFound, "no scope %q", scope)
	} else if err != nil {
		return err
	}
	return nil
}

// PutRole creates or updates a role of a scope.
func (m *Manager) PutRole(ctx context.Context, mount, scope, role string, in RoleInput) (*Role, error) {
	if err := checkName("role", role); err != nil {
		return nil, err
	}
	var r Role
	err := m.write(ctx, mount, func(tx store.Tx) error {
		if err := needScope(ctx, tx, mount, scope); err != nil {
			return err
		}
		r = Role{Operations: []string{}}
		if err := store.GetJSON(ctx, tx, kvPath(mount, "role", scope, role), &r); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := r.apply(in); err != nil {
			return err
		}
		return store.PutJSON(ctx, tx, kvPath(mount, "role", scope, role), &r)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Role returns a role, or a NotFound fault.
func (m *Manager) Role(ctx context.Context, mount, scope, role string) (*Role, error) {
	var r Role
	err := m.o.Store.View(ctx, func(tx store.Tx) error { return store.GetJSON(ctx, tx, kvPath(mount, "role", scope, role), &r) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "no role %q in scope %q", role, scope)
	}
	return &r, err
}

// Roles lists a scope's roles.
func (m *Manager) Roles(ctx context.Context, mount, scope string) ([]string, error) {
	var out []string
	err := m.o.Store.View(ctx, func(tx store.Tx) (err error) {
		out, err = tx.List(ctx, kvPath(mount, "role", scope, ""))
		return err
	})
	return out, err
}

// DeleteRole deletes a role and revokes its credentials.
func (m *Manager) DeleteRole(ctx context.Context, mount, scope, role string) error {
	return m.write(ctx, mount, func(tx store.Tx) error {
		// As a scope's delete: a name mistyped is not reported as done.
		if err := needScope(ctx, tx, mount, scope); err != nil {
			return err
		}
		if _, err := tx.Get(ctx, kvPath(mount, "role", scope, role)); errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "no role %q in scope %q", role, scope)
		} else if err != nil {
			return err
		}
		if err := m.deleteCreds(ctx, tx, mount, scope, role); err != nil {
			return err
		}
		return tx.Delete(ctx, kvPath(mount, "role", scope, role))
	})
}

// roleTTL returns a role's credential settings, with the mount's defaults.
func roleCredential(cfg *Config, r *Role) (string, int, time.Duration) {
	typ, bits, ttl := cfg.DefaultTLSClientKeyType, cfg.DefaultTLSClientKeyBits, cfg.DefaultTLSClientTTL
	if r.TLSClientKeyType != "" {
		typ, bits = r.TLSClientKeyType, r.TLSClientKeyBits
	}
	if r.TLSClientTTL != 0 {
		ttl = r.TLSClientTTL
	}
	return typ, bits, ttl
}
