package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/sqlite"
	"github.com/keyhold/keyhold/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "keyhold.db")
		return func() (store.Store, error) { return sqlite.Open(path) }
	})
}

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing", "folder")
	path := filepath.Join(dir, "keyhold.db")
	s := open(t, path)
	if s.Path() != path {
		t.Errorf("path: got %q, want %q", s.Path(), path)
	}
	ctx := t.Context()
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Put(ctx, "a", []byte("x")) }); err != nil {
		t.Fatalf("update: %v", err)
	}
	tests := []struct {
		name string
		path string
		want os.FileMode
	}{
		{name: "ok database file", path: path, want: 0o600},
		{name: "ok wal file", path: path + "-wal", want: 0o600},
		{name: "ok folder", path: dir, want: 0o700 | os.ModeDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := os.Stat(tt.path)
			if err != nil {
				t.Fatalf("stat: %v", err)
			}
			if got := fi.Mode(); got != tt.want {
				t.Errorf("mode: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name    string
		path    func(t *testing.T) string
		wantErr bool
	}{
		{name: "ok path with URI characters", path: func(t *testing.T) string {
			return filepath.Join(t.TempDir(), "a?b#c%20d e", "keyhold.db")
		}},
		{name: "ok relative path", path: func(t *testing.T) string {
			t.Chdir(t.TempDir())
			return "keyhold.db"
		}},
		{name: "fail path is a folder", path: func(t *testing.T) string { return t.TempDir() }, wantErr: true},
		{name: "fail not a database", path: func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "keyhold.db")
			if err := os.WriteFile(p, []byte("this is not an SQLite database, not at all........"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path(t)
			s, err := sqlite.Open(path)
			if tt.wantErr {
				if err == nil {
					s.Close()
					t.Fatal("open: got nil error")
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			if _, err := os.Stat(path); err != nil {
				t.Errorf("stat: %v", err)
			}
		})
	}
}

func TestErrorsHideValues(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "keyhold.db"))
	ctx := t.Context()
	const secret = "s3cr3t-value"
	k := &store.Key{Mount: "m", Name: secret, ID: secret}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateKey(ctx, k) }); err != nil {
		t.Fatalf("create key: %v", err)
	}
	tests := []struct {
		name string
		fn   func(tx store.Tx) error
	}{
		{name: "fail create duplicate key", fn: func(tx store.Tx) error { return tx.CreateKey(ctx, k) }},
		{name: "fail add version of missing key", fn: func(tx store.Tx) error {
			return tx.AddKeyVersion(ctx, &store.KeyVersion{KeyID: secret + "x", Version: 1, Blob: []byte(secret)})
		}},
		{name: "fail get missing path", fn: func(tx store.Tx) error { _, err := tx.Get(ctx, secret); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Update(ctx, tt.fn)
			if err == nil {
				t.Fatal("got nil error")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "store: ") || strings.Contains(msg, secret) {
				t.Errorf("error %q: want a %q prefix and no value", msg, "store: ")
			}
		})
	}
}

func BenchmarkUpdateAddKeyVersion(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "keyhold.db"))
	ctx := context.Background()
	k := &store.Key{Mount: "m", Name: "k", ID: "id", Type: "aes256-gcm96", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateKey(ctx, k) }); err != nil {
		b.Fatal(err)
	}
	blob := make([]byte, 128)
	b.ResetTimer()
	for i := 1; b.Loop(); i++ {
		err := s.Update(ctx, func(tx store.Tx) error {
			if err := tx.AddKeyVersion(ctx, &store.KeyVersion{KeyID: "id", Version: i, Blob: blob, CreatedAt: time.Now()}); err != nil {
				return err
			}
			k.LatestVersion = i
			return tx.UpdateKey(ctx, k)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkViewGetKey(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "keyhold.db"))
	ctx := context.Background()
	err := s.Update(ctx, func(tx store.Tx) error {
		for i := range 100 {
			if err := tx.CreateKey(ctx, &store.Key{Mount: "m", Name: fmt.Sprint("k", i), ID: fmt.Sprint("id", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			err := s.View(ctx, func(tx store.Tx) error {
				_, err := tx.GetKey(ctx, "m", "k42")
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// One store file serves one process: a second Open while the first is open
// is refused (two servers would cache mounts apart and interleave two
// audit chains in one file); once it is closed, the store opens again.
func TestOneOpenAtATime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := sqlite.Open(path); err == nil || !strings.Contains(err.Error(), "has the store open") {
		if s2 != nil {
			s2.Close()
		}
		t.Fatalf("a second open of an open store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(path)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s.Close()
}
