package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

const issuer = "https://passflow.test"

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTokens(t testing.TB, c *clock) (*Tokens, *KeySet) {
	t.Helper()
	st := openStore(t)
	for _, id := range []string{"u1", "u"} {
		if err := st.CreateUser(context.Background(), store.User{ID: id, Username: "name-" + id, PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := LoadKeys(context.Background(), st, KeyConfig{Alg: AlgEdDSA, Verify: 10 * time.Minute}, slog.New(slog.DiscardHandler), c.now)
	if err != nil {
		t.Fatal(err)
	}
	feed, err := NewFeed(context.Background(), slog.New(slog.DiscardHandler), st, keys, 100, c.now)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := NewTokens(TokenConfig{Issuer: issuer, TTL: 10 * time.Minute, Leeway: 5 * time.Second, CacheSize: 100}, keys, feed, NoEvents{}, c.now)
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
	control := sign(t, jwt.SigningMethodEdDSA, hdr, good(), real)
	if _, err := tokens.Verify(ctx, control); err != nil {
		t.Fatalf("the control token fails: %v", err)
	}
	// The same signature spelled otherwise: an Ed25519 signature's last
	// base64url character carries 4 unused bits.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, control[len(control)-1])
	tests["non-canonical signature"] = control[:len(control)-1] + string(alphabet[last^1])
	for name, tok := range tests {
		if _, err := tokens.Verify(ctx, tok); fault.As(err).Code != fault.InvalidToken {
			t.Errorf("%s: Verify = %v, want invalid_token", name, err)
		}
	}
}

// countingKeys counts the reads of a store's signing keys.
type countingKeys struct {
	store.Keys
	reads atomic.Int64
}

func (c *countingKeys) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	c.reads.Add(1)
	return c.Keys.SigningKeys(ctx)
}

// TestUnknownKidReloadsKeys: a token signed with a key this process has not
// read yet (another instance rotated, and the change feed has not brought
// it) makes the key set read the store before refusing, at most once per
// SyncInterval whatever kids are sent.
func TestUnknownKidReloadsKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	c := &clock{time.Now()}
	cfg := KeyConfig{Alg: AlgEdDSA, Verify: time.Hour}
	counted := &countingKeys{Keys: st}
	keysA, err := LoadKeys(ctx, st, cfg, slog.New(slog.DiscardHandler), c.now)
	if err != nil {
		t.Fatal(err)
	}
	keysB, err := LoadKeys(ctx, counted, cfg, slog.New(slog.DiscardHandler), c.now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := RotateKeys(ctx, st, cfg, "", 0, c.now()); err != nil {
		t.Fatal(err)
	}
	if err := keysA.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(KeyPrepublication)
	fresh := keysA.Signing()
	if _, ok := keysB.Lookup(fresh.ID); ok {
		t.Fatal("B knows the new key before reading the store")
	}
	reads := counted.reads.Load()
	if k, ok := keysB.Find(ctx, fresh.ID); !ok || k.ID != fresh.ID {
		t.Fatal("B does not find the new key in the store")
	}
	if counted.reads.Load() != reads+1 {
		t.Errorf("finding the key read the store %d times, want once", counted.reads.Load()-reads)
	}
	for i := range 50 {
		keysB.Find(ctx, fmt.Sprintf("no-such-kid-%d", i))
	}
	if counted.reads.Load() != reads+1 {
		t.Errorf("50 unknown kids within an interval read the store %d more times, want none", counted.reads.Load()-reads-1)
	}
	c.t = c.t.Add(SyncInterval)
	keysB.Find(ctx, "no-such-kid")
	if counted.reads.Load() != reads+2 {
		t.Errorf("an unknown kid an interval later read the store %d times, want once", counted.reads.Load()-reads-1)
	}
}
