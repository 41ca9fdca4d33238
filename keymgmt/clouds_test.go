package keymgmt

import (
	"context"
	"strconv"
	"strings"
	"testing"

	kmsapi "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/keyhold/keyhold/keymgmt/awskms"
	"github.com/keyhold/keyhold/keymgmt/kmsfake"
	"github.com/keyhold/keyhold/keymgmt/provider"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// cloudVersion is one imported version as a fake cloud holds it.
type cloudVersion struct {
	material *kmsfake.Material
	enabled  bool
	gone     bool // deleted or scheduled for deletion/destruction
}

// cloud is a fake cloud under test, reached by the real SDK.
type cloud struct {
	provider   string
	collection string
	creds      map[string]string
	endpoint   string
	factory    provider.Factory
	// versions returns what the cloud holds of the key, by provider id, and
	// the provider id of its current version ("" where the purpose has none).
	versions func(key string) (map[string]cloudVersion, string)
	// created counts the key versions the cloud ever created for the key.
	created func(key string) int
	// importOp is the operation that imports material.
	importOp string
	fail     func(op string, n int)
	lose     func(op string, n int)
	// azure is the Azure fake, for tests that set up a vault directly.
	azure *kmsfake.Azure
	// awsFake and gcpFake are the fake behind an AWS or GCP cloud.
	awsFake *kmsfake.AWS
	gcpFake *kmsfake.GCP
}

func awsCloud(t *testing.T) *cloud {
	f := kmsfake.NewAWS("eu-west-1")
	srv := f.Serve()
	t.Cleanup(srv.Close)
	mine := func(key string) []kmsfake.AWSKey {
		var out []kmsfake.AWSKey
		for _, k := range f.Keys() {
			if k.Tags["keyhold-key"] == key {
				out = append(out, k)
			}
		}
		return out
	}
	return &cloud{
		provider: provider.AWSKMS, collection: "eu-west-1", endpoint: srv.URL, factory: awskms.New,
		creds: map[string]string{"access_key": "AKIAFAKEFAKEFAKE", "secret_key": "aws-secret-key-never-stored-in-clear"},
		versions: func(key string) (map[string]cloudVersion, string) {
			out := map[string]cloudVersion{}
			cur := ""
			alias := f.Alias("alias/" + key)
			for _, k := range mine(key) {
				out[k.ARN] = cloudVersion{material: k.Material, enabled: k.State == "Enabled", gone: k.State == "PendingDeletion"}
				if k.ID == alias {
					cur = k.ARN
				}
			}
			return out, cur
		},
		created:  func(key string) int { return len(mine(key)) },
		importOp: "ImportKeyMaterial",
		fail:     f.FailNext, lose: f.LoseNext,
		awsFake: f,
	}
}

// awsSDK is an AWS KMS client of the customer's, in the account the cloud
// under test is.
func (c *cloud) awsSDK() *kms.Client {
	creds := aws.Credentials{AccessKeyID: c.creds["access_key"], SecretAccessKey: c.creds["secret_key"]}
	return kms.New(kms.Options{Region: c.collection, BaseEndpoint: aws.String(c.endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil })})
}

const gcpRing = "projects/keyhold-test/locations/europe-west1/keyRings/ring1"

func gcpCloud(t *testing.T) *cloud {
	f := kmsfake.NewGCP()
	addr, stop, err := f.Serve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	sa, err := kmsfake.ServiceAccount()
	if err != nil {
		t.Fatal(err)
	}
	return &cloud{
		provider: provider.GCPCKMS, collection: gcpRing, endpoint: addr, factory: kmsfake.GCPFactory(),
		creds: map[string]string{"service_account_file": string(sa)},
		versions: func(key string) (map[string]cloudVersion, string) {
			out := map[string]cloudVersion{}
			k := f.Key(gcpRing + "/cryptoKeys/" + key)
			if k == nil {
				return out, ""
			}
			for _, v := range k.Versions {
				st := v.Version.GetState()
				out[v.Version.GetName()] = cloudVersion{material: v.Material, enabled: st == kmspb.CryptoKeyVersion_ENABLED,
					gone: st == kmspb.CryptoKeyVersion_DESTROY_SCHEDULED}
			}
			return out, k.Key.GetPrimary().GetName()
		},
		created: func(key string) int {
			if k := f.Key(gcpRing + "/cryptoKeys/" + key); k != nil {
				return len(k.Versions)
			}
			return 0
		},
		importOp: "ImportCryptoKeyVersion",
		fail:     f.FailNext, lose: f.LoseNext,
		gcpFake: f,
	}
}

// gcpSDK is a Cloud KMS client of the customer's, on the key ring the
// cloud under test is.
func (c *cloud) gcpSDK(t *testing.T) *kmsapi.KeyManagementClient {
	t.Helper()
	cl, err := kmsapi.NewKeyManagementClient(context.Background(), option.WithEndpoint(c.endpoint), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func azureCloud(t *testing.T) *cloud {
	// A Managed HSM, the only Azure target that takes aes256-gcm96 keys.
	f := kmsfake.NewAzure("https://vault1.managedhsm.azure.net")
	return &cloud{
		provider: provider.AzureKeyVault, collection: "vault1", endpoint: f.VaultURL + "/",
		factory: f.Factory(),
		creds:   map[string]string{"tenant_id": "tenant", "client_id": "client", "client_secret": "azure-client-secret-never-in-clear"},
		versions: func(key string) (map[string]cloudVersion, string) {
			out := map[string]cloudVersion{}
			k := f.Key(key)
			if k == nil {
				return out, ""
			}
			for _, v := range k.Versions {
				out[v.ID] = cloudVersion{material: v.Material, enabled: v.Enabled, gone: k.Deleted}
			}
			if k.Deleted || len(k.Versions) == 0 {
				return out, ""
			}
			return out, k.Versions[len(k.Versions)-1].ID // Azure uses the newest version
		},
		created: func(key string) int {
			if k := f.Key(key); k != nil {
				return len(k.Versions)
			}
			return 0
		},
		importOp: "ImportKey",
		fail:     f.FailNext, lose: f.LoseNext,
		azure: f,
	}
}

// providers returns factories where each cloud's provider name maps to the
// fake-backed factory.
func providers(cs ...*cloud) map[string]provider.Factory {
	out := DefaultProviders()
	for _, c := range cs {
		out[c.provider] = c.factory
	}
	return out
}

func (c *cloud) write(t *testing.T, ctx context.Context, m *Manager, mount, name string, extra func(u *KMSUpdate)) {
	t.Helper()
	u := KMSUpdate{Provider: &c.provider, KeyCollection: &c.collection, Credentials: c.creds}
	if c.endpoint != "" {
		u.Endpoint = &c.endpoint
	}
	if extra != nil {
		extra(&u)
	}
	if _, err := m.WriteKMS(ctx, mount, name, u); err != nil {
		t.Fatalf("write kms: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// distributeAES makes an AES key in the test mount and distributes it, for
// encryption, to the kms of that name.
func distributeAES(t *testing.T, e *testEnv, kms, key string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.m.Create(ctx, mount, key, "aes256-gcm96"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: kms, Key: key, Purposes: []string{"encrypt", "decrypt"}}); err != nil {
		t.Fatal(err)
	}
}
