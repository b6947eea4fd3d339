package main

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSeedFlow is FastAPI's recipe end to end: log in, then read /my_data/.
func TestSeedFlow(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("alice", "alice-password", "data:read", "data:write")
	tok := ts.login("alice", "alice-password")

	res := ts.do(http.MethodGet, "/my_data/", bearer(tok), nil)
	if res.Status != http.StatusOK || strings.TrimSpace(string(res.Body)) != "[]" {
		t.Fatalf("GET /my_data/ = %d %s, want 200 []", res.Status, res.Body)
	}
}

func TestTokenResponse(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--access-token-ttl", "7m")
	ts.addUser("Bob", "bob-password", "data:read")

	res := ts.postForm("/token", "grant_type=password&username=BOB&password=bob-password", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("status %d: %s", res.Status, res.Body)
	}
	for h, want := range map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache", "Content-Type": "application/json"} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	body := res.JSON(t)
	if body["token_type"] != "Bearer" || body["expires_in"] != float64(420) || body["scope"] != "data:read" {
		t.Errorf("body = %v, want token_type Bearer, expires_in 420, scope data:read", body)
	}
	if rt, _ := body["refresh_token"].(string); len(rt) < 43 || strings.Contains(rt, ".") {
		t.Errorf("refresh_token = %q, want an opaque token of at least 256 bits", rt)
	}

	header, payload := claims(t, body["access_token"].(string))
	if header["typ"] != "at+jwt" || header["alg"] != "EdDSA" || header["kid"] == "" || header["kid"] == nil {
		t.Errorf("header = %v, want typ at+jwt, alg EdDSA and a kid", header)
	}
	me := ts.do(http.MethodGet, "/users/me", bearer(body["access_token"].(string)), nil).JSON(t)
	if me["username"] != "bob" {
		t.Errorf("username = %v, want the normalised bob", me["username"])
	}
	if sid, _ := payload["sid"].(string); sid == "" {
		t.Errorf("no sid claim naming the login the token belongs to")
	}
	for claim, want := range map[string]any{
		"iss": ts.URL, "client_id": "passflow", "scope": "data:read",
	} {
		if payload[claim] != want {
			t.Errorf("claim %s = %v, want %v", claim, payload[claim], want)
		}
	}
	if aud, _ := payload["aud"].([]any); len(aud) != 1 || aud[0] != ts.URL {
		t.Errorf("aud = %v, want [issuer]", payload["aud"])
	}
	if sub, _ := payload["sub"].(string); sub == "" || sub == "bob" {
		t.Errorf("sub = %q, want the user's immutable id, not the username", sub)
	}
	if jti, _ := payload["jti"].(string); len(jti) < 16 {
		t.Errorf("jti = %q, want a random id", jti)
	}
	exp, iat := payload["exp"].(float64), payload["iat"].(float64)
	if exp-iat != 420 {
		t.Errorf("exp - iat = %v, want 420", exp-iat)
	}
	if d := time.Since(time.Unix(int64(iat), 0)); d < -5*time.Second || d > time.Minute {
		t.Errorf("iat is %v away from now", d)
	}
}

