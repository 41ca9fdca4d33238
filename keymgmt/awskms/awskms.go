// Package awskms distributes keys to AWS KMS (BYOK) through the AWS SDK for
// Go v2.
//
// Each appliance version of a key is its own AWS KMS key (Origin EXTERNAL),
// created, given its material with GetParametersForImport and
// ImportKeyMaterial, and the alias alias/<key name> is moved to the newest.
// Why not AWS's on-demand rotation of imported keys (one AWS key, several
// key materials): it exists for symmetric encryption keys only, so RSA and EC
// keys would need this scheme anyway, and AWS cannot disable one material of
// a key, which min_enabled_version needs. One key per version gives every
// key type the same behaviour, per-version Enable/DisableKey, and old
// ciphertexts keep naming the key (and so the material) that made them.
//
// The alias is moved, and deleted on removal, only while it points at one of
// this appliance key's AWS keys (tagged keyhold-key-id with its id, or named
// by the distribution's records): an alias of the same name that the
// customer or a same-named key of another mount owns is never taken over.
package awskms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/keymgmt/provider"
	"github.com/keyhold/keyhold/wrap"
)

// Client is the part of the AWS KMS SDK client the provider calls: the seam
// where tests plug in a client pointed at a fake.
type Client interface {
	CreateKey(ctx context.Context, in *kms.CreateKeyInput, opts ...func(*kms.Options)) (*kms.CreateKeyOutput, error)
	DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, opts ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
	GetParametersForImport(ctx context.Context, in *kms.GetParametersForImportInput, opts ...func(*kms.Options)) (*kms.GetParametersForImportOutput, error)
	ImportKeyMaterial(ctx context.Context, in *kms.ImportKeyMaterialInput, opts ...func(*kms.Options)) (*kms.ImportKeyMaterialOutput, error)
	CreateAlias(ctx context.Context, in *kms.CreateAliasInput, opts ...func(*kms.Options)) (*kms.CreateAliasOutput, error)
	UpdateAlias(ctx context.Context, in *kms.UpdateAliasInput, opts ...func(*kms.Options)) (*kms.UpdateAliasOutput, error)
	DeleteAlias(ctx context.Context, in *kms.DeleteAliasInput, opts ...func(*kms.Options)) (*kms.DeleteAliasOutput, error)
	EnableKey(ctx context.Context, in *kms.EnableKeyInput, opts ...func(*kms.Options)) (*kms.EnableKeyOutput, error)
	DisableKey(ctx context.Context, in *kms.DisableKeyInput, opts ...func(*kms.Options)) (*kms.DisableKeyOutput, error)
	ScheduleKeyDeletion(ctx context.Context, in *kms.ScheduleKeyDeletionInput, opts ...func(*kms.Options)) (*kms.ScheduleKeyDeletionOutput, error)
	ListKeys(ctx context.Context, in *kms.ListKeysInput, opts ...func(*kms.Options)) (*kms.ListKeysOutput, error)
	ListResourceTags(ctx context.Context, in *kms.ListResourceTagsInput, opts ...func(*kms.Options)) (*kms.ListResourceTagsOutput, error)
}

var _ Client = (*kms.Client)(nil)

// Provider is one AWS account and region.
type Provider struct {
	cfg provider.Config
	c   Client
}

var _ provider.Provider = (*Provider)(nil)

var regionRe = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)

