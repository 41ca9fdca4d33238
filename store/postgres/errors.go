package postgres

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/keyhold/keyhold/store"
)

// errReadOnly is returned by the writing methods of a View's Tx.
var errReadOnly = errors.New("store: read-only transaction")

// errBadText is returned when an identifier cannot be stored as text
// (invalid UTF-8 or a NUL byte).
var errBadText = errors.New("store: identifier is not valid UTF-8 text without NUL")

// wrap names the operation in err and maps constraint violations to the
// store's sentinel errors. PostgreSQL's messages name tables and
// constraints; the values (in the error's Detail) are left out.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			err = store.ErrExists
		case "23503": // foreign_key_violation
			err = store.ErrNotFound
		default:
			err = fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
		}
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// validText reports whether s can be stored in a text column: a value
// that cannot was never stored, so a lookup of it finds nothing.
func validText(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
		for i := 0; i < len(s); i++ {
			if s[i] == 0 {
				return false
			}
		}
	}
	return true
}
