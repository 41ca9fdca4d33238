// Package store keeps the appliance's metadata and wrapped key blobs.
//
// The interface is small and transactional so that SQLite (the embedded
// default, one node) and PostgreSQL (several nodes) implement it alike and pass
// one conformance suite (package storetest). Nothing stored here is plaintext
// key material: keys arrive as blobs wrapped and bound by package hsm; secrets
// such as tokens are stored as hashes by their owners.
//
// Two kinds of data live here: typed rows for named keys and their versions,
// which are queried and must never lose or duplicate a version under
// concurrent writers, and a small key/value space for configuration (mounts,
// policies, token hashes, ...), addressed by slash-separated paths.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every implementation; test with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	ErrClosed   = errors.New("store: closed")
	// ErrLockLost: a lock taken with Locker.Lock is no longer held.
	ErrLockLost = errors.New("store: the lock is no longer held")
)

// Store is a transactional store. Writers are serialized; a transaction whose
// function returns an error is rolled back and changes nothing. A write that
// Update has returned nil for is durable (it survives a crash of the process
// or the machine).
type Store interface {
	// Update runs fn in a read-write transaction and commits it if fn returns
	// nil. fn must not call Update or View (writers are serialized).
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only transaction that sees one consistent snapshot.
	View(ctx context.Context, fn func(Tx) error) error
	// Close releases the store. Transactions after Close fail with ErrClosed.
	Close() error
}

// Tx is what a transaction can do. A Tx must not be used after its function
// returns. In a View, the writing methods fail. An ErrExists or ErrNotFound
// inside an Update leaves the transaction usable.
type Tx interface {
	// Get returns the value at path, or ErrNotFound.
	Get(ctx context.Context, path string) ([]byte, error)
	// Put creates or replaces the value at path.
	Put(ctx context.Context, path string, value []byte) error
	// Delete removes the value at path; deleting a missing path is not an error.
	Delete(ctx context.Context, path string) error
	// List returns, sorted, the paths that start with prefix, with the prefix removed.
	List(ctx context.Context, prefix string) ([]string, error)

	// GetKey returns the named key of a mount, or ErrNotFound.
	GetKey(ctx context.Context, mount, name string) (*Key, error)
	// CreateKey inserts a key; ErrExists if the mount already has that name or the ID is taken.
	CreateKey(ctx context.Context, k *Key) error
	// UpdateKey replaces the mutable fields of an existing key (matched by mount
	// and name): LatestVersion, MinEnabledVersion, DeletionAllowed, UpdatedAt.
	// ID, Type and CreatedAt never change. ErrNotFound if there is none.
	UpdateKey(ctx context.Context, k *Key) error
	// DeleteKey removes a key and all its versions; ErrNotFound if there is none.
	DeleteKey(ctx context.Context, mount, name string) error
	// ListKeys returns the sorted names of a mount's keys.
	ListKeys(ctx context.Context, mount string) ([]string, error)
	// CountKeys returns how many keys a mount holds.
	CountKeys(ctx context.Context, mount string) (int, error)

	// AddKeyVersion inserts a version of a key; ErrExists if that version is
	// already there, ErrNotFound if the key is not.
	AddKeyVersion(ctx context.Context, v *KeyVersion) error
	// KeyVersions returns the versions of a key in ascending order (none for a missing key).
	KeyVersions(ctx context.Context, keyID string) ([]KeyVersion, error)
	// GetKeyVersion returns one version of a key, or ErrNotFound.
	GetKeyVersion(ctx context.Context, keyID string, version int) (*KeyVersion, error)

	// The managed objects of kmip mounts (kmip.go).
	KMIPObjects
}

// Key is a named key of a mount. Its material lives in its versions.
type Key struct {
	Mount             string // the mount's stable identifier
	Name              string
	ID                string // random and unique; blobs are bound to it
	Type              string // e.g. "aes256-gcm96", "rsa-2048"
	LatestVersion     int
	MinEnabledVersion int
	DeletionAllowed   bool
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// KeyVersion is one version of a key: the wrapped blob and, for asymmetric
// keys, the public key (PKIX DER).
type KeyVersion struct {
	KeyID     string
	Version   int
	Blob      []byte
	PublicKey []byte
	CreatedAt time.Time
}
