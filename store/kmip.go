package store

import (
	"context"
	"time"
)

// KMIPObjects is what a transaction can do with the managed objects of kmip
// mounts. Objects are typed rows with their attributes, so that KMIP Locate
// is a query over indexed attribute values rather than a scan in the
// server. The store does not interpret attribute values: the kmip package
// encodes them and derives the keys (Text, Number) that queries compare.
type KMIPObjects interface {
	// CreateKMIPObject inserts an object with its attributes; ErrExists if
	// the ID is taken (in any mount).
	CreateKMIPObject(ctx context.Context, o *KMIPObject) error
	// GetKMIPObject returns an object of a mount's scope, with its
	// attributes in their stored order, or ErrNotFound (also when the
	// object belongs to another scope or mount).
	GetKMIPObject(ctx context.Context, mount, scope, id string) (*KMIPObject, error)
	// UpdateKMIPObject replaces the mutable fields of an object matched by
	// Mount, Scope and ID: Value, DueAt, UpdatedAt and all of Attributes.
	// Type and CreatedAt never change. ErrNotFound if there is none.
	UpdateKMIPObject(ctx context.Context, o *KMIPObject) error
	// LocateKMIPObjects returns the IDs of the objects of a mount's scope
	// that match every filter of q, newest first, skipping q.Offset and
	// returning at most q.Limit (0: no limit), and how many match in all.
	LocateKMIPObjects(ctx context.Context, q *KMIPQuery) (ids []string, total int, err error)
	// DueKMIPObjects returns the IDs of a scope's objects whose DueAt is
	// set and not after now.
	DueKMIPObjects(ctx context.Context, mount, scope string, now time.Time) ([]string, error)
	// CountKMIPObjects returns how many objects a scope of a mount holds;
	// scope "" counts every scope of the mount.
	CountKMIPObjects(ctx context.Context, mount, scope string) (int, error)
	// DeleteKMIPObjects removes a scope's objects (scope "": every object of
	// the mount) with their attributes and returns how many it removed.
	DeleteKMIPObjects(ctx context.Context, mount, scope string) (int, error)
}

// KMIPObject is a managed object of a kmip mount.
type KMIPObject struct {
	Mount string // the mount's stable identifier
	Scope string // the scope that owns the object; other scopes never see it
	ID    string // the KMIP Unique Identifier; blobs and sealed values are bound to it
	Type  string // the KMIP object type, e.g. "SymmetricKey"
	// Value is the object's key material or data as an HSM blob or a value
	// sealed under an HSM key, never in the clear; empty once destroyed.
	Value      []byte
	DueAt      time.Time // when a time-based change of state falls due; zero for none
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Attributes []KMIPAttribute // in the order they are listed
}

// KMIPAttribute is one instance of an attribute of an object.
type KMIPAttribute struct {
	Name  string
	Index int    // the KMIP Attribute Index
	Value []byte // the encoded value, opaque to the store
	// The keys that Locate compares besides Value: a text (e.g. a name's
	// value) and a number (a date, an enumeration, a mask, an integer).
	Text      string
	HasText   bool
	Number    int64
	HasNumber bool
}

// KMIPQuery selects objects of one scope of a mount. An object matches a
// filter if any instance of the filter's attribute matches; it is returned
// if it matches every filter.
type KMIPQuery struct {
	Mount   string
	Scope   string
	Filters []KMIPFilter
	Offset  int
	Limit   int // 0: no limit
}

// KMIPMatch is how a filter compares an attribute. Stored nowhere; the
// values are strings like the other enums of the store.
type KMIPMatch string

// The comparisons.
const (
	// Value is byte-for-byte equal, for attributes stored without a
	// Number (attributes with a number are matched by range or mask).
	KMIPMatchValue KMIPMatch = "value"
	KMIPMatchText  KMIPMatch = "text"  // Text is equal
	KMIPMatchRange KMIPMatch = "range" // Min <= Number <= Max
	KMIPMatchMask  KMIPMatch = "mask"  // Number has every bit of Mask set
)

// KMIPFilter is one condition of a query.
type KMIPFilter struct {
	Name     string
	Match    KMIPMatch
	Value    []byte
	Text     string
	Min, Max int64
	Mask     int64
}
