package remote

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/passflow/passflow/fault"
)

// issuer is a stand-in for passflow's metadata, JWK Set and introspection
// endpoints, signing with keys the test controls.
type issuer struct {
	*httptest.Server
	name      string // the iss: the server's URL, unless a test says otherwise
	jwksDown  atomic.Bool
	mu        sync.Mutex
	keys      map[string]ed25519.PrivateKey
	jwksReads atomic.Int64
	active    atomic.Bool
}

// clockedVerifier is New(cfg) on a clock that stands still until the test
// sets how far past the start it is.
func clockedVerifier(t *testing.T, cfg Config) (*Verifier, func(time.Duration)) {
	t.Helper()
	start := time.Now()
	var offset atomic.Int64
	cfg.Now = func() time.Time { return start.Add(time.Duration(offset.Load())) }
	v, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, func(d time.Duration) { offset.Store(int64(d)) }
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{keys: map[string]ed25519.PrivateKey{}}
	is.active.Store(true)
	is.addKey(t, "k1")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.name, "jwks_uri": is.URL + "/jwks", "introspection_endpoint": is.URL + "/introspect",
			"scopes_supported": []string{"reports:read", "reports:write"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		is.jwksReads.Add(1)
		if is.jwksDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		is.mu.Lock()
		defer is.mu.Unlock()
		var keys []map[string]any
		for kid, k := range is.keys {
			keys = append(keys, map[string]any{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
				"key_ops": []string{"verify"}, // not a string: read past, not refused
				"x":       base64.RawURLEncoding.EncodeToString(k.Public().(ed25519.PublicKey))})
		}
		json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "svc" || secret != "svc-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]bool{"active": is.active.Load()})
	})
	is.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As passflow's router: a path is never cleaned or redirected.
		if strings.Contains(r.URL.Path, "//") {
			http.NotFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	is.name = is.URL
	t.Cleanup(is.Close)
	return is
}

func (is *issuer) addKey(t *testing.T, kid string) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is.mu.Lock()
	is.keys[kid] = k
	is.mu.Unlock()
}

