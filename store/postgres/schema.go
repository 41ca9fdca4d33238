package postgres

import (
	"context"
	"fmt"
	"strconv"
)

// migrations returns the schema changes in order; migration i brings the
// schema to version i+1. Append only: never edit or reorder a released one.
//
// Paths, attribute names and texts are bytea: compared and sorted byte for
// byte (as the store's contract and SQLite do, whatever the database's
// collation), and any byte is allowed. Identifiers that the appliance makes
// or checks (mounts, names, ids) are text in the "C" collation. Attribute
// values and texts are indexed by their SHA-256, so a long value does not
// exceed the size of an index row.
func migrations() []string {
	return []string{
		// 1: the data, the change log, leases and the node registry.
		`CREATE TABLE kv (
			path  bytea PRIMARY KEY,
			value bytea NOT NULL
		);
		CREATE TABLE keys (
			mount               text COLLATE "C" NOT NULL,
			name                text COLLATE "C" NOT NULL,
			id                  text COLLATE "C" NOT NULL UNIQUE,
			type                text NOT NULL,
			latest_version      integer NOT NULL,
			min_enabled_version integer NOT NULL,
			deletion_allowed    boolean NOT NULL,
			created_at          timestamptz NOT NULL,
			updated_at          timestamptz NOT NULL,
			PRIMARY KEY (mount, name)
		);
		CREATE TABLE key_versions (
			key_id     text COLLATE "C" NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
			version    integer NOT NULL,
			blob       bytea NOT NULL,
			public_key bytea,
			created_at timestamptz NOT NULL,
			PRIMARY KEY (key_id, version)
		);
		CREATE TABLE kmip_objects (
			seq        bigserial PRIMARY KEY,
			mount      text COLLATE "C" NOT NULL,
			scope      text COLLATE "C" NOT NULL,
			id         text COLLATE "C" NOT NULL UNIQUE,
			type       text NOT NULL,
			value      bytea NOT NULL,
			due_at     timestamptz,
			created_at timestamptz NOT NULL,
			updated_at timestamptz NOT NULL
		);
		CREATE INDEX kmip_objects_scope ON kmip_objects (mount, scope, seq);
		CREATE INDEX kmip_objects_due ON kmip_objects (mount, scope, due_at) WHERE due_at IS NOT NULL;
		CREATE TABLE kmip_attributes (
			object   bigint NOT NULL REFERENCES kmip_objects (seq) ON DELETE CASCADE,
			position integer NOT NULL,
			name     bytea NOT NULL,
			idx      integer NOT NULL,
			value    bytea NOT NULL,
			text     bytea,
			number   bigint,
			PRIMARY KEY (object, position)
		);
		CREATE INDEX kmip_attributes_value ON kmip_attributes (name, sha256(value));
		CREATE INDEX kmip_attributes_text ON kmip_attributes (name, sha256(text)) WHERE text IS NOT NULL;
		CREATE INDEX kmip_attributes_number ON kmip_attributes (name, number) WHERE number IS NOT NULL;
		CREATE SEQUENCE change_seq;
		CREATE TABLE changes (
			seq   bigint PRIMARY KEY,
			node  text NOT NULL,
			paths bytea[] NOT NULL,
			at    timestamptz NOT NULL DEFAULT now()
		);
		CREATE INDEX changes_at ON changes (at);
		CREATE TABLE leases (
			name        text PRIMARY KEY,
			holder      text NOT NULL,
			epoch       bigint NOT NULL,
			acquired_at timestamptz NOT NULL,
			expires_at  timestamptz NOT NULL
		);
		CREATE TABLE nodes (
			id         text PRIMARY KEY,
			name       text NOT NULL,
			api_addr   text NOT NULL,
			version    text NOT NULL,
			info       bytea NOT NULL,
			started_at timestamptz NOT NULL DEFAULT now(),
			seen_at    timestamptz NOT NULL DEFAULT now()
		);`,
	}
}

// migrate applies, in one transaction, the migrations the database has not
// seen, holding a session advisory lock so that nodes starting at once take
// turns. It refuses a database whose schema is newer than this program's.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return wrap("migrate", err)
	}
	defer conn.Release()
	key := strconv.FormatInt(lockKey("keyhold migrate "+s.schema), 10)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock("+key+")"); err != nil {
		return wrap("migrate", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock("+key+")"); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) // the lock goes with the session
		}
	}()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return wrap("migrate", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return wrap("migrate", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return wrap("migrate", err)
	}
	ms := migrations()
	if current > len(ms) {
		return fmt.Errorf("store: migrate: database schema version %d is newer than this program's %d", current, len(ms))
	}
	for i := current; i < len(ms); i++ {
		if _, err := tx.Exec(ctx, ms[i]); err != nil {
			return wrap(fmt.Sprintf("migrate to version %d", i+1), err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, i+1); err != nil {
			return wrap(fmt.Sprintf("migrate to version %d", i+1), err)
		}
	}
	return wrap("migrate", tx.Commit(ctx))
}

// SchemaVersion returns the version of the database's schema.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, wrap("schema version", err)
}
