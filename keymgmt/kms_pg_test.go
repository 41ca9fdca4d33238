package keymgmt

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/store/postgres"
	"github.com/keyhold/keyhold/store/postgres/pgtest"
)

// WriteKMS unseals stored credentials inside its write: through the write's
// own transaction, not a second one, which with storage.max_conns = 1 would
// wait forever for the connection the write holds (and, with more
// connections, keep the writers' lock meanwhile).
func TestWriteKMSInOneTransactionOnPostgres(t *testing.T) {
	ctx := context.Background()
	srv, err := pgtest.Start(ctx, pgtest.Options{})
	if err != nil {
		t.Skip(err)
	}
	defer srv.Stop()
	url, err := srv.CreateSchema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := postgres.Open(ctx, postgres.Config{URL: url, Password: srv.Password, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := NewWithOptions(hsmtest.Open(t), st, Options{})
	aws, region := "awskms", "us-east-1"
	if _, err := m.WriteKMS(ctx, mount, "a", KMSUpdate{Provider: &aws, KeyCollection: &region,
		Credentials: map[string]string{"access_key": "a", "secret_key": "s"}}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	other := "us-west-2"
	start := time.Now()
	_, err = m.WriteKMS(wctx, mount, "a", KMSUpdate{KeyCollection: &other})
	t.Logf("key_collection change with stored credentials: err=%v after %v", err, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("a key_collection update with max_conns=1 failed: %v", err)
	}
}
