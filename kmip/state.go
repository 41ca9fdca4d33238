package kmip

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsmca"
	"github.com/keyhold/keyhold/store"
)

// What a mount keeps in the store's key/value space, under kmip/<mount id>/:
//
//	config               Config (server TLS key as an HSM blob)
//	ca                   hsmca.Record (CA key as an HSM blob)
//	seal                 keyRecord: the AES key that seals values
//	scope/<scope>        scopeRecord
//	role/<scope>/<role>  Role
//	cred/<serial>        credRecord: a client certificate's scope and role
//
// The objects are typed rows (store.KMIPObjects). Nothing here is key
// material or a secret in the clear.

const kvRoot = "kmip/"

func kvPath(mount string, parts ...string) string {
	return kvRoot + mount + "/" + strings.Join(parts, "/")
}

// keyRecord is a key of the mount's own.
type keyRecord struct {
	ID   string `json:"id"`
	Blob []byte `json:"blob"`
}

type scopeRecord struct {
	CreatedAt time.Time `json:"created_at"`
}

// credRecord is an issued client certificate. Revoking it removes it: a
// certificate whose serial has no record is refused.
type credRecord struct {
	Scope     string    `json:"scope"`
	Role      string    `json:"role"`
	CertPEM   string    `json:"cert_pem"`
	CreatedAt time.Time `json:"created_at"`
	NotAfter  time.Time `json:"not_after"`
}

// state is what a mount's listener needs, read from the store in one
// transaction and replaced as a whole after every administrative write.
type state struct {
	mount  string
	cfg    *Config
	ca     *hsmca.Record
	caPool *x509.CertPool
	vals   values
	scopes map[string]bool
	roles  map[string]*Role // by scope + "/" + role
	creds  map[string]*credRecord
}

func roleKey(scope, role string) string { return scope + "/" + role }

// role returns the role of a credential's scope, or nil.
func (s *state) role(scope, role string) *Role { return s.roles[roleKey(scope, role)] }

// readState reads a mount's state; cfg is nil for a mount not configured.
func readState(ctx context.Context, st store.Store, h *hsm.HSM, mount string) (*state, error) {
	s := &state{mount: mount, scopes: map[string]bool{}, roles: map[string]*Role{}, creds: map[string]*credRecord{}}
	err := st.View(ctx, func(tx store.Tx) error {
		var cfg Config
		switch err := store.GetJSON(ctx, tx, kvPath(mount, "config"), &cfg); {
		case err == nil:
			s.cfg = &cfg
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		var ca hsmca.Record
		switch err := store.GetJSON(ctx, tx, kvPath(mount, "ca"), &ca); {
		case err == nil:
			s.ca = &ca
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		var seal keyRecord
		switch err := store.GetJSON(ctx, tx, kvPath(mount, "seal"), &seal); {
		case err == nil:
			s.vals = values{h: h, mount: mount, seal: hsm.Key{ID: seal.ID, Blob: seal.Blob}}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		paths, err := tx.List(ctx, kvPath(mount, ""))
		if err != nil {
			return err
		}
		for _, p := range paths {
			kind, rest, _ := strings.Cut(p, "/")
			switch kind {
			case "scope":
				s.scopes[rest] = true
			case "role":
				var r Role
				if err := store.GetJSON(ctx, tx, kvPath(mount, p), &r); err != nil {
					return err
				}
				s.roles[rest] = &r
			case "cred":
				var c credRecord
				if err := store.GetJSON(ctx, tx, kvPath(mount, p), &c); err != nil {
					return err
				}
				s.creds[rest] = &c
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s.ca != nil {
		s.caPool = x509.NewCertPool()
		if !s.caPool.AppendCertsFromPEM([]byte(s.ca.CertPEM)) {
			return nil, fault.New(fault.Internal, "corrupt KMIP CA certificate of mount %s", mount)
		}
	}
	return s, nil
}