// New builds the SDK client from the configuration: key_collection is the
// region; credentials access_key, secret_key and optionally session_token.
func New(ctx context.Context, cfg provider.Config) (provider.Provider, error) {
	if !regionRe.MatchString(cfg.KeyCollection) {
		return nil, fault.New(fault.BadInput, "key_collection must be an AWS region such as us-east-1, got %q", cfg.KeyCollection)
	}
	ak, sk := cfg.Credentials["access_key"], cfg.Credentials["secret_key"]
	if ak == "" || sk == "" {
		return nil, fault.New(fault.BadInput, "awskms credentials need access_key and secret_key (and session_token for temporary credentials)")
	}
	for k := range cfg.Credentials {
		if k != "access_key" && k != "secret_key" && k != "session_token" {
			return nil, fault.New(fault.BadInput, "unknown awskms credential %q (access_key, secret_key, session_token)", k)
		}
	}
	creds := aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk, SessionToken: cfg.Credentials["session_token"], Source: "keyhold"}
	opts := kms.Options{
		Region:      cfg.KeyCollection,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
		HTTPClient:  &http.Client{Timeout: cfg.CallTimeout()},
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	return NewWithClient(cfg, kms.New(opts)), nil
}

// NewWithClient returns a provider over a given client.
func NewWithClient(cfg provider.Config, c Client) *Provider { return &Provider{cfg: cfg, c: c} }

var aliasNameRe = regexp.MustCompile(`^[A-Za-z0-9/_-]{1,200}$`)

type spec struct {
	keySpec types.KeySpec
	usage   types.KeyUsageType
}

func (p *Provider) spec(k provider.Key) (spec, error) {
	if k.Protection != provider.ProtectionHSM {
		return spec{}, fault.New(fault.BadInput, "AWS KMS keys are always HSM-protected: use protection=hsm")
	}
	if !aliasNameRe.MatchString(k.Name) {
		return spec{}, fault.New(fault.BadInput, "key name %q cannot be an AWS alias (letters, digits, '/', '_', '-')", k.Name)
	}
	switch k.Type {
	case "aes256-gcm96":
		return spec{types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt}, provider.CheckPurposes("awskms", k, "encrypt", "decrypt")
	case "rsa-2048", "rsa-3072", "rsa-4096":
		ks := types.KeySpec("RSA_" + k.Type[4:])
		if k.Has("sign") || k.Has("verify") {
			return spec{ks, types.KeyUsageTypeSignVerify}, provider.CheckPurposes("awskms (a key is either sign/verify or encrypt/decrypt)", k, "sign", "verify")
		}
		return spec{ks, types.KeyUsageTypeEncryptDecrypt}, provider.CheckPurposes("awskms", k, "encrypt", "decrypt")
	case "ecdsa-p256", "ecdsa-p384", "ecdsa-p521":
		return spec{types.KeySpec("ECC_NIST_P" + k.Type[7:]), types.KeyUsageTypeSignVerify}, provider.CheckPurposes("awskms", k, "sign", "verify")
	}
	return spec{}, fault.New(fault.BadInput, "awskms cannot take a %s key", k.Type)
}

// Check refuses what AWS KMS cannot import.
func (p *Provider) Check(k provider.Key) error {
	_, err := p.spec(k)
	return err
}

// scheme picks the wrapping algorithm: SHA-256 unless the provider is set to
// SHA-1; RSA-OAEP alone for symmetric keys where the token can do the hash
// itself, RSA-AES key wrap otherwise.
func (p *Provider) scheme(k provider.Key) (wrap.Scheme, types.WrappingKeySpec) {
	sym := k.Type == "aes256-gcm96"
	sha1 := p.cfg.OAEPHash == "sha1"
	switch {
	case sym && sha1:
		return wrap.AWSRSAESOAEPSHA1, types.WrappingKeySpecRsa2048
	case sym && p.cfg.TokenOAEPSHA256:
		return wrap.AWSRSAESOAEPSHA256, types.WrappingKeySpecRsa2048
	case sym:
		return wrap.AWSRSAAESKeyWrapSHA256, types.WrappingKeySpecRsa2048
	case sha1:
		return wrap.AWSRSAAESKeyWrapSHA1, types.WrappingKeySpecRsa4096
	}
	return wrap.AWSRSAAESKeyWrapSHA256, types.WrappingKeySpecRsa4096
}

