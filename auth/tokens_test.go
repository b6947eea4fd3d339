package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/sqlite"
)

const issuer = "https://passflow.test"

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTokens(t testing.TB, c *clock) (*Tokens, *KeySet) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, id := range []string{"u1", "u"} {
		if err := st.CreateUser(context.Background(), store.User{ID: id, Username: "name-" + id, PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := LoadKeys(context.Background(), st, KeyConfig{Alg: AlgEdDSA, Verify: 10 * time.Minute}, c.now)
	if err != nil {
		t.Fatal(err)
	}
	revs, err := NewRevocations(context.Background(), slog.New(slog.DiscardHandler), st, keys, 100, c.now)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := NewTokens(issuer, 10*time.Minute, 5*time.Second, keys, revs, NoEvents{}, 100, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return tokens, keys
}

func TestIssueVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := &clock{time.Now()}
	tokens, _ := newTokens(t, c)
	at, err := tokens.Issue(Subject{UserID: "u1", Username: "ann", ClientID: "app", Scopes: []string{"data:read", "data:write"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time from the cache
		p, err := tokens.Verify(ctx, at.Token)
		if err != nil {
			t.Fatal(err)
		}
		if p.UserID != "u1" || p.Username != "ann" || p.ClientID != "app" || p.TokenID != at.ID ||
			strings.Join(p.Scopes, " ") != "data:read data:write" {
			t.Errorf("principal = %+v", p)
		}
	}
	// Expiry is checked on cache hits too, with the leeway.
	c.t = c.t.Add(10*time.Minute + 4*time.Second)
	if _, err := tokens.Verify(ctx, at.Token); err != nil {
		t.Errorf("within the leeway: %v", err)
	}
	c.t = c.t.Add(2 * time.Second)
	if _, err := tokens.Verify(ctx, at.Token); fault.As(err).Code != fault.InvalidToken {
		t.Errorf("expired (cached): %v, want invalid_token", err)
	}
}

// sign makes a token with the given header and claims and key.
func sign(t *testing.T, method jwt.SigningMethod, header map[string]any, claims jwt.MapClaims, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := &clock{time.Now()}
	tokens, keys := newTokens(t, c)
	kid := keys.Signing().ID
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	now := c.now().Unix()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": issuer, "aud": issuer, "sub": "u", "exp": now + 60, "iat": now, "jti": "j", "client_id": "c", "scope": ""}
	}
	with := func(k string, v any) jwt.MapClaims { m := good(); m[k] = v; return m }
	without := func(k string) jwt.MapClaims { m := good(); delete(m, k); return m }
	hdr := map[string]any{"typ": "at+jwt", "kid": kid}

	pubDER := keys.Signing().PublicJWK()["x"]
	real := keys.Signing().sign
	tests := map[string]string{
		"alg none":                  sign(t, jwt.SigningMethodNone, hdr, good(), jwt.UnsafeAllowNoneSignatureType),
		"HS256 with the public key": sign(t, jwt.SigningMethodHS256, hdr, good(), []byte(pubDER)),
		"another Ed25519 key":       sign(t, jwt.SigningMethodEdDSA, hdr, good(), otherKey),
		"unknown kid":               sign(t, jwt.SigningMethodEdDSA, map[string]any{"typ": "at+jwt", "kid": "../../etc/passwd"}, good(), otherKey),
		"typ JWT":                   sign(t, jwt.SigningMethodEdDSA, map[string]any{"typ": "JWT", "kid": kid}, good(), otherKey),
		"typ JWT, real key":         sign(t, jwt.SigningMethodEdDSA, map[string]any{"typ": "JWT", "kid": kid}, good(), real),
		"expired":                   sign(t, jwt.SigningMethodEdDSA, hdr, with("exp", now-10), real),
		"not yet valid":             sign(t, jwt.SigningMethodEdDSA, hdr, with("nbf", now+600), real),
		"issued in the future":      sign(t, jwt.SigningMethodEdDSA, hdr, with("iat", now+600), real),
		"wrong issuer":              sign(t, jwt.SigningMethodEdDSA, hdr, with("iss", "https://evil"), real),
		"wrong audience":            sign(t, jwt.SigningMethodEdDSA, hdr, with("aud", "https://evil"), real),
		"missing exp":               sign(t, jwt.SigningMethodEdDSA, hdr, without("exp"), real),
		"missing sub":               sign(t, jwt.SigningMethodEdDSA, hdr, without("sub"), real),
		"missing scope":             sign(t, jwt.SigningMethodEdDSA, hdr, without("scope"), real),
		"missing client_id":         sign(t, jwt.SigningMethodEdDSA, hdr, without("client_id"), real),
		"garbage":                   "a.b.c",
		"too long":                  strings.Repeat("a", MaxTokenBytes+1),
	}
	if _, err := tokens.Verify(ctx, sign(t, jwt.SigningMethodEdDSA, hdr, good(), real)); err != nil {
		t.Fatalf("the control token fails: %v", err)
	}
	for name, tok := range tests {
		if _, err := tokens.Verify(ctx, tok); fault.As(err).Code != fault.InvalidToken {
			t.Errorf("%s: Verify = %v, want invalid_token", name, err)
		}
	}
}
