// Package gcpckms distributes keys to Google Cloud KMS (BYOK) through
// cloud.google.com/go/kms.
//
// A key becomes an import-only crypto key of the same name in the key ring
// (key_collection), labelled with the key's id: a crypto key of that name
// that is not this key's is never imported into. Each appliance version is
// imported as a new crypto key version through an import job of its own
// (created, waited for until ACTIVE). The job's name is recorded before it
// is created, and a version is recognised by the import job it came from, so
// a retry after any failure finds what the last attempt made instead of
// importing a second copy. A job that expired before anything was imported
// through it, or a version Cloud KMS refused (IMPORT_FAILED), gets a new
// job on the next attempt. For symmetric keys the newest version is made
// primary; asymmetric keys have no primary in Cloud KMS (callers name the
// version).
package gcpckms

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	kmsapi "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"
	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/keymgmt/provider"
	"github.com/keyhold/keyhold/wrap"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// Client is the part of the Cloud KMS client the provider calls.
type Client interface {
	CreateCryptoKey(ctx context.Context, req *kmspb.CreateCryptoKeyRequest, opts ...gax.CallOption) (*kmspb.CryptoKey, error)
	GetCryptoKey(ctx context.Context, req *kmspb.GetCryptoKeyRequest, opts ...gax.CallOption) (*kmspb.CryptoKey, error)
	CreateImportJob(ctx context.Context, req *kmspb.CreateImportJobRequest, opts ...gax.CallOption) (*kmspb.ImportJob, error)
	GetImportJob(ctx context.Context, req *kmspb.GetImportJobRequest, opts ...gax.CallOption) (*kmspb.ImportJob, error)
	ImportCryptoKeyVersion(ctx context.Context, req *kmspb.ImportCryptoKeyVersionRequest, opts ...gax.CallOption) (*kmspb.CryptoKeyVersion, error)
	ListCryptoKeyVersions(ctx context.Context, req *kmspb.ListCryptoKeyVersionsRequest, opts ...gax.CallOption) *kmsapi.CryptoKeyVersionIterator
	GetCryptoKeyVersion(ctx context.Context, req *kmspb.GetCryptoKeyVersionRequest, opts ...gax.CallOption) (*kmspb.CryptoKeyVersion, error)
	UpdateCryptoKeyVersion(ctx context.Context, req *kmspb.UpdateCryptoKeyVersionRequest, opts ...gax.CallOption) (*kmspb.CryptoKeyVersion, error)
	UpdateCryptoKeyPrimaryVersion(ctx context.Context, req *kmspb.UpdateCryptoKeyPrimaryVersionRequest, opts ...gax.CallOption) (*kmspb.CryptoKey, error)
	DestroyCryptoKeyVersion(ctx context.Context, req *kmspb.DestroyCryptoKeyVersionRequest, opts ...gax.CallOption) (*kmspb.CryptoKeyVersion, error)
	Close() error
}

var _ Client = (*kmsapi.KeyManagementClient)(nil)

// Provider is one key ring.
type Provider struct {
	cfg  provider.Config
	c    Client
	poll time.Duration
}

var (
	_ provider.Provider = (*Provider)(nil)
	_ io.Closer         = (*Provider)(nil)
)

var ringRe = regexp.MustCompile(`^projects/[a-z0-9-]+/locations/[a-z0-9-]+/keyRings/[A-Za-z0-9_-]{1,63}$`)

// New builds a Cloud KMS client: key_collection is the key ring's resource
// name, credentials service_account_file the content of a service account
// key file.
func New(ctx context.Context, cfg provider.Config) (provider.Provider, error) {
	return NewFactory()(ctx, cfg)
}

// NewFactory returns a factory whose clients also get opts. With any opts
// the service account is only checked, not used (tests reach an
// unauthenticated fake with option.WithoutAuthentication).
func NewFactory(opts ...option.ClientOption) provider.Factory {
	return func(ctx context.Context, cfg provider.Config) (provider.Provider, error) {
		if !ringRe.MatchString(cfg.KeyCollection) {
			return nil, fault.New(fault.BadInput, "key_collection must be a key ring resource name, projects/P/locations/L/keyRings/R; got %q", cfg.KeyCollection)
		}
		sa := cfg.Credentials["service_account_file"]
		for k := range cfg.Credentials {
			if k != "service_account_file" {
				return nil, fault.New(fault.BadInput, "unknown gcpckms credential %q (service_account_file)", k)
			}
		}
		if err := checkServiceAccount(sa); err != nil {
			return nil, err
		}
		all := []option.ClientOption{}
		if len(opts) == 0 {
			all = append(all, option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(sa)))
		}
		if cfg.Endpoint != "" {
			all = append(all, option.WithEndpoint(cfg.Endpoint))
		}
		all = append(all, opts...)
		c, err := kmsapi.NewKeyManagementClient(ctx, all...)
		if err != nil {
			// Not wrapped: the cause can quote the credentials file, and a
			// wrapped cause reaches the logs.
			return nil, provider.CloudError(cfg, fault.BadInput, "cannot make a Cloud KMS client", err)
		}
		return NewWithClient(cfg, c), nil
	}
}