func (p *Provider) fail(op string, err error) error {
	var nf *types.NotFoundException
	kind := fault.BadInput
	if errors.As(err, &nf) {
		kind = fault.NotFound
	}
	var ae interface{ ErrorCode() string }
	if !errors.As(err, &ae) {
		kind = fault.Unavailable // no answer from AWS: network, timeout
	}
	return provider.CloudError(p.cfg, kind, "aws kms "+op, err)
}

// Import creates the version's AWS key (once: its id is saved at once) and
// imports the material unless the key already has it.
func (p *Provider) Import(ctx context.Context, req *provider.ImportRequest) error {
	sp, err := p.spec(req.Key)
	if err != nil {
		return err
	}
	v := req.Version
	if v.Progress == nil {
		v.Progress = map[string]string{}
	}
	keyID := v.Progress["key_id"]
	if keyID == "" && v.Progress["create_started"] != "" {
		// An earlier CreateKey may have made the key and lost its answer:
		// find it by its description before making another.
		found, arn, err := p.findCreated(ctx, description(req.Key, v.Version))
		if err != nil {
			return err
		}
		if found != "" {
			keyID, v.ProviderID = found, arn
			v.Progress["key_id"] = keyID
			if err := req.Save(ctx); err != nil {
				return err
			}
		}
	}
	if keyID == "" {
		// An alias the key could not take is found before an AWS key is
		// made and the key material imported into it for nothing.
		if _, err := p.aliasTaken(ctx, req.Key, req.Versions); err != nil {
			return err
		}
		v.Progress["create_started"] = "1"
		if err := req.Save(ctx); err != nil {
			return err
		}
		var out *kms.CreateKeyOutput
		err := provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
			var err error
			out, err = p.c.CreateKey(ctx, &kms.CreateKeyInput{
				Origin:      types.OriginTypeExternal,
				KeySpec:     sp.keySpec,
				KeyUsage:    sp.usage,
				Description: aws.String(description(req.Key, v.Version)),
				Tags: []types.Tag{
					{TagKey: aws.String("keyhold-key"), TagValue: aws.String(req.Key.Name)},
					{TagKey: aws.String("keyhold-version"), TagValue: aws.String(strconv.Itoa(v.Version))},
					{TagKey: aws.String(keyIDTag), TagValue: aws.String(req.Key.ID)},
				},
			})
			return err
		})
		if err != nil {
			return p.fail("CreateKey", err)
		}
		if out.KeyMetadata == nil || out.KeyMetadata.KeyId == nil {
			return fault.New(fault.Unavailable, "%s: aws kms CreateKey answered no key id", p.cfg.Name)
		}
		keyID = *out.KeyMetadata.KeyId
		v.Progress["key_id"] = keyID
		if out.KeyMetadata.Arn != nil {
			v.ProviderID = *out.KeyMetadata.Arn
		} else {
			v.ProviderID = keyID
		}
		if err := req.Save(ctx); err != nil {
			return err
		}
	}
	// A retry after ImportKeyMaterial succeeded but its answer was lost
	// finds the key already out of PendingImport.
	var desc *kms.DescribeKeyOutput
	err = provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
		var err error
		desc, err = p.c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
		return err
	})
	if err != nil {
		return p.fail("DescribeKey", err)
	}
	if desc.KeyMetadata == nil {
		return fault.New(fault.Unavailable, "%s: aws kms DescribeKey answered no metadata", p.cfg.Name)
	}
	switch desc.KeyMetadata.KeyState {
	case types.KeyStateEnabled, types.KeyStateDisabled:
		// The material an earlier attempt sent: its scheme and path were
		// recorded before it was sent.
		v.Imported, v.Enabled = true, desc.KeyMetadata.KeyState == types.KeyStateEnabled
		v.Scheme, v.Path = v.Progress["scheme"], v.Progress["path"]
		return req.Save(ctx)
	case types.KeyStatePendingImport:
	default:
		return fault.New(fault.Conflict, "%s: AWS key %s is in state %s and cannot take key material", p.cfg.Name, keyID, desc.KeyMetadata.KeyState)
	}
	scheme, wks := p.scheme(req.Key)
	var params *kms.GetParametersForImportOutput
	err = provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
		var err error
		params, err = p.c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{
			KeyId: aws.String(keyID), WrappingAlgorithm: types.AlgorithmSpec(scheme), WrappingKeySpec: wks,
		})
		return err
	})
	if err != nil {
		return p.fail("GetParametersForImport", err)
	}
	pub, err := wrap.ParsePublicKey(params.PublicKey)
	if err != nil {
		return fault.Wrap(fault.BadInput, err, "%s: the wrapping key AWS sent is unusable: %s", p.cfg.Name, fault.KindOf(err))
	}
	if len(params.ImportToken) == 0 {
		return fault.New(fault.Unavailable, "%s: aws kms GetParametersForImport answered no import token", p.cfg.Name)
	}
	res, err := req.Wrap(ctx, scheme, pub, "")
	if err != nil {
		return err
	}
	// Recorded before the import is sent, for a retry that finds the
	// material imported after its answer was lost.
	v.Progress["scheme"], v.Progress["path"] = string(scheme), string(res.Path)
	if err := req.Save(ctx); err != nil {
		return err
	}
	err = provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
		_, err := p.c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
			KeyId:                aws.String(keyID),
			ImportToken:          params.ImportToken,
			EncryptedKeyMaterial: res.Blob,
			ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire,
		})
		return err
	})
	if err != nil {
		return p.fail("ImportKeyMaterial", err)
	}
	v.Imported, v.Enabled, v.Scheme, v.Path = true, true, string(scheme), string(res.Path)
	return req.Save(ctx)
}

