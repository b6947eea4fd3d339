package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
)

// TestOAuth2Client uses golang.org/x/oauth2, a real OAuth2 client library,
// as a user of passflow would: the password grant, then its automatic
// refresh once the access token has expired.
func TestOAuth2Client(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--access-token-ttl", "2s", "--clock-leeway", "0s")
	ts.addUser("hal", "hal-password", "data:read", "data:write")
	ctx := context.Background()
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInParams, oauth2.AuthStyleInHeader, oauth2.AuthStyleAutoDetect} {
		conf := &oauth2.Config{
			ClientID: "cli-app",
			Endpoint: oauth2.Endpoint{TokenURL: ts.URL + "/token", AuthStyle: style},
			Scopes:   []string{"data:read"},
		}
		tok, err := conf.PasswordCredentialsToken(ctx, "HAL", "hal-password")
		if err != nil {
			t.Fatalf("auth style %d: PasswordCredentialsToken: %v", style, err)
		}
		if tok.TokenType != "Bearer" || tok.RefreshToken == "" || tok.Extra("scope") != "data:read" {
			t.Fatalf("token = %+v, scope %v", tok, tok.Extra("scope"))
		}
		src := conf.TokenSource(ctx, tok)
		client := oauth2.NewClient(ctx, src)
		get := func() {
			t.Helper()
			res, err := client.Get(ts.URL + "/my_data")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET /my_data through oauth2.Client = %d", res.StatusCode)
			}
		}
		// oauth2 treats a token as expired 10s early: with 2s tokens, every
		// call first goes through the refresh_token grant, rotating.
		get()
		get()
		now, err := src.Token()
		if err != nil {
			t.Fatal(err)
		}
		if now.AccessToken == tok.AccessToken || now.RefreshToken == tok.RefreshToken {
			t.Errorf("auth style %d: the token source did not refresh and rotate", style)
		}
	}

	conf := &oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: ts.URL + "/token"}}
	_, err := conf.PasswordCredentialsToken(ctx, "hal", "wrong-password")
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("wrong password through oauth2: %v, want a RetrieveError with invalid_grant", err)
	}
}

// TestVerifyWithJWKSOnly verifies issued access tokens as an independent
// resource server would: with the published JWKS and a JWT library, no
// passflow code in the path.
func TestVerifyWithJWKSOnly(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--issuer", "https://id.example.test")
	ts.addUser("ida", "ida-password", "data:read")
	access := ts.login("ida", "ida-password")

	res := ts.do(http.MethodGet, "/.well-known/jwks.json", nil, nil)
	if res.Status != 200 || res.Header.Get("Cache-Control") == "" {
		t.Fatalf("JWKS = %d, Cache-Control %q", res.Status, res.Header.Get("Cache-Control"))
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(res.Body, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("JWKS body %s: %v", res.Body, err)
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("the JWKS publishes a private member %q", private)
			}
		}
	}
	keyfunc := func(tok *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k["kid"] == tok.Header["kid"] && k["kty"] == "OKP" && k["crv"] == "Ed25519" && k["alg"] == tok.Method.Alg() {
				x, err := base64.RawURLEncoding.DecodeString(k["x"].(string))
				if err != nil || len(x) != ed25519.PublicKeySize {
					return nil, errors.New("bad x")
				}
				return ed25519.PublicKey(x), nil
			}
		}
		return nil, errors.New("kid not in the JWKS")
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(access, claims, keyfunc,
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer("https://id.example.test"),
		jwt.WithAudience("https://id.example.test"), jwt.WithExpirationRequired())
	if err != nil || !tok.Valid {
		t.Fatalf("verifying with the JWKS alone: %v", err)
	}
	if tok.Header["typ"] != "at+jwt" || claims["scope"] != "data:read" {
		t.Errorf("header %v, scope %v", tok.Header, claims["scope"])
	}
	// A token signed by anyone else fails the same check.
	_, forged, _ := ed25519.GenerateKey(nil)
	bad := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	bad.Header["kid"] = tok.Header["kid"]
	signed, _ := bad.SignedString(forged)
	if _, err := jwt.Parse(signed, keyfunc, jwt.WithValidMethods([]string{"EdDSA"})); err == nil {
		t.Error("a token signed with another key verified against the JWKS")
	}
}

