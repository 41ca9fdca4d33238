package kmsfake

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"sync"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// GCP is a fake of Cloud KMS's gRPC KeyManagementService (the import
// subset): register it on a grpc.Server and dial it without auth.
type GCP struct {
	kmspb.UnimplementedKeyManagementServiceServer
	failures

	mu       sync.Mutex
	keys     map[string]*GCPKey
	jobs     map[string]*gcpJob
	wk       wrappingKeys
	refuse   int // imports still to end IMPORT_FAILED whatever they hold
	Requests map[string]int
}

// GCPKey is a crypto key in the fake.
type GCPKey struct {
	Key      *kmspb.CryptoKey
	Versions []*GCPVersion
}

// GCPVersion is a crypto key version and the material it received.
type GCPVersion struct {
	Version  *kmspb.CryptoKeyVersion
	Material *Material
	pending  bool // becomes ENABLED (or IMPORT_FAILED) at the next read
	failure  string
}

type gcpJob struct {
	job   *kmspb.ImportJob
	reads int
}

// NewGCP returns an empty fake.
func NewGCP() *GCP {
	return &GCP{keys: map[string]*GCPKey{}, jobs: map[string]*gcpJob{}, Requests: map[string]int{}}
}

// Key returns a copy of a crypto key and its versions (nil if none).
func (f *GCP) Key(name string) *GCPKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keys[name]
	if k == nil {
		return nil
	}
	out := &GCPKey{Key: proto.Clone(k.Key).(*kmspb.CryptoKey)}
	for _, v := range k.Versions {
		out.Versions = append(out.Versions, &GCPVersion{Version: proto.Clone(v.Version).(*kmspb.CryptoKeyVersion), Material: v.Material})
	}
	return out
}

// SetLabel sets (or, with an empty value, removes) a label of a crypto
// key, as an operator would in the console.
func (f *GCP) SetLabel(name, label, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keys[name]
	if k == nil {
		return
	}
	if k.Key.Labels == nil {
		k.Key.Labels = map[string]string{}
	}
	if value == "" {
		delete(k.Key.Labels, label)
	} else {
		k.Key.Labels[label] = value
	}
}

// ExpireImportJobs expires every import job that exists, as Cloud KMS does
// 3 days after a job's creation: nothing can be imported through them any
// more.
func (f *GCP) ExpireImportJobs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		j.job.State = kmspb.ImportJob_EXPIRED
	}
}

// RefuseNextImports makes the next n imports end IMPORT_FAILED, as Cloud
// KMS answers an import it takes but cannot complete.
func (f *GCP) RefuseNextImports(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse += n
}

// Jobs returns how many import jobs exist.
func (f *GCP) Jobs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.jobs)
}

func (f *GCP) enter(op string) error {
	f.mu.Lock()
	f.Requests[op]++
	f.mu.Unlock()
	if f.fail(op) {
		return status.Errorf(codes.FailedPrecondition, "injected failure of %s", op)
	}
	return nil
}

var gcpMethods = map[kmspb.ImportJob_ImportMethod]struct {
	bits   int
	hash   crypto.Hash
	hybrid bool
}{
	kmspb.ImportJob_RSA_OAEP_3072_SHA1_AES_256:   {3072, crypto.SHA1, true},
	kmspb.ImportJob_RSA_OAEP_4096_SHA1_AES_256:   {4096, crypto.SHA1, true},
	kmspb.ImportJob_RSA_OAEP_3072_SHA256_AES_256: {3072, crypto.SHA256, true},
	kmspb.ImportJob_RSA_OAEP_4096_SHA256_AES_256: {4096, crypto.SHA256, true},
	kmspb.ImportJob_RSA_OAEP_3072_SHA256:         {3072, crypto.SHA256, false},
	kmspb.ImportJob_RSA_OAEP_4096_SHA256:         {4096, crypto.SHA256, false},
}

func gcpKind(a kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm) string {
	s := a.String()
	switch {
	case a == kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION:
		return "aes256"
	case strings.Contains(s, "_2048_"):
		return "rsa-2048"
	case strings.Contains(s, "_3072_"):
		return "rsa-3072"
	case strings.Contains(s, "_4096_"):
		return "rsa-4096"
	case strings.HasPrefix(s, "EC_SIGN_P256"):
		return "ec-P-256"
	case strings.HasPrefix(s, "EC_SIGN_P384"):
		return "ec-P-384"
	}
	return "unsupported"
}

