package keymgmt

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/keymgmt/provider"
	"github.com/keyhold/keyhold/store"
)

// KMS providers of a mount (Vault's kms/:name), kept in the store's key/value
// space under keymgmt/<mount>/kms/<name>, credentials sealed.

// KMS is a configured provider as shown to callers: never its credentials.
type KMS struct {
	Name          string
	Provider      string
	KeyCollection string
	Endpoint      string
	Timeout       time.Duration // 0: the appliance's default
	OAEPHash      string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// KMSUpdate creates or changes a provider; nil fields are left as they are.
type KMSUpdate struct {
	Provider      *string
	KeyCollection *string
	Credentials   map[string]string // replaces the stored credentials when non-nil
	Endpoint      *string
	Timeout       *time.Duration
	OAEPHash      *string
	// EndpointFixed refuses a write that would set a new non-empty
	// endpoint (the caller may not choose one): checked before anything is
	// sent to the endpoint, and again in the write's own transaction.
	EndpointFixed bool
}

type kmsRecord struct {
	Name          string    `json:"name"`
	Provider      string    `json:"provider"`
	KeyCollection string    `json:"key_collection"`
	Endpoint      string    `json:"endpoint,omitempty"`
	TimeoutSecs   int64     `json:"timeout_seconds,omitempty"`
	OAEPHash      string    `json:"oaep_hash"`
	Credentials   *sealed   `json:"credentials"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func (r *kmsRecord) public() *KMS {
	return &KMS{Name: r.Name, Provider: r.Provider, KeyCollection: r.KeyCollection, Endpoint: r.Endpoint,
		Timeout: time.Duration(r.TimeoutSecs) * time.Second, OAEPHash: r.OAEPHash, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func kmsPrefix(mount string) string          { return "keymgmt/" + mount + "/kms/" }
func kmsPath(mount, name string) string      { return kmsPrefix(mount) + name }
func distPrefix(mount string) string         { return "keymgmt/" + mount + "/dist/" }
func distPath(mount, kms, key string) string { return distPrefix(mount) + kms + "/" + key }

func (m *Manager) getKMS(ctx context.Context, tx store.Tx, mount, name string) (*kmsRecord, error) {
	var r kmsRecord
	if err := store.GetJSON(ctx, tx, kmsPath(mount, name), &r); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fault.New(fault.NotFound, "no kms provider named %q", name)
		}
		return nil, err
	}
	return &r, nil
}

// KMSExists reports whether the mount has the provider.
func (m *Manager) KMSExists(ctx context.Context, mount, name string) (bool, error) {
	err := m.st.View(ctx, func(tx store.Tx) error {
		_, err := tx.Get(ctx, kmsPath(mount, name))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// checkEndpoint accepts a private endpoint as a URL (AWS, Azure) or as
// host:port (GCP's gRPC address). A URL must be https, or http to a
// loopback address (a local test double): credentials and tokens go there.
func checkEndpoint(ep string) error {
	if ep == "" {
		return nil
	}
	if !strings.Contains(ep, "://") {
		if host, port, err := net.SplitHostPort(ep); err != nil || host == "" || port == "" {
			return fault.New(fault.BadInput, "endpoint must be an https URL or host:port, got %q", ep)
		}
		return nil
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || u.User != nil {
		return fault.New(fault.BadInput, "endpoint must be an https URL or host:port, got %q", ep)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
		return fault.New(fault.BadInput, "endpoint %q is plain http to another host: credentials would cross the network in the clear; use https", ep)
	}
	return fault.New(fault.BadInput, "endpoint must be an https URL or host:port, got %q", ep)
}

// endpointFits refuses an endpoint whose form the provider's SDK cannot
// use: AWS and Azure take a URL (Azure's SDK only https), GCP a URL or
// host:port. Refused at the write, it cannot leave a distribution that
// neither syncs nor can be removed.
func endpointFits(prov, ep string) error {
	if ep == "" || prov == provider.GCPCKMS {
		return nil
	}
	if !strings.Contains(ep, "://") {
		return fault.New(fault.BadInput, "a %s endpoint must be a URL (https://host[:port]/), got %q; host:port is for gcpckms", prov, ep)
	}
	if prov == provider.AzureKeyVault && !strings.HasPrefix(strings.ToLower(ep), "https://") {
		return fault.New(fault.BadInput, "an azurekeyvault endpoint must be https: the Azure SDK sends no token over plain http, got %q", ep)
	}
	return nil
}

func checkOAEPHash(h string) error {
	if h != "sha256" && h != "sha1" {
		return fault.New(fault.BadInput, "oaep_hash must be sha256 or sha1, got %q", h)
	}
	return nil
}

var errEndpointNeedsSudo = fault.New(fault.Permission, "permission denied: setting a kms endpoint needs sudo on the path (keys distributed there are sent to it)")

// WriteKMS creates or updates a provider. Credentials are sealed in the HSM
// before they are stored. The provider type cannot change, and the key
// collection cannot change while keys are distributed there.
func (m *Manager) WriteKMS(ctx context.Context, mount, name string, u KMSUpdate) (*KMS, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if u.Endpoint != nil {
		if err := checkEndpoint(*u.Endpoint); err != nil {
			return nil, err
		}
		if u.EndpointFixed && *u.Endpoint != "" {
			// Refused before anything is sent there (the credentials'
			// check below calls the endpoint); the write's transaction
			// checks again.
			var cur string
			err := m.st.View(ctx, func(tx store.Tx) error {
				r, err := m.getKMS(ctx, tx, mount, name)
				if err == nil {
					cur = r.Endpoint
				} else if fault.KindOf(err) == fault.NotFound {
					err = nil
				}
				return err
			})
			if err != nil {
				return nil, err
			}
			if cur != *u.Endpoint {
				return nil, errEndpointNeedsSudo
			}
		}
	}
	var sealedCreds *sealed
	if u.Credentials != nil {
		if err := m.credentialsReach(ctx, mount, name, u); err != nil {
			return nil, err
		}
		s, err := m.sealCredentials(ctx, mount, name, u.Credentials)
		if err != nil {
			return nil, err
		}
		sealedCreds = s
	}
	var out *KMS
	err := m.st.Update(ctx, func(tx store.Tx) error {
		now := time.Now().UTC()
		r, err := m.getKMS(ctx, tx, mount, name)
		created := false
		if fault.KindOf(err) == fault.NotFound {
			created = true
			r = &kmsRecord{Name: name, OAEPHash: "sha256", CreatedAt: now}
			if u.Provider == nil || *u.Provider == "" {
				return fault.New(fault.BadInput, "provider is required (%s, %s or %s)", provider.AWSKMS, provider.AzureKeyVault, provider.GCPCKMS)
			}
			if u.KeyCollection == nil || *u.KeyCollection == "" {
				return fault.New(fault.BadInput, "key_collection is required (AWS region, Azure vault name or GCP key ring resource name)")
			}
		} else if err != nil {
			return err
		}
		if u.Provider != nil && r.Provider != "" && *u.Provider != r.Provider {
			return fault.New(fault.BadInput, "kms %q is a %s provider; the provider cannot change", name, r.Provider)
		}
		if u.Provider != nil {
			if _, ok := m.o.Providers[*u.Provider]; !ok {
				return fault.New(fault.BadInput, "unknown provider %q: use %s", *u.Provider, strings.Join(m.providerNames(), ", "))
			}
			r.Provider = *u.Provider
		}
		// An endpoint stored before its form was checked stays usable by
		// writes that send it again unchanged (the whole config, say, to
		// rotate the credentials); only a new one is checked.
		newEndpoint := u.Endpoint != nil && *u.Endpoint != r.Endpoint
		// Where the kms points cannot change while keys are distributed
		// there: a new key collection or endpoint is another cloud, and the
		// next rotation would wrap key material for whoever answers there.
		for _, f := range []struct {
			field string
			in    *string
			cur   *string
		}{{"key_collection", u.KeyCollection, &r.KeyCollection}, {"endpoint", u.Endpoint, &r.Endpoint}} {
			if f.in == nil || *f.in == *f.cur {
				continue
			}
			if f.field == "endpoint" && u.EndpointFixed && *f.in != "" {
				return errEndpointNeedsSudo
			}
			keys, err := m.distributedTo(ctx, tx, mount, name)
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				return fault.New(fault.Conflict, "%s of kms %q cannot change while keys are distributed there (%s)", f.field, name, strings.Join(keys, ", "))
			}
			if f.field == "endpoint" && *f.in != "" && r.Credentials != nil && u.Credentials == nil {
				// The stored credentials (or tokens made from them) would go
				// to the new endpoint: whoever may write the kms but does not
				// know them must not be able to send them elsewhere.
				return fault.New(fault.BadInput, "a new endpoint for kms %q needs its credentials in the same write: they are sent to the endpoint", name)
			}
			*f.cur = *f.in
		}
		if newEndpoint {
			if err := endpointFits(r.Provider, r.Endpoint); err != nil {
				return err
			}
		}
		if u.Timeout != nil {
			if *u.Timeout < 0 || *u.Timeout > time.Hour {
				return fault.New(fault.BadInput, "timeout must be between 0 (the default) and 1h")
			}
			// Kept in whole seconds: a fraction would be dropped unsaid
			// (500ms would become 0, the default).
			if *u.Timeout%time.Second != 0 {
				return fault.New(fault.BadInput, "timeout must be whole seconds (e.g. 2s), not %v", *u.Timeout)
			}
			r.TimeoutSecs = int64(*u.Timeout / time.Second)
		}
		if u.OAEPHash != nil {
			if err := checkOAEPHash(*u.OAEPHash); err != nil {
				return err
			}
			r.OAEPHash = *u.OAEPHash
		}
		if created || u.KeyCollection != nil || u.Credentials != nil || newEndpoint {
			// The provider is built from what the write leaves, so that a
			// key collection or credentials it cannot use are refused now,
			// not at the first distribution.
			creds := u.Credentials
			if creds == nil && r.Credentials != nil {
				if creds, err = m.unsealCredentialsTx(ctx, tx, mount, name, r.Credentials); err != nil {
					return err
				}
			}
			if creds == nil {
				creds = map[string]string{} // the provider says which it needs
			}
			prov, err := m.buildProvider(ctx, r, creds)
			if err != nil {
				return err
			}
			closeProvider(prov)
		}
		if sealedCreds != nil {
			r.Credentials = sealedCreds
		}
		r.UpdatedAt = now
		out = r.public()
		return store.PutJSON(ctx, tx, kmsPath(mount, name), r)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReadKMS returns a provider (never its credentials).
func (m *Manager) ReadKMS(ctx context.Context, mount, name string) (*KMS, error) {
	var out *KMS
	err := m.st.View(ctx, func(tx store.Tx) error {
		r, err := m.getKMS(ctx, tx, mount, name)
		if err != nil {
			return err
		}
		out = r.public()
		return nil
	})
	return out, err
}

// ListKMS returns the names of the mount's providers.
func (m *Manager) ListKMS(ctx context.Context, mount string) ([]string, error) {
	var names []string
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		names, err = tx.List(ctx, kmsPrefix(mount))
		return err
	})
	return names, err
}

// DeleteKMS removes a provider; refused while keys are distributed there.
func (m *Manager) DeleteKMS(ctx context.Context, mount, name string) error {
	return m.st.Update(ctx, func(tx store.Tx) error {
		if _, err := m.getKMS(ctx, tx, mount, name); err != nil {
			if fault.KindOf(err) == fault.NotFound {
				return nil // like Vault: deleting what is not there succeeds
			}
			return err
		}
		keys, err := m.distributedTo(ctx, tx, mount, name)
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			return fault.New(fault.Conflict, "kms %q still holds distributed keys (%s); remove them first with delete kms/%s/key/<name>", name, strings.Join(keys, ", "), name)
		}
		return tx.Delete(ctx, kmsPath(mount, name))
	})
}

// distributedTo lists the keys distributed to a provider.
func (m *Manager) distributedTo(ctx context.Context, tx store.Tx, mount, kms string) ([]string, error) {
	return tx.List(ctx, distPrefix(mount)+kms+"/")
}

func (m *Manager) providerNames() []string {
	var out []string
	for n := range m.o.Providers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// credentialsReach checks, for a provider whose credentials choose where
// its keys are (provider.Reacher), that new credentials reach the cloud
// keys of every key distributed there; a kms without distributions takes
// any.
func (m *Manager) credentialsReach(ctx context.Context, mount, name string, u KMSUpdate) error {
	var r *kmsRecord
	var dists []*distRecord
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		if r, err = m.getKMS(ctx, tx, mount, name); err != nil {
			if fault.KindOf(err) == fault.NotFound {
				r, err = nil, nil // a new kms: nothing is distributed there
			}
			return err
		}
		keys, err := m.distributedTo(ctx, tx, mount, name)
		if err != nil {
			return err
		}
		for _, k := range keys {
			d, err := m.getDist(ctx, tx, mount, name, k)
			if fault.KindOf(err) == fault.NotFound {
				continue // removed meanwhile
			}
			if err != nil {
				return err
			}
			dists = append(dists, d)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if r == nil || len(dists) == 0 {
		return nil
	}
	next := *r
	if u.KeyCollection != nil {
		next.KeyCollection = *u.KeyCollection
	}
	if u.Endpoint != nil {
		next.Endpoint = *u.Endpoint
	}
	prov, err := m.buildProvider(ctx, &next, u.Credentials)
	if err != nil {
		return err
	}
	defer closeProvider(prov)
	reacher, ok := prov.(provider.Reacher)
	if !ok {
		return nil
	}
	for _, d := range dists {
		if err := reacher.Reaches(ctx, d.providerKey(""), d.Versions); err != nil {
			msg := "they could not be checked"
			if fe, ok := fault.As(err); ok {
				msg = fe.Msg
			}
			return fault.Wrap(fault.KindOf(err), err, "the new credentials of kms %q were not stored: %s", name, msg)
		}
	}
	return nil
}

// providerFor builds the provider of a record with its credentials unsealed.
func (m *Manager) providerFor(ctx context.Context, mount string, r *kmsRecord) (provider.Provider, error) {
	creds, err := m.unsealCredentials(ctx, mount, r.Name, r.Credentials)
	if err != nil {
		return nil, err
	}
	return m.buildProvider(ctx, r, creds)
}

// buildProvider builds the provider of a record with the given credentials.
func (m *Manager) buildProvider(ctx context.Context, r *kmsRecord, creds map[string]string) (provider.Provider, error) {
	f, ok := m.o.Providers[r.Provider]
	if !ok {
		return nil, fault.New(fault.Internal, "kms %q has unknown provider %q", r.Name, r.Provider)
	}
	timeout := time.Duration(r.TimeoutSecs) * time.Second
	if timeout == 0 {
		timeout = m.o.ClientTimeout
	}
	return f(ctx, provider.Config{
		Name: r.Name, KeyCollection: r.KeyCollection, Credentials: creds, Endpoint: r.Endpoint,
		Timeout: timeout, OAEPHash: r.OAEPHash, TokenOAEPSHA256: m.h.Capabilities().OAEP(sha256Hash),
	})
}

// PurgeMount deletes the mount's providers, distribution records and seal
// key, in the caller's transaction (the mount is being disabled). Keys still
// distributed to a cloud refuse it unless force is set; with force their
// cloud copies stay where they are.
func (m *Manager) PurgeMount(ctx context.Context, tx store.Tx, mount string, force bool) error {
	dists, err := tx.List(ctx, distPrefix(mount))
	if err != nil {
		return err
	}
	if len(dists) > 0 && !force {
		return fault.New(fault.Conflict, "the mount still has %d key distribution(s) to cloud KMSs (%s); remove them first, or disable with force=true to forget them (the clouds keep their copies)", len(dists), strings.Join(dists, ", "))
	}
	rest, err := tx.List(ctx, "keymgmt/"+mount+"/")
	if err != nil {
		return err
	}
	for _, p := range rest {
		if err := tx.Delete(ctx, "keymgmt/"+mount+"/"+p); err != nil {
			return err
		}
	}
	return nil
}