// TestTokenErrors checks each RFC 6749 §5.2 answer of the password grant:
// status, code, no-store headers, and that no body repeats the password.
func TestTokenErrors(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--max-body-bytes", "2048")
	ts.addUser("carol", "carol-password", "data:read")
	const secret = "Sekr3t-Passw0rd"
	basic := func(id, pw string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+pw))}}
	}

	tests := []struct {
		name       string
		path       string
		form       string
		header     http.Header
		wantStatus int
		wantError  string
		wantBasic  bool // WWW-Authenticate: Basic expected
	}{
		{name: "no grant_type", form: "username=carol&password=" + secret, wantStatus: 400, wantError: "invalid_request"},
		{name: "empty grant_type is omitted", form: "grant_type=&username=carol&password=" + secret, wantStatus: 400, wantError: "invalid_request"},
		{name: "grant_type passwordblah", form: "grant_type=passwordblah&username=carol&password=" + secret, wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "grant_type blahpassword", form: "grant_type=blahpassword&username=carol&password=" + secret, wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "grant_type client_credentials", form: "grant_type=client_credentials", wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "repeated grant_type", form: "grant_type=password&grant_type=password&username=carol&password=" + secret, wantStatus: 400, wantError: "invalid_request"},
		{name: "repeated password", form: "grant_type=password&username=carol&password=" + secret + "&password=" + secret, wantStatus: 400, wantError: "invalid_request"},
		{name: "missing username", form: "grant_type=password&password=" + secret, wantStatus: 400, wantError: "invalid_request"},
		{name: "empty username", form: "grant_type=password&username=&password=" + secret, wantStatus: 400, wantError: "invalid_request"},
		{name: "missing password", form: "grant_type=password&username=carol", wantStatus: 400, wantError: "invalid_request"},
		{name: "query string", path: "/token?scope=data:read", form: "grant_type=password&username=carol&password=carol-password", wantStatus: 400, wantError: "invalid_request"},
		{name: "password in query", path: "/token?password=" + secret, form: "grant_type=password&username=carol", wantStatus: 400, wantError: "invalid_request"},
		{name: "wrong password", form: "grant_type=password&username=carol&password=" + secret, wantStatus: 400, wantError: "invalid_grant"},
		{name: "unknown user", form: "grant_type=password&username=nobody&password=" + secret, wantStatus: 400, wantError: "invalid_grant"},
		{name: "unnormalisable username", form: "grant_type=password&username=a%20b&password=" + secret, wantStatus: 400, wantError: "invalid_grant"},
		{name: "scope not held", form: "grant_type=password&username=carol&password=carol-password&scope=data:write", wantStatus: 400, wantError: "invalid_scope"},
		{name: "unknown scope", form: "grant_type=password&username=carol&password=carol-password&scope=root", wantStatus: 400, wantError: "invalid_scope"},
		{name: "too long password", form: "grant_type=password&username=carol&password=" + strings.Repeat("x", 1025), wantStatus: 400, wantError: "invalid_request"},
		{name: "oversized body", form: "grant_type=password&username=carol&password=" + strings.Repeat("x", 4096), wantStatus: 413, wantError: "invalid_request"},
		{name: "JSON body", form: `{"grant_type":"password"}`, header: http.Header{"Content-Type": {"application/json"}}, wantStatus: 400, wantError: "invalid_request"},
		{name: "malformed form", form: "grant_type=password&username=%zz", wantStatus: 400, wantError: "invalid_request"},
		{name: "client secret of no registered client", form: "grant_type=password&username=carol&password=carol-password&client_id=app&client_secret=" + secret, wantStatus: 401, wantError: "invalid_client"},
		{name: "Basic secret of no registered client", form: "grant_type=password&username=carol&password=carol-password", header: basic("app", secret), wantStatus: 401, wantError: "invalid_client", wantBasic: true},
		{name: "malformed Basic", form: "grant_type=password&username=carol&password=carol-password", header: http.Header{"Authorization": {"Basic !!!"}}, wantStatus: 401, wantError: "invalid_client", wantBasic: true},
		{name: "Basic and body client", form: "grant_type=password&username=carol&password=carol-password&client_id=app", header: basic("app", ""), wantStatus: 400, wantError: "invalid_request"},
		{name: "Basic Og== is no client authentication", form: "grant_type=password&username=carol&password=carol-password", header: http.Header{"Authorization": {"Basic Og=="}}, wantStatus: 200},
		{name: "public client names itself", form: "grant_type=password&username=carol&password=carol-password&client_id=my-app", wantStatus: 200},
		{name: "unknown parameters are ignored", form: "grant_type=password&username=carol&password=carol-password&foo=bar", wantStatus: 200},
	}
	// The group ends when its parallel cases have run, so the log check
	// below sees every request.
	t.Run("table", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				path := tt.path
				if path == "" {
					path = "/token"
				}
				h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
				for k, v := range tt.header {
					h[k] = v
				}
				res := ts.do(http.MethodPost, path, h, strings.NewReader(tt.form))
				if res.Status != tt.wantStatus {
					t.Fatalf("status = %d, want %d; body %s", res.Status, tt.wantStatus, res.Body)
				}
				if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Pragma") != "no-cache" {
					t.Errorf("Cache-Control %q, Pragma %q; want no-store, no-cache", res.Header.Get("Cache-Control"), res.Header.Get("Pragma"))
				}
				if bytes.Contains(res.Body, []byte(secret)) || bytes.Contains(res.Body, []byte("carol-password")) {
					t.Errorf("body repeats a submitted password: %s", res.Body)
				}
				if tt.wantStatus == 200 {
					return
				}
				body := res.JSON(t)
				if body["error"] != tt.wantError {
					t.Errorf("error = %v, want %s (body %s)", body["error"], tt.wantError, res.Body)
				}
				if d, _ := body["error_description"].(string); d == "" {
					t.Errorf("no error_description in %s", res.Body)
				}
				if got := res.Header.Get("WWW-Authenticate"); tt.wantBasic != strings.HasPrefix(got, "Basic ") {
					t.Errorf("WWW-Authenticate = %q, want Basic challenge: %v", got, tt.wantBasic)
				}
			})
		}
	})
	if strings.Contains(ts.logs.String(), secret) {
		t.Errorf("the log holds a submitted password")
	}
}

// TestWrongUserAndPasswordLookAlike: an unknown username and a wrong
// password give the same answer, byte for byte.
func TestWrongUserAndPasswordLookAlike(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("erin", "erin-password")
	a := ts.postForm("/token", "grant_type=password&username=erin&password=wrong-password", nil)
	b := ts.postForm("/token", "grant_type=password&username=nobody&password=wrong-password", nil)
	if a.Status != b.Status || !bytes.Equal(a.Body, b.Body) {
		t.Errorf("wrong password: %d %s; unknown user: %d %s; want the same", a.Status, a.Body, b.Status, b.Body)
	}
}

func TestScopesNarrowOnRequest(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("frank", "frank-password", "data:read", "data:write")
	tok := ts.login("frank", "frank-password", "scope", "data:read  data:read")
	if _, p := claims(t, tok); p["scope"] != "data:read" {
		t.Errorf("scope = %v, want data:read", p["scope"])
	}
	res := ts.do(http.MethodPut, "/my_data/k", jsonBody(bearer(tok)), strings.NewReader(`{"value":"v"}`))
	if res.Status != http.StatusForbidden {
		t.Errorf("PUT with a read-only token = %d, want 403", res.Status)
	}
}
