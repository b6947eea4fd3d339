package main

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// addClient registers a client through the CLI and returns its secret.
func (ts *testServer) addClient(id string, args ...string) string {
	ts.t.Helper()
	out, err := ts.cli("", append([]string{"client", "add", id}, args...)...)
	if err != nil {
		ts.t.Fatalf("client add %s: %v\n%s", id, err, out)
	}
	if m := regexp.MustCompile(`client secret \(shown only now\): (\S+)`).FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

func basicAuth(id, secret string) http.Header {
	enc := url.QueryEscape(id) + ":" + url.QueryEscape(secret)
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(enc))}}
}

const loginForm = "grant_type=password&username=kit&password=kit-password"

// TestClientAuthentication covers RFC 6749 §2.3.1 for registered clients.
func TestClientAuthentication(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("kit", "kit-password", "data:read", "data:write", "users:admin")
	secret := ts.addClient("backend")
	if len(secret) < 32 {
		t.Fatalf("generated secret %q", secret)
	}
	if out, err := ts.cli("a-secret-from-a-vault\n", "client", "add", "vaulted", "--secret-stdin"); err != nil {
		t.Fatal(err, out)
	}
	ts.addClient("spa", "--public", "--scopes", "data:read", "--grant-types", "password")

	tests := []struct {
		name       string
		form       string
		header     http.Header
		wantStatus int
		wantError  string
		wantBasic  bool
	}{
		{name: "Basic", form: loginForm, header: basicAuth("backend", secret), wantStatus: 200},
		{name: "body", form: loginForm + "&client_id=backend&client_secret=" + url.QueryEscape(secret), wantStatus: 200},
		{name: "stdin secret", form: loginForm, header: basicAuth("vaulted", "a-secret-from-a-vault"), wantStatus: 200},
		{name: "wrong secret, Basic", form: loginForm, header: basicAuth("backend", "wrong-secret"), wantStatus: 401, wantError: "invalid_client", wantBasic: true},
		{name: "wrong secret, body", form: loginForm + "&client_id=backend&client_secret=wrong", wantStatus: 401, wantError: "invalid_client"},
		{name: "no secret", form: loginForm + "&client_id=backend", wantStatus: 401, wantError: "invalid_client"},
		{name: "empty Basic secret is no secret", form: loginForm, header: basicAuth("backend", ""), wantStatus: 401, wantError: "invalid_client", wantBasic: true},
		{name: "Basic and body", form: loginForm + "&client_secret=" + url.QueryEscape(secret), header: basicAuth("backend", secret), wantStatus: 400, wantError: "invalid_request"},
		{name: "public client with a secret", form: loginForm + "&client_id=spa&client_secret=whatever-secret", wantStatus: 401, wantError: "invalid_client"},
		{name: "public client", form: loginForm + "&client_id=spa", wantStatus: 200},
		{name: "public client asks beyond its scopes", form: loginForm + "&client_id=spa&scope=data:write", wantStatus: 400, wantError: "invalid_scope"},
	}
	// The group ends when its parallel cases have run, before what follows
	// changes the clients.
	t.Run("table", func(t *testing.T) {
		for _, tt := range tests {
			runClientCase(t, ts, secret, tt.name, tt.form, tt.header, tt.wantStatus, tt.wantError, tt.wantBasic)
		}
	})
	checkClientLimits(t, ts, secret)
}

func runClientCase(t *testing.T, ts *testServer, secret, name, form string, header http.Header, wantStatus int, wantError string, wantBasic bool) {
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		res := ts.postForm("/token", form, header)
		if res.Status != wantStatus {
			t.Fatalf("status %d, want %d: %s", res.Status, wantStatus, res.Body)
		}
		if strings.Contains(string(res.Body), secret) {
			t.Error("the response repeats the client secret")
		}
		if wantStatus == 200 {
			return
		}
		if got := res.JSON(t)["error"]; got != wantError {
			t.Errorf("error %v, want %s", got, wantError)
		}
		if got := res.Header.Get("WWW-Authenticate"); strings.HasPrefix(got, "Basic ") != wantBasic {
			t.Errorf("WWW-Authenticate %q, want Basic: %v", got, wantBasic)
		}
	})
}

