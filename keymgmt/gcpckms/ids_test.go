package gcpckms

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"
	"github.com/keyhold/keyhold/keymgmt/provider"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// cloudKMSID is the id rule of Cloud KMS's documentation, for crypto keys
// and import jobs.
var cloudKMSID = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)

// idClient takes the ids of new crypto keys and import jobs as Cloud KMS
// does (cloudKMSID) and records them; it stops the import at the job.
type idClient struct {
	Client
	cryptoKeys, jobs []string
}

func (c *idClient) CreateCryptoKey(_ context.Context, r *kmspb.CreateCryptoKeyRequest, _ ...gax.CallOption) (*kmspb.CryptoKey, error) {
	c.cryptoKeys = append(c.cryptoKeys, r.GetCryptoKeyId())
	if !cloudKMSID.MatchString(r.GetCryptoKeyId()) {
		return nil, status.Errorf(codes.InvalidArgument, "bad crypto_key_id")
	}
	ck := r.GetCryptoKey()
	ck.Name = r.GetParent() + "/cryptoKeys/" + r.GetCryptoKeyId()
	return ck, nil
}

func (c *idClient) GetImportJob(context.Context, *kmspb.GetImportJobRequest, ...gax.CallOption) (*kmspb.ImportJob, error) {
	return nil, status.Error(codes.NotFound, "no such job")
}

func (c *idClient) CreateImportJob(_ context.Context, r *kmspb.CreateImportJobRequest, _ ...gax.CallOption) (*kmspb.ImportJob, error) {
	c.jobs = append(c.jobs, r.GetImportJobId())
	if !cloudKMSID.MatchString(r.GetImportJobId()) {
		return nil, status.Errorf(codes.InvalidArgument, "bad import_job_id")
	}
	return nil, status.Error(codes.Unavailable, "the test stops here")
}

func (c *idClient) Close() error { return nil }

// A name Cloud KMS takes as a crypto key id must also give an import job id
// it takes, at every version; a name it does not take is refused before
// anything is created.
func TestCloudKMSIDs(t *testing.T) {
	ring := "projects/p/locations/global/keyRings/r"
	for _, tc := range []struct {
		name    string
		version int
	}{
		{strings.Repeat("a", 63), 1},
		{strings.Repeat("b", 44), 1},
		{strings.Repeat("c", 43), 10},
		{"short_name-1", 123456},
	} {
		c := &idClient{}
		p := NewWithClient(provider.Config{Name: "gcp", KeyCollection: ring}, c)
		k := provider.Key{ID: "0123456789abcdef", Name: tc.name, Type: "aes256-gcm96", Purposes: []string{"encrypt", "decrypt"}, Protection: "hsm"}
		if err := p.Check(k); err != nil {
			t.Fatalf("Check(%q): %v", tc.name, err)
		}
		req := &provider.ImportRequest{Key: k, State: provider.State{}, Version: &provider.Version{Version: tc.version},
			Save: func(context.Context) error { return nil }}
		_ = p.Import(context.Background(), req)
		if len(c.cryptoKeys) != 1 || len(c.jobs) != 1 {
			t.Fatalf("name of %d characters, version %d: crypto keys %q, jobs %q", len(tc.name), tc.version, c.cryptoKeys, c.jobs)
		}
		if !cloudKMSID.MatchString(c.jobs[0]) || !strings.HasPrefix(c.jobs[0], "keyhold-") || !strings.Contains(c.jobs[0], "-v"+strconv.Itoa(tc.version)+"-") {
			t.Fatalf("name of %d characters, version %d: import job id %q (%d characters)", len(tc.name), tc.version, c.jobs[0], len(c.jobs[0]))
		}
	}
	p := NewWithClient(provider.Config{Name: "gcp", KeyCollection: ring}, &idClient{})
	for _, name := range []string{"dotted.name", strings.Repeat("d", 64), "sp ace", ""} {
		k := provider.Key{ID: "x", Name: name, Type: "aes256-gcm96", Purposes: []string{"encrypt", "decrypt"}, Protection: "hsm"}
		if err := p.Check(k); err == nil || !strings.Contains(err.Error(), "1 to 63") {
			t.Errorf("Check(%q): %v, want a refusal naming Cloud KMS's id rule", name, err)
		}
	}
}
