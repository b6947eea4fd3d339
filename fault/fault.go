// Package fault is passflow's one small error vocabulary.
//
// Every failure a client may see is an *Error carrying a Code. The guard owns
// the one table that maps a Code to an HTTP status and writes the body; the
// packages below it (auth, store, impl) only choose a Code and a description.
// A description is shown to the client, so it never contains a submitted
// value; the wrapped cause is only logged.
package fault

import (
	"errors"
	"time"
)

// Code is a machine-readable error code, sent as the "error" member of a body.
type Code string

// Codes of the shared error body and of RFC 6749 §5.2 and RFC 6750 §3.1.
const (
	InvalidRequest   Code = "invalid_request"
	NotFound         Code = "not_found"
	MethodNotAllowed Code = "method_not_allowed"
	Conflict         Code = "conflict"
	PayloadTooLarge  Code = "payload_too_large"
	Unavailable      Code = "unavailable"
	Internal         Code = "internal_error"

	// Unauthorized means no bearer credentials were sent: RFC 6750 §3.1 says
	// the challenge then carries no error code; the body still names one.
	Unauthorized      Code = "unauthorized"
	InvalidToken      Code = "invalid_token"
	InsufficientScope Code = "insufficient_scope"

	InvalidGrant         Code = "invalid_grant"
	InvalidScope         Code = "invalid_scope"
	InvalidClient        Code = "invalid_client"
	UnauthorizedClient   Code = "unauthorized_client"
	UnsupportedGrantType Code = "unsupported_grant_type"
	SlowDown             Code = "slow_down"

	// RegistrationClosed refuses a sign-up on a server that takes none.
	RegistrationClosed Code = "registration_closed"
)

// Error is a failure with a client-facing code and description.
type Error struct {
	Code Code
	// Description is shown to the client. It never holds a submitted value.
	Description string
	// Field is a JSON pointer to the part of the request at fault, if any.
	Field string
	// Scope is the scope an insufficient_scope challenge names.
	Scope string
	// RetryAfter, when positive, is how long the client should wait before
	// trying again (a throttle's back-off). The error writer sends it as
	// Retry-After, and a second for unavailable errors that name none.
	RetryAfter time.Duration
	// Reason is a short machine word from a fixed vocabulary (expired,
	// revoked, throttled, ...) for metrics and audit logs.
	Reason string
	// Err is the cause. It is logged, never shown.
	Err error
}

func (e *Error) Error() string {
	msg := string(e.Code)
	if e.Description != "" {
		msg += ": " + e.Description
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is a sentinel of e's code: an *Error with the
// same Code and neither a Description nor a Field, such as ErrNotFound. So
// errors.Is(err, fault.ErrNotFound) holds for every not_found error, while
// two errors that say different things of one code do not match.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Description == "" && t.Field == ""
}

// New returns an error with code and a client-facing description.
func New(code Code, description string) *Error {
	return &Error{Code: code, Description: description}
}

// Invalid returns an invalid_request error about the request part at field.
func Invalid(field, description string) *Error {
	return &Error{Code: InvalidRequest, Description: description, Field: field}
}

// Wrap returns an error with code and description whose cause is err.
func Wrap(code Code, description string, err error) *Error {
	return &Error{Code: code, Description: description, Err: err}
}

// Sentinels to compare with errors.Is; each matches every error of its code.
var (
	ErrNotFound    = &Error{Code: NotFound}
	ErrConflict    = &Error{Code: Conflict}
	ErrUnavailable = &Error{Code: Unavailable}
)

// As returns the *Error in err's chain, or an internal_error wrapping err
// when there is none: an error nobody classified is the server's fault.
func As(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	return &Error{Code: Internal, Err: err}
}
