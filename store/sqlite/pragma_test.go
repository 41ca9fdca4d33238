package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// TestPragmas checks the settings that durability and integrity rest on,
// since a crash cannot be tested here.
func TestPragmas(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "keyhold.db"))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	tests := []struct {
		name   string
		db     *sql.DB
		pragma string
		want   string
	}{
		{name: "ok writer journal mode", db: s.write, pragma: "journal_mode", want: "wal"},
		{name: "ok writer synchronous full", db: s.write, pragma: "synchronous", want: "2"},
		{name: "ok writer foreign keys", db: s.write, pragma: "foreign_keys", want: "1"},
		{name: "ok writer busy timeout", db: s.write, pragma: "busy_timeout", want: "10000"},
		{name: "ok writer not query only", db: s.write, pragma: "query_only", want: "0"},
		{name: "ok reader journal mode", db: s.read, pragma: "journal_mode", want: "wal"},
		{name: "ok reader synchronous full", db: s.read, pragma: "synchronous", want: "2"},
		{name: "ok reader query only", db: s.read, pragma: "query_only", want: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			if err := tt.db.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
				t.Fatalf("pragma %s: %v", tt.pragma, err)
			}
			if got != tt.want {
				t.Errorf("pragma %s: got %q, want %q", tt.pragma, got, tt.want)
			}
		})
	}
}

// TestMigrate checks that reopening does not apply migrations twice and that
// a database from a newer program is refused.
func TestMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	for range 2 {
		s, err := Open(path)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		var n, top int
		if err := s.write.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &top); err != nil {
			t.Fatalf("schema_migrations: %v", err)
		}
		if want := len(migrations()); n != want || top != want {
			t.Errorf("schema_migrations: %d rows up to version %d, want %d", n, top, want)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}

	s, err := Open(path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if _, err := s.write.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, len(migrations())+1); err != nil {
		t.Fatalf("insert: %v", err)
	}
	s.Close()
	if s, err := Open(path); err == nil {
		s.Close()
		t.Fatal("open newer schema: got nil error")
	}
}