func checkClientLimits(t *testing.T, ts *testServer, secret string) {
	// A client limited to the password grant gets no refresh token, and
	// its scopes cap what it is granted.
	res := ts.postForm("/token", loginForm+"&client_id=spa", nil)
	body := res.JSON(t)
	if _, ok := body["refresh_token"]; ok || body["scope"] != "data:read" {
		t.Errorf("spa login = %s, want scope data:read and no refresh token", res.Body)
	}
	backend := ts.postForm("/token", loginForm, basicAuth("backend", secret)).JSON(t)
	rt := url.QueryEscape(backend["refresh_token"].(string))
	if res := ts.postForm("/token", "grant_type=refresh_token&refresh_token="+rt+"&client_id=spa", nil); res.Status != 400 || res.JSON(t)["error"] != "unauthorized_client" {
		t.Errorf("refresh by a client without the grant = %d %s", res.Status, res.Body)
	}
	// A confidential client's tokens: only it may refresh or revoke them.
	if res := ts.postForm("/token", "grant_type=refresh_token&refresh_token="+rt+"&client_id=backend", nil); res.Status != 401 {
		t.Errorf("refresh claiming backend without its secret = %d %s", res.Status, res.Body)
	}
	if res := ts.postForm("/revoke", "token="+rt, nil); res.Status != 400 || res.JSON(t)["error"] != "unauthorized_client" {
		t.Errorf("revoking backend's token anonymously = %d %s", res.Status, res.Body)
	}
	if res := ts.postForm("/revoke", "token="+url.QueryEscape(backend["access_token"].(string)), nil); res.Status != 400 {
		t.Errorf("revoking backend's access token anonymously = %d %s", res.Status, res.Body)
	}
	if res := ts.postForm("/revoke", "token="+rt, basicAuth("backend", secret)); res.Status != 200 {
		t.Errorf("backend revoking its own token = %d %s", res.Status, res.Body)
	}
	if ts.works(backend["access_token"].(string)) {
		t.Error("the revoked family's access token still works")
	}

	out, err := ts.cli("", "client", "list")
	if err != nil || !strings.Contains(out, "backend") || !strings.Contains(out, "public") || strings.Contains(out, secret) {
		t.Errorf("client list = %v %q", err, out)
	}
	for _, bad := range [][]string{
		{"client", "add", "backend"},
		{"client", "add", "passflow"},
		{"client", "add", "x", "--grant-types", "client_credentials"},
		{"client", "add", "x", "--scopes", "root"},
		{"client", "add", "x", "--public", "--secret-stdin"},
		{"client", "delete", "nobody"},
	} {
		if _, err := ts.cli("short\n", bad...); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
	if _, err := ts.cli("short\n", "client", "add", "weak", "--secret-stdin"); err == nil || !strings.Contains(describe(err), "at least 16 bytes") {
		t.Errorf("a short secret: %v", err)
	}
	if _, err := ts.cli("", "client", "delete", "backend"); err != nil {
		t.Fatal(err)
	}
	if res := ts.postForm("/token", loginForm, basicAuth("backend", secret)); res.Status != 401 {
		t.Errorf("a deleted client's secret still works: %d", res.Status)
	}
}

func TestPublicClientsOff(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--public-clients=false")
	ts.addUser("kit", "kit-password", "data:read")
	ts.addClient("spa", "--public")
	for name, form := range map[string]string{"no client": loginForm, "unregistered": loginForm + "&client_id=someone"} {
		if res := ts.postForm("/token", form, nil); res.Status != 401 || res.JSON(t)["error"] != "invalid_client" {
			t.Errorf("%s: %d %s, want 401 invalid_client", name, res.Status, res.Body)
		}
	}
	if res := ts.postForm("/token", loginForm+"&client_id=spa", nil); res.Status != 200 {
		t.Errorf("registered public client: %d %s", res.Status, res.Body)
	}
	m := ts.do(http.MethodGet, "/.well-known/oauth-authorization-server", nil, nil).JSON(t)
	if sprint(m["token_endpoint_auth_methods_supported"]) != "[client_secret_basic client_secret_post]" {
		t.Errorf("auth methods = %v", m["token_endpoint_auth_methods_supported"])
	}
}

func TestPasswordGrantOff(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--password-grant=false")
	ts.addUser("kit", "kit-password", "data:read")
	if res := ts.postForm("/token", loginForm, nil); res.Status != 400 || res.JSON(t)["error"] != "unsupported_grant_type" {
		t.Errorf("password grant switched off: %d %s", res.Status, res.Body)
	}
	m := ts.do(http.MethodGet, "/.well-known/oauth-authorization-server", nil, nil).JSON(t)
	if sprint(m["grant_types_supported"]) != "[refresh_token]" {
		t.Errorf("grant_types_supported = %v", m["grant_types_supported"])
	}
}

// TestDeletingAClientEndsItsTokens: once a client is deleted, its access
// tokens stop working within a second, its refresh tokens cannot be
// redeemed with or without its secret, and its id can be used by no one
// again, not even by a public client naming itself.
func TestDeletingAClientEndsItsTokens(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("kit", "kit-password", "data:read")
	secret := ts.addClient("backend")
	withRefresh, _ := ts.grant(url.Values{"grant_type": {"password"}, "username": {"kit"}, "password": {"kit-password"},
		"client_id": {"backend"}, "client_secret": {secret}})
	worker := ts.addClient("worker2", "--grant-types", "password") // access tokens only
	res := ts.postForm("/token", loginForm, basicAuth("worker2", worker))
	accessOnly, _ := res.JSON(t)["access_token"].(string)
	if withRefresh.Refresh == "" || accessOnly == "" || !ts.works(withRefresh.Access) || !ts.works(accessOnly) {
		t.Fatalf("logins through the clients failed: %+v %s", withRefresh, res.Body)
	}
	for _, id := range []string{"backend", "worker2"} {
		if out, err := ts.cli("", "client", "delete", id); err != nil {
			t.Fatal(err, out)
		}
	}
	if !within(time.Second, func() bool { return !ts.works(withRefresh.Access) && !ts.works(accessOnly) }) {
		t.Error("a deleted client's access tokens still work after 1s")
	}
	refresh := "grant_type=refresh_token&refresh_token=" + url.QueryEscape(withRefresh.Refresh)
	for name, r := range map[string]response{
		"with its secret":  ts.postForm("/token", refresh, basicAuth("backend", secret)),
		"naming it alone":  ts.postForm("/token", refresh+"&client_id=backend", nil),
		"naming no client": ts.postForm("/token", refresh, nil),
	} {
		if r.Status/100 != 4 || r.Status == 429 {
			t.Errorf("refresh %s = %d %s", name, r.Status, r.Body)
		}
	}
	// Its tokens are dead: revoking them is anyone's to do, and a no-op.
	if r := ts.postForm("/revoke", "token="+url.QueryEscape(withRefresh.Refresh), nil); r.Status != 200 {
		t.Errorf("revoking a deleted client's refresh token = %d %s", r.Status, r.Body)
	}
	if r := ts.postForm("/token", loginForm+"&client_id=backend", nil); r.Status != 401 || r.JSON(t)["error"] != "invalid_client" {
		t.Errorf("a public client naming itself backend = %d %s", r.Status, r.Body)
	}
	if out, err := ts.cli("", "client", "add", "backend"); err == nil || !strings.Contains(describe(err), "never used again") {
		t.Errorf("re-adding a deleted client: %v %s", err, out)
	}
	if out, _ := ts.cli("", "client", "list"); strings.Contains(out, "backend") {
		t.Errorf("client list shows a deleted client:\n%s", out)
	}
}
