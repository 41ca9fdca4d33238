package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyhold/keyhold/store"
)

const keyColumns = `mount, name, id, type, latest_version, min_enabled_version, deletion_allowed, created_at, updated_at`

// GetKey returns the named key of a mount, or store.ErrNotFound.
func (t *tx) GetKey(ctx context.Context, mount, name string) (*store.Key, error) {
	if !validText(mount, name) {
		return nil, fmt.Errorf("store: get key: %w", store.ErrNotFound)
	}
	var k store.Key
	err := t.c.QueryRow(ctx, `SELECT `+keyColumns+` FROM keys WHERE mount = $1 AND name = $2`, mount, name).
		Scan(&k.Mount, &k.Name, &k.ID, &k.Type, &k.LatestVersion, &k.MinEnabledVersion, &k.DeletionAllowed, &k.CreatedAt, &k.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("store: get key: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap("get key", err)
	}
	k.CreatedAt, k.UpdatedAt = utc(k.CreatedAt), utc(k.UpdatedAt)
	return &k, nil
}

// CreateKey inserts a key; store.ErrExists if the mount has the name or the
// ID is taken. A conflict does not abort the transaction.
func (t *tx) CreateKey(ctx context.Context, k *store.Key) error {
	if err := t.canWrite("create key"); err != nil {
		return err
	}
	if k == nil {
		return errors.New("store: create key: nil key")
	}
	if !validText(k.Mount, k.Name, k.ID, k.Type) {
		return fmt.Errorf("store: create key: %w", errBadText)
	}
	tag, err := t.c.Exec(ctx, `INSERT INTO keys (`+keyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT DO NOTHING`,
		k.Mount, k.Name, k.ID, k.Type, k.LatestVersion, k.MinEnabledVersion, k.DeletionAllowed, k.CreatedAt, k.UpdatedAt)
	if err != nil {
		return wrap("create key", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: create key: %w", store.ErrExists)
	}
	t.changed("key:" + k.Mount + "/" + k.Name)
	return nil
}

// UpdateKey replaces the mutable fields of a key matched by mount and name.
func (t *tx) UpdateKey(ctx context.Context, k *store.Key) error {
	if err := t.canWrite("update key"); err != nil {
		return err
	}
	if k == nil {
		return errors.New("store: update key: nil key")
	}
	if !validText(k.Mount, k.Name) {
		return fmt.Errorf("store: update key: %w", store.ErrNotFound)
	}
	tag, err := t.c.Exec(ctx, `UPDATE keys
		SET latest_version = $1, min_enabled_version = $2, deletion_allowed = $3, updated_at = $4
		WHERE mount = $5 AND name = $6`,
		k.LatestVersion, k.MinEnabledVersion, k.DeletionAllowed, k.UpdatedAt, k.Mount, k.Name)
	if err != nil {
		return wrap("update key", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: update key: %w", store.ErrNotFound)
	}
	t.changed("key:" + k.Mount + "/" + k.Name)
	return nil
}

// DeleteKey removes a key and, by cascade, its versions.
func (t *tx) DeleteKey(ctx context.Context, mount, name string) error {
	if err := t.canWrite("delete key"); err != nil {
		return err
	}
	if !validText(mount, name) {
		return fmt.Errorf("store: delete key: %w", store.ErrNotFound)
	}
	tag, err := t.c.Exec(ctx, `DELETE FROM keys WHERE mount = $1 AND name = $2`, mount, name)
	if err != nil {
		return wrap("delete key", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: delete key: %w", store.ErrNotFound)
	}
	t.changed("key:" + mount + "/" + name)
	return nil
}

// ListKeys returns the sorted names of a mount's keys.
func (t *tx) ListKeys(ctx context.Context, mount string) ([]string, error) {
	names := []string{}
	if !validText(mount) {
		return names, nil
	}
	rows, err := t.c.Query(ctx, `SELECT name FROM keys WHERE mount = $1 ORDER BY name`, mount)
	if err != nil {
		return nil, wrap("list keys", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, wrap("list keys", err)
		}
		names = append(names, n)
	}
	return names, wrap("list keys", rows.Err())
}

// CountKeys returns how many keys a mount holds.
func (t *tx) CountKeys(ctx context.Context, mount string) (int, error) {
	if !validText(mount) {
		return 0, nil
	}
	var n int
	err := t.c.QueryRow(ctx, `SELECT COUNT(*) FROM keys WHERE mount = $1`, mount).Scan(&n)
	return n, wrap("count keys", err)
}

// AddKeyVersion inserts a version of a key; store.ErrExists if the version
// is there already, store.ErrNotFound if the key is not. Neither aborts the
// transaction.
func (t *tx) AddKeyVersion(ctx context.Context, v *store.KeyVersion) error {
	if err := t.canWrite("add key version"); err != nil {
		return err
	}
	if v == nil {
		return errors.New("store: add key version: nil version")
	}
	if !validText(v.KeyID) {
		return fmt.Errorf("store: add key version: %w", store.ErrNotFound)
	}
	blob := v.Blob
	if blob == nil {
		blob = []byte{}
	}
	var mount, name string
	var inserted bool
	err := t.c.QueryRow(ctx, `WITH k AS (SELECT mount, name FROM keys WHERE id = $1),
		ins AS (INSERT INTO key_versions (key_id, version, blob, public_key, created_at)
			SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM k)
			ON CONFLICT DO NOTHING RETURNING 1)
		SELECT k.mount, k.name, EXISTS (SELECT 1 FROM ins) FROM k`,
		v.KeyID, v.Version, blob, v.PublicKey, v.CreatedAt).Scan(&mount, &name, &inserted)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: add key version: %w", store.ErrNotFound)
	}
	if err != nil {
		return wrap("add key version", err)
	}
	if !inserted {
		return fmt.Errorf("store: add key version: %w", store.ErrExists)
	}
	t.changed("key:" + mount + "/" + name)
	return nil
}

// KeyVersions returns the versions of a key in ascending order.
func (t *tx) KeyVersions(ctx context.Context, keyID string) ([]store.KeyVersion, error) {
	vs := []store.KeyVersion{}
	if !validText(keyID) {
		return vs, nil
	}
	rows, err := t.c.Query(ctx,
		`SELECT version, blob, public_key, created_at FROM key_versions WHERE key_id = $1 ORDER BY version`, keyID)
	if err != nil {
		return nil, wrap("key versions", err)
	}
	defer rows.Close()
	for rows.Next() {
		v := store.KeyVersion{KeyID: keyID}
		var created time.Time
		if err := rows.Scan(&v.Version, &v.Blob, &v.PublicKey, &created); err != nil {
			return nil, wrap("key versions", err)
		}
		v.CreatedAt = utc(created)
		vs = append(vs, v)
	}
	return vs, wrap("key versions", rows.Err())
}

// GetKeyVersion returns one version of a key, or store.ErrNotFound.
func (t *tx) GetKeyVersion(ctx context.Context, keyID string, version int) (*store.KeyVersion, error) {
	if !validText(keyID) {
		return nil, fmt.Errorf("store: get key version: %w", store.ErrNotFound)
	}
	v := store.KeyVersion{KeyID: keyID, Version: version}
	var created time.Time
	err := t.c.QueryRow(ctx,
		`SELECT blob, public_key, created_at FROM key_versions WHERE key_id = $1 AND version = $2`, keyID, version).
		Scan(&v.Blob, &v.PublicKey, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("store: get key version: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap("get key version", err)
	}
	v.CreatedAt = utc(created)
	return &v, nil
}
