package auth

import (
	"context"
	"crypto/sha256"
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

// KeyFinder returns the public key whose id is kid, and the one algorithm
// it verifies.
type KeyFinder func(ctx context.Context, kid string) (alg string, key any, ok bool)

// CheckerConfig says which access tokens a TokenChecker accepts.
type CheckerConfig struct {
	// Issuer is the iss every token must carry.
	Issuer string
	// Audience is the aud every token must carry; Issuer when empty, as
	// passflow issues them.
	Audience string
	// Leeway is the clock skew tolerated.
	Leeway time.Duration
	// CacheSize is how many verified tokens are remembered, so that a
	// token's signature is checked once, not on every request.
	CacheSize int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// TokenChecker checks access tokens in passflow's RFC 9068 profile, for
// passflow and for the services that accept its tokens alike: the same
// checks, and the same invalid_token errors. A token's signature and claims
// are checked once; its expiry on every call. Whether it was revoked is
// not its business.
type TokenChecker struct {
	issuer string
	find   KeyFinder
	leeway time.Duration
	now    func() time.Time
	parser *jwt.Parser
	// cache maps the SHA-256 of a whole compact token, signature included,
	// to the principal it verified as.
	cache *lru.Cache[[sha256.Size]byte, *Principal]
}

// NewTokenChecker returns a checker verifying signatures with the keys find
// returns.
func NewTokenChecker(cfg CheckerConfig, find KeyFinder) (*TokenChecker, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Audience == "" {
		cfg.Audience = cfg.Issuer
	}
	cache, err := lru.New[[sha256.Size]byte, *Principal](cfg.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("auth: token cache: %w", err)
	}
	return &TokenChecker{
		issuer: cfg.Issuer,
		find:   find,
		leeway: cfg.Leeway,
		now:    cfg.Now,
		cache:  cache,
		parser: jwt.NewParser(
			// Each token must also use its own key's algorithm (keyFor).
			jwt.WithValidMethods(Algorithms()),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Now),
			// One spelling per token: base64url with unused bits set
			// would be a second token, cached apart, for the same claims.
			jwt.WithStrictDecoding(),
		),
	}, nil
}

// Check verifies raw and returns its principal, or an invalid_token error
// whose description says what was wrong, never what the token held.
func (c *TokenChecker) Check(ctx context.Context, raw string) (*Principal, error) {
	if len(raw) > MaxTokenBytes {
		return nil, invalid("too_long", "token is too long")
	}
	// Hash the token in place: copying it would cost an allocation of its
	// whole length on every request. sha256 only reads the bytes.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
	if p, ok := c.cache.Get(sum); ok {
		if !c.now().Before(p.ExpiresAt.Add(c.leeway)) {
			c.cache.Remove(sum)
			return nil, invalid("expired", "token has expired")
		}
		return p, nil
	}
	// Only what is not cached needs its syntax checked: a cached token
	// passed every check once.
	if !isB64Token(raw) {
		return nil, invalid("malformed", "token is malformed")
	}
	var claims accessClaims
	keyFor := func(tok *jwt.Token) (any, error) { return c.keyFor(ctx, tok) }
	if _, err := c.parser.ParseWithClaims(raw, &claims, keyFor); err != nil {
		return nil, verifyError(err)
	}
	p := &Principal{
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
	c.cache.Add(sum, p)
	return p, nil
}

var (
	errWrongType   = errors.New("typ is not at+jwt")
	errUnknownKey  = errors.New("unknown kid")
	errWrongIssuer = errors.New("another issuer")
)

// keyFor picks the verification key by kid and insists that the token's alg
// is that key's own: a public key is never used as an HMAC secret. A token
// that names another issuer is refused before any key is looked for: an
// unknown kid may make the finder read the keys again, which only a token
// claiming to be ours is worth.
func (c *TokenChecker) keyFor(ctx context.Context, tok *jwt.Token) (any, error) {
	typ, _ := tok.Header["typ"].(string)
	if !strings.EqualFold(typ, accessTokenType) && !strings.EqualFold(typ, "application/"+accessTokenType) {
		return nil, errWrongType
	}
	if claims, ok := tok.Claims.(*accessClaims); !ok || claims.Issuer != c.issuer {
		return nil, errWrongIssuer
	}
	kid, _ := tok.Header["kid"].(string)
	alg, key, ok := c.find(ctx, kid)
	if !ok || alg != tok.Method.Alg() {
		return nil, errUnknownKey
	}
	return key, nil
}

// invalid is an invalid_token error with a reason for metrics.
func invalid(reason, desc string) *fault.Error {
	return &fault.Error{Code: fault.InvalidToken, Description: desc, Reason: reason}
}

func verifyError(err error) error {
	reason, desc := "invalid", "token is invalid"
	switch {
	case errors.Is(err, errWrongType):
		reason, desc = "wrong_type", "token is not an access token (typ must be at+jwt)"
	case errors.Is(err, errWrongIssuer):
		reason, desc = "wrong_issuer", "token has the wrong issuer"
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
