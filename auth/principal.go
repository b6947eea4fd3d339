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
	IssuedAt  time.Time
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

// Caller is what the request gate learnt of a request's sender, for the
// handlers: its address (the connection's, or what trusted proxies say),
// and, for a protected operation, the principal its token speaks for.
type Caller struct {
	ClientIP  string
	Principal *Principal
}

type callerKey struct{}

// WithCaller returns a context carrying c.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller the request gate found. Every request that
// passed the gate has one.
func CallerFrom(ctx context.Context) (*Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*Caller)
	return c, ok && c != nil
}

// WithPrincipal returns a context carrying p as its caller's principal.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return WithCaller(ctx, &Caller{Principal: p})
}

// PrincipalFrom returns the principal the request was authenticated as.
// Handlers of operations that require a bearer token can rely on it being
// there: the guard refuses the request otherwise.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	c, ok := CallerFrom(ctx)
	if !ok || c.Principal == nil {
		return nil, false
	}
	return c.Principal, true
}