// token signs claims as passflow does, with edits.
func (is *issuer) token(t *testing.T, kid string, edit func(h map[string]any, c jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{"iss": is.name, "aud": is.name, "sub": "u1", "jti": "j1", "client_id": "passflow",
		"scope": "reports:read", "username": "rita", "iat": now.Unix(), "exp": now.Add(15 * time.Minute).Unix()}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = kid
	if edit != nil {
		edit(tok.Header, c)
	}
	is.mu.Lock()
	key := is.keys[kid]
	is.mu.Unlock()
	if key == nil {
		_, key, _ = ed25519.GenerateKey(rand.Reader)
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	v, err := New(context.Background(), Config{Issuer: is.URL})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(context.Background(), is.token(t, "k1", nil))
	if err != nil || p.UserID != "u1" || p.Username != "rita" || !p.HasScopes([]string{"reports:read"}) {
		t.Fatalf("a good token: %+v, %v", p, err)
	}
	good := is.token(t, "k1", nil)
	tampered := tamper(t, good)
	for name, c := range map[string]struct {
		token, description string
	}{
		"another issuer":   {is.token(t, "k1", func(_ map[string]any, c jwt.MapClaims) { c["iss"] = "https://elsewhere.example" }), "token has the wrong issuer"},
		"another audience": {is.token(t, "k1", func(_ map[string]any, c jwt.MapClaims) { c["aud"] = "https://elsewhere.example" }), "token has the wrong audience"},
		"expired":          {is.token(t, "k1", func(_ map[string]any, c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "token has expired"},
		"not at+jwt":       {is.token(t, "k1", func(h map[string]any, _ jwt.MapClaims) { h["typ"] = "JWT" }), "token is not an access token (typ must be at+jwt)"},
		"no scope":         {is.token(t, "k1", func(_ map[string]any, c jwt.MapClaims) { delete(c, "scope") }), "token lacks a required claim"},
		"unknown key":      {is.token(t, "nobody's", nil), "token is signed with an unknown key"},
		"tampered":         {tampered, "token signature is invalid"},
		"not a JWT":        {"abc", "token is malformed"},
	} {
		_, err := v.Verify(context.Background(), c.token)
		if fe := fault.As(err); fe.Code != fault.InvalidToken || fe.Description != c.description {
			t.Errorf("%s: %v, want invalid_token %q", name, err, c.description)
		}
	}

	// A token that was good expires while cached.
	late, err := New(context.Background(), Config{Issuer: is.URL, Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := late.Verify(context.Background(), good); fault.As(err).Description != "token has expired" {
		t.Errorf("an hour later: %v", err)
	}
}

// TestKeyRotation: a new kid makes the verifier read the JWK Set again, at
// most once per RefetchEvery, so tokens with made-up kids cannot make it
// hammer passflow.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	v, setClock := clockedVerifier(t, Config{Issuer: is.URL})
	// Tokens of another issuer never make it read the keys: they cannot
	// spend the refetch a rotation needs.
	for range 10 {
		v.Verify(context.Background(), is.token(t, "theirs", func(_ map[string]any, c jwt.MapClaims) { c["iss"] = "https://elsewhere.example" }))
	}
	is.addKey(t, "k2")
	if _, err := v.Verify(context.Background(), is.token(t, "k2", nil)); err != nil {
		t.Fatalf("a token of the new key: %v", err)
	}
	for range 50 {
		v.Verify(context.Background(), is.token(t, "made-up", nil))
	}
	if n := is.jwksReads.Load(); n != 2 {
		t.Errorf("the JWK Set was read %d times, want 2 (at start, and for k2)", n)
	}
	is.addKey(t, "k3")
	if _, err := v.Verify(context.Background(), is.token(t, "k3", nil)); err == nil {
		t.Error("a second new key within a minute was fetched")
	}
	setClock(time.Minute)
	if _, err := v.Verify(context.Background(), is.token(t, "k3", nil)); err != nil {
		t.Errorf("a minute later, the second new key: %v", err)
	}
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	v, err := New(context.Background(), Config{Issuer: is.URL, Introspection: &Introspection{ClientID: "svc", ClientSecret: "svc-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	tok := is.token(t, "k1", nil)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("an active token: %v", err)
	}
	is.active.Store(false)
	if _, err := v.Verify(context.Background(), tok); fault.As(err).Code != fault.InvalidToken {
		t.Errorf("an inactive token: %v", err)
	}
	wrong, err := New(context.Background(), Config{Issuer: is.URL, Introspection: &Introspection{ClientID: "svc", ClientSecret: "wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.Verify(context.Background(), tok)
	if fe := fault.As(err); fe.Code != fault.Unavailable || strings.Contains(fe.Error(), "wrong") {
		t.Errorf("introspecting with a wrong secret: %v, want unavailable without the secret", err)
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	if _, err := New(context.Background(), Config{Issuer: is.URL + "/other"}); err == nil {
		t.Error("metadata naming another issuer was accepted")
	}
	is.mu.Lock()
	clear(is.keys)
	is.mu.Unlock()
	if _, err := New(context.Background(), Config{Issuer: is.URL}); err == nil || !strings.Contains(err.Error(), "HS256") {
		t.Errorf("no public keys: %v", err)
	}
	is.addKey(t, "k1")
	v, err := New(context.Background(), Config{Issuer: is.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Supports([]string{"reports:read"}); err != nil {
		t.Error(err)
	}
	if err := v.Supports([]string{"reports:read", "billing:admin"}); err == nil || !strings.Contains(err.Error(), "billing:admin") {
		t.Errorf("a scope passflow does not grant: %v", err)
	}
}

// tamper gives a token one more scope, keeping its signature.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	c["scope"] = c["scope"].(string) + " reports:write"
	raw, _ = json.Marshal(c)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// TestKeysRefreshInTheBackground: keys older than RefreshEvery are read
// again whatever the tokens, so a key passflow publishes ahead is known
// before its first token, even when the refetches are spent.
func TestKeysRefreshInTheBackground(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	v, setClock := clockedVerifier(t, Config{Issuer: is.URL, RefetchEvery: time.Hour})
	good := is.token(t, "k1", nil)
	v.Verify(context.Background(), is.token(t, "made-up", nil)) // spends the refetch
	is.addKey(t, "k2")
	if _, err := v.Verify(context.Background(), is.token(t, "k2", nil)); err == nil {
		t.Fatal("the refetch was not spent")
	}
	setClock(5 * time.Minute)
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for is.jwksReads.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for v.refreshing.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := v.Verify(context.Background(), is.token(t, "k2", nil)); err != nil {
		t.Errorf("five minutes on, a token of the key published meanwhile: %v", err)
	}
}

// TestIssuerWithASlash: an issuer URL ending in / finds its metadata at
// the same well-known path, and its tokens name it as it is.
func TestIssuerWithASlash(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	is.name = is.URL + "/"
	v, err := New(context.Background(), Config{Issuer: is.name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), is.token(t, "k1", nil)); err != nil {
		t.Error(err)
	}
}

// TestKeyReadsOutliveTheirCaller: a caller hanging up while its unknown
// kid is looked up does not spend the refetch for nothing; and a failed
// background read waits RefreshEvery before the next, rather than one per
// request while passflow is down.
func TestKeyReadsOutliveTheirCaller(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	v, setClock := clockedVerifier(t, Config{Issuer: is.URL})
	is.addKey(t, "k2")
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	v.Verify(gone, is.token(t, "k2", nil))
	if _, err := v.Verify(context.Background(), is.token(t, "k2", nil)); err != nil {
		t.Errorf("after a caller hung up during the refetch: %v", err)
	}

	is.jwksDown.Store(true)
	reads := is.jwksReads.Load()
	setClock(5 * time.Minute)
	good := is.token(t, "k1", nil)
	for range 20 {
		if _, err := v.Verify(context.Background(), good); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for v.refreshing.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := is.jwksReads.Load() - reads; n != 1 {
		t.Errorf("passflow's JWK Set down, 20 requests read it %d times, want 1", n)
	}
}
