package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/passflow/passflow/fault"
)

// MaxTokenBytes bounds an access token: anything longer is refused before
// any parsing. Real tokens are a few hundred bytes.
const MaxTokenBytes = 4096

// accessTokenType is the JWT typ of RFC 9068 access tokens.
const accessTokenType = "at+jwt"

// accessClaims are the claims of an RFC 9068 access token, plus the
// username and the user's token version at issue.
type accessClaims struct {
	jwt.RegisteredClaims
	ClientID *string `json:"client_id"`
	Scope    *string `json:"scope"`
	Username string  `json:"username,omitempty"`
	Version  int64   `json:"ver"`
	// Session is the refresh family the token belongs to.
	Session string `json:"sid,omitempty"`
}

// Validate adds RFC 9068's required claims to golang-jwt's checks.
func (c *accessClaims) Validate() error {
	switch {
	case c.Subject == "":
		return errors.New("missing sub")
	case c.ID == "":
		return errors.New("missing jti")
	case c.IssuedAt == nil:
		return errors.New("missing iat")
	case c.ClientID == nil:
		return errors.New("missing client_id")
	case c.Scope == nil:
		return errors.New("missing scope")
	}
	return nil
}

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
	parser *jwt.Parser
	// cache maps the SHA-256 of a whole compact token, signature included,
	// to the principal it verified as, so a token's signature is checked
	// once, not on every request. Expiry is still checked on every hit.
	cache *lru.Cache[[sha256.Size]byte, *Principal]
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
	cache, err := lru.New[[sha256.Size]byte, *Principal](cfg.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("auth: token cache: %w", err)
	}
	issuer, leeway := cfg.Issuer, cfg.Leeway
	return &Tokens{
		issuer: issuer,
		ttl:    cfg.TTL,
		leeway: leeway,
		keys:   keys,
		feed:   feed,
		events: events,
		now:    now,
		cache:  cache,
		parser: jwt.NewParser(
			// Each token must also use its own key's algorithm (keyFor).
			jwt.WithValidMethods(Algorithms()),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(issuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(leeway),
			jwt.WithTimeFunc(now),
			// One spelling per token: base64url with unused bits set
			// would be a second token, cached apart, for the same claims.
			jwt.WithStrictDecoding(),
		),
	}, nil
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

// invalid is an invalid_token error with a reason for metrics.
func invalid(reason, desc string) *fault.Error {
	return &fault.Error{Code: fault.InvalidToken, Description: desc, Reason: reason}
}

// parse checks a token's signature and claims, once per token, and its
// expiry on every call; not whether it was revoked.
func (t *Tokens) parse(ctx context.Context, raw string) (*Principal, error) {
	if len(raw) > MaxTokenBytes {
		return nil, invalid("too_long", "token is too long")
	}
	// Hash the token in place: copying it would cost an allocation of its
	// whole length on every request. sha256 only reads the bytes.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
	p, ok := t.cache.Get(sum)
	if ok {
		if !t.now().Before(p.ExpiresAt.Add(t.leeway)) {
			t.cache.Remove(sum)
			return nil, invalid("expired", "token has expired")
		}
	} else {
		// Only what is not cached needs its syntax checked: a cached token
		// passed every check once.
		if !isB64Token(raw) {
			return nil, invalid("malformed", "token is malformed")
		}
		var claims accessClaims
		keyFor := func(tok *jwt.Token) (any, error) { return t.keyFor(ctx, tok) }
		if _, err := t.parser.ParseWithClaims(raw, &claims, keyFor); err != nil {
			return nil, verifyError(err)
		}
		p = &Principal{
			UserID:    claims.Subject,
			Username:  claims.Username,
			ClientID:  *claims.ClientID,
			TokenID:   claims.ID,
			Scopes:    strings.Fields(*claims.Scope),
			IssuedAt:  claims.IssuedAt.Time,
			ExpiresAt: claims.ExpiresAt.Time,
			Version:   claims.Version,
			SessionID: claims.Session,
		}
		t.cache.Add(sum, p)
	}
	return p, nil
}

var (
	errWrongType  = errors.New("typ is not at+jwt")
	errUnknownKey = errors.New("unknown kid")
)

// keyFor picks the verification key by kid and insists that the token's alg
// is that key's own: a public key is never used as an HMAC secret. An
// unknown kid makes the key set read the store once more (at most once per
// SyncInterval) before the token is refused.
func (t *Tokens) keyFor(ctx context.Context, tok *jwt.Token) (any, error) {
	typ, _ := tok.Header["typ"].(string)
	if !strings.EqualFold(typ, accessTokenType) && !strings.EqualFold(typ, "application/"+accessTokenType) {
		return nil, errWrongType
	}
	kid, _ := tok.Header["kid"].(string)
	k, ok := t.keys.Find(ctx, kid)
	if !ok || k.method.Alg() != tok.Method.Alg() {
		return nil, errUnknownKey
	}
	return k.verify, nil
}

func verifyError(err error) error {
	reason, desc := "invalid", "token is invalid"
	switch {
	case errors.Is(err, errWrongType):
		reason, desc = "wrong_type", "token is not an access token (typ must be at+jwt)"
	case errors.Is(err, errUnknownKey):
		reason, desc = "unknown_key", "token is signed with an unknown key"
	case errors.Is(err, jwt.ErrTokenMalformed):
		reason, desc = "malformed", "token is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		reason, desc = "signature", "token signature is invalid"
	case errors.Is(err, jwt.ErrTokenExpired):
		reason, desc = "expired", "token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		reason, desc = "not_yet_valid", "token is not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		reason, desc = "issued_in_future", "token is issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		reason, desc = "wrong_issuer", "token has the wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		reason, desc = "wrong_audience", "token has the wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrTokenInvalidClaims):
		reason, desc = "missing_claim", "token lacks a required claim"
	}
	fe := invalid(reason, desc)
	fe.Err = err
	return fe
}

// b64TokenChar marks the characters of a b64token before its padding.
var b64TokenChar = func() (t [256]bool) {
	for _, ch := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/") {
		t[ch] = true
	}
	return t
}()

// isB64Token reports whether s matches RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s) && b64TokenChar[s[i]]; i++ {
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// randomID returns 128 random bits, base64url-encoded.
func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