// NewWithClient returns a provider over a given client.
func NewWithClient(cfg provider.Config, c Client) *Provider {
	return &Provider{cfg: cfg, c: c, poll: 100 * time.Millisecond}
}

// Close closes the client's connection.
func (p *Provider) Close() error { return p.c.Close() }

func checkServiceAccount(sa string) error {
	var f struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
	}
	if sa == "" || json.Unmarshal([]byte(sa), &f) != nil || f.Type != "service_account" || f.ClientEmail == "" || f.PrivateKey == "" {
		return fault.New(fault.BadInput, "gcpckms credentials need service_account_file: the JSON key file of a service account (type, client_email, private_key)")
	}
	return nil
}

type spec struct {
	purpose kmspb.CryptoKey_CryptoKeyPurpose
	alg     kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm
	level   kmspb.ProtectionLevel
}

// resourceIDRe is what Cloud KMS takes as the id of a crypto key or an
// import job.
var resourceIDRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)

func (p *Provider) spec(k provider.Key) (spec, error) {
	var s spec
	if !resourceIDRe.MatchString(k.Name) {
		return s, fault.New(fault.BadInput, "gcpckms names the crypto key after the key, and Cloud KMS ids are 1 to 63 letters, digits, '_' or '-': %q is not one", k.Name)
	}
	switch k.Protection {
	case provider.ProtectionHSM:
		s.level = kmspb.ProtectionLevel_HSM
	case provider.ProtectionSoftware:
		s.level = kmspb.ProtectionLevel_SOFTWARE
	default:
		return s, fault.New(fault.BadInput, "protection must be hsm or software")
	}
	one := "gcpckms (one purpose per key: encrypt/decrypt or sign/verify)"
	switch k.Type {
	case "aes256-gcm96":
		s.purpose, s.alg = kmspb.CryptoKey_ENCRYPT_DECRYPT, kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION
		return s, provider.CheckPurposes("gcpckms", k, "encrypt", "decrypt")
	case "rsa-2048", "rsa-3072", "rsa-4096":
		bits := k.Type[4:]
		if k.Has("sign") || k.Has("verify") {
			s.purpose = kmspb.CryptoKey_ASYMMETRIC_SIGN
			s.alg = kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm(kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm_value["RSA_SIGN_PKCS1_"+bits+"_SHA256"])
			return s, provider.CheckPurposes(one, k, "sign", "verify")
		}
		s.purpose = kmspb.CryptoKey_ASYMMETRIC_DECRYPT
		s.alg = kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm(kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm_value["RSA_DECRYPT_OAEP_"+bits+"_SHA256"])
		return s, provider.CheckPurposes(one, k, "encrypt", "decrypt")
	case "ecdsa-p256":
		s.purpose, s.alg = kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256
		return s, provider.CheckPurposes("gcpckms", k, "sign", "verify")
	case "ecdsa-p384":
		s.purpose, s.alg = kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.CryptoKeyVersion_EC_SIGN_P384_SHA384
		return s, provider.CheckPurposes("gcpckms", k, "sign", "verify")
	}
	return s, fault.New(fault.BadInput, "gcpckms cannot take a %s key (Cloud KMS has no such import)", k.Type)
}

// Check refuses what Cloud KMS cannot import.
func (p *Provider) Check(k provider.Key) error {
	_, err := p.spec(k)
	return err
}

// method picks the import method: SHA-256 unless the provider is set to
// SHA-1; RSA-OAEP alone for symmetric keys where the token can do SHA-256.
func (p *Provider) method(k provider.Key) kmspb.ImportJob_ImportMethod {
	switch {
	case p.cfg.OAEPHash == "sha1":
		return kmspb.ImportJob_RSA_OAEP_4096_SHA1_AES_256
	case k.Type == "aes256-gcm96" && p.cfg.TokenOAEPSHA256:
		return kmspb.ImportJob_RSA_OAEP_4096_SHA256
	}
	return kmspb.ImportJob_RSA_OAEP_4096_SHA256_AES_256
}

