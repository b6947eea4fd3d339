// Package auth holds passflow's credentials logic: password hashing, access
// tokens and their keys, the grants of the token endpoint, and the principal
// a verified token stands for. It knows nothing of HTTP and no SQL; it keeps
// state through the store interfaces.
package auth

import (
	"context"
	"time"
)

// Principal is who a verified access token speaks for.
type Principal struct {
	UserID    string
	Username  string
	ClientID  string
	TokenID   string
	Scopes    []string
	ExpiresAt time.Time
	// Version is the account's token version when the token was issued.
	Version int64
	// SessionID is the refresh family (one password login) the token was
	// issued from; revoking the family revokes the token.
	SessionID string
}

// HasScopes reports whether the principal holds every scope in required.
func (p *Principal) HasScopes(required []string) bool {
	for _, r := range required {
		found := false
		for _, s := range p.Scopes {
			if s == r {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal the request was authenticated as.
// Handlers of operations that require a bearer token can rely on it being
// there: the guard refuses the request otherwise.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}
