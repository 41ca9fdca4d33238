// Package azurekv distributes keys to Azure Key Vault and Managed HSM (BYOK)
// through the azkeys SDK.
//
// Per distributed key the vault gets a key-exchange key (KEK: RSA-HSM 4096,
// key_ops import) named keyhold-kek-<key>; each appliance version is wrapped
// under the KEK's public key with CKM_RSA_AES_KEY_WRAP (OAEP SHA-1, the only
// hash Azure's BYOK takes) into a `.byok` blob and imported with ImportKey
// (key_hsm) as a new version of the key, tagged with its appliance version
// and the appliance key's id: a retry finds a version an earlier attempt
// imported by those tags. The newest version of an Azure key is the one
// Azure uses, so rotation needs no further step. BYOK imports only into
// HSM-protected keys, so protection must be hsm; symmetric keys (oct-HSM)
// exist only in Managed HSM.
//
// Keys of the same name in two mounts would map to one vault key and one
// KEK: an import is refused when the vault key or the KEK is another key's
// (or was not made by keyhold), and a removal never deletes either while it
// is another key's.
package azurekv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/keymgmt/provider"
	"github.com/keyhold/keyhold/wrap"
)

// Client is the part of the azkeys client the provider calls.
type Client interface {
	CreateKey(ctx context.Context, name string, p azkeys.CreateKeyParameters, o *azkeys.CreateKeyOptions) (azkeys.CreateKeyResponse, error)
	GetKey(ctx context.Context, name, version string, o *azkeys.GetKeyOptions) (azkeys.GetKeyResponse, error)
	ImportKey(ctx context.Context, name string, p azkeys.ImportKeyParameters, o *azkeys.ImportKeyOptions) (azkeys.ImportKeyResponse, error)
	UpdateKey(ctx context.Context, name, version string, p azkeys.UpdateKeyParameters, o *azkeys.UpdateKeyOptions) (azkeys.UpdateKeyResponse, error)
	DeleteKey(ctx context.Context, name string, o *azkeys.DeleteKeyOptions) (azkeys.DeleteKeyResponse, error)
	GetDeletedKey(ctx context.Context, name string, o *azkeys.GetDeletedKeyOptions) (azkeys.GetDeletedKeyResponse, error)
	RecoverDeletedKey(ctx context.Context, name string, o *azkeys.RecoverDeletedKeyOptions) (azkeys.RecoverDeletedKeyResponse, error)
	NewListKeyPropertiesVersionsPager(name string, o *azkeys.ListKeyPropertiesVersionsOptions) *runtime.Pager[azkeys.ListKeyPropertiesVersionsResponse]
}

var _ Client = (*azkeys.Client)(nil)

// Provider is one vault.
type Provider struct {
	cfg provider.Config
	c   Client
}

var _ provider.Provider = (*Provider)(nil)

// FactoryOptions are the seams tests use to reach azkeys' fake server.
type FactoryOptions struct {
	Transport  policy.Transporter     // the HTTP transport of the vault client
	Credential azcore.TokenCredential // used instead of the client secret (which is still checked)
}

// environments maps Vault's environment names to the vault DNS suffix and
// the Entra ID cloud.
var environments = map[string]struct {
	suffix string
	cloud  cloud.Configuration
}{
	"AzurePublicCloud":       {"vault.azure.net", cloud.AzurePublic},
	"AzureChinaCloud":        {"vault.azure.cn", cloud.AzureChina},
	"AzureUSGovernmentCloud": {"vault.usgovcloudapi.net", cloud.AzureGovernment},
}

var vaultRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$`)

// New builds the vault client: key_collection is the vault's name,
// credentials tenant_id, client_id, client_secret and optionally environment.
func New(ctx context.Context, cfg provider.Config) (provider.Provider, error) {
	return NewFactory(FactoryOptions{})(ctx, cfg)
}

// NewFactory returns a factory with the given seams.
func NewFactory(fo FactoryOptions) provider.Factory {
	return func(ctx context.Context, cfg provider.Config) (provider.Provider, error) {
		if !vaultRe.MatchString(cfg.KeyCollection) {
			return nil, fault.New(fault.BadInput, "key_collection must be an Azure Key Vault name (3-24 letters, digits and '-'), got %q", cfg.KeyCollection)
		}
		c := cfg.Credentials
		for k := range c {
			switch k {
			case "tenant_id", "client_id", "client_secret", "environment":
			default:
				return nil, fault.New(fault.BadInput, "unknown azurekeyvault credential %q (tenant_id, client_id, client_secret, environment)", k)
			}
		}
		if c["tenant_id"] == "" || c["client_id"] == "" || c["client_secret"] == "" {
			return nil, fault.New(fault.BadInput, "azurekeyvault credentials need tenant_id, client_id and client_secret")
		}
		envName := c["environment"]
		if envName == "" {
			envName = "AzurePublicCloud"
		}
		env, ok := environments[envName]
		if !ok {
			return nil, fault.New(fault.BadInput, "unknown Azure environment %q (AzurePublicCloud, AzureChinaCloud, AzureUSGovernmentCloud)", envName)
		}
		httpClient := &http.Client{Timeout: cfg.CallTimeout()}
		var transport policy.Transporter = httpClient
		if fo.Transport != nil {
			transport = fo.Transport
		}
		cred := fo.Credential
		if cred == nil {
			var err error
			cred, err = azidentity.NewClientSecretCredential(c["tenant_id"], c["client_id"], c["client_secret"],
				&azidentity.ClientSecretCredentialOptions{ClientOptions: azcore.ClientOptions{Cloud: env.cloud, Transport: httpClient}})
			if err != nil {
				return nil, provider.CloudError(cfg, fault.BadInput, "azure credentials", err)
			}
		}
		vaultURL := "https://" + cfg.KeyCollection + "." + env.suffix + "/"
		if cfg.Endpoint != "" {
			vaultURL = cfg.Endpoint
		}
		client, err := azkeys.NewClient(vaultURL, cred, &azkeys.ClientOptions{
			ClientOptions:                        azcore.ClientOptions{Transport: transport},
			DisableChallengeResourceVerification: fo.Transport != nil || cfg.Endpoint != "",
		})
		if err != nil {
			return nil, provider.CloudError(cfg, fault.BadInput, "azure key vault client", err)
		}
		return NewWithClient(cfg, client), nil
	}
}

// NewWithClient returns a provider over a given client.
func NewWithClient(cfg provider.Config, c Client) *Provider { return &Provider{cfg: cfg, c: c} }

var nameRe = regexp.MustCompile(`^[A-Za-z0-9-]{1,115}$`)

type spec struct {
	kty azkeys.KeyType
	crv azkeys.CurveName
	ops []*azkeys.KeyOperation
}

var opNames = map[string]azkeys.KeyOperation{
	"encrypt": azkeys.KeyOperationEncrypt, "decrypt": azkeys.KeyOperationDecrypt,
	"sign": azkeys.KeyOperationSign, "verify": azkeys.KeyOperationVerify,
	"wrap": azkeys.KeyOperationWrapKey, "unwrap": azkeys.KeyOperationUnwrapKey,
}

func (p *Provider) spec(k provider.Key) (spec, error) {
	var s spec
	if k.Protection != provider.ProtectionHSM {
		return s, fault.New(fault.BadInput, "Azure Key Vault imports a .byok transfer blob only into HSM-protected keys: use protection=hsm (software would need the key in the clear)")
	}
	if !nameRe.MatchString(k.Name) {
		return s, fault.New(fault.BadInput, "key name %q cannot be an Azure key name (letters, digits and '-')", k.Name)
	}
	var err error
	switch k.Type {
	case "rsa-2048", "rsa-3072", "rsa-4096":
		s.kty = azkeys.KeyTypeRSAHSM
		err = provider.CheckPurposes("azurekeyvault", k, "encrypt", "decrypt", "sign", "verify", "wrap", "unwrap")
	case "ecdsa-p256", "ecdsa-p384", "ecdsa-p521":
		s.kty, s.crv = azkeys.KeyTypeECHSM, azkeys.CurveName("P-"+k.Type[7:])
		err = provider.CheckPurposes("azurekeyvault", k, "sign", "verify")
	case "aes256-gcm96":
		s.kty = azkeys.KeyTypeOctHSM
		if !p.holdsOct() {
			return s, fault.New(fault.BadInput, "azurekeyvault takes aes256-gcm96 keys (oct-HSM) only into a Managed HSM, and %s is a Key Vault: set endpoint to the Managed HSM's URL (https://NAME.managedhsm.azure.net/)", p.target())
		}
		err = provider.CheckPurposes("azurekeyvault (oct-HSM keys, Managed HSM only)", k, "encrypt", "decrypt", "wrap", "unwrap")
	default:
		err = fault.New(fault.BadInput, "azurekeyvault cannot take a %s key", k.Type)
	}
	for _, pu := range k.Purposes {
		op := opNames[pu]
		s.ops = append(s.ops, &op)
	}
	return s, err
}

// holdsOct reports whether the target may hold oct-HSM keys. A Key Vault
// (standard or premium) holds none, only a Managed HSM does. A vault is
// known by its host: the default URL, or an endpoint in a vault domain; an
// endpoint elsewhere (a Managed HSM, a private name) is left to Azure.
func (p *Provider) holdsOct() bool {
	if p.cfg.Endpoint == "" {
		return false
	}
	u, err := url.Parse(p.cfg.Endpoint)
	if err != nil {
		return true
	}
	host := strings.ToLower(u.Hostname())
	for _, e := range environments {
		if strings.HasSuffix(host, "."+e.suffix) {
			return false
		}
	}
	return true
}

// target names the vault for messages.
func (p *Provider) target() string {
	if p.cfg.Endpoint != "" {
		return p.cfg.Endpoint
	}
	return "vault " + p.cfg.KeyCollection
}

// Check refuses what Azure cannot import.
func (p *Provider) Check(k provider.Key) error {
	_, err := p.spec(k)
	return err
}

func kekName(k provider.Key) string { return "keyhold-kek-" + k.Name }

func (p *Provider) fail(op string, err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		kind := fault.BadInput
		if re.StatusCode == http.StatusNotFound {
			kind = fault.NotFound
		} else if re.StatusCode == http.StatusConflict {
			kind = fault.Conflict // e.g. a key still being deleted
		} else if re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests {
			kind = fault.Unavailable
		}
		msg := fmt.Sprintf("%d %s", re.StatusCode, re.ErrorCode)
		if m := bodyMessage(re.RawResponse); m != "" {
			msg += ": " + m
		}
		return provider.CloudError(p.cfg, kind, "azure key vault "+op, errors.New(msg))
	}
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if len(msg) > 500 {
		msg = msg[:500] + "..."
	}
	return provider.CloudError(p.cfg, fault.Unavailable, "azure key vault "+op, errors.New(msg))
}

// bodyMessage is the message of a Key Vault error body,
// {"error": {"code": ..., "message": ...}}, if there is one.
func bodyMessage(resp *http.Response) string {
	if resp == nil || resp.Body == nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return ""
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	m := strings.Join(strings.Fields(e.Error.Message), " ")
	if len(m) > 500 {
		m = m[:500] + "..."
	}
	return m
}

func notFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

func conflict(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusConflict
}

// How long recoverDeleted waits for a recovered key to answer: recovery
// completes in the background, in seconds. Variables for tests.
var (
	recoverPoll  = time.Second
	recoverPolls = 30
)

// recoverDeleted handles a create or an import that the vault refused
// because a deleted key holds the name: soft delete keeps a deleted key,
// and its name, for the vault's retention period (7 to 90 days), as after
// this provider's own Remove. A deleted key that ours says is this key's
// is recovered with its versions (it needs the keys/recover permission);
// another is left alone, and the refusal says how to free the name. It
// reports whether a key was recovered; with no deleted key of that name it
// returns false and no error, and the caller's error stands.
func (p *Provider) recoverDeleted(ctx context.Context, name string, ours func(d azkeys.DeletedKey) bool) (bool, error) {
	var d azkeys.DeletedKey
	err := p.call(ctx, func(ctx context.Context) error {
		r, err := p.c.GetDeletedKey(ctx, name, nil)
		d = r.DeletedKey
		return err
	})
	if notFound(err) {
		return false, nil
	}
	if err != nil {
		return false, p.fail("GetDeletedKey", err)
	}
	if !ours(d) {
		until := ""
		if d.ScheduledPurgeDate != nil {
			until = " until " + d.ScheduledPurgeDate.UTC().Format(time.RFC3339)
		}
		return false, fault.New(fault.Conflict, "%s: a deleted key named %s that is not this key's holds the name%s (the vault's soft delete); purge it in Azure, or distribute this key to another vault or under another name", p.cfg.Name, name, until)
	}
	err = p.call(ctx, func(ctx context.Context) error {
		_, err := p.c.RecoverDeletedKey(ctx, name, nil)
		return err
	})
	if err != nil {
		return false, p.fail("RecoverDeletedKey", err)
	}
	for i := 1; ; i++ {
		err := p.call(ctx, func(ctx context.Context) error {
			_, err := p.c.GetKey(ctx, name, "", nil)
			return err
		})
		if err == nil {
			return true, nil
		}
		if !notFound(err) {
			return false, p.fail("GetKey", err)
		}
		if i >= recoverPolls {
			return false, fault.New(fault.Unavailable, "%s: the deleted key %s was recovered but does not answer yet; the distribution is retried", p.cfg.Name, name)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(recoverPoll):
		}
	}
}

func (p *Provider) call(ctx context.Context, fn func(ctx context.Context) error) error {
	return provider.Call(ctx, p.cfg.Timeout, fn)
}

// tag is the value of a tag, and whether it is there.
func tag(tags map[string]*string, name string) (string, bool) {
	if t := tags[name]; t != nil {
		return *t, true
	}
	return "", false
}

// owner is an appliance key with what its distribution has recorded: the
// state (the KEK it used) and the cloud's ids of its versions.
type owner struct {
	k        provider.Key
	st       provider.State
	recorded map[string]bool // version ids of the distribution's records
}

func newOwner(k provider.Key, st provider.State, vs ...*provider.Version) owner {
	o := owner{k: k, st: st, recorded: map[string]bool{}}
	for _, v := range vs {
		if v != nil && v.ProviderID != "" {
			o.recorded[v.ProviderID] = true
		}
	}
	return o
}

// under tells whether the distribution got under way before (it recorded
// a KEK): only then can objects older code left untagged be its own.
func (o owner) under() bool { return o.st["kek_kid"] != "" }

// ownsVersion tells whether a version of the vault key is k's: imported by
// keyhold and tagged with k's id. Older code tagged no id: such a version
// (managed-by=keyhold and keyhold-version) counts as k's when the records
// name it or the distribution got under way before; a same-named key of
// another mount that never did cannot claim it.
func (o owner) ownsVersion(kp *azkeys.KeyProperties) bool {
	tags := kp.Tags
	if by, _ := tag(tags, "managed-by"); by != "keyhold" {
		return false
	}
	if id, ok := tag(tags, "keyhold-key-id"); ok {
		return id == o.k.ID
	}
	if _, ok := tag(tags, "keyhold-version"); !ok {
		return false
	}
	return o.recorded[kp.KID.Version()] || o.under()
}

// ownsKEK tells whether the KEK with the id kid was made for k: tagged with
// k's id or, made by older code that tagged only the key's name, the KEK
// the distribution recorded.
func (o owner) ownsKEK(tags map[string]*string, kid string) bool {
	if by, _ := tag(tags, "managed-by"); by != "keyhold" {
		return false
	}
	if id, ok := tag(tags, "keyhold-key-id"); ok {
		return id == o.k.ID
	}
	name, _ := tag(tags, "keyhold-key")
	return name == o.k.Name && kid != "" && o.st["kek_kid"] == kid
}

// versions lists the versions of the vault key named like k (none if there
// is no such key).
func (p *Provider) versions(ctx context.Context, k provider.Key) ([]*azkeys.KeyProperties, error) {
	var out []*azkeys.KeyProperties
	err := p.call(ctx, func(ctx context.Context) error {
		pg := p.c.NewListKeyPropertiesVersionsPager(k.Name, nil)
		for pg.More() {
			page, err := pg.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, kp := range page.Value {
				if kp != nil && kp.KID != nil {
					out = append(out, kp)
				}
			}
		}
		return nil
	})
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, p.fail("ListKeyPropertiesVersions", err)
	}
	return out, nil
}

// foreign returns a version of the vault key that is not k's, if any: two
// appliance keys of the same name (two mounts) would otherwise share one
// vault key, and a key made outside keyhold would get keyhold's versions.
func foreign(o owner, vs []*azkeys.KeyProperties) *azkeys.KeyProperties {
	for _, kp := range vs {
		if !o.ownsVersion(kp) {
			return kp
		}
	}
	return nil
}

// kek returns the KEK's key (creating it once) with its public key. A KEK
// another appliance key of the same name made is not used: removing that
// key's distribution deletes it.
func (p *Provider) kek(ctx context.Context, req *provider.ImportRequest) (*azkeys.JSONWebKey, error) {
	return p.kekOnce(ctx, req, false)
}

// kekOnce is kek; recovered says a deleted KEK was recovered already.
func (p *Provider) kekOnce(ctx context.Context, req *provider.ImportRequest, recovered bool) (*azkeys.JSONWebKey, error) {
	name := kekName(req.Key)
	var key *azkeys.JSONWebKey
	var tags map[string]*string
	err := p.call(ctx, func(ctx context.Context) error {
		r, err := p.c.GetKey(ctx, name, "", nil)
		key, tags = r.Key, r.Tags
		return err
	})
	if notFound(err) {
		err = p.call(ctx, func(ctx context.Context) error {
			kty, size, imp := azkeys.KeyTypeRSAHSM, int32(4096), azkeys.KeyOperationImport
			tags = map[string]*string{"managed-by": ptr("keyhold"), "keyhold-key": ptr(req.Key.Name), "keyhold-key-id": ptr(req.Key.ID)}
			r, err := p.c.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: &kty, KeySize: &size, KeyOps: []*azkeys.KeyOperation{&imp}, Tags: tags}, nil)
			key = r.Key
			return err
		})
		if conflict(err) && !recovered {
			// The KEK of an earlier distribution, deleted by its removal.
			ok, rerr := p.recoverDeleted(ctx, name, func(d azkeys.DeletedKey) bool {
				return d.Key != nil && d.Key.KID != nil && newOwner(req.Key, req.State).ownsKEK(d.Tags, string(*d.Key.KID))
			})
			if rerr != nil {
				return nil, rerr
			}
			if ok {
				return p.kekOnce(ctx, req, true)
			}
		}
		if err != nil {
			return nil, p.fail("CreateKey (KEK)", err)
		}
	} else if err != nil {
		return nil, p.fail("GetKey (KEK)", err)
	}
	if key == nil || key.KID == nil {
		return nil, fault.New(fault.Unavailable, "%s: azure key vault answered no KEK", p.cfg.Name)
	}
	hasImport := false
	for _, op := range key.KeyOps {
		hasImport = hasImport || (op != nil && *op == azkeys.KeyOperationImport)
	}
	if !hasImport {
		return nil, fault.New(fault.Conflict, "%s: key %s exists in the vault but is not a key-exchange key (key_ops import)", p.cfg.Name, name)
	}
	if !newOwner(req.Key, req.State).ownsKEK(tags, string(*key.KID)) {
		return nil, fault.New(fault.Conflict, "%s: the vault's key-exchange key %s belongs to another key (of another mount, or not made by keyhold); distribute this key to another vault or under another name", p.cfg.Name, name)
	}
	if req.State["kek_kid"] != string(*key.KID) {
		req.State["kek_kid"] = string(*key.KID)
		if err := req.Save(ctx); err != nil {
			return nil, err
		}
	}
	return key, nil
}

func ptr[T any](v T) *T { return &v }

// imported finds the version of the vault key an earlier attempt imported
// for v: tagged with the version and owned by o (see ownsVersion: a version
// older code imported, without an id tag, only if this distribution got
// under way before; a key of the same name that never did would otherwise
// adopt another key's version and never send its own material).
func imported(o owner, vs []*azkeys.KeyProperties, v int) (string, bool) {
	for _, kp := range vs {
		if t, _ := tag(kp.Tags, "keyhold-version"); t != strconv.Itoa(v) || !o.ownsVersion(kp) {
			continue
		}
		return kp.KID.Version(), kp.Attributes != nil && kp.Attributes.Enabled != nil && *kp.Attributes.Enabled
	}
	return "", false
}

// Import wraps the version under the KEK into a .byok blob and imports it.
func (p *Provider) Import(ctx context.Context, req *provider.ImportRequest) error {
	return p.importOnce(ctx, req, false)
}

// importOnce is Import; recovered says the deleted vault key was recovered
// already.
func (p *Provider) importOnce(ctx context.Context, req *provider.ImportRequest, recovered bool) error {
	s, err := p.spec(req.Key)
	if err != nil {
		return err
	}
	vs, err := p.versions(ctx, req.Key)
	if err != nil {
		return err
	}
	o := newOwner(req.Key, req.State, req.Version)
	if kp := foreign(o, vs); kp != nil {
		return fault.New(fault.Conflict, "%s: the vault key %s belongs to another key: its version %s was not imported for this key (it is another mount's key of the same name, or was not made by keyhold); distribute this key to another vault or under another name",
			p.cfg.Name, req.Key.Name, kp.KID.Version())
	}
	v := req.Version
	if id, enabled := imported(o, vs, v.Version); id != "" {
		if err := p.ensureOps(ctx, req.Key.Name, id, s.ops); err != nil {
			return err
		}
		v.ProviderID, v.Imported, v.Enabled = id, true, enabled
		// Imported by an earlier attempt whose answer was lost: its scheme
		// and path were recorded before it was sent (a version recovered
		// with a deleted vault key was imported by a distribution whose
		// record is gone).
		v.Scheme, v.Path = v.Progress["scheme"], v.Progress["path"]
		return req.Save(ctx)
	}
	kek, err := p.kek(ctx, req)
	if err != nil {
		return err
	}
	pub, err := wrap.ParseJWK(kek.N, kek.E)
	if err != nil {
		return fault.Wrap(fault.BadInput, err, "%s: the vault's KEK is unusable: %s", p.cfg.Name, err.Error())
	}
	res, err := req.Wrap(ctx, wrap.AzureRSAAESKeyWrap, pub, string(*kek.KID))
	if err != nil {
		return err
	}
	if v.Progress == nil {
		v.Progress = map[string]string{}
	}
	// Recorded before the import is sent, for a retry that finds the
	// version imported after its answer was lost.
	v.Progress["scheme"], v.Progress["path"] = string(wrap.AzureRSAAESKeyWrap), string(res.Path)
	if err := req.Save(ctx); err != nil {
		return err
	}
	jwk := &azkeys.JSONWebKey{Kty: &s.kty, KeyOps: s.ops, T: res.Blob}
	if s.crv != "" {
		jwk.Crv = &s.crv
	}
	// A version below min_enabled_version is never usable in the vault:
	// it is imported disabled.
	enabled := v.Version >= req.MinEnabledVersion
	var out azkeys.ImportKeyResponse
	err = p.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = p.c.ImportKey(ctx, req.Key.Name, azkeys.ImportKeyParameters{
			Key: jwk, HSM: ptr(true), KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(enabled)},
			Tags: map[string]*string{"managed-by": ptr("keyhold"), "keyhold-version": ptr(strconv.Itoa(v.Version)), "keyhold-key-id": ptr(req.Key.ID)},
		}, nil)
		return err
	})
	if conflict(err) && !recovered {
		// The vault key of an earlier distribution, deleted by its removal:
		// recovered, its versions of this key count as imported.
		ok, rerr := p.recoverDeleted(ctx, req.Key.Name, func(d azkeys.DeletedKey) bool {
			id, _ := tag(d.Tags, "keyhold-key-id")
			return id == req.Key.ID
		})
		if rerr != nil {
			return rerr
		}
		if ok {
			return p.importOnce(ctx, req, true)
		}
	}
	if err != nil {
		return p.fail("ImportKey", err)
	}
	if out.Key == nil || out.Key.KID == nil {
		return fault.New(fault.Unavailable, "%s: azure key vault ImportKey answered no key id", p.cfg.Name)
	}
	v.ProviderID, v.Imported, v.Enabled = out.Key.KID.Version(), true, enabled
	v.Scheme, v.Path = string(wrap.AzureRSAAESKeyWrap), string(res.Path)
	return req.Save(ctx)
}

// ensureOps gives a version found imported already the operations of the
// distribution's purposes. A version recovered with its deleted vault key
// has those of the distribution that was removed, whose purposes may have
// been others.
func (p *Provider) ensureOps(ctx context.Context, name, version string, ops []*azkeys.KeyOperation) error {
	var have []*azkeys.KeyOperation
	err := p.call(ctx, func(ctx context.Context) error {
		r, err := p.c.GetKey(ctx, name, version, nil)
		if r.Key != nil {
			have = r.Key.KeyOps
		}
		return err
	})
	if err != nil {
		return p.fail("GetKey", err)
	}
	if sameOps(have, ops) {
		return nil
	}
	err = p.call(ctx, func(ctx context.Context) error {
		_, err := p.c.UpdateKey(ctx, name, version, azkeys.UpdateKeyParameters{KeyOps: ops}, nil)
		return err
	})
	if err != nil {
		return p.fail("UpdateKey", err)
	}
	return nil
}

// sameOps reports whether two operation lists hold the same operations.
func sameOps(a, b []*azkeys.KeyOperation) bool {
	set := func(l []*azkeys.KeyOperation) map[azkeys.KeyOperation]bool {
		m := map[azkeys.KeyOperation]bool{}
		for _, op := range l {
			if op != nil {
				m[*op] = true
			}
		}
		return m
	}
	return maps.Equal(set(a), set(b))
}

// MakeCurrent does nothing: Azure uses a key's newest version, and versions
// are imported in order.
func (p *Provider) MakeCurrent(context.Context, provider.Key, provider.State, *provider.Version, []*provider.Version) error {
	return nil
}

// SetEnabled enables or disables one version.
func (p *Provider) SetEnabled(ctx context.Context, k provider.Key, _ provider.State, v *provider.Version, enabled bool) error {
	err := p.call(ctx, func(ctx context.Context) error {
		_, err := p.c.UpdateKey(ctx, k.Name, v.ProviderID, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(enabled)}}, nil)
		return err
	})
	if err != nil {
		return p.fail("UpdateKey", err)
	}
	v.Enabled = enabled
	return nil
}

// Remove deletes the key and its KEK (Key Vault keeps them soft-deleted for
// the vault's retention period). A vault key that also holds versions not
// k's (see foreign) is left, with k's versions disabled: Azure deletes keys,
// not versions. The KEK is deleted only if it is k's, and one older code
// made (tagged with the key's name only) only along with the vault key:
// while that holds another key's versions, the other key may be importing
// with it.
func (p *Provider) Remove(ctx context.Context, k provider.Key, st provider.State, records []*provider.Version) error {
	vs, err := p.versions(ctx, k)
	if err != nil {
		return err
	}
	o := newOwner(k, st, records...)
	shared := foreign(o, vs) != nil
	for _, kp := range vs {
		// Only the versions tagged with k's id or named by its records:
		// an untagged one the distribution merely may own stays as it is.
		id, _ := tag(kp.Tags, "keyhold-key-id")
		mine := id == k.ID || (id == "" && o.recorded[kp.KID.Version()] && o.ownsVersion(kp))
		if !shared || !mine || kp.Attributes == nil || kp.Attributes.Enabled == nil || !*kp.Attributes.Enabled {
			continue
		}
		err := p.call(ctx, func(ctx context.Context) error {
			_, err := p.c.UpdateKey(ctx, k.Name, kp.KID.Version(), azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(false)}}, nil)
			return err
		})
		if err != nil && !notFound(err) {
			return p.fail("UpdateKey", err)
		}
	}
	if !shared && len(vs) > 0 {
		if err := p.delete(ctx, k.Name); err != nil {
			return err
		}
	}
	var tags map[string]*string
	var kid string
	err = p.call(ctx, func(ctx context.Context) error {
		r, err := p.c.GetKey(ctx, kekName(k), "", nil)
		tags = r.Tags
		if r.Key != nil && r.Key.KID != nil {
			kid = string(*r.Key.KID)
		}
		return err
	})
	if notFound(err) {
		return nil
	}
	if err != nil {
		return p.fail("GetKey (KEK)", err)
	}
	if id, _ := tag(tags, "keyhold-key-id"); o.ownsKEK(tags, kid) && (!shared || id == k.ID) {
		return p.delete(ctx, kekName(k))
	}
	return nil
}

// delete deletes a vault key; one already gone is not an error.
func (p *Provider) delete(ctx context.Context, name string) error {
	err := p.call(ctx, func(ctx context.Context) error {
		_, err := p.c.DeleteKey(ctx, name, nil)
		return err
	})
	if err != nil && !notFound(err) {
		return p.fail("DeleteKey", err)
	}
	return nil
}
