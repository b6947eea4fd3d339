package auth

import (
	"slices"
	"strings"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// ParseScopes reads a space-delimited scope list (RFC 6749 §3.3): duplicates
// collapse, the result is sorted, and every scope must be one the spec
// declares. An unknown scope is returned as an error with code.
func ParseScopes(s string, code fault.Code) ([]string, error) {
	return CheckScopes(strings.Split(s, " "), code)
}

// CheckScopes is ParseScopes for a list already split. Empty entries are
// skipped (they come from repeated spaces).
func CheckScopes(scopes []string, code fault.Code) ([]string, error) {
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if s == "" {
			continue
		}
		if !slices.Contains(store.AllScopes, s) {
			return nil, fault.New(code, "unknown scope; the scopes are "+strings.Join(store.AllScopes, ", "))
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
