package sqlite

import (
	"errors"
	"fmt"

	"github.com/keyhold/keyhold/store"
	"github.com/mattn/go-sqlite3"
)

// errReadOnly is returned by the writing methods of a View's Tx.
var errReadOnly = errors.New("store: read-only transaction")

// wrap names the operation in err and maps SQLite constraint violations to
// the store's sentinel errors. SQLite's messages name tables and columns,
// never the values bound to a statement.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.ExtendedCode {
		case sqlite3.ErrConstraintPrimaryKey, sqlite3.ErrConstraintUnique:
			err = store.ErrExists
		case sqlite3.ErrConstraintForeignKey:
			err = store.ErrNotFound
		}
	}
	return fmt.Errorf("store: %s: %w", op, err)
}
