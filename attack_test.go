package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/passflow/passflow/auth"
)

// TestJWTAttacks: a table of forged, broken and out-of-date tokens. Each
// is refused with 401 (invalid_token, or no error code where RFC 6750
// says so), and none reaches a handler.
func TestJWTAttacks(t *testing.T) {
	t.Parallel()
	e := newInproc(t)
	e.addUser("uma", "data:read")
	e.addUser("gone", "data:read")
	e.addUser("off", "data:read")
	e.addUser("revoked", "data:read")
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
	e := newInproc(t, withSettings(func(c *config) { c.AccessTokenTTL, c.ClockLeeway = time.Second, 0 }))
	e.addUser("vic", "data:read")
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
