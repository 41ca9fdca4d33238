// Package fault is the appliance's one error type for domain errors: a
// coarse kind and a message that is safe to show to the caller. Each
// protocol edge (REST, KMIP, XKS) maps kinds to its own wire errors in one
// place; causes are kept for the log and never shown.
package fault

import (
	"errors"
	"fmt"
)

// Kind is a coarse class of error.
type Kind string

// The kinds.
const (
	BadInput     Kind = "bad input"    // the request is wrong: 400
	NotFound     Kind = "not found"    // no such object: 404
	Conflict     Kind = "conflict"     // the write conflicts with the state: 409
	Permission   Kind = "permission"   // not allowed: 403
	Unsupported  Kind = "unsupported"  // valid but not supported here: 400
	Unavailable  Kind = "unavailable"  // a dependency is down: 503
	Internal     Kind = "internal"     // a bug or an unexpected failure: 500
	TooLarge     Kind = "too large"    // the request body is over the limit: 413
	Unauthorized Kind = "unauthorized" // no or bad credentials: 403 in Vault's convention
)

// Error is a domain error.
type Error struct {
	Kind Kind
	Msg  string // safe to show
	Err  error  // cause, for logs only
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of a kind with a formatted, showable message.
func New(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of a kind with a showable message and a hidden cause.
func Wrap(kind Kind, err error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: err}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// KindOf returns the kind of err, or Internal for errors of other types.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return Internal
}