func aliasName(k provider.Key) string { return "alias/" + k.Name }

// description names a version's AWS key uniquely: the appliance's key id
// tells apart keys that reused a name.
func description(k provider.Key, version int) string {
	return fmt.Sprintf("keyhold: %s version %d (key id %s)", k.Name, version, k.ID)
}

// findCreated looks through the account's keys for the one a lost CreateKey
// made (not pending deletion); it returns its id and ARN, or "".
func (p *Provider) findCreated(ctx context.Context, desc string) (string, string, error) {
	var marker *string
	for {
		var page *kms.ListKeysOutput
		err := provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
			var err error
			page, err = p.c.ListKeys(ctx, &kms.ListKeysInput{Marker: marker})
			return err
		})
		if err != nil {
			return "", "", p.fail("ListKeys", err)
		}
		for _, e := range page.Keys {
			if e.KeyId == nil {
				continue
			}
			var d *kms.DescribeKeyOutput
			err := provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
				var err error
				d, err = p.c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: e.KeyId})
				return err
			})
			var nf *types.NotFoundException
			if accessDenied(err) || errors.As(err, &nf) {
				// A key whose policy hides it from these credentials (or
				// gone since the listing) was not made by them.
				continue
			}
			if err != nil {
				return "", "", p.fail("DescribeKey", err)
			}
			m := d.KeyMetadata
			if m != nil && m.Description != nil && *m.Description == desc && m.KeyState != types.KeyStatePendingDeletion && m.Origin == types.OriginTypeExternal {
				return *e.KeyId, aws.ToString(m.Arn), nil
			}
		}
		if !page.Truncated || page.NextMarker == nil {
			return "", "", nil
		}
		marker = page.NextMarker
	}
}

// keyIDTag is the tag that says which appliance key an AWS key was made
// for: names can be shared (two mounts) and reused, ids cannot.
const keyIDTag = "keyhold-key-id"

