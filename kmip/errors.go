package kmip

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
)

// Error is a KMIP operation failure: a Result Reason and a message that is
// safe to send to the client.
type Error struct {
	Reason kmip.ResultReason
	Msg    string
	Err    error // the cause, for the log only
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(reason kmip.ResultReason, format string, args ...any) error {
	return &Error{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Shorthands for the reasons the operations use most.
func invalidField(format string, args ...any) error {
	return errorf(kmip.ResultReasonInvalidField, format, args...)
}

func permissionDenied(format string, args ...any) error {
	return errorf(kmip.ResultReasonPermissionDenied, format, args...)
}

func notFound(id string) error {
	return errorf(kmip.ResultReasonItemNotFound, "no object %q", id)
}

// reasonOf is the one place where errors of every layer become a KMIP Result
// Reason and a message for the client. Internal details are not shown: the
// caller logs them (internal reports whether it should).
func reasonOf(err error) (reason kmip.ResultReason, msg string, internal bool) {
	var ke *Error
	if errors.As(err, &ke) {
		return ke.Reason, ke.Msg, ke.Reason == kmip.ResultReasonGeneralFailure
	}
	var ue *wire.UnsupportedError
	if errors.As(err, &ue) {
		return kmip.ResultReasonFeatureNotSupported, ue.Msg, false
	}
	var de *wire.DecodeError
	if errors.As(err, &de) {
		return kmip.ResultReasonInvalidMessage, de.Msg, false
	}
	var pe *wire.Error
	if errors.As(err, &pe) {
		return kmip.ResultReasonInvalidMessage, pe.Error(), false
	}
	var fe *wire.FrameError // a message over the size limit, a bad header
	if errors.As(err, &fe) {
		return kmip.ResultReasonInvalidMessage, fe.Msg, false
	}
	if e, ok := fault.As(err); ok {
		switch e.Kind {
		case fault.BadInput:
			return kmip.ResultReasonInvalidField, e.Msg, false
		case fault.NotFound:
			return kmip.ResultReasonItemNotFound, e.Msg, false
		case fault.Conflict:
			return kmip.ResultReasonIllegalOperation, e.Msg, false
		case fault.Permission:
			return kmip.ResultReasonPermissionDenied, e.Msg, false
		case fault.Unauthorized:
			return kmip.ResultReasonAuthenticationNotSuccessful, e.Msg, false
		case fault.Unsupported:
			return kmip.ResultReasonFeatureNotSupported, e.Msg, false
		case fault.TooLarge:
			return kmip.ResultReasonResponseTooLarge, e.Msg, false
		case fault.Unavailable:
			return kmip.ResultReasonGeneralFailure, e.Msg, true
		}
		return kmip.ResultReasonGeneralFailure, "internal error", true
	}
	if errors.Is(err, hsm.ErrDecryption) {
		return kmip.ResultReasonCryptographicFailure, "decryption failed", false
	}
	var he *hsm.Error
	if errors.As(err, &he) {
		switch he.Kind {
		case hsm.KindBadInput:
			return kmip.ResultReasonInvalidField, he.Msg, false
		case hsm.KindUnsupported:
			return kmip.ResultReasonFeatureNotSupported, he.Msg, false
		case hsm.KindPermission:
			return kmip.ResultReasonPermissionDenied, he.Msg, false
		case hsm.KindUnavailable:
			return kmip.ResultReasonGeneralFailure, "the HSM is unavailable", true
		}
		return kmip.ResultReasonGeneralFailure, "internal error", true
	}
	if errors.Is(err, store.ErrNotFound) {
		return kmip.ResultReasonItemNotFound, "not found", false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return kmip.ResultReasonGeneralFailure, "the operation did not complete in time", true
	}
	return kmip.ResultReasonGeneralFailure, "internal error", true
}

// statusOf maps a Result Reason to the HTTP-like status the metrics use for
// every interface (200 success, 4xx the client's fault, 5xx the server's).
func statusOf(reason kmip.ResultReason, failed bool) int {
	if !failed {
		return 200
	}
	switch reason {
	case kmip.ResultReasonItemNotFound:
		return 404
	case kmip.ResultReasonPermissionDenied, kmip.ResultReasonAuthenticationNotSuccessful,
		kmip.ResultReasonSensitive, kmip.ResultReasonNotExtractable:
		return 403
	case kmip.ResultReasonResponseTooLarge:
		return 413
	case kmip.ResultReasonGeneralFailure, kmip.ResultReasonCryptographicFailure:
		return 500
	}
	return 400
}
