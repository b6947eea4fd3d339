package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// Scopes are the scopes an API declares — its spec's password flow lists
// them — and the only ones accounts and clients may hold and tokens carry.
type Scopes struct {
	names []string
}

// NewScopes returns the scopes of names, which must be RFC 6749 §3.3 scope
// tokens and hold store.ScopeUsersAdmin, the scope the last-admin rule
// keeps.
func NewScopes(names []string) (Scopes, error) {
	out := slices.Compact(slices.Sorted(slices.Values(names)))
	for _, n := range out {
		if !scopeToken(n) {
			return Scopes{}, fmt.Errorf("scope %q is not an RFC 6749 scope token (printable ASCII, no space, quote or backslash)", n)
		}
	}
	if !slices.Contains(out, store.ScopeUsersAdmin) {
		return Scopes{}, errors.New("the password flow declares no " + store.ScopeUsersAdmin + " scope, which managing accounts needs")
	}
	return Scopes{names: out}, nil
}

// scopeToken reports whether s is 1*( %x21 / %x23-5B / %x5D-7E ).
func scopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// All lists every scope, sorted.
func (s Scopes) All() []string { return slices.Clone(s.names) }

// Parse reads a space-delimited scope list (RFC 6749 §3.3): duplicates
// collapse, the result is sorted, and every scope must be one of s. An
// unknown scope is an error with code.
func (s Scopes) Parse(list string, code fault.Code) ([]string, error) {
	return s.Check(strings.Split(list, " "), code)
}

// Check is Parse for a list already split. Empty entries are skipped (they
// come from repeated spaces).
func (s Scopes) Check(scopes []string, code fault.Code) ([]string, error) {
	out := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		if sc == "" {
			continue
		}
		if !slices.Contains(s.names, sc) {
			return nil, fault.New(code, "unknown scope; the scopes are "+strings.Join(s.names, ", "))
		}
		out = append(out, sc)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
