package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/generated/api"
	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/sqlite"
)

// inproc is the whole program in this process on an httptest server, with
// a strict middleware counting the requests that reach a handler.
type inproc struct {
	t       testing.TB
	url     string
	st      *sqlite.Store
	app     *app
	reached atomic.Int64
	logs    *logBuffer
}

// cheapHasher keeps in-process tests fast; the real parameters are
// exercised through run.
var cheapHasher = auth.NewPasswords(auth.Argon2idParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})

func newInproc(t testing.TB, configure func(*config), extra ...api.StrictMiddlewareFunc) *inproc {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := benchConfig()
	if configure != nil {
		configure(&cfg)
	}
	doc, err := loadSpec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := &inproc{t: t, st: st, logs: &logBuffer{addrC: make(chan string, 1)}}
	count := func(f api.StrictHandlerFunc, _ string) api.StrictHandlerFunc {
		return func(c *gin.Context, req any) (any, error) {
			e.reached.Add(1)
			return f(c, req)
		}
	}
	var logs io.Writer = e.logs
	if _, fuzzing := t.(*testing.F); fuzzing {
		logs = io.Discard // millions of requests: keep no log
	}
	e.app, err = newApp(ctx, slog.New(slog.NewTextHandler(logs, nil)), cfg, st, cheapHasher, doc,
		newMetrics(func() int { return 0 }), append([]api.StrictMiddlewareFunc{count}, extra...))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.app.handler)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *inproc) addUser(name string, scopes ...string) {
	e.t.Helper()
	if _, err := e.app.accounts.Create(context.Background(), auth.NewAccount{Username: name, Password: name + "-password", Scopes: scopes}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *inproc) get(path string, header http.Header) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func (e *inproc) login(name string) string {
	e.t.Helper()
	res, err := http.PostForm(e.url+"/token", url.Values{"grant_type": {"password"}, "username": {name}, "password": {name + "-password"}})
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&body) != nil {
		e.t.Fatalf("login %s: %d", name, res.StatusCode)
	}
	return body.AccessToken
}

