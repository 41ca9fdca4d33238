package hsm

import (
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// Kind classifies an error so that each protocol edge can map it to its own
// wire error (HTTP status, KMIP result reason, XKS error name).
type Kind string

// The kinds of error the layer returns.
const (
	KindNotFound    Kind = "not found"
	KindUnsupported Kind = "unsupported"
	KindPermission  Kind = "permission denied"
	KindUnavailable Kind = "hsm unavailable"
	KindBadInput    Kind = "bad input"
	KindIntegrity   Kind = "integrity check failed"
	KindInternal    Kind = "internal"
)

// Sentinel errors, one per kind, for errors.Is.
var (
	ErrNotFound    = &Error{Kind: KindNotFound}
	ErrUnsupported = &Error{Kind: KindUnsupported}
	ErrPermission  = &Error{Kind: KindPermission}
	ErrUnavailable = &Error{Kind: KindUnavailable}
	ErrBadInput    = &Error{Kind: KindBadInput}
	ErrIntegrity   = &Error{Kind: KindIntegrity}
	ErrInternal    = &Error{Kind: KindInternal}
)

// Error is the error type of the package: the operation, a kind and the
// cause. Its message never holds key material, PINs or data.
type Error struct {
	Op   string // e.g. "hsm: encrypt"
	Kind Kind
	Msg  string // a human explanation, safe to show to a caller
	Err  error  // the cause, e.g. a pkcs11.Error
}

func (e *Error) Error() string {
	s := e.Op
	if s == "" {
		s = "hsm"
	}
	s += ": " + string(e.Kind)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches a sentinel of the same kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Msg == "" && t.Err == nil && t.Kind == e.Kind
}

// KindOf returns the kind of err, or KindInternal for foreign errors.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

func errorf(op string, kind Kind, format string, args ...any) error {
	return &Error{Op: "hsm: " + op, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// wrapErr gives a PKCS#11 (or other) error an operation name and a kind.
// Errors of this package pass through with their kind kept.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Op == "" {
			return &Error{Op: "hsm: " + op, Kind: e.Kind, Msg: e.Msg, Err: e.Err}
		}
		return err
	}
	return &Error{Op: "hsm: " + op, Kind: kindOfP11(err), Err: err}
}

func ckr(err error) (pkcs11.Error, bool) {
	var p pkcs11.Error
	if errors.As(err, &p) {
		return p, true
	}
	return 0, false
}

func kindOfP11(err error) Kind {
	code, ok := ckr(err)
	if !ok {
		return KindInternal
	}
	switch code {
	case pkcs11.CKR_MECHANISM_INVALID, pkcs11.CKR_MECHANISM_PARAM_INVALID,
		pkcs11.CKR_KEY_TYPE_INCONSISTENT, pkcs11.CKR_FUNCTION_NOT_SUPPORTED,
		pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED, pkcs11.CKR_KEY_SIZE_RANGE:
		return KindUnsupported
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LOCKED, pkcs11.CKR_PIN_EXPIRED,
		pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_KEY_NOT_WRAPPABLE,
		pkcs11.CKR_KEY_UNEXTRACTABLE, pkcs11.CKR_ATTRIBUTE_SENSITIVE:
		return KindPermission
	case pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_DEVICE_MEMORY, pkcs11.CKR_HOST_MEMORY, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
		pkcs11.CKR_SESSION_COUNT:
		return KindUnavailable
	case pkcs11.CKR_DATA_LEN_RANGE, pkcs11.CKR_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_INVALID,
		pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE, pkcs11.CKR_ARGUMENTS_BAD,
		pkcs11.CKR_WRAPPED_KEY_INVALID, pkcs11.CKR_WRAPPED_KEY_LEN_RANGE,
		pkcs11.CKR_SIGNATURE_INVALID, pkcs11.CKR_SIGNATURE_LEN_RANGE:
		return KindBadInput
	case pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID:
		return KindNotFound
	}
	return KindInternal
}

// sessionLost reports whether err means the session (or the whole token
// connection) is gone, so the session must be replaced and the call retried.
func sessionLost(err error) bool {
	code, ok := ckr(err)
	if !ok {
		return false
	}
	switch code {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_USER_NOT_LOGGED_IN:
		return true
	}
	return false
}

// handleLost reports whether err means an object handle no longer names an
// object (a cached key, or a session copy of a KEK, whose session went
// away). A wrap or unwrap under a KEK copy that is gone fails with the
// wrapping or unwrapping key's own code.
func handleLost(err error) bool {
	code, ok := ckr(err)
	if !ok {
		return false
	}
	switch code {
	case pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID,
		pkcs11.CKR_WRAPPING_KEY_HANDLE_INVALID, pkcs11.CKR_UNWRAPPING_KEY_HANDLE_INVALID:
		return true
	}
	return false
}
