package xks

import (
	"context"
	"errors"
	"net/http"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
)

// Name is an XKS errorName from the spec's error table.
type Name string

// The error names of the XKS Proxy API spec v1.0.3.
const (
	ValidationException           Name = "ValidationException"
	InvalidStateException         Name = "InvalidStateException"
	InvalidCiphertextException    Name = "InvalidCiphertextException"
	InvalidKeyUsageException      Name = "InvalidKeyUsageException"
	AuthenticationFailedException Name = "AuthenticationFailedException"
	AccessDeniedException         Name = "AccessDeniedException"
	KeyNotFoundException          Name = "KeyNotFoundException"
	InvalidURIPathException       Name = "InvalidUriPathException"
	ThrottlingException           Name = "ThrottlingException"
	UnsupportedOperationException Name = "UnsupportedOperationException"
	DependencyTimeoutException    Name = "DependencyTimeoutException"
	InternalException             Name = "InternalException"
)

// statuses is the spec's table of error names and HTTP statuses: the one
// place where an XKS error becomes a status.
var statuses = map[Name]int{
	ValidationException:           http.StatusBadRequest,
	InvalidStateException:         http.StatusBadRequest,
	InvalidCiphertextException:    http.StatusBadRequest,
	InvalidKeyUsageException:      http.StatusBadRequest,
	AuthenticationFailedException: http.StatusUnauthorized,
	AccessDeniedException:         http.StatusForbidden,
	KeyNotFoundException:          http.StatusNotFound,
	InvalidURIPathException:       http.StatusNotFound,
	ThrottlingException:           http.StatusTooManyRequests,
	UnsupportedOperationException: http.StatusNotImplemented,
	DependencyTimeoutException:    http.StatusServiceUnavailable,
	InternalException:             http.StatusInternalServerError,
}

// Error is a data-plane error: an errorName, a message safe to send (printable
// ASCII, under 512 characters, never a secret or plaintext) and a cause kept
// for the log only.
type Error struct {
	Name Name
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return string(e.Name) + ": " + e.Msg + ": " + e.Err.Error()
	}
	return string(e.Name) + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func xerr(name Name, msg string) *Error { return &Error{Name: name, Msg: msg} }

// wireError maps any error to the XKS error sent on the wire. Domain errors
// (hsm, fault, context) are mapped here and nowhere else; their detail stays
// in the cause.
func wireError(err error) *Error {
	var xe *Error
	if errors.As(err, &xe) {
		return xe
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Name: DependencyTimeoutException, Msg: "the key manager did not answer in time", Err: err}
	}
	var he *hsm.Error
	if errors.As(err, &he) {
		switch he.Kind {
		case hsm.KindUnavailable:
			return &Error{Name: DependencyTimeoutException, Msg: "the HSM is unavailable", Err: err}
		case hsm.KindIntegrity:
			return &Error{Name: InvalidCiphertextException, Msg: "the ciphertext, tag, IV or additional authenticated data is invalid", Err: err}
		}
		return &Error{Name: InternalException, Msg: "internal error", Err: err}
	}
	if fe, ok := fault.As(err); ok {
		switch fe.Kind {
		case fault.NotFound:
			return &Error{Name: KeyNotFoundException, Msg: "external key not found", Err: err}
		case fault.Unavailable:
			return &Error{Name: DependencyTimeoutException, Msg: "a dependency is unavailable", Err: err}
		}
	}
	return &Error{Name: InternalException, Msg: "internal error", Err: err}
}

// status returns the HTTP status of an error name.
func status(n Name) int {
	if s, ok := statuses[n]; ok {
		return s
	}
	return http.StatusInternalServerError
}
