package kmsfake

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys/fake"
)

// Azure is a fake Key Vault behind azkeys' fake server transport: keys with
// versions, KEKs whose private keys it holds, and ImportKey that opens the
// .byok blob in key_hsm.
type Azure struct {
	failures
	VaultURL string

	mu       sync.Mutex
	keys     map[string]*AzureKey
	wk       wrappingKeys
	Requests map[string]int
	// RecoverLag is how many GetKey calls of a recovered key still answer
	// 404: Azure completes a recovery in the background.
	RecoverLag int
	lagging    map[string]int
}

// AzureKey is a key and its versions in the fake.
type AzureKey struct {
	Name     string
	Versions []*AzureVersion
	Deleted  bool
}

// AzureVersion is one version.
type AzureVersion struct {
	ID       string
	Kty      azkeys.KeyType
	Crv      string
	KeyOps   []string
	Enabled  bool
	Tags     map[string]string
	KEK      bool
	Material *Material
}

// NewAzure returns an empty fake vault.
func NewAzure(vaultURL string) *Azure {
	return &Azure{VaultURL: strings.TrimSuffix(vaultURL, "/"), keys: map[string]*AzureKey{}, Requests: map[string]int{}}
}

// keyVault reports whether the fake is a Key Vault (by its URL) rather
// than a Managed HSM: a Key Vault holds no oct-HSM keys.
func (f *Azure) keyVault() bool {
	u, err := url.Parse(f.VaultURL)
	return err == nil && strings.Contains(u.Hostname(), ".vault.")
}

// Key returns a copy of a key (nil if none).
func (f *Azure) Key(name string) *AzureKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keys[name]
	if k == nil {
		return nil
	}
	out := &AzureKey{Name: k.Name, Deleted: k.Deleted}
	for _, v := range k.Versions {
		c := *v
		out.Versions = append(out.Versions, &c)
	}
	return out
}

// PutVersion adds a version to a key as something other than the provider
// under test would (an operator, another tool, older code) and returns its
// id. It holds no material.
func (f *Azure) PutVersion(name string, kty azkeys.KeyType, tags map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := &AzureVersion{ID: newVersionID(), Kty: kty, Enabled: true, Tags: map[string]string{}}
	for k, t := range tags {
		v.Tags[k] = t
	}
	f.add(name, v)
	return v.ID
}

// SetTags replaces the tags of one version of a key.
func (f *Azure) SetTags(name, version string, tags map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := f.keys[name]; k != nil {
		for _, v := range k.Versions {
			if v.ID == version {
				v.Tags = map[string]string{}
				for t, val := range tags {
					v.Tags[t] = val
				}
			}
		}
	}
}

func (f *Azure) enter(op string) (azfake.ErrorResponder, bool) {
	f.mu.Lock()
	f.Requests[op]++
	f.mu.Unlock()
	var e azfake.ErrorResponder
	if f.fail(op) {
		e.SetResponseError(http.StatusConflict, "InjectedFailure")
		return e, true
	}
	return e, false
}

func newVersionID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (f *Azure) kid(name, version string) *azkeys.ID {
	id := azkeys.ID(f.VaultURL + "/keys/" + name + "/" + version)
	return &id
}

func (f *Azure) bundle(name string, v *AzureVersion) azkeys.KeyBundle {
	kty := v.Kty
	jwk := &azkeys.JSONWebKey{KID: f.kid(name, v.ID), Kty: &kty}
	for _, op := range v.KeyOps {
		o := azkeys.KeyOperation(op)
		jwk.KeyOps = append(jwk.KeyOps, &o)
	}
	if v.KEK {
		pub := f.wk.get(4096).PublicKey
		jwk.N, jwk.E = pub.N.Bytes(), []byte{1, 0, 1}
	}
	tags := map[string]*string{}
	for k, t := range v.Tags {
		t := t
		tags[k] = &t
	}
	en := v.Enabled
	return azkeys.KeyBundle{Key: jwk, Attributes: &azkeys.KeyAttributes{Enabled: &en}, Tags: tags}
}

func (f *Azure) latest(name string) (*AzureKey, *AzureVersion) {
	k := f.keys[name]
	if k == nil || k.Deleted || len(k.Versions) == 0 {
		return nil, nil
	}
	return k, k.Versions[len(k.Versions)-1]
}

func tagMap(in map[string]*string) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func (f *Azure) add(name string, v *AzureVersion) {
	k := f.keys[name]
	if k == nil {
		k = &AzureKey{Name: name}
		f.keys[name] = k
	}
	k.Versions = append(k.Versions, v)
}

// softDeleted returns the deleted key that holds name, or nil: soft delete
// keeps it, and refuses the name to a create or an import, until it is
// recovered or purged.
func (f *Azure) softDeleted(name string) *AzureKey {
	if k := f.keys[name]; k != nil && k.Deleted {
		return k
	}
	return nil
}

// conflict is Azure's answer to a create or an import of a name that a
// deleted key holds.
func conflict() azfake.ErrorResponder {
	var e azfake.ErrorResponder
	e.SetResponseError(http.StatusConflict, "Conflict")
	return e
}

