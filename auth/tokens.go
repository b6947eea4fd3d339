package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/passflow/passflow/fault"
)

// Subject is what an access token is issued for.
type Subject struct {
	UserID   string
	Username string
	ClientID string
	Scopes   []string
	// Version is the user's token version at issue.
	Version int64
	// SessionID is the refresh family the token is issued from.
	SessionID string
}

// AccessToken is a freshly issued access token.
type AccessToken struct {
	Token     string
	ID        string
	ExpiresIn time.Duration
}

// Tokens issues and verifies access tokens: JWTs in the RFC 9068 profile.
type Tokens struct {
	issuer string
	ttl    time.Duration
	leeway time.Duration
	keys   *KeySet
	feed   *Feed
	events Events
	now    func() time.Time
	check  *TokenChecker
}

// TokenConfig says how access tokens are made and checked.
type TokenConfig struct {
	// Issuer is the iss and aud of every token.
	Issuer string
	// TTL is how long a token lives.
	TTL time.Duration
	// Leeway is the clock skew verification tolerates.
	Leeway time.Duration
	// CacheSize is how many verified tokens are remembered, so that a
	// token's signature is checked once.
	CacheSize int
}

// NewTokens returns a token service signing with keys, which asks feed
// whether a token was revoked.
func NewTokens(
	cfg TokenConfig,
	keys *KeySet,
	feed *Feed,
	events Events,
	now func() time.Time,
) (*Tokens, error) {
	t := &Tokens{
		issuer: cfg.Issuer,
		ttl:    cfg.TTL,
		leeway: cfg.Leeway,
		keys:   keys,
		feed:   feed,
		events: events,
		now:    now,
	}
	var err error
	t.check, err = NewTokenChecker(CheckerConfig{Issuer: cfg.Issuer, Leeway: cfg.Leeway, CacheSize: cfg.CacheSize, Now: now}, t.findKey)
	return t, err
}

// findKey finds a verification key in the key set. An unknown kid makes
// the key set read the store once more (at most once per SyncInterval)
// before the token is refused.
func (t *Tokens) findKey(ctx context.Context, kid string) (string, any, bool) {
	k, ok := t.keys.Find(ctx, kid)
	if !ok {
		return "", nil, false
	}
	return k.method.Alg(), k.verify, true
}

// parse checks a token's signature and claims, once per token, and its
// expiry on every call; not whether it was revoked.
func (t *Tokens) parse(ctx context.Context, raw string) (*Principal, error) {
	return t.check.Check(ctx, raw)
}

// TTL is how long new access tokens live.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// DeadAfter is when every access token issued by now is dead, clock skew
// allowed for.
func (t *Tokens) DeadAfter(now time.Time) time.Time { return now.Add(t.ttl + t.leeway) }

// expiry is when a verified token is dead, clock skew allowed for.
func (t *Tokens) expiry(p *Principal) time.Time { return p.ExpiresAt.Add(t.leeway) }

// Issue signs a new access token for s.
func (t *Tokens) Issue(s Subject) (AccessToken, error) {
	jti, err := randomID()
	if err != nil {
		return AccessToken{}, err
	}
	now := t.now()
	scope := strings.Join(s.Scopes, " ")
	clientID := s.ClientID
	claims := &accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   s.UserID,
			Audience:  jwt.ClaimStrings{t.issuer},
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
		ClientID: &clientID,
		Scope:    &scope,
		Username: s.Username,
		Version:  s.Version,
		Session:  s.SessionID,
	}
	key := t.keys.Signing()
	tok := jwt.NewWithClaims(key.method, claims)
	tok.Header["typ"] = accessTokenType
	tok.Header["kid"] = key.ID
	signed, err := tok.SignedString(key.sign)
	if err != nil {
		return AccessToken{}, fmt.Errorf("auth: sign access token: %w", err)
	}
	return AccessToken{Token: signed, ID: jti, ExpiresIn: t.ttl}, nil
}

// Verify checks an access token and returns its principal. Every failure of
// the token is an invalid_token error whose description says what was
// wrong, never what the token held.
//
// A token's signature and claims are checked once; its expiry, revocation
// and account state on every call, from memory.
func (t *Tokens) Verify(ctx context.Context, raw string) (*Principal, error) {
	p, err := t.parse(ctx, raw)
	if err == nil {
		err = t.feed.Check(ctx, p)
	}
	if err != nil {
		if fe := fault.As(err); fe.Code == fault.InvalidToken {
			t.events.TokenRejected(fe.Reason)
		}
		return nil, err
	}
	return p, nil
}

// randomID returns 128 random bits, base64url-encoded.
func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
