package api

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/auth"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/keymgmt"
	"github.com/keyhold/keyhold/metrics"
	"github.com/keyhold/keyhold/store/sqlite"
)

const testRootToken = "test-root-token"

type testEnv struct {
	srv   *Server
	ts    *httptest.Server
	hsm   *hsm.HSM
	store *sqlite.Store
	dir   string
}

// newTestEnv serves the API over a fresh SoftHSM2 token and a SQLite file of
// the test's own, with the root token testRootToken.
func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	return newTestEnvRoot(t, testRootToken)
}

// newTestEnvRoot is newTestEnv with another root token ("" for none: an
// appliance that waits for sys/init).
func newTestEnvRoot(t testing.TB, rootToken string) *testEnv {
	t.Helper()
	ctx := context.Background()
	h := hsmtest.Open(t)
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("KEYHOLD_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv := New(Deps{HSM: h, Store: st, Auth: auth.New(st), Keys: keymgmt.New(h, st), Logger: logger, Version: "test",
		Audit: audit.NewBroker(h, st, logger), Metrics: metrics.New()})
	if err := srv.Init(ctx, rootToken); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &testEnv{srv: srv, ts: ts, hsm: h, store: st, dir: dir}
}

// client returns a Vault API client for the test server with the token.
func (e *testEnv) client(t testing.TB, token string) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = e.ts.URL
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// statusOfErr returns the HTTP status of a Vault client error (0 if none).
func statusOfErr(err error) int {
	if re, ok := err.(*vault.ResponseError); ok {
		return re.StatusCode
	}
	return 0
}
