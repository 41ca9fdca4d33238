package keymgmt

import (
	"context"
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/aws/aws-sdk-go-v2/aws"
	awskmsapi "github.com/aws/aws-sdk-go-v2/service/kms"
)

// An import whose answer was lost reached Cloud KMS: the distribution has
// the import job, not the version. Removing the distribution destroys that
// version too, instead of leaving the key's material enabled in the cloud.
func TestGCPRemovalAfterALostImport(t *testing.T) {
	ctx := context.Background()
	c := gcpCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "gcp", nil)
	if _, err := e.m.Create(ctx, mount, "k", "aes256-gcm96"); err != nil {
		t.Fatal(err)
	}
	c.lose("ImportCryptoKeyVersion", 1)
	if _, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "gcp", Key: "k", Purposes: []string{"encrypt", "decrypt"}}); err == nil {
		t.Fatal("a distribution whose import answer was lost succeeded")
	}
	d, err := e.m.ReadDistribution(ctx, mount, "gcp", "k")
	if err != nil || len(d.Versions) != 1 || d.Versions[0].ProviderID != "" || d.Versions[0].Progress["import_job"] == "" {
		t.Fatalf("the record after the lost answer: %+v, %v", d, err)
	}
	if err := e.m.RemoveDistribution(ctx, mount, "gcp", "k"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	k := c.gcpFake.Key(gcpRing + "/cryptoKeys/k")
	sdk := c.gcpSDK(t)
	with := 0
	for _, v := range k.Versions {
		if v.Material == nil {
			continue
		}
		with++
		got, err := sdk.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: v.Version.GetName()})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetState() != kmspb.CryptoKeyVersion_DESTROY_SCHEDULED {
			t.Fatalf("after the removal %s is %v, with the key's material", got.GetName(), got.GetState())
		}
	}
	if with != 1 {
		t.Fatalf("%d versions with material in Cloud KMS, want the 1 the lost answer made", with)
	}
}

// A CreateKey whose answer was lost made an AWS key (PendingImport, no
// material); removing the distribution schedules its deletion too.
func TestAWSRemovalAfterALostCreateKey(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	req := keyOn(t, e, c, "aws", mount)
	c.lose("CreateKey", 1)
	if _, err := e.m.Distribute(ctx, mount, req); err == nil {
		t.Fatal("a distribution whose CreateKey answer was lost succeeded")
	}
	if n := len(c.awsFake.Keys()); n != 1 {
		t.Fatalf("%d AWS keys after the lost answer, want 1", n)
	}
	if err := e.m.RemoveDistribution(ctx, mount, "aws", "k"); err != nil {
		t.Fatal(err)
	}
	for _, k := range c.awsFake.Keys() {
		if k.State != "PendingDeletion" {
			t.Fatalf("AWS key %s (%q) is %s after the removal", k.ID, k.Description, k.State)
		}
	}
}

// Looking for a key a lost CreateKey made passes over keys these
// credentials may not describe (another team's): a CreateKey that AWS
// refused made nothing, and removing its distribution must not fail on
// them, nor must a retried import.
func TestAWSLookupPassesOverUnreadableKeys(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	out, err := c.awsSDK().CreateKey(ctx, &awskmsapi.CreateKeyInput{Description: aws.String("another team's key")})
	if err != nil {
		t.Fatal(err)
	}
	c.awsFake.Deny(*out.KeyMetadata.KeyId, "DescribeKey", "ListResourceTags")
	req := keyOn(t, e, c, "aws", mount)
	c.fail("CreateKey", 1)
	if _, err := e.m.Distribute(ctx, mount, req); err == nil {
		t.Fatal("a distribution whose CreateKey was refused succeeded")
	}
	if n := c.created("k"); n != 0 {
		t.Fatalf("%d AWS keys made by a refused CreateKey", n)
	}
	// The retried import looks for the key the first attempt may have made.
	if _, err := e.m.Distribute(ctx, mount, req); err != nil {
		t.Fatalf("retry: %v", err)
	}
	c.fail("CreateKey", 1)
	if _, err := e.m.Rotate(ctx, mount, "k"); err == nil {
		t.Fatal("a rotation whose CreateKey was refused succeeded")
	}
	if err := e.m.RemoveDistribution(ctx, mount, "aws", "k"); err != nil {
		t.Fatalf("removal: %v", err)
	}
}