// CreateCryptoKey creates an import-only key without versions.
func (f *GCP) CreateCryptoKey(ctx context.Context, req *kmspb.CreateCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	if err := f.enter("CreateCryptoKey"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	name := req.GetParent() + "/cryptoKeys/" + req.GetCryptoKeyId()
	if f.keys[name] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "CryptoKey %s already exists", name)
	}
	ck := proto.Clone(req.GetCryptoKey()).(*kmspb.CryptoKey)
	ck.Name = name
	if !req.GetSkipInitialVersionCreation() || !ck.GetImportOnly() {
		return nil, status.Errorf(codes.InvalidArgument, "the fake only makes import-only keys without an initial version")
	}
	f.keys[name] = &GCPKey{Key: ck}
	if f.lose("CreateCryptoKey") {
		return nil, status.Errorf(codes.Internal, "injected loss of the answer to CreateCryptoKey")
	}
	return proto.Clone(ck).(*kmspb.CryptoKey), nil
}

// GetCryptoKey returns a key.
func (f *GCP) GetCryptoKey(ctx context.Context, req *kmspb.GetCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	if err := f.enter("GetCryptoKey"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keys[req.GetName()]
	if k == nil {
		return nil, status.Errorf(codes.NotFound, "CryptoKey %s not found", req.GetName())
	}
	return proto.Clone(k.Key).(*kmspb.CryptoKey), nil
}

// CreateImportJob makes a job in PENDING_GENERATION; it is ACTIVE from its second read on.
func (f *GCP) CreateImportJob(ctx context.Context, req *kmspb.CreateImportJobRequest) (*kmspb.ImportJob, error) {
	if err := f.enter("CreateImportJob"); err != nil {
		return nil, err
	}
	m, ok := gcpMethods[req.GetImportJob().GetImportMethod()]
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "unsupported import method %v", req.GetImportJob().GetImportMethod())
	}
	priv := f.wk.get(m.bits)
	f.mu.Lock()
	defer f.mu.Unlock()
	name := req.GetParent() + "/importJobs/" + req.GetImportJobId()
	if f.jobs[name] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "ImportJob %s already exists", name)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	job := &kmspb.ImportJob{Name: name, ImportMethod: req.GetImportJob().GetImportMethod(), ProtectionLevel: req.GetImportJob().GetProtectionLevel(),
		State:     kmspb.ImportJob_PENDING_GENERATION,
		PublicKey: &kmspb.ImportJob_WrappingPublicKey{Pem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}}
	f.jobs[name] = &gcpJob{job: job}
	out := proto.Clone(job).(*kmspb.ImportJob)
	out.PublicKey = nil // no key before the job is active
	return out, nil
}

