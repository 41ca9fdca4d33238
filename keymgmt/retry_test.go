package keymgmt

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/keymgmt/provider"
)

// The retry job completes a distribution that a failure left unfinished,
// without a second copy in the cloud, and leaves finished ones alone.
func TestRetryDistributions(t *testing.T) {
	for _, mk := range []func(*testing.T) *cloud{awsCloud, gcpCloud} {
		c := mk(t)
		t.Run("ok "+c.provider, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, Options{Providers: providers(c)})
			c.write(t, ctx, e.m, mount, "k1", nil)
			for _, name := range []string{"fails", "works"} {
				if _, err := e.m.Create(ctx, mount, name, "rsa-2048"); err != nil {
					t.Fatal(err)
				}
			}
			c.fail(c.importOp, 1)
			if _, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "k1", Key: "fails", Purposes: []string{"sign", "verify"}}); err == nil {
				t.Fatal("distribute with a failing import succeeded")
			}
			if _, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "k1", Key: "works", Purposes: []string{"sign", "verify"}}); err != nil {
				t.Fatal(err)
			}
			r, err := e.m.RetryDistributions(ctx)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if r.Tried != 1 || r.Done != 1 || len(r.Errors) != 0 {
				t.Fatalf("retry pass: %+v", r)
			}
			d, err := e.m.ReadDistribution(ctx, mount, "k1", "fails")
			if err != nil || d.Status != StatusDistributed || d.Error != "" {
				t.Fatalf("after the retry: %+v %v", d, err)
			}
			e.expect(t, c, "k1", "fails", map[int]bool{1: true}, 1)
			if n := c.created("fails"); n != 1 {
				t.Fatalf("%d versions created in the cloud for one", n)
			}
			if r, err := e.m.RetryDistributions(ctx); err != nil || r.Tried != 0 {
				t.Fatalf("second pass: %+v %v", r, err)
			}
			// A failure during the pass is reported and kept for the next one.
			if _, err := e.m.Rotate(ctx, mount, "works"); err != nil {
				t.Fatal(err)
			}
			c.fail(c.importOp, 1)
			if _, err := e.m.Rotate(ctx, mount, "works"); err == nil {
				t.Fatal("rotate with a failing push succeeded")
			}
			c.fail(c.importOp, 1)
			if r, err := e.m.RetryDistributions(ctx); err != nil || r.Tried != 1 || r.Done != 0 || len(r.Errors) != 1 {
				t.Fatalf("pass with a failure: %+v %v", r, err)
			}
			if r, err := e.m.RetryDistributions(ctx); err != nil || r.Done != 1 {
				t.Fatalf("pass after the failure: %+v %v", r, err)
			}
			e.expect(t, c, "k1", "works", map[int]bool{1: true, 2: true, 3: true}, 3)
		})
	}
}

// A rotation does not bring back a distribution whose removal failed
// part-way: the record stays "removing" and the cloud gets no new version.
func TestRotationLeavesAFailedRemovalAlone(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	e := newEnv(t, Options{Providers: providers(c)})
	c.write(t, ctx, e.m, mount, "aws", nil)
	distributeAES(t, e, "aws", "k")
	c.fail("DeleteAlias", 1)
	if err := e.m.RemoveDistribution(ctx, mount, "aws", "k"); err == nil {
		t.Fatal("the removal succeeded though the cloud failed")
	}
	before := c.created("k")
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if got := c.created("k"); got != before {
		t.Fatalf("the rotation imported into the cloud: %d keys, was %d", got, before)
	}
	d, err := e.m.ReadDistribution(ctx, mount, "aws", "k")
	if err != nil || d.Status != StatusRemoving {
		t.Fatalf("distribution after the rotation: %+v %v", d, err)
	}
}

// holdImports wraps a provider so that an import waits until released.
type holdImports struct {
	provider.Provider
	started, release chan struct{}
}

func (h *holdImports) Import(ctx context.Context, req *provider.ImportRequest) error {
	h.started <- struct{}{}
	<-h.release
	return h.Provider.Import(ctx, req)
}

// A removal that starts while a rotation imports removes the version the
// rotation added too: it reads the distribution under the key's lock.
func TestRemovalAfterARotationRemovesItsVersion(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	hold := &holdImports{started: make(chan struct{}, 4), release: make(chan struct{})}
	holding := atomic.Bool{}
	provs := providers(c)
	provs[c.provider] = func(ctx context.Context, cfg provider.Config) (provider.Provider, error) {
		p, err := c.factory(ctx, cfg)
		if err != nil || !holding.Load() {
			return p, err
		}
		return &holdImports{Provider: p, started: hold.started, release: hold.release}, nil
	}
	e := newEnv(t, Options{Providers: provs})
	c.write(t, ctx, e.m, mount, "aws", nil)
	distributeAES(t, e, "aws", "k")
	holding.Store(true)
	rotated := make(chan error, 1)
	go func() { _, err := e.m.Rotate(ctx, mount, "k"); rotated <- err }()
	<-hold.started // the rotation holds the key's lock, importing v2
	holding.Store(false)
	removed := make(chan error, 1)
	go func() { removed <- e.m.RemoveDistribution(ctx, mount, "aws", "k") }()
	time.Sleep(100 * time.Millisecond) // the removal has read the record and waits for the lock
	close(hold.release)
	if err := <-rotated; err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if err := <-removed; err != nil {
		t.Fatalf("remove: %v", err)
	}
	versions, _ := c.versions("k")
	for arn, v := range versions {
		if v.enabled && !v.gone {
			t.Errorf("%s is still live in the cloud after the removal", arn)
		}
	}
}