// aliasTarget returns the id and ARN of the key alias/<name> points at, or
// "" if there is no such alias. A key whose policy does not let these
// credentials read it is not one keyhold made (it reads its own keys): its
// id comes back as unreadable.
func (p *Provider) aliasTarget(ctx context.Context, k provider.Key) (string, string, error) {
	var d *kms.DescribeKeyOutput
	err := provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
		var err error
		d, err = p.c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(aliasName(k))})
		return err
	})
	var nf *types.NotFoundException
	if errors.As(err, &nf) {
		return "", "", nil
	}
	if accessDenied(err) {
		return unreadable, "", nil
	}
	if err != nil {
		return "", "", p.fail("DescribeKey", err)
	}
	if d.KeyMetadata == nil || d.KeyMetadata.KeyId == nil {
		return "", "", fault.New(fault.Unavailable, "%s: aws kms DescribeKey of %s answered no key id", p.cfg.Name, aliasName(k))
	}
	return *d.KeyMetadata.KeyId, aws.ToString(d.KeyMetadata.Arn), nil
}

// unreadable stands for the id of a key these credentials may not read.
const unreadable = "(a key these credentials may not read)"

// accessDenied tells whether AWS refused a call for want of permission.
func accessDenied(err error) bool {
	var ae interface{ ErrorCode() string }
	return errors.As(err, &ae) && ae.ErrorCode() == "AccessDeniedException"
}

// mine reports whether an AWS key is one keyhold made for this appliance
// key: one of the versions the records name, or a key tagged with the
// key's id (keys made before the tag existed are known by the records only).
// A key whose tags these credentials may not read is not one keyhold made.
func (p *Provider) mine(ctx context.Context, k provider.Key, vs []*provider.Version, keyID, arn string) (bool, error) {
	if keyID == unreadable {
		return false, nil
	}
	for _, v := range vs {
		if id := v.Progress["key_id"]; (id != "" && id == keyID) || (arn != "" && v.ProviderID == arn) {
			return true, nil
		}
	}
	var marker *string
	for {
		var page *kms.ListResourceTagsOutput
		err := provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
			var err error
			page, err = p.c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(keyID), Marker: marker})
			return err
		})
		if accessDenied(err) {
			return false, nil
		}
		if err != nil {
			return false, p.fail("ListResourceTags", err)
		}
		for _, t := range page.Tags {
			if aws.ToString(t.TagKey) == keyIDTag {
				return k.ID != "" && aws.ToString(t.TagValue) == k.ID, nil
			}
		}
		if !page.Truncated || page.NextMarker == nil {
			return false, nil
		}
		marker = page.NextMarker
	}
}

// MakeCurrent points alias/<name> at the version's key. An alias that
// points at a key that is not this key's (the customer's own, or another
// appliance key's of the same name) is left as it is and the call fails:
// moving it would change what the alias's users encrypt with.
func (p *Provider) MakeCurrent(ctx context.Context, k provider.Key, _ provider.State, v *provider.Version, vs []*provider.Version) error {
	keyID := v.Progress["key_id"]
	target, err := p.aliasTaken(ctx, k, vs)
	if err != nil {
		return err
	}
	if target == "" {
		err := provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
			_, err := p.c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(aliasName(k)), TargetKeyId: aws.String(keyID)})
			return err
		})
		if err != nil {
			return p.fail("CreateAlias", err)
		}
		return nil
	}
	if target == keyID {
		return nil
	}
	err = provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
		_, err := p.c.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String(aliasName(k)), TargetKeyId: aws.String(keyID)})
		return err
	})
	if err != nil {
		return p.fail("UpdateAlias", err)
	}
	return nil
}

// aliasTaken returns the AWS key alias/<name> points at ("" if there is no
// such alias), and fails with a conflict if that key is not one of this
// key's (mine).
func (p *Provider) aliasTaken(ctx context.Context, k provider.Key, vs []*provider.Version) (string, error) {
	target, arn, err := p.aliasTarget(ctx, k)
	if err != nil || target == "" {
		return "", err
	}
	ok, err := p.mine(ctx, k, vs, target, arn)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fault.New(fault.Conflict, "%s: %s points at AWS key %s, which is not this key's (it is the customer's, or another key's of the same name); the alias was left as it is",
			p.cfg.Name, aliasName(k), target)
	}
	return target, nil
}