// GetImportJob returns a job (ACTIVE from the first read after creation).
func (f *GCP) GetImportJob(ctx context.Context, req *kmspb.GetImportJobRequest) (*kmspb.ImportJob, error) {
	if err := f.enter("GetImportJob"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[req.GetName()]
	if j == nil {
		return nil, status.Errorf(codes.NotFound, "ImportJob %s not found", req.GetName())
	}
	if j.job.State == kmspb.ImportJob_PENDING_GENERATION {
		j.job.State = kmspb.ImportJob_ACTIVE
	}
	return proto.Clone(j.job).(*kmspb.ImportJob), nil
}

// ImportCryptoKeyVersion unwraps the material with the job's private key;
// the version is PENDING_IMPORT until its next read. With
// crypto_key_version, the material goes into that version of the key, which
// must be IMPORT_FAILED or DESTROYED (and, if it ever held material, get
// the same).
func (f *GCP) ImportCryptoKeyVersion(ctx context.Context, req *kmspb.ImportCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	if err := f.enter("ImportCryptoKeyVersion"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keys[req.GetParent()]
	if k == nil {
		return nil, status.Errorf(codes.NotFound, "CryptoKey %s not found", req.GetParent())
	}
	j := f.jobs[req.GetImportJob()]
	if j == nil || j.job.State != kmspb.ImportJob_ACTIVE {
		return nil, status.Errorf(codes.FailedPrecondition, "ImportJob %s is not active", req.GetImportJob())
	}
	if j.job.GetProtectionLevel() != k.Key.GetVersionTemplate().GetProtectionLevel() {
		return nil, status.Errorf(codes.FailedPrecondition, "ImportJob protection level %v does not match the key's %v", j.job.GetProtectionLevel(), k.Key.GetVersionTemplate().GetProtectionLevel())
	}
	if req.GetAlgorithm() != k.Key.GetVersionTemplate().GetAlgorithm() {
		return nil, status.Errorf(codes.InvalidArgument, "algorithm %v does not match the key's %v", req.GetAlgorithm(), k.Key.GetVersionTemplate().GetAlgorithm())
	}
	blob := req.GetRsaAesWrappedKey()
	if len(blob) == 0 {
		blob = req.GetWrappedKey()
	}
	m := gcpMethods[j.job.GetImportMethod()]
	var into *GCPVersion
	if name := req.GetCryptoKeyVersion(); name != "" {
		for _, x := range k.Versions {
			if x.Version.GetName() == name {
				into = x
			}
		}
		if into == nil {
			return nil, status.Errorf(codes.NotFound, "CryptoKeyVersion %s not found", name)
		}
		if st := into.Version.GetState(); st != kmspb.CryptoKeyVersion_IMPORT_FAILED && st != kmspb.CryptoKeyVersion_DESTROYED {
			return nil, status.Errorf(codes.FailedPrecondition, "CryptoKeyVersion %s is %v: only IMPORT_FAILED or DESTROYED versions take an import", name, st)
		}
		if into.Version.GetAlgorithm() != req.GetAlgorithm() {
			return nil, status.Errorf(codes.InvalidArgument, "algorithm %v does not match the version's %v", req.GetAlgorithm(), into.Version.GetAlgorithm())
		}
	}
	v := &GCPVersion{pending: true, Version: &kmspb.CryptoKeyVersion{
		Name:      fmt.Sprintf("%s/cryptoKeyVersions/%d", k.Key.GetName(), len(k.Versions)+1),
		State:     kmspb.CryptoKeyVersion_PENDING_IMPORT,
		Algorithm: req.GetAlgorithm(), ImportJob: req.GetImportJob(), ProtectionLevel: j.job.GetProtectionLevel(),
	}}
	if into != nil {
		v.Version.Name = into.Version.GetName()
	}
	raw, err := unwrap(f.wk.get(m.bits), m.hash, m.hybrid, blob)
	if err == nil {
		v.Material, err = parseMaterial(gcpKind(req.GetAlgorithm()), raw)
	}
	if err == nil && into != nil && into.Material != nil && !bytes.Equal(into.Material.Raw, v.Material.Raw) {
		err = fmt.Errorf("the material differs from what %s held", into.Version.GetName())
	}
	if err == nil && f.refuse > 0 {
		f.refuse--
		v.Material, err = nil, fmt.Errorf("injected import failure")
	}
	if err != nil {
		v.failure = err.Error()
	}
	if into != nil {
		if into.Material != nil && v.Material == nil {
			v.Material = into.Material
		}
		*into = *v
		v = into
	} else {
		k.Versions = append(k.Versions, v)
	}
	if f.lose("ImportCryptoKeyVersion") {
		return nil, status.Errorf(codes.Internal, "injected loss of the answer to ImportCryptoKeyVersion")
	}
	return proto.Clone(v.Version).(*kmspb.CryptoKeyVersion), nil
}

func (f *GCP) version(name string) (*GCPKey, *GCPVersion) {
	i := strings.Index(name, "/cryptoKeyVersions/")
	if i < 0 {
		return nil, nil
	}
	k := f.keys[name[:i]]
	if k == nil {
		return nil, nil
	}
	for _, v := range k.Versions {
		if v.Version.GetName() == name {
			if v.pending {
				v.pending = false
				v.Version.State = kmspb.CryptoKeyVersion_ENABLED
				if v.failure != "" {
					v.Version.State, v.Version.ImportFailureReason = kmspb.CryptoKeyVersion_IMPORT_FAILED, v.failure
				}
			}
			return k, v
		}
	}
	return k, nil
}

// GetCryptoKeyVersion returns a version.
func (f *GCP) GetCryptoKeyVersion(ctx context.Context, req *kmspb.GetCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	if err := f.enter("GetCryptoKeyVersion"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, v := f.version(req.GetName())
	if v == nil {
		return nil, status.Errorf(codes.NotFound, "CryptoKeyVersion %s not found", req.GetName())
	}
	return proto.Clone(v.Version).(*kmspb.CryptoKeyVersion), nil
}

// ListCryptoKeyVersions lists a key's versions in one page.
func (f *GCP) ListCryptoKeyVersions(ctx context.Context, req *kmspb.ListCryptoKeyVersionsRequest) (*kmspb.ListCryptoKeyVersionsResponse, error) {
	if err := f.enter("ListCryptoKeyVersions"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keys[req.GetParent()]
	if k == nil {
		return nil, status.Errorf(codes.NotFound, "CryptoKey %s not found", req.GetParent())
	}
	out := &kmspb.ListCryptoKeyVersionsResponse{TotalSize: int32(len(k.Versions))}
	for _, v := range k.Versions {
		out.CryptoKeyVersions = append(out.CryptoKeyVersions, proto.Clone(v.Version).(*kmspb.CryptoKeyVersion))
	}
	return out, nil
}

// UpdateCryptoKeyVersion changes a version's state (ENABLED or DISABLED).
func (f *GCP) UpdateCryptoKeyVersion(ctx context.Context, req *kmspb.UpdateCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	if err := f.enter("UpdateCryptoKeyVersion"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, v := f.version(req.GetCryptoKeyVersion().GetName())
	if v == nil {
		return nil, status.Errorf(codes.NotFound, "CryptoKeyVersion %s not found", req.GetCryptoKeyVersion().GetName())
	}
	if len(req.GetUpdateMask().GetPaths()) != 1 || req.GetUpdateMask().GetPaths()[0] != "state" {
		return nil, status.Errorf(codes.InvalidArgument, "the fake updates the state only")
	}
	s := req.GetCryptoKeyVersion().GetState()
	cur := v.Version.GetState()
	if (s != kmspb.CryptoKeyVersion_ENABLED && s != kmspb.CryptoKeyVersion_DISABLED) ||
		(cur != kmspb.CryptoKeyVersion_ENABLED && cur != kmspb.CryptoKeyVersion_DISABLED) {
		return nil, status.Errorf(codes.FailedPrecondition, "cannot move %s from %v to %v", v.Version.GetName(), cur, s)
	}
	v.Version.State = s
	return proto.Clone(v.Version).(*kmspb.CryptoKeyVersion), nil
}

// UpdateCryptoKeyPrimaryVersion sets the primary of an ENCRYPT_DECRYPT key.
func (f *GCP) UpdateCryptoKeyPrimaryVersion(ctx context.Context, req *kmspb.UpdateCryptoKeyPrimaryVersionRequest) (*kmspb.CryptoKey, error) {
	if err := f.enter("UpdateCryptoKeyPrimaryVersion"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k, v := f.version(req.GetName() + "/cryptoKeyVersions/" + req.GetCryptoKeyVersionId())
	if k == nil || v == nil {
		return nil, status.Errorf(codes.NotFound, "version %s of %s not found", req.GetCryptoKeyVersionId(), req.GetName())
	}
	if k.Key.GetPurpose() != kmspb.CryptoKey_ENCRYPT_DECRYPT {
		return nil, status.Errorf(codes.FailedPrecondition, "only ENCRYPT_DECRYPT keys have a primary version")
	}
	if v.Version.GetState() != kmspb.CryptoKeyVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "version %s is %v", v.Version.GetName(), v.Version.GetState())
	}
	k.Key.Primary = proto.Clone(v.Version).(*kmspb.CryptoKeyVersion)
	return proto.Clone(k.Key).(*kmspb.CryptoKey), nil
}

// DestroyCryptoKeyVersion schedules a version's destruction.
func (f *GCP) DestroyCryptoKeyVersion(ctx context.Context, req *kmspb.DestroyCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	if err := f.enter("DestroyCryptoKeyVersion"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k, v := f.version(req.GetName())
	if v == nil {
		return nil, status.Errorf(codes.NotFound, "CryptoKeyVersion %s not found", req.GetName())
	}
	if v.Version.GetState() == kmspb.CryptoKeyVersion_DESTROY_SCHEDULED {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is already scheduled for destruction", req.GetName())
	}
	v.Version.State = kmspb.CryptoKeyVersion_DESTROY_SCHEDULED
	if k.Key.GetPrimary().GetName() == v.Version.GetName() {
		k.Key.Primary = nil
	}
	return proto.Clone(v.Version).(*kmspb.CryptoKeyVersion), nil
}