// signingKey reads the server's Ed25519 key straight from the database.
func (e *inproc) signingKey() (string, ed25519.PrivateKey) {
	e.t.Helper()
	keys, err := e.st.SigningKeys(context.Background())
	if err != nil || len(keys) == 0 {
		e.t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(keys[0].Private)
	if err != nil {
		e.t.Fatal(err)
	}
	return keys[0].ID, priv.(ed25519.PrivateKey)
}

// TestJWTAttacks: a table of forged, broken and out-of-date tokens. Each
// is refused with 401 (invalid_token, or no error code where RFC 6750
// says so), and none reaches a handler.
func TestJWTAttacks(t *testing.T) {
	t.Parallel()
	e := newInproc(t, nil)
	e.addUser("uma", store.ScopeDataRead)
	e.addUser("gone", store.ScopeDataRead)
	e.addUser("off", store.ScopeDataRead)
	e.addUser("revoked", store.ScopeDataRead)
	good := e.login("uma")
	goneTok, offTok, revokedTok := e.login("gone"), e.login("off"), e.login("revoked")

	kid, priv := e.signingKey()
	pub := priv.Public().(ed25519.PublicKey)
	var payload jwt.MapClaims
	{
		parts := strings.Split(good, ".")
		b, _ := base64.RawURLEncoding.DecodeString(parts[1])
		json.Unmarshal(b, &payload)
	}
	now := time.Now().Unix()
	claims := func(change func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range payload {
			c[k] = v
		}
		change(c)
		return c
	}
	sign := func(method jwt.SigningMethod, header map[string]any, c jwt.MapClaims, key any) string {
		tok := jwt.NewWithClaims(method, c)
		tok.Header = map[string]any{"alg": method.Alg()}
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hdr := map[string]any{"typ": "at+jwt", "kid": kid}
	real := func(change func(jwt.MapClaims)) string {
		return sign(jwt.SigningMethodEdDSA, hdr, claims(change), priv)
	}
	same := func(jwt.MapClaims) {}

	// The control: a token forged with the real key and unchanged claims
	// is accepted, so every refusal below is the change's doing.
	if res := e.get("/my_data", bearer(real(same))); res.StatusCode != 200 {
		t.Fatalf("the control token = %d", res.StatusCode)
	}

	ctx := context.Background()
	if err := e.app.accounts.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	disabled := true
	if _, err := e.app.accounts.Update(ctx, "off", auth.Change{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if res, err := http.PostForm(e.url+"/revoke", url.Values{"token": {revokedTok}}); err != nil || res.StatusCode != 200 {
		t.Fatalf("revoke: %v", err)
	}

	tampered := func(tok string, part int) string {
		parts := strings.Split(tok, ".")
		b := []byte(parts[part])
		b[len(b)/2] ^= 1
		parts[part] = string(b)
		return strings.Join(parts, ".")
	}
	adminPayload := func() string {
		parts := strings.Split(good, ".")
		b, _ := json.Marshal(claims(func(c jwt.MapClaims) { c["scope"] = "data:read data:write users:admin" }))
		parts[1] = base64.RawURLEncoding.EncodeToString(b)
		return strings.Join(parts, ".")
	}
	none := func() string {
		h, _ := json.Marshal(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid})
		p, _ := json.Marshal(payload)
		return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
	}

	attacks := []struct {
		name   string
		header http.Header
		path   string
		code   string // the challenge's error code; "" for none
	}{
		{"alg none", bearer(none()), "", "invalid_token"},
		{"HS256 keyed with the raw public key", bearer(sign(jwt.SigningMethodHS256, hdr, claims(same), []byte(pub))), "", "invalid_token"},
		{"HS256 keyed with the JWK's x", bearer(sign(jwt.SigningMethodHS256, hdr, claims(same), []byte(base64.RawURLEncoding.EncodeToString(pub)))), "", "invalid_token"},
		{"unknown kid", bearer(sign(jwt.SigningMethodEdDSA, map[string]any{"typ": "at+jwt", "kid": "no-such-key"}, claims(same), priv)), "", "invalid_token"},
		{"path-like kid", bearer(sign(jwt.SigningMethodEdDSA, map[string]any{"typ": "at+jwt", "kid": "../../../../etc/passwd"}, claims(same), priv)), "", "invalid_token"},
		{"no kid", bearer(sign(jwt.SigningMethodEdDSA, map[string]any{"typ": "at+jwt"}, claims(same), priv)), "", "invalid_token"},
		{"tampered payload (scope widened)", bearer(adminPayload()), "", "invalid_token"},
		{"tampered signature", bearer(tampered(good, 2)), "", "invalid_token"},
		{"tampered header", bearer(tampered(good, 0)), "", "invalid_token"},
		{"not yet valid (nbf in 10m)", bearer(real(func(c jwt.MapClaims) { c["nbf"] = now + 600 })), "", "invalid_token"},
		{"issued an hour in the future", bearer(real(func(c jwt.MapClaims) { c["iat"] = now + 3600; c["exp"] = now + 7200 })), "", "invalid_token"},
		{"expired, forged", bearer(real(func(c jwt.MapClaims) { c["exp"] = now - 60 })), "", "invalid_token"},
		{"wrong iss", bearer(real(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), "", "invalid_token"},
		{"wrong aud", bearer(real(func(c jwt.MapClaims) { c["aud"] = []string{"https://evil.example"} })), "", "invalid_token"},
		{"typ JWT", bearer(sign(jwt.SigningMethodEdDSA, map[string]any{"typ": "JWT", "kid": kid}, claims(same), priv)), "", "invalid_token"},
		{"no typ", bearer(sign(jwt.SigningMethodEdDSA, map[string]any{"kid": kid}, claims(same), priv)), "", "invalid_token"},
		{"missing exp", bearer(real(func(c jwt.MapClaims) { delete(c, "exp") })), "", "invalid_token"},
		{"missing sub", bearer(real(func(c jwt.MapClaims) { delete(c, "sub") })), "", "invalid_token"},
		{"missing scope", bearer(real(func(c jwt.MapClaims) { delete(c, "scope") })), "", "invalid_token"},
		{"a sub that is no account", bearer(real(func(c jwt.MapClaims) { c["sub"] = "00000000-0000-0000-0000-000000000000" })), "", "invalid_token"},
		{"a deleted user's token", bearer(goneTok), "", "invalid_token"},
		{"a disabled user's token", bearer(offTok), "", "invalid_token"},
		{"a revoked token", bearer(revokedTok), "", "invalid_token"},
		{"longer than any real token", bearer(strings.Repeat("a", 5000)), "", "invalid_token"},
		{"non-base64 garbage", http.Header{"Authorization": {"Bearer !!!###$$$"}}, "", "invalid_token"},
		{"three parts of garbage", bearer("abc.def.ghi"), "", "invalid_token"},
		{"Bearer with nothing after it", http.Header{"Authorization": {"Bearer"}}, "", ""},
		{"Bearer and spaces", http.Header{"Authorization": {"Bearer    "}}, "", ""},
		{"a token in the URL query", nil, "/my_data?access_token=" + good, ""},
	}
	before := e.reached.Load()
	for _, a := range attacks {
		path := a.path
		if path == "" {
			path = "/my_data"
		}
		res := e.get(path, a.header)
		challenge := res.Header.Get("WWW-Authenticate")
		wantChallenge := `Bearer realm="passflow"`
		if a.code != "" {
			wantChallenge += `, error="` + a.code + `"`
		}
		if res.StatusCode != 401 || !strings.HasPrefix(challenge, wantChallenge) || (a.code == "" && challenge != wantChallenge) {
			t.Errorf("%s: %d %q, want 401 %q", a.name, res.StatusCode, challenge, wantChallenge)
		}
	}
	if n := e.reached.Load() - before; n != 0 {
		t.Errorf("%d attacks reached a handler", n)
	}
	if res := e.get("/my_data", bearer(good)); res.StatusCode != 200 || e.reached.Load() != before+1 {
		t.Errorf("the good token after the attacks: %d", res.StatusCode)
	}
}

// TestExpiredRealToken: a real token, issued with a 1s lifetime, is
// refused once it has expired, from the verified-token cache too.
func TestExpiredRealToken(t *testing.T) {
	t.Parallel()
	e := newInproc(t, func(c *config) { c.AccessTokenTTL, c.ClockLeeway = time.Second, 0 })
	e.addUser("vic", store.ScopeDataRead)
	tok := e.login("vic")
	if res := e.get("/my_data", bearer(tok)); res.StatusCode != 200 {
		t.Fatalf("fresh = %d", res.StatusCode)
	}
	time.Sleep(1100 * time.Millisecond)
	before := e.reached.Load()
	res := e.get("/my_data", bearer(tok))
	if res.StatusCode != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), "token has expired") {
		t.Errorf("expired = %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	if e.reached.Load() != before {
		t.Error("an expired token reached a handler")
	}
}