// Server returns the azkeys fake server wired to this vault.
func (f *Azure) Server() *fake.Server {
	notFound := func(name string) azfake.ErrorResponder {
		var e azfake.ErrorResponder
		e.SetResponseError(http.StatusNotFound, "KeyNotFound")
		return e
	}
	return &fake.Server{
		CreateKey: func(ctx context.Context, name string, p azkeys.CreateKeyParameters, _ *azkeys.CreateKeyOptions) (resp azfake.Responder[azkeys.CreateKeyResponse], e azfake.ErrorResponder) {
			if e, failed := f.enter("CreateKey"); failed {
				return resp, e
			}
			if p.Kty == nil || *p.Kty != azkeys.KeyTypeRSAHSM || p.KeySize == nil || *p.KeySize != 4096 {
				e.SetResponseError(http.StatusBadRequest, "BadParameter")
				return resp, e
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.softDeleted(name) != nil {
				return resp, conflict()
			}
			v := &AzureVersion{ID: newVersionID(), Kty: *p.Kty, Enabled: true, Tags: tagMap(p.Tags), KEK: true}
			for _, op := range p.KeyOps {
				v.KeyOps = append(v.KeyOps, string(*op))
			}
			f.add(name, v)
			resp.SetResponse(http.StatusOK, azkeys.CreateKeyResponse{KeyBundle: f.bundle(name, v)}, nil)
			return resp, e
		},
		GetKey: func(ctx context.Context, name, version string, _ *azkeys.GetKeyOptions) (resp azfake.Responder[azkeys.GetKeyResponse], e azfake.ErrorResponder) {
			name, version = splitNameVersion(name, version)
			if e, failed := f.enter("GetKey"); failed {
				return resp, e
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			k, v := f.latest(name)
			if f.lagging[name] > 0 {
				f.lagging[name]--
				k = nil
			}
			if k == nil {
				return resp, notFound(name)
			}
			if version != "" {
				v = nil
				for _, x := range k.Versions {
					if x.ID == version {
						v = x
					}
				}
				if v == nil {
					return resp, notFound(name)
				}
			}
			resp.SetResponse(http.StatusOK, azkeys.GetKeyResponse{KeyBundle: f.bundle(name, v)}, nil)
			return resp, e
		},
		ImportKey: func(ctx context.Context, name string, p azkeys.ImportKeyParameters, _ *azkeys.ImportKeyOptions) (resp azfake.Responder[azkeys.ImportKeyResponse], e azfake.ErrorResponder) {
			if e, failed := f.enter("ImportKey"); failed {
				return resp, e
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.softDeleted(name) != nil {
				return resp, conflict()
			}
			bad := func(code string) (azfake.Responder[azkeys.ImportKeyResponse], azfake.ErrorResponder) {
				e.SetResponseError(http.StatusBadRequest, code)
				return resp, e
			}
			if p.Key == nil || p.Key.Kty == nil || len(p.Key.T) == 0 || p.HSM == nil || !*p.HSM {
				return bad("BadParameter")
			}
			// The .byok blob, parsed here on its own terms.
			var byok struct {
				SchemaVersion string `json:"schema_version"`
				Header        struct {
					KID, Alg, Enc string
				} `json:"header"`
				Ciphertext string `json:"ciphertext"`
			}
			if json.Unmarshal(p.Key.T, &byok) != nil || byok.SchemaVersion != "1.0.0" || byok.Header.Alg != "dir" || byok.Header.Enc != "CKM_RSA_AES_KEY_WRAP" {
				return bad("InvalidByok")
			}
			kekName, kekVersion, ok := strings.Cut(strings.TrimPrefix(byok.Header.KID, f.VaultURL+"/keys/"), "/")
			_, kek := f.latest(kekName)
			if !ok || kek == nil || !kek.KEK || kek.ID != kekVersion {
				return bad("KekNotFound")
			}
			ct, err := base64.RawURLEncoding.DecodeString(byok.Ciphertext)
			if err != nil {
				return bad("InvalidByok")
			}
			raw, err := unwrap(f.wk.get(4096), crypto.SHA1, true, ct)
			if err != nil {
				return bad("ByokUnwrapFailed")
			}
			kind := ""
			switch *p.Key.Kty {
			case azkeys.KeyTypeOctHSM:
				if f.keyVault() { // oct-HSM keys exist only in Managed HSM
					return bad("BadParameter")
				}
				kind = "aes256"
			case azkeys.KeyTypeRSAHSM:
				kind = rsaKind(raw)
			case azkeys.KeyTypeECHSM:
				if p.Key.Crv == nil {
					return bad("BadParameter")
				}
				kind = "ec-" + string(*p.Key.Crv)
			default:
				return bad("BadParameter")
			}
			m, err := parseMaterial(kind, raw)
			if err != nil {
				return bad("KeyMaterialMismatch")
			}
			v := &AzureVersion{ID: newVersionID(), Kty: *p.Key.Kty, Enabled: true, Tags: tagMap(p.Tags), Material: m}
			if p.Key.Crv != nil {
				v.Crv = string(*p.Key.Crv)
			}
			if p.KeyAttributes != nil && p.KeyAttributes.Enabled != nil {
				v.Enabled = *p.KeyAttributes.Enabled
			}
			for _, op := range p.Key.KeyOps {
				v.KeyOps = append(v.KeyOps, string(*op))
			}
			f.add(name, v)
			if f.lose("ImportKey") {
				e.SetResponseError(http.StatusConflict, "InjectedLostAnswer")
				return resp, e
			}
			resp.SetResponse(http.StatusOK, azkeys.ImportKeyResponse{KeyBundle: f.bundle(name, v)}, nil)
			return resp, e
		},
		UpdateKey: func(ctx context.Context, name, version string, p azkeys.UpdateKeyParameters, _ *azkeys.UpdateKeyOptions) (resp azfake.Responder[azkeys.UpdateKeyResponse], e azfake.ErrorResponder) {
			name, version = splitNameVersion(name, version)
			if e, failed := f.enter("UpdateKey"); failed {
				return resp, e
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			k, _ := f.latest(name)
			if k == nil {
				return resp, notFound(name)
			}
			for _, v := range k.Versions {
				if v.ID == version {
					if p.KeyAttributes != nil && p.KeyAttributes.Enabled != nil {
						v.Enabled = *p.KeyAttributes.Enabled
					}
					if p.KeyOps != nil {
						v.KeyOps = nil
						for _, op := range p.KeyOps {
							v.KeyOps = append(v.KeyOps, string(*op))
						}
					}
					resp.SetResponse(http.StatusOK, azkeys.UpdateKeyResponse{KeyBundle: f.bundle(name, v)}, nil)
					return resp, e
				}
			}
			return resp, notFound(name)
		},
		DeleteKey: func(ctx context.Context, name string, _ *azkeys.DeleteKeyOptions) (resp azfake.Responder[azkeys.DeleteKeyResponse], e azfake.ErrorResponder) {
			if e, failed := f.enter("DeleteKey"); failed {
				return resp, e
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			k, v := f.latest(name)
			if k == nil {
				return resp, notFound(name)
			}
			k.Deleted = true
			resp.SetResponse(http.StatusOK, azkeys.DeleteKeyResponse{DeletedKey: azkeys.DeletedKey{Key: f.bundle(name, v).Key}}, nil)
			return resp, e
		},
		GetDeletedKey: func(ctx context.Context, name string, _ *azkeys.GetDeletedKeyOptions) (resp azfake.Responder[azkeys.GetDeletedKeyResponse], e azfake.ErrorResponder) {
			if e, failed := f.enter("GetDeletedKey"); failed {
				return resp, e
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			k := f.softDeleted(name)
			if k == nil {
				return resp, notFound(name)
			}
			b := f.bundle(name, k.Versions[len(k.Versions)-1])
			purge := time.Now().Add(90 * 24 * time.Hour)
			resp.SetResponse(http.StatusOK, azkeys.GetDeletedKeyResponse{DeletedKey: azkeys.DeletedKey{Key: b.Key, Attributes: b.Attributes, Tags: b.Tags, ScheduledPurgeDate: &purge}}, nil)
			return resp, e
		},
		RecoverDeletedKey: func(ctx context.Context, name string, _ *azkeys.RecoverDeletedKeyOptions) (resp azfake.Responder[azkeys.RecoverDeletedKeyResponse], e azfake.ErrorResponder) {
			if e, failed := f.enter("RecoverDeletedKey"); failed {
				return resp, e
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			k := f.softDeleted(name)
			if k == nil {
				return resp, notFound(name)
			}
			k.Deleted = false
			if f.RecoverLag > 0 {
				if f.lagging == nil {
					f.lagging = map[string]int{}
				}
				f.lagging[name] = f.RecoverLag
			}
			resp.SetResponse(http.StatusOK, azkeys.RecoverDeletedKeyResponse{KeyBundle: f.bundle(name, k.Versions[len(k.Versions)-1])}, nil)
			return resp, e
		},
		NewListKeyPropertiesVersionsPager: func(name string, _ *azkeys.ListKeyPropertiesVersionsOptions) (resp azfake.PagerResponder[azkeys.ListKeyPropertiesVersionsResponse]) {
			f.enter("ListKeyPropertiesVersions")
			f.mu.Lock()
			defer f.mu.Unlock()
			k, _ := f.latest(name)
			page := azkeys.ListKeyPropertiesVersionsResponse{}
			if k != nil {
				for _, v := range k.Versions {
					b := f.bundle(name, v)
					page.Value = append(page.Value, &azkeys.KeyProperties{KID: b.Key.KID, Attributes: b.Attributes, Tags: b.Tags})
				}
			}
			resp.AddPage(http.StatusOK, page, nil)
			return resp
		},
	}
}

// splitNameVersion undoes a quirk of azkeys' fake transport: its path regexp
// lets the key name swallow "/<version>".
func splitNameVersion(name, version string) (string, string) {
	if n, v, ok := strings.Cut(name, "/"); ok && version == "" {
		return n, v
	}
	return name, version
}