func (p *Provider) fail(op string, err error) error {
	kind := fault.BadInput
	msg := err
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.NotFound:
			kind = fault.NotFound
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			kind = fault.Unavailable
		case codes.AlreadyExists, codes.FailedPrecondition:
			kind = fault.Conflict
		}
		msg = fmt.Errorf("%s: %s", s.Code(), s.Message())
	}
	return provider.CloudError(p.cfg, kind, "cloud kms "+op, msg)
}

func code(err error) codes.Code { return status.Code(err) }

func (p *Provider) call(ctx context.Context, fn func(ctx context.Context) error) error {
	return provider.Call(ctx, p.cfg.Timeout, fn)
}

// keyIDLabel is the label that says which appliance key a crypto key was
// made for: names can be shared (two mounts) and reused, ids cannot.
const keyIDLabel = "keyhold-key-id"

var labelValueRe = regexp.MustCompile(`^[a-z0-9_-]{1,63}$`)

// idLabel is an appliance key's id as a label value: the id itself (ids are
// lowercase hex), or a digest of it for an id that could not be one.
func idLabel(id string) string {
	if labelValueRe.MatchString(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256-" + hex.EncodeToString(sum[:28])
}

// cryptoKey creates the import-only crypto key, labelled with the key's id,
// or finds the one an earlier attempt created. A crypto key of that name
// that is not this key's (the customer's, another same-named key's, or one
// keyhold made before crypto keys were labelled with ids and this
// distribution has no record of) is refused, never imported into.
func (p *Provider) cryptoKey(ctx context.Context, req *provider.ImportRequest, s spec) (string, error) {
	if name := req.State["crypto_key"]; name != "" {
		// Recorded by this distribution when it created (or, before
		// labels with ids, first used) the crypto key.
		return name, nil
	}
	name := p.cfg.KeyCollection + "/cryptoKeys/" + req.Key.Name
	label := idLabel(req.Key.ID)
	var ck *kmspb.CryptoKey
	err := p.call(ctx, func(ctx context.Context) error {
		var err error
		ck, err = p.c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{
			Parent: p.cfg.KeyCollection, CryptoKeyId: req.Key.Name, SkipInitialVersionCreation: true,
			CryptoKey: &kmspb.CryptoKey{
				Purpose: s.purpose, ImportOnly: true,
				VersionTemplate: &kmspb.CryptoKeyVersionTemplate{ProtectionLevel: s.level, Algorithm: s.alg},
				Labels:          map[string]string{"managed-by": "keyhold", keyIDLabel: label},
			},
		})
		return err
	})
	if code(err) == codes.AlreadyExists {
		err = p.call(ctx, func(ctx context.Context) error {
			var err error
			ck, err = p.c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: name})
			return err
		})
		if err != nil {
			return "", p.fail("GetCryptoKey", err)
		}
		labels := ck.GetLabels()
		if got, ok := labels[keyIDLabel]; !ok || got != label || req.Key.ID == "" {
			whose := "it was not made by keyhold"
			switch {
			case ok:
				whose = "it belongs to another key of the same name"
			case labels["managed-by"] == "keyhold":
				whose = "keyhold made it for a key of the same name, and this distribution has no record of it"
			}
			if !ok && req.Key.ID != "" {
				// Cloud KMS never deletes a crypto key: one an older
				// release made for this very key (distributed, removed,
				// distributed again) can only be claimed by hand.
				whose += fmt.Sprintf("; if it is this key's, label it %s=%s and distribute again", keyIDLabel, label)
			}
			return "", fault.New(fault.Conflict, "%s: crypto key %s already exists and is not this key's (%s); nothing was imported into it", p.cfg.Name, name, whose)
		}
		// An import job's protection level must be the crypto key's: a key
		// made at another level would take the job and refuse the import.
		if lvl := ck.GetVersionTemplate().GetProtectionLevel(); lvl != s.level {
			return "", fault.New(fault.Conflict, "%s: crypto key %s already exists at protection level %s, not %s (Cloud KMS never changes it); nothing was imported into it",
				p.cfg.Name, name, lvl, s.level)
		}
		if ck.GetPurpose() != s.purpose || !ck.GetImportOnly() || ck.GetVersionTemplate().GetAlgorithm() != s.alg {
			return "", fault.New(fault.Conflict, "%s: crypto key %s already exists with another purpose or algorithm, or is not import-only", p.cfg.Name, name)
		}
	} else if err != nil {
		return "", p.fail("CreateCryptoKey", err)
	}
	req.State["crypto_key"] = ck.GetName()
	return ck.GetName(), req.Save(ctx)
}

