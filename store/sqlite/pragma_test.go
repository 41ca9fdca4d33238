package sqlite

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/store"
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

// TestLocatePlans checks that a Locate driven by a text or a value filter
// reads the matching attribute index, not every object of the scope.
func TestLocatePlans(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tt := range []struct {
		f     store.KMIPFilter
		index string
	}{
		{store.KMIPFilter{Name: "Name", Match: store.KMIPMatchText, Text: "a"}, "kmip_attributes_text"},
		{store.KMIPFilter{Name: "Digest", Match: store.KMIPMatchValue, Value: []byte("d")}, "kmip_attributes_value"},
	} {
		from, where, args, err := locateQuery(&store.KMIPQuery{Mount: "m", Scope: "s", Filters: []store.KMIPFilter{tt.f, {Name: "State", Match: store.KMIPMatchRange, Min: 1, Max: 2}}})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.write.Query(`EXPLAIN QUERY PLAN SELECT o.id FROM `+from+` WHERE `+where, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if len(plan) == 0 || !strings.Contains(plan[0], "USING INDEX "+tt.index) {
			t.Errorf("%s filter: plan %q, want it to start with a search of %s", tt.f.Match, plan, tt.index)
		}
	}
}

// TestMigrateKMIPIndexes upgrades a database with KMIP objects from schema
// 3 (the full value index and the number index) and checks that its objects
// are still found by value and text, through the new partial index.
func TestMigrateKMIPIndexes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// Back to schema 3's indexes.
	if _, err := s.write.Exec(`DROP INDEX kmip_attributes_value;
		CREATE INDEX kmip_attributes_value ON kmip_attributes (name, value);
		CREATE INDEX kmip_attributes_number ON kmip_attributes (name, number) WHERE number IS NOT NULL;
		DELETE FROM schema_migrations WHERE version = 4;`); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	obj := &store.KMIPObject{Mount: "m", Scope: "s", ID: "k1", Type: "SymmetricKey", Value: []byte("v"),
		Attributes: []store.KMIPAttribute{
			{Name: "Digest", Value: []byte("d1")},
			{Name: "Name", Value: []byte("n1"), Text: "one", HasText: true},
			{Name: "State", Value: []byte("s1"), Number: 1, HasNumber: true},
		}}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateKMIPObject(ctx, obj) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var indexes []string
	rows, err := s.write.Query(`SELECT name || ': ' || sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'kmip_attributes' AND sql IS NOT NULL ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var x string
		rows.Scan(&x)
		indexes = append(indexes, x)
	}
	rows.Close()
	got := strings.Join(indexes, "\n")
	if strings.Contains(got, "kmip_attributes_number") || !strings.Contains(got, "WHERE number IS NULL") {
		t.Fatalf("indexes after the migration:\n%s", got)
	}
	for _, f := range []store.KMIPFilter{
		{Name: "Digest", Match: store.KMIPMatchValue, Value: []byte("d1")},
		{Name: "Name", Match: store.KMIPMatchText, Text: "one"},
		{Name: "State", Match: store.KMIPMatchRange, Min: 1, Max: 1},
	} {
		var ids []string
		err := s.View(ctx, func(tx store.Tx) error {
			var err error
			ids, _, err = tx.LocateKMIPObjects(ctx, &store.KMIPQuery{Mount: "m", Scope: "s", Filters: []store.KMIPFilter{f}})
			return err
		})
		if err != nil || len(ids) != 1 || ids[0] != "k1" {
			t.Fatalf("locate by %s %s after the migration: %v %v", f.Name, f.Match, ids, err)
		}
	}
}
