package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
)

// Mount is an enabled secrets engine at a path.
type Mount struct {
	Path        string    `json:"path"` // without a trailing slash
	Type        string    `json:"type"`
	UUID        string    `json:"uuid"` // stable identity: keys are stored under it
	Accessor    string    `json:"accessor"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
}

// mountTypes are the secrets engines the appliance has.
var mountTypes = map[string]bool{"keymgmt": true, "kmip": true, "xks": true}

// reservedPrefixes cannot be mounted over.
var reservedPrefixes = []string{"sys", "auth", "identity", "cubbyhole"}

var mountPathRe = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$`)

const mountKVPrefix = "sys/mounts/"

// mountTable is the in-memory copy of the mounts stored under sys/mounts/.
type mountTable struct {
	st store.Store
	mu sync.RWMutex
	m  map[string]*Mount // by path
}

func newMountTable(st store.Store) *mountTable {
	return &mountTable{st: st, m: map[string]*Mount{}}
}

func (t *mountTable) load(ctx context.Context) error {
	m := map[string]*Mount{}
	err := t.st.View(ctx, func(tx store.Tx) error {
		paths, err := tx.List(ctx, mountKVPrefix)
		if err != nil {
			return err
		}
		for _, p := range paths {
			b, err := tx.Get(ctx, mountKVPrefix+p)
			if err != nil {
				return err
			}
			var mt Mount
			if err := json.Unmarshal(b, &mt); err != nil {
				return fault.Wrap(fault.Internal, err, "corrupt mount entry")
			}
			m[mt.Path] = &mt
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.m = m
	t.mu.Unlock()
	return nil
}

// resolve returns the mount a path is under (the longest mount path that is
// the path or a prefix of it at a segment boundary) and the rest of the path.
func (t *mountTable) resolve(path string) (*Mount, string) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for p := path; p != ""; {
		if m, ok := t.m[p]; ok {
			return m, strings.TrimPrefix(strings.TrimPrefix(path, p), "/")
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return nil, ""
}

func (t *mountTable) list() []*Mount {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*Mount, 0, len(t.m))
	for _, m := range t.m {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (t *mountTable) get(path string) *Mount {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[path]
}

func (t *mountTable) add(ctx context.Context, m *Mount) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for p := range t.m {
		if err := mountConflict(m.Path, p); err != nil {
			return err
		}
	}
	b, _ := json.Marshal(m)
	if err := t.st.Update(ctx, func(tx store.Tx) error {
		// Again against the store: another node may have enabled a mount
		// this node has not loaded yet.
		paths, err := tx.List(ctx, mountKVPrefix)
		if err != nil {
			return err
		}
		for _, p := range paths {
			if err := mountConflict(m.Path, p); err != nil {
				return err
			}
		}
		return tx.Put(ctx, mountKVPrefix+m.Path, b)
	}); err != nil {
		return err
	}
	t.m[m.Path] = m
	return nil
}

// mountConflict refuses a new mount at path beside an existing one at p.
func mountConflict(path, p string) error {
	if p == path {
		return fault.New(fault.Conflict, "path is already in use at %s/", p)
	}
	if strings.HasPrefix(path, p+"/") || strings.HasPrefix(p, path+"/") {
		return fault.New(fault.Conflict, "path %s/ overlaps the mount at %s/", path, p)
	}
	return nil
}

// remove deletes the mount and, in the same transaction, whatever clean
// does (the mount's keys).
func (t *mountTable) remove(ctx context.Context, path string, clean func(tx store.Tx) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.st.Update(ctx, func(tx store.Tx) error {
		if err := clean(tx); err != nil {
			return err
		}
		return tx.Delete(ctx, mountKVPrefix+path)
	}); err != nil {
		return err
	}
	delete(t.m, path)
	return nil
}

func (s *Server) mountRoutes() {
	s.handle("sys/mounts", Fields{}, map[Operation]HandlerFunc{OpRead: s.listMounts})
	s.handle("sys/mounts/{path...}", Fields{
		"type":                    {Type: TypeString},
		"description":             {Type: TypeString},
		"force":                   {Type: TypeBool},
		"config":                  {Type: TypeAny},
		"options":                 {Type: TypeAny},
		"local":                   {Type: TypeAny},
		"seal_wrap":               {Type: TypeAny},
		"external_entropy_access": {Type: TypeAny},
		"plugin_name":             {Type: TypeAny},
		"plugin_version":          {Type: TypeAny},
	}, map[Operation]HandlerFunc{
		OpRead:   s.readMount,
		OpUpdate: s.enableMount,
		OpDelete: s.disableMount,
	})
}

func mountData(m *Mount) map[string]any {
	return map[string]any{
		"type":        m.Type,
		"description": m.Description,
		"uuid":        m.UUID,
		"accessor":    m.Accessor,
		"config":      map[string]any{"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false},
		"options":     map[string]any{},
		"local":       false,
		"seal_wrap":   false,
	}
}

func (s *Server) listMounts(ctx context.Context, req *Request) (*Response, error) {
	data := map[string]any{}
	for _, m := range s.mounts.list() {
		data[m.Path+"/"] = mountData(m)
	}
	return &Response{Data: data}, nil
}

func (s *Server) readMount(ctx context.Context, req *Request) (*Response, error) {
	m := s.mounts.get(strings.TrimSuffix(req.Params["path"], "/"))
	if m == nil {
		return nil, fault.New(fault.NotFound, "no mount at %s/", req.Params["path"])
	}
	return &Response{Data: mountData(m)}, nil
}

func (s *Server) enableMount(ctx context.Context, req *Request) (*Response, error) {
	path := strings.Trim(req.Params["path"], "/")
	typ := req.Data.String("type")
	if typ == "" {
		return nil, fault.New(fault.BadInput, "type is required (keymgmt, kmip or xks)")
	}
	if !mountTypes[typ] {
		return nil, fault.New(fault.BadInput, "unknown mount type %q (keymgmt, kmip or xks)", typ)
	}
	if err := unsupportedMountSettings(req.Data, typ); err != nil {
		return nil, err
	}
	if !mountPathRe.MatchString(path) || len(path) > 128 {
		return nil, fault.New(fault.BadInput, "invalid mount path %q: segments of letters, digits, '.', '_' and '-'", path)
	}
	first, _, _ := strings.Cut(path, "/")
	for _, r := range reservedPrefixes {
		if first == r {
			return nil, fault.New(fault.BadInput, "cannot mount under the reserved path %s/", r)
		}
	}
	m := &Mount{Path: path, Type: typ, UUID: randomHex(16), Accessor: typ + "_" + randomHex(4),
		Description: req.Data.String("description"), CreatedAt: time.Now().UTC()}
	if err := s.mounts.add(ctx, m); err != nil {
		return nil, err
	}
	return nil, nil
}

// unsupportedMountSettings refuses the settings of Vault's mounts that
// this appliance does not keep (leases, caching, seal wrapping, local
// mounts, plugins): rather than drop them silently. At their zero values,
// as Vault's client sends them, they are accepted.
func unsupportedMountSettings(d *FieldData, typ string) error {
	for _, name := range []string{"config", "options", "local", "seal_wrap", "external_entropy_access", "plugin_version"} {
		if v, ok := d.raw[name]; ok && !zeroValue(v) {
			return fault.New(fault.BadInput, "%s is not supported on a mount here (it keeps no leases, caches, seal wrapping, local mounts or plugins); send it empty or leave it out", name)
		}
	}
	if v, ok := d.raw["plugin_name"]; ok && !zeroValue(v) && v != typ {
		return fault.New(fault.BadInput, "plugin_name %v is not the mount's type %s: no plugins here", v, typ)
	}
	return nil
}

// zeroValue reports whether a JSON value says nothing: null, false, "",
// 0, or an array or object of such values.
func zeroValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case string:
		return x == "" || x == "0" || x == "0s"
	case json.Number:
		f, err := x.Float64()
		return err == nil && f == 0
	case []any:
		for _, e := range x {
			if !zeroValue(e) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range x {
			if !zeroValue(e) {
				return false
			}
		}
		return true
	}
	return false
}

func (s *Server) disableMount(ctx context.Context, req *Request) (*Response, error) {
	path := strings.Trim(req.Params["path"], "/")
	m := s.mounts.get(path)
	if m == nil {
		// Like Vault: disabling what is not mounted succeeds.
		return nil, nil
	}
	force := req.Data.Bool("force")
	err := s.mounts.remove(ctx, path, func(tx store.Tx) error {
		if m.Type == "xks" && s.d.XKS != nil {
			if err := s.d.XKS.Purge(ctx, tx, m.UUID, force); err != nil {
				return err
			}
		}
		if m.Type == "kmip" && s.d.KMIP != nil {
			if err := s.d.KMIP.Purge(ctx, tx, m.UUID, force); err != nil {
				return err
			}
		}
		if m.Type == "keymgmt" && s.d.Keys != nil {
			if err := s.d.Keys.PurgeMount(ctx, tx, m.UUID, force); err != nil {
				return err
			}
		}
		names, err := tx.ListKeys(ctx, m.UUID)
		if err != nil {
			return err
		}
		if len(names) > 0 && !force {
			return fault.New(fault.Conflict, "the mount at %s/ still holds %d key(s); disable it with force=true to destroy them", path, len(names))
		}
		for _, n := range names {
			if err := tx.DeleteKey(ctx, m.UUID, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && m.Type == "xks" && s.d.XKS != nil {
		s.d.XKS.Stop(m.UUID) // its data is gone with the mount; so is its listener
	}
	if err == nil && m.Type == "kmip" && s.d.KMIP != nil {
		s.d.KMIP.Stop(m.UUID)
	}
	return nil, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