// failVersion wraps a provider so that importing one version fails.
type failVersion struct {
	provider.Provider
	version int
}

func (f *failVersion) Import(ctx context.Context, req *provider.ImportRequest) error {
	if req.Version.Version == f.version {
		return errors.New("the cloud refused this import")
	}
	return f.Provider.Import(ctx, req)
}

// min_enabled_version holds in the cloud even when an import fails: a
// version below it that reached the cloud is disabled.
func TestMinEnabledVersionHoldsWhenAnImportFails(t *testing.T) {
	ctx := context.Background()
	c := awsCloud(t)
	provs := providers(c)
	provs[c.provider] = func(ctx context.Context, cfg provider.Config) (provider.Provider, error) {
		p, err := c.factory(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return &failVersion{Provider: p, version: 2}, nil
	}
	e := newEnv(t, Options{Providers: provs})
	c.write(t, ctx, e.m, mount, "aws", nil)
	if _, err := e.m.Create(ctx, mount, "k", "aes256-gcm96"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
		t.Fatal(err)
	}
	two := 2
	if _, err := e.m.UpdateKey(ctx, mount, "k", Update{MinEnabledVersion: &two}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Distribute(ctx, mount, DistributeRequest{KMS: "aws", Key: "k", Purposes: []string{"encrypt", "decrypt"}}); err == nil {
		t.Fatal("the distribution succeeded though version 2's import failed")
	}
	versions, _ := c.versions("k")
	if len(versions) == 0 {
		t.Fatal("version 1 did not reach the cloud: the test shows nothing")
	}
	for arn, v := range versions {
		if v.enabled {
			t.Errorf("%s is enabled in the cloud below min_enabled_version 2", arn)
		}
	}
}

// watchImports wraps a provider so that each import first records which of
// the versions already in the cloud are enabled.
type watchImports struct {
	provider.Provider
	c       *cloud
	enabled []string // "vN: ID" for each enabled version seen at the import of version N
	// importedEnabled lists the versions below the key's
	// min_enabled_version that were enabled in the cloud as their import
	// ended.
	importedEnabled []string
}

func (w *watchImports) Import(ctx context.Context, req *provider.ImportRequest) error {
	vs, _ := w.c.versions(req.Key.Name)
	for id, v := range vs {
		if v.enabled && !v.gone {
			w.enabled = append(w.enabled, fmt.Sprintf("v%d: %s", req.Version.Version, id))
		}
	}
	if err := w.Provider.Import(ctx, req); err != nil {
		return err
	}
	vs, _ = w.c.versions(req.Key.Name)
	if v := req.Version; v.Version < req.MinEnabledVersion && (v.Enabled || vs[v.ProviderID].enabled) {
		w.importedEnabled = append(w.importedEnabled, fmt.Sprintf("v%d: %s", v.Version, v.ProviderID))
	}
	return nil
}

func (w *watchImports) Close() error {
	closeProvider(w.Provider)
	return nil
}

// Versions below min_enabled_version are never usable in the cloud while
// the next versions are imported: Azure imports them disabled, AWS and GCP
// disable each right after its import, before the next version's.
func TestVersionsBelowMinEnabledAreNeverUsable(t *testing.T) {
	for _, mk := range []func(*testing.T) *cloud{awsCloud, gcpCloud, azureCloud} {
		c := mk(t)
		t.Run("ok "+c.provider, func(t *testing.T) {
			ctx := context.Background()
			w := &watchImports{c: c}
			provs := providers(c)
			provs[c.provider] = func(ctx context.Context, cfg provider.Config) (provider.Provider, error) {
				p, err := c.factory(ctx, cfg)
				if err != nil {
					return nil, err
				}
				w.Provider = p
				return w, nil
			}
			e := newEnv(t, Options{Providers: provs})
			req := keyOn(t, e, c, "kms", mount)
			for range 2 {
				if _, err := e.m.Rotate(ctx, mount, "k"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := e.m.UpdateKey(ctx, mount, "k", Update{MinEnabledVersion: intp(3)}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.m.Distribute(ctx, mount, req); err != nil {
				t.Fatal(err)
			}
			e.expect(t, c, "kms", "k", map[int]bool{1: false, 2: false, 3: true}, 3)
			if len(w.enabled) != 0 {
				t.Fatalf("versions below min_enabled_version 3 were enabled in the cloud while the next were imported: %v", w.enabled)
			}
			// Azure imports them disabled; AWS and GCP cannot.
			if c.provider == provider.AzureKeyVault && len(w.importedEnabled) != 0 {
				t.Fatalf("versions below min_enabled_version 3 were imported enabled: %v", w.importedEnabled)
			}
			if c.provider != provider.AzureKeyVault && len(w.importedEnabled) != 2 {
				t.Fatalf("%v imported enabled, want versions 1 and 2: the test shows nothing", w.importedEnabled)
			}
		})
	}
}