// TestServerMetadata checks RFC 8414 metadata: endpoint URLs follow the
// issuer when it is set, else the request's own scheme and Host.
func TestServerMetadata(t *testing.T) {
	t.Parallel()
	check := func(ts *testServer, wantBase string) {
		t.Helper()
		// A Host of the client's choosing never reaches the answer.
		res := ts.do(http.MethodGet, "/.well-known/oauth-authorization-server", http.Header{"X-Forwarded-Host": {"evil.example"}}, nil)
		if res.Status != 200 {
			t.Fatalf("metadata = %d %s", res.Status, res.Body)
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
			t.Errorf("Cache-Control = %q, want a max-age", cc)
		}
		var m map[string]any
		if err := json.Unmarshal(res.Body, &m); err != nil {
			t.Fatal(err)
		}
		for field, want := range map[string]string{
			"issuer":                 wantBase,
			"token_endpoint":         wantBase + "/token",
			"revocation_endpoint":    wantBase + "/revoke",
			"introspection_endpoint": wantBase + "/introspect",
			"jwks_uri":               wantBase + "/.well-known/jwks.json",
		} {
			if m[field] != want {
				t.Errorf("%s = %v, want %s", field, m[field], want)
			}
		}
		for field, want := range map[string]string{
			"grant_types_supported":                         "[password refresh_token]",
			"scopes_supported":                              "[data:read data:write reports:read reports:write users:admin]",
			"token_endpoint_auth_methods_supported":         "[none client_secret_basic client_secret_post]",
			"response_types_supported":                      "[none]",
			"introspection_endpoint_auth_methods_supported": "[client_secret_basic client_secret_post]",
		} {
			if got := sprint(m[field]); got != want {
				t.Errorf("%s = %s, want %s", field, got, want)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/.well-known/oauth-authorization-server", nil)
		req.Host = "evil.example"
		res2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(res2); strings.Contains(body, "evil.example") {
			t.Errorf("the request's Host reached the metadata: %s", body)
		}
	}
	// By default the issuer follows the address listened on, so the
	// metadata's issuer is the URL it is fetched from (RFC 8414 §3.3).
	plain := startServer(t)
	check(plain, plain.URL)
	explicit := startServer(t, "--issuer", "https://login.example.test")
	check(explicit, "https://login.example.test")
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0"} {
		_, err := runCLI(t, nil, "", "serve", "--addr", addr, "--db", filepath.Join(t.TempDir(), "p.db"))
		if err == nil || !strings.Contains(describe(err), "set --issuer") {
			t.Errorf("serve --addr %s without --issuer: %v", addr, err)
		}
	}
}

// TestAuthlibAcceptsTheMetadata: Authlib, a client nobody here wrote,
// fetches the metadata over HTTPS from the default issuer, and validates it
// as RFC 8414 says: its issuer is the URL it was fetched from.
func TestAuthlibAcceptsTheMetadata(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := selfSigned(t)
	ts := startServer(t, "--tls-cert", certFile, "--tls-key", keyFile)
	base := strings.Replace(ts.URL, "http://", "https://", 1)
	out := python(t, `
import sys, requests
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
base, ca = sys.argv[1], sys.argv[2]
r = requests.get(base + '/.well-known/oauth-authorization-server', verify=ca)
r.raise_for_status()
m = AuthorizationServerMetadata(r.json())
m.validate()
assert m['issuer'] == base, (m['issuer'], base)
print('valid', m['issuer'])
`, []string{"authlib", "requests"}, base, certFile)
	if !strings.Contains(out, "valid "+base) {
		t.Errorf("authlib: %s", out)
	}
}

func sprint(v any) string {
	b, _ := json.Marshal(v)
	var out []string
	_ = json.Unmarshal(b, &out)
	s := "["
	for i, x := range out {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s + "]"
}