// importJobID is the id of a version's import job: keyhold-NAME-vN-RAND,
// the name cut short so that the id stays within Cloud KMS's 63 characters
// (the version and the random part keep it unique).
func importJobID(name string, version int, random string) string {
	tail := fmt.Sprintf("-v%d-%s", version, random)
	if room := 63 - len("keyhold-") - len(tail); len(name) > room {
		name = name[:max(room, 0)]
	}
	return "keyhold-" + name + tail
}

func randomID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Import imports one version through an import job of its own. A job
// that expired (Cloud KMS expires them 3 days after their creation) before
// anything was imported through it for the version, and a version whose
// import Cloud KMS refused (IMPORT_FAILED), are not dead ends: a new job is
// recorded and the version imported again (into the same crypto key
// version, for one that failed).
func (p *Provider) Import(ctx context.Context, req *provider.ImportRequest) error {
	s, err := p.spec(req.Key)
	if err != nil {
		return err
	}
	ck, err := p.cryptoKey(ctx, req, s)
	if err != nil {
		return err
	}
	v := req.Version
	if v.Progress == nil {
		v.Progress = map[string]string{}
	}
	jobName := v.Progress["import_job"]
	if v.ProviderID == "" && jobName != "" {
		// A version an earlier attempt imported through this job (its
		// answer lost) is ours, even once the job has expired.
		found, err := p.versionFromJob(ctx, ck, jobName)
		if err != nil {
			return err
		}
		if found != "" {
			v.ProviderID = found
			v.Scheme, v.Path = v.Progress["scheme"], v.Progress["path"]
			if err := req.Save(ctx); err != nil {
				return err
			}
		}
	}
	if v.ProviderID != "" {
		ckv, err := p.settled(ctx, v.ProviderID)
		if err != nil {
			return err
		}
		if ckv.GetState() != kmspb.CryptoKeyVersion_IMPORT_FAILED {
			v.Imported, v.Enabled = true, ckv.GetState() == kmspb.CryptoKeyVersion_ENABLED
			if sc := v.Progress["scheme"]; sc != "" {
				// The last import sent, whose answer may have been lost.
				v.Scheme, v.Path = sc, v.Progress["path"]
			}
			return req.Save(ctx)
		}
		// Cloud KMS refused the material: it is imported again into
		// this version, through a job nothing was imported through yet.
		if ckv.GetImportJob() == jobName {
			jobName = ""
		}
	}
	newJob := func() error {
		jobName = p.cfg.KeyCollection + "/importJobs/" + importJobID(req.Key.Name, v.Version, randomID())
		v.Progress["import_job"] = jobName
		return req.Save(ctx)
	}
	if jobName == "" {
		if err := newJob(); err != nil {
			return err
		}
	}
	job, err := p.importJob(ctx, jobName, req.Key, s.level)
	if errors.Is(err, errJobExpired) {
		// Nothing was imported through it for this version (it would
		// have been found above): a new job takes its place.
		if err := newJob(); err != nil {
			return err
		}
		job, err = p.importJob(ctx, jobName, req.Key, s.level)
	}
	if err != nil {
		return err
	}
	pub, err := wrap.ParsePublicKey([]byte(job.GetPublicKey().GetPem()))
	if err != nil {
		return fault.Wrap(fault.BadInput, err, "%s: the import job's wrapping key is unusable: %s", p.cfg.Name, err.Error())
	}
	scheme := wrap.Scheme(job.GetImportMethod().String())
	res, err := req.Wrap(ctx, scheme, pub, "")
	if err != nil {
		return err
	}
	// Recorded before the import is sent, for a retry that finds the
	// version through the job after the answer was lost.
	v.Progress["scheme"], v.Progress["path"] = string(scheme), string(res.Path)
	if err := req.Save(ctx); err != nil {
		return err
	}
	var ckv *kmspb.CryptoKeyVersion
	err = p.call(ctx, func(ctx context.Context) error {
		var err error
		ckv, err = p.c.ImportCryptoKeyVersion(ctx, &kmspb.ImportCryptoKeyVersionRequest{
			Parent: ck, Algorithm: s.alg, ImportJob: jobName, CryptoKeyVersion: v.ProviderID,
			WrappedKeyMaterial: &kmspb.ImportCryptoKeyVersionRequest_RsaAesWrappedKey{RsaAesWrappedKey: res.Blob},
		})
		return err
	})
	if err != nil {
		return p.fail("ImportCryptoKeyVersion", err)
	}
	if v.ProviderID == "" {
		v.ProviderID = ckv.GetName()
	}
	v.Scheme, v.Path = v.Progress["scheme"], v.Progress["path"]
	if err := req.Save(ctx); err != nil {
		return err
	}
	ckv, err = p.waitVersion(ctx, v.ProviderID)
	if err != nil {
		return err
	}
	v.Imported, v.Enabled = true, ckv.GetState() == kmspb.CryptoKeyVersion_ENABLED
	return req.Save(ctx)
}

