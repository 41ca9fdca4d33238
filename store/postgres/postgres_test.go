package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/postgres"
	"github.com/keyhold/keyhold/store/postgres/pgtest"
	"github.com/keyhold/keyhold/store/storetest"
)

// srv is the package's PostgreSQL server, started once by TestMain.
var srv *pgtest.Server

func TestMain(m *testing.M) {
	s, err := pgtest.Start(context.Background(), pgtest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	s.Stop()
	os.Exit(code)
}

// location returns the URL of a fresh, empty schema.
func location(t testing.TB) string {
	t.Helper()
	url, err := srv.CreateSchema(context.Background())
	if err != nil {
		t.Fatalf("create schema: %v", err)
	}
	return url
}

func open(t testing.TB, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Password: srv.Password})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		url := location(t)
		return func() (store.Store, error) {
			return postgres.Open(context.Background(), postgres.Config{URL: url, Password: srv.Password, MaxConns: 8})
		}
	})
}

func TestCluster(t *testing.T) {
	storetest.RunCluster(t, func(t *testing.T) func() (storetest.ClusterStore, error) {
		url := location(t)
		return func() (storetest.ClusterStore, error) {
			return postgres.Open(context.Background(), postgres.Config{URL: url, Password: srv.Password, MaxConns: 8})
		}
	})
}

func TestOpenErrorsNameNoSecret(t *testing.T) {
	tests := []struct {
		name, url, password, secret string
	}{
		{name: "fail wrong password", url: srv.URL("postgres"), password: "wrong-pass-XYZZY", secret: "XYZZY"},
		{name: "fail url that does not parse", url: "postgres://keyhold:s3cr3t-PLUGH@127.0.0.1:notaport/x", secret: "PLUGH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := postgres.Open(t.Context(), postgres.Config{URL: tt.url, Password: tt.password})
			if err == nil {
				t.Fatal("open succeeded")
			}
			if strings.Contains(err.Error(), tt.secret) {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

// Identifiers that cannot be text are never found and do not abort the
// transaction they are used in; bytes that text refuses are fine in paths,
// attribute names and texts; a long attribute value is indexed.
func TestBytesAndText(t *testing.T) {
	st := open(t, location(t))
	ctx := t.Context()
	bad := "bad\x00\xff"
	err := st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.GetKey(ctx, "m", bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get key with a NUL: %v", err)
		}
		if _, err := tx.GetKMIPObject(ctx, "m", "s", bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get kmip object with invalid UTF-8: %v", err)
		}
		if err := tx.Put(ctx, "p/"+bad, []byte("v")); err != nil {
			return err
		}
		long := bytes.Repeat([]byte("v"), 20000)
		return tx.CreateKMIPObject(ctx, &store.KMIPObject{Mount: "m", Scope: "s", ID: "o", Type: "T", Value: []byte{1},
			CreatedAt: time.Now(), UpdatedAt: time.Now(), Attributes: []store.KMIPAttribute{
				{Name: "x-\x00\xfe", Value: long, Text: string(long) + "\xff", HasText: true},
			}})
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	err = st.View(ctx, func(tx store.Tx) error {
		ps, err := tx.List(ctx, "p/")
		if err != nil || len(ps) != 1 || ps[0] != bad {
			t.Errorf("list: %q %v", ps, err)
		}
		long := bytes.Repeat([]byte("v"), 20000)
		for _, f := range []store.KMIPFilter{
			{Name: "x-\x00\xfe", Match: store.KMIPMatchValue, Value: long},
			{Name: "x-\x00\xfe", Match: store.KMIPMatchText, Text: string(long) + "\xff"},
		} {
			ids, n, err := tx.LocateKMIPObjects(ctx, &store.KMIPQuery{Mount: "m", Scope: "s", Filters: []store.KMIPFilter{f}})
			if err != nil || n != 1 || len(ids) != 1 {
				t.Errorf("locate %s: %q %d %v", f.Match, ids, n, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Migrations run once however many nodes open the schema, and a schema
// newer than this program's is refused rather than used.
func TestMigrations(t *testing.T) {
	url := location(t)
	var stores []*postgres.Store
	for range 3 {
		stores = append(stores, open(t, url))
	}
	for _, st := range stores {
		v, err := st.SchemaVersion(t.Context())
		if err != nil || v != 1 {
			t.Fatalf("schema version %d, %v", v, err)
		}
	}
	c, err := pgx.Connect(t.Context(), srv.URLWithPassword("postgres")+"&search_path="+schemaOf(url))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	var n int
	if err := c.QueryRow(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("schema_migrations rows: %d, %v", n, err)
	}
	if _, err := c.Exec(t.Context(), `INSERT INTO schema_migrations (version) VALUES (99)`); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(t.Context(), postgres.Config{URL: url, Password: srv.Password})
	if err == nil || !strings.Contains(err.Error(), "newer than this program's") {
		t.Fatalf("open of a newer schema: %v", err)
	}
}