// Reaches checks that these credentials reach the AWS keys the records
// name: credentials of another account (the region is configured, the
// account is the credentials') reach none of them, and a sync with them
// would make the key's next versions there. The newest key that answers
// is enough; one that is gone (deleted in AWS) is passed over, one these
// credentials may not read fails.
func (p *Provider) Reaches(ctx context.Context, k provider.Key, vs []*provider.Version) error {
	tried := ""
	for i := len(vs) - 1; i >= 0; i-- {
		id := vs[i].ProviderID
		if id == "" {
			id = vs[i].Progress["key_id"]
		}
		if id == "" {
			continue
		}
		err := provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
			_, err := p.c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
			return err
		})
		var nf *types.NotFoundException
		switch {
		case err == nil:
			return nil
		case errors.As(err, &nf):
			tried = id
		case accessDenied(err):
			return fault.New(fault.Conflict, "%s: these credentials may not read AWS key %s, to which version %d of %s is distributed: they are of another account, or lack kms:DescribeKey; to move to another account remove the distributions first",
				p.cfg.Name, id, vs[i].Version, k.Name)
		default:
			return p.fail("DescribeKey", err)
		}
	}
	if tried != "" {
		return fault.New(fault.Conflict, "%s: with these credentials none of the AWS keys %s is distributed to exists (%s among them): they are of another account, or the keys were deleted in AWS; to move to another account remove the distributions first",
			p.cfg.Name, k.Name, tried)
	}
	return nil
}

// SetEnabled enables or disables the version's AWS key.
func (p *Provider) SetEnabled(ctx context.Context, _ provider.Key, _ provider.State, v *provider.Version, enabled bool) error {
	keyID := aws.String(v.Progress["key_id"])
	op := "DisableKey"
	err := provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
		if enabled {
			op = "EnableKey"
			_, err := p.c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: keyID})
			return err
		}
		_, err := p.c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: keyID})
		return err
	})
	if err != nil {
		return p.fail(op, err)
	}
	v.Enabled = enabled
	return nil
}

// Remove deletes the alias if it points at one of this key's AWS keys and
// schedules every version's key for deletion (AWS's shortest waiting
// period, 7 days), including one a CreateKey made whose answer was lost
// (found by its description, as a retried import would). An alias pointing
// elsewhere is not this key's to delete.
func (p *Provider) Remove(ctx context.Context, k provider.Key, _ provider.State, vs []*provider.Version) error {
	var nf *types.NotFoundException
	target, arn, err := p.aliasTarget(ctx, k)
	if err != nil {
		return err
	}
	ok := false
	if target != "" {
		if ok, err = p.mine(ctx, k, vs, target, arn); err != nil {
			return err
		}
	}
	if ok {
		err := provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
			_, err := p.c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(aliasName(k))})
			return err
		})
		if err != nil && !errors.As(err, &nf) {
			return p.fail("DeleteAlias", err)
		}
	}
	for _, v := range vs {
		keyID := v.Progress["key_id"]
		if keyID == "" && v.Progress["create_started"] != "" {
			// A CreateKey whose answer was lost may have made the key.
			found, _, err := p.findCreated(ctx, description(k, v.Version))
			if err != nil {
				return err
			}
			keyID = found
		}
		if keyID == "" {
			continue
		}
		err := provider.Call(ctx, p.cfg.Timeout, func(ctx context.Context) error {
			_, err := p.c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)})
			return err
		})
		var inv *types.KMSInvalidStateException
		if err != nil && !errors.As(err, &nf) && !errors.As(err, &inv) {
			return p.fail("ScheduleKeyDeletion", err)
		}
	}
	return nil
}
