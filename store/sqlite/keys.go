package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/keyhold/keyhold/store"
)

const keyColumns = `mount, name, id, type, latest_version, min_enabled_version, deletion_allowed, created_at, updated_at`

// GetKey returns the named key of a mount, or store.ErrNotFound.
func (t *tx) GetKey(ctx context.Context, mount, name string) (*store.Key, error) {
	var k store.Key
	var created, updated int64
	err := t.tx.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE mount = ? AND name = ?`, mount, name).
		Scan(&k.Mount, &k.Name, &k.ID, &k.Type, &k.LatestVersion, &k.MinEnabledVersion, &k.DeletionAllowed, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, wrap("get key", err)
	}
	k.CreatedAt, k.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &k, nil
}

// CreateKey inserts a key; store.ErrExists if the mount has the name or the ID is taken.
func (t *tx) CreateKey(ctx context.Context, k *store.Key) error {
	if err := t.canWrite("create key"); err != nil {
		return err
	}
	if k == nil {
		return errors.New("store: create key: nil key")
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.Mount, k.Name, k.ID, k.Type, k.LatestVersion, k.MinEnabledVersion, k.DeletionAllowed,
		micros(k.CreatedAt), micros(k.UpdatedAt))
	return wrap("create key", err)
}

// UpdateKey replaces the mutable fields of a key (latest and minimum enabled
// versions, deletion allowed, updated at), matched by mount and name; its ID,
// type and creation time never change. store.ErrNotFound if there is no such key.
func (t *tx) UpdateKey(ctx context.Context, k *store.Key) error {
	if err := t.canWrite("update key"); err != nil {
		return err
	}
	if k == nil {
		return errors.New("store: update key: nil key")
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE keys
		SET latest_version = ?, min_enabled_version = ?, deletion_allowed = ?, updated_at = ?
		WHERE mount = ? AND name = ?`,
		k.LatestVersion, k.MinEnabledVersion, k.DeletionAllowed, micros(k.UpdatedAt), k.Mount, k.Name)
	return wrap("update key", oneRow(res, err))
}

// DeleteKey removes a key and, by cascade, its versions; store.ErrNotFound if there is none.
func (t *tx) DeleteKey(ctx context.Context, mount, name string) error {
	if err := t.canWrite("delete key"); err != nil {
		return err
	}
	res, err := t.tx.ExecContext(ctx, `DELETE FROM keys WHERE mount = ? AND name = ?`, mount, name)
	return wrap("delete key", oneRow(res, err))
}

// oneRow turns a statement that changed no row into store.ErrNotFound.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// ListKeys returns the sorted names of a mount's keys.
func (t *tx) ListKeys(ctx context.Context, mount string) ([]string, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT name FROM keys WHERE mount = ? ORDER BY name`, mount)
	if err != nil {
		return nil, wrap("list keys", err)
	}
	defer rows.Close()
	names := []string{}
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
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM keys WHERE mount = ?`, mount).Scan(&n)
	return n, wrap("count keys", err)
}

// AddKeyVersion inserts a version of a key; store.ErrExists if the version is
// there already, store.ErrNotFound if the key is not.
func (t *tx) AddKeyVersion(ctx context.Context, v *store.KeyVersion) error {
	if err := t.canWrite("add key version"); err != nil {
		return err
	}
	if v == nil {
		return fmt.Errorf("store: add key version: nil version")
	}
	_, err := t.tx.ExecContext(ctx,
		`INSERT INTO key_versions (key_id, version, blob, public_key, created_at) VALUES (?, ?, ?, ?, ?)`,
		v.KeyID, v.Version, nonNil(v.Blob), v.PublicKey, micros(v.CreatedAt))
	return wrap("add key version", err)
}

// KeyVersions returns the versions of a key in ascending order; none if the
// key does not exist.
func (t *tx) KeyVersions(ctx context.Context, keyID string) ([]store.KeyVersion, error) {
	rows, err := t.tx.QueryContext(ctx,
		`SELECT version, blob, public_key, created_at FROM key_versions WHERE key_id = ? ORDER BY version`, keyID)
	if err != nil {
		return nil, wrap("key versions", err)
	}
	defer rows.Close()
	vs := []store.KeyVersion{}
	for rows.Next() {
		v := store.KeyVersion{KeyID: keyID}
		var created int64
		if err := rows.Scan(&v.Version, &v.Blob, &v.PublicKey, &created); err != nil {
			return nil, wrap("key versions", err)
		}
		v.CreatedAt = fromMicros(created)
		vs = append(vs, v)
	}
	return vs, wrap("key versions", rows.Err())
}

// GetKeyVersion returns one version of a key, or store.ErrNotFound.
func (t *tx) GetKeyVersion(ctx context.Context, keyID string, version int) (*store.KeyVersion, error) {
	v := store.KeyVersion{KeyID: keyID, Version: version}
	var created int64
	err := t.tx.QueryRowContext(ctx,
		`SELECT blob, public_key, created_at FROM key_versions WHERE key_id = ? AND version = ?`, keyID, version).
		Scan(&v.Blob, &v.PublicKey, &created)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, wrap("get key version", err)
	}
	v.CreatedAt = fromMicros(created)
	return &v, nil
}
