package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations returns the schema changes in order; migration i brings the
// schema to version i+1. Append only: never edit or reorder a released one.
//
// Times are INTEGER Unix microseconds in UTC (PostgreSQL's precision).
func migrations() []string {
	return []string{
		// 1: the initial schema.
		`CREATE TABLE kv (
			path  TEXT PRIMARY KEY,
			value BLOB NOT NULL
		) STRICT;
		CREATE TABLE keys (
			mount               TEXT NOT NULL,
			name                TEXT NOT NULL,
			id                  TEXT NOT NULL UNIQUE,
			type                TEXT NOT NULL,
			latest_version      INTEGER NOT NULL,
			min_enabled_version INTEGER NOT NULL,
			deletion_allowed    INTEGER NOT NULL CHECK (deletion_allowed IN (0, 1)),
			created_at          INTEGER NOT NULL,
			updated_at          INTEGER NOT NULL,
			PRIMARY KEY (mount, name)
		) STRICT;
		CREATE TABLE key_versions (
			key_id     TEXT NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
			version    INTEGER NOT NULL,
			blob       BLOB NOT NULL,
			public_key BLOB,
			created_at INTEGER NOT NULL,
			PRIMARY KEY (key_id, version)
		) STRICT;`,
		// 2: the managed objects of kmip mounts and their attributes,
		// indexed for Locate. seq orders objects by creation.
		`CREATE TABLE kmip_objects (
			seq        INTEGER PRIMARY KEY,
			mount      TEXT NOT NULL,
			scope      TEXT NOT NULL,
			id         TEXT NOT NULL UNIQUE,
			type       TEXT NOT NULL,
			value      BLOB NOT NULL,
			due_at     INTEGER,
			created_at INTEGER NOT NULL,
			updated_at INTEGER NOT NULL
		) STRICT;
		CREATE INDEX kmip_objects_scope ON kmip_objects (mount, scope, seq);
		CREATE INDEX kmip_objects_due ON kmip_objects (mount, scope, due_at) WHERE due_at IS NOT NULL;
		CREATE TABLE kmip_attributes (
			object   INTEGER NOT NULL REFERENCES kmip_objects (seq) ON DELETE CASCADE,
			position INTEGER NOT NULL,
			name     TEXT NOT NULL,
			idx      INTEGER NOT NULL,
			value    BLOB NOT NULL,
			text     TEXT,
			number   INTEGER,
			PRIMARY KEY (object, position)
		) STRICT;
		CREATE INDEX kmip_attributes_value ON kmip_attributes (name, value);
		CREATE INDEX kmip_attributes_text ON kmip_attributes (name, text) WHERE text IS NOT NULL;
		CREATE INDEX kmip_attributes_number ON kmip_attributes (name, number) WHERE number IS NOT NULL;`,
		// 3: a kmip object's attributes also as one encoded column, so that
		// reading an object is one row (the attribute rows serve Locate).
		`ALTER TABLE kmip_objects ADD COLUMN attrs BLOB;`,
		// 4: fewer index entries per attribute, since every entry is a page
		// a Create writes. Locate never drives by number (range and mask
		// filters probe an object's own rows), and a value filter matches
		// only attributes without a number (store.KMIPMatchValue), so the
		// number index goes and the value index keeps those rows only.
		`DROP INDEX kmip_attributes_number;
		DROP INDEX kmip_attributes_value;
		CREATE INDEX kmip_attributes_value ON kmip_attributes (name, value) WHERE number IS NULL;`,
	}
}

// migrate applies, in one transaction, the migrations that the database has
// not seen. It refuses a database whose schema is newer than this program's.
func migrate(ctx context.Context, db *sql.DB) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return wrap("migrate", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return wrap("migrate", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return wrap("migrate", err)
	}
	ms := migrations()
	if current > len(ms) {
		return fmt.Errorf("store: migrate: database schema version %d is newer than this program's %d", current, len(ms))
	}
	for i := current; i < len(ms); i++ {
		if _, err := tx.ExecContext(ctx, ms[i]); err != nil {
			return wrap(fmt.Sprintf("migrate to version %d", i+1), err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			i+1, time.Now().UnixMicro()); err != nil {
			return wrap(fmt.Sprintf("migrate to version %d", i+1), err)
		}
	}
	return wrap("migrate", tx.Commit())
}
