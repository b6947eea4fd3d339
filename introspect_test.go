package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestIntrospection covers RFC 7662: who may ask, what an active token
// carries, and that revocation and a disabled account show at once.
func TestIntrospection(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("kit", "kit-password", "data:read", "data:write")
	secret := ts.addClient("reports-service", "--grant-types", "none")
	if out, _ := ts.cli("", "client", "list"); !regexp.MustCompile(`reports-service\s+confidential\s+none\s`).MatchString(out) {
		t.Errorf("client list shows the introspecting client as:\n%s", out)
	}
	ts.addClient("spa", "--public")
	pair := ts.passwordGrant("kit", "kit-password", "scope", "data:read")

	introspect := func(token string, header http.Header, extra ...string) response {
		form := url.Values{"token": {token}}
		for i := 0; i+1 < len(extra); i += 2 {
			form.Set(extra[i], extra[i+1])
		}
		return ts.postForm("/introspect", form.Encode(), header)
	}
	asService := basicAuth("reports-service", secret)

	t.Run("who may ask", func(t *testing.T) {
		for name, c := range map[string]struct {
			header http.Header
			extra  []string
			status int
		}{
			"Basic":                {asService, nil, 200},
			"body":                 {nil, []string{"client_id", "reports-service", "client_secret", secret}, 200},
			"no client":            {nil, nil, 401},
			"a public client":      {nil, []string{"client_id", "spa"}, 401},
			"an unregistered name": {nil, []string{"client_id", "anyone"}, 401},
			"a wrong secret":       {basicAuth("reports-service", "wrong-secret-wrong"), nil, 401},
		} {
			res := introspect(pair.Access, c.header, c.extra...)
			if res.Status != c.status {
				t.Errorf("%s: %d %s", name, res.Status, res.Body)
				continue
			}
			if c.status == 401 && res.JSON(t)["error"] != "invalid_client" {
				t.Errorf("%s: %s", name, res.Body)
			}
			if c.status == 200 && res.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q", name, res.Header.Get("Cache-Control"))
			}
		}
		if res := ts.postForm("/introspect", "", asService); res.Status != 400 || res.JSON(t)["error"] != "invalid_request" {
			t.Errorf("no token: %d %s", res.Status, res.Body)
		}
		// A client registered to introspect only cannot log anyone in.
		if res := ts.postForm("/token", "grant_type=password&username=kit&password=kit-password", asService); res.Status != 400 || res.JSON(t)["error"] != "unauthorized_client" {
			t.Errorf("logging in through an introspecting client: %d %s", res.Status, res.Body)
		}
		if out, err := ts.cli("", "client", "add", "public-introspector", "--public", "--grant-types", "none"); err == nil {
			t.Errorf("a public client without grants was registered: %s", out)
		}
	})

	t.Run("an active token", func(t *testing.T) {
		res := introspect(pair.Access, asService)
		got := res.JSON(t)
		_, claimed := claims(t, pair.Access)
		for _, k := range []string{"sub", "jti", "iss", "client_id", "scope", "exp", "iat", "username"} {
			if got[k] != claimed[k] {
				t.Errorf("%s = %v, the token says %v", k, got[k], claimed[k])
			}
		}
		if got["active"] != true || got["token_type"] != "Bearer" || got["scope"] != "data:read" || got["aud"] != claimed["iss"] {
			t.Errorf("introspection = %s", res.Body)
		}
	})

	t.Run("inactive", func(t *testing.T) {
		for name, tok := range map[string]string{
			"a refresh token":  pair.Refresh,
			"a tampered token": pair.Access[:len(pair.Access)-4] + "AAAA",
			"garbage":          "not-a-token",
		} {
			res := introspect(tok, asService)
			if res.Status != 200 || strings.TrimSpace(string(res.Body)) != `{"active":false}` {
				t.Errorf("%s: %d %s", name, res.Status, res.Body)
			}
		}
	})

	t.Run("revocation shows at once", func(t *testing.T) {
		other := ts.passwordGrant("kit", "kit-password")
		if r := ts.postForm("/revoke", "token="+url.QueryEscape(other.Access), nil); r.Status != 200 {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
		if res := introspect(other.Access, asService); res.JSON(t)["active"] != false {
			t.Errorf("a revoked token: %s", res.Body)
		}
	})

	t.Run("a disabled account shows at once", func(t *testing.T) {
		ts.addUser("dora", "dora-password", "data:read")
		tok := ts.passwordGrant("dora", "dora-password").Access
		if res := introspect(tok, asService); res.JSON(t)["active"] != true {
			t.Fatalf("before: %s", res.Body)
		}
		if out, err := ts.cli("", "user", "disable", "dora"); err != nil {
			t.Fatal(err, out)
		}
		if !within(time.Second, func() bool { return introspect(tok, asService).JSON(t)["active"] == false }) {
			t.Error("a disabled account's token is still active after 1s")
		}
	})
}