// errJobExpired: the import job has expired; nothing can be imported
// through it any more.
var errJobExpired = errors.New("gcpckms: the import job has expired")

// importJob gets the job, creating it if it does not exist, and waits until
// it is ACTIVE. An expired job is errJobExpired.
func (p *Provider) importJob(ctx context.Context, name string, k provider.Key, level kmspb.ProtectionLevel) (*kmspb.ImportJob, error) {
	var job *kmspb.ImportJob
	get := func() error {
		return p.call(ctx, func(ctx context.Context) error {
			var err error
			job, err = p.c.GetImportJob(ctx, &kmspb.GetImportJobRequest{Name: name})
			return err
		})
	}
	err := get()
	if code(err) == codes.NotFound {
		id := name[strings.LastIndexByte(name, '/')+1:]
		err = p.call(ctx, func(ctx context.Context) error {
			var err error
			job, err = p.c.CreateImportJob(ctx, &kmspb.CreateImportJobRequest{
				Parent: p.cfg.KeyCollection, ImportJobId: id,
				ImportJob: &kmspb.ImportJob{ImportMethod: p.method(k), ProtectionLevel: level},
			})
			return err
		})
		if err != nil {
			return nil, p.fail("CreateImportJob", err)
		}
	} else if err != nil {
		return nil, p.fail("GetImportJob", err)
	}
	deadline := time.Now().Add(p.cfg.CallTimeout())
	for job.GetState() != kmspb.ImportJob_ACTIVE {
		if job.GetState() == kmspb.ImportJob_EXPIRED {
			return nil, fault.Wrap(fault.Conflict, errJobExpired, "%s: import job %s has expired", p.cfg.Name, name)
		}
		if time.Now().After(deadline) {
			return nil, fault.New(fault.Unavailable, "%s: import job %s did not become active within %s", p.cfg.Name, name, p.cfg.CallTimeout())
		}
		if err := sleep(ctx, p.poll); err != nil {
			return nil, err
		}
		if err := get(); err != nil {
			return nil, p.fail("GetImportJob", err)
		}
	}
	return job, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fault.Wrap(fault.Unavailable, ctx.Err(), "cancelled while waiting for Cloud KMS")
	case <-t.C:
		return nil
	}
}

func (p *Provider) versionFromJob(ctx context.Context, ck, job string) (string, error) {
	var found string
	err := p.call(ctx, func(ctx context.Context) error {
		it := p.c.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: ck})
		for {
			v, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return nil
			}
			if err != nil {
				return err
			}
			if v.GetImportJob() == job {
				found = v.GetName()
				return nil
			}
		}
	})
	if err != nil {
		return "", p.fail("ListCryptoKeyVersions", err)
	}
	return found, nil
}

// getVersion reads a crypto key version (the error is Cloud KMS's).
func (p *Provider) getVersion(ctx context.Context, name string) (*kmspb.CryptoKeyVersion, error) {
	var v *kmspb.CryptoKeyVersion
	err := p.call(ctx, func(ctx context.Context) error {
		var err error
		v, err = p.c.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: name})
		return err
	})
	return v, err
}

// waitVersion waits until an imported version leaves PENDING_IMPORT; an
// import that failed is an error.
func (p *Provider) waitVersion(ctx context.Context, name string) (*kmspb.CryptoKeyVersion, error) {
	v, err := p.settled(ctx, name)
	if err == nil && v.GetState() == kmspb.CryptoKeyVersion_IMPORT_FAILED {
		return nil, fault.New(fault.BadInput, "%s: Cloud KMS refused the import of %s: %s", p.cfg.Name, name, v.GetImportFailureReason())
	}
	return v, err
}

