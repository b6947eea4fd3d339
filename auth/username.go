package auth

import (
	"fmt"

	"golang.org/x/text/secure/precis"

	"github.com/passflow/passflow/fault"
)

// MaxUsernameBytes bounds a normalised username.
const MaxUsernameBytes = 64

// NormalizeUsername maps a username to its one stored form with the PRECIS
// UsernameCaseMapped profile (RFC 8265), so "Alice" and "alice" are one
// account. A name the profile rejects, or a longer one than
// MaxUsernameBytes, is an invalid_request error about field.
func NormalizeUsername(field, name string) (string, error) {
	if len(name) > 4*MaxUsernameBytes {
		// Bound the work before PRECIS sees it.
		return "", fault.Invalid(field, fmt.Sprintf("username must be at most %d bytes", MaxUsernameBytes))
	}
	n, err := precis.UsernameCaseMapped.String(name)
	if err != nil || n == "" {
		return "", fault.Invalid(field, "username is not allowed: use letters, digits and punctuation, without spaces")
	}
	if len(n) > MaxUsernameBytes {
		return "", fault.Invalid(field, fmt.Sprintf("username must be at most %d bytes", MaxUsernameBytes))
	}
	return n, nil
}