// settled waits until an imported version leaves PENDING_IMPORT and
// returns it, IMPORT_FAILED included.
func (p *Provider) settled(ctx context.Context, name string) (*kmspb.CryptoKeyVersion, error) {
	deadline := time.Now().Add(p.cfg.CallTimeout())
	for {
		v, err := p.getVersion(ctx, name)
		if err != nil {
			return nil, p.fail("GetCryptoKeyVersion", err)
		}
		if v.GetState() != kmspb.CryptoKeyVersion_PENDING_IMPORT {
			return v, nil
		}
		if time.Now().After(deadline) {
			return nil, fault.New(fault.Unavailable, "%s: version %s is still being imported after %s", p.cfg.Name, name, p.cfg.CallTimeout())
		}
		if err := sleep(ctx, p.poll); err != nil {
			return nil, err
		}
	}
}

// MakeCurrent makes the version primary (symmetric keys only: asymmetric
// keys have no primary in Cloud KMS).
func (p *Provider) MakeCurrent(ctx context.Context, k provider.Key, st provider.State, v *provider.Version, _ []*provider.Version) error {
	if k.Type != "aes256-gcm96" {
		return nil
	}
	id := v.ProviderID[strings.LastIndexByte(v.ProviderID, '/')+1:]
	err := p.call(ctx, func(ctx context.Context) error {
		_, err := p.c.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{Name: st["crypto_key"], CryptoKeyVersionId: id})
		return err
	})
	if err != nil {
		return p.fail("UpdateCryptoKeyPrimaryVersion", err)
	}
	return nil
}

// SetEnabled enables or disables a version.
func (p *Provider) SetEnabled(ctx context.Context, _ provider.Key, _ provider.State, v *provider.Version, enabled bool) error {
	state := kmspb.CryptoKeyVersion_DISABLED
	if enabled {
		state = kmspb.CryptoKeyVersion_ENABLED
	}
	err := p.call(ctx, func(ctx context.Context) error {
		_, err := p.c.UpdateCryptoKeyVersion(ctx, &kmspb.UpdateCryptoKeyVersionRequest{
			CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: v.ProviderID, State: state},
			UpdateMask:       &fieldmaskpb.FieldMask{Paths: []string{"state"}},
		})
		return err
	})
	if err != nil {
		return p.fail("UpdateCryptoKeyVersion", err)
	}
	v.Enabled = enabled
	return nil
}

// Remove schedules the destruction of every version (Cloud KMS never
// deletes a crypto key itself; without versions it holds nothing). A
// version whose import was sent but whose answer was lost has no provider
// id yet: it is found through its import job, as a retried import would.
func (p *Provider) Remove(ctx context.Context, _ provider.Key, st provider.State, vs []*provider.Version) error {
	for _, v := range vs {
		name := v.ProviderID
		if job := v.Progress["import_job"]; name == "" && job != "" && st["crypto_key"] != "" {
			found, err := p.versionFromJob(ctx, st["crypto_key"], job)
			if err != nil {
				return err
			}
			name = found
		}
		if name == "" {
			continue // never imported
		}
		if err := p.destroyVersion(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// destroyVersion schedules the destruction of a version, once its import
// (if under way) has ended. A version Cloud KMS will not destroy counts as
// gone only if it is: destroyed, scheduled for it, or never imported.
func (p *Provider) destroyVersion(ctx context.Context, name string) error {
	if _, err := p.waitVersion(ctx, name); err != nil {
		switch fault.KindOf(err) {
		case fault.NotFound:
			return nil
		case fault.BadInput:
			// The import failed (or the read was refused): go on; the
			// destruction either succeeds or its refusal is judged below.
		default:
			return err
		}
	}
	err := p.call(ctx, func(ctx context.Context) error {
		_, err := p.c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: name})
		return err
	})
	switch code(err) {
	case codes.OK, codes.NotFound:
		return nil
	case codes.FailedPrecondition:
		v, gerr := p.getVersion(ctx, name)
		if code(gerr) == codes.NotFound {
			return nil
		}
		if gerr != nil {
			return p.fail("GetCryptoKeyVersion", gerr)
		}
		switch v.GetState() {
		case kmspb.CryptoKeyVersion_DESTROYED, kmspb.CryptoKeyVersion_DESTROY_SCHEDULED, kmspb.CryptoKeyVersion_IMPORT_FAILED:
			return nil
		}
		return fault.New(fault.Unavailable, "%s: Cloud KMS would not destroy %s, which is %s; remove the distribution again", p.cfg.Name, name, v.GetState())
	}
	return p.fail("DestroyCryptoKeyVersion", err)
}
