package main

import (
	"net/http"
	"strings"
	"testing"
)

// refreshCookies returns the refresh cookies a response sets, by path.
func refreshCookies(t *testing.T, res response) map[string]*http.Cookie {
	t.Helper()
	got := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: res.Header}).Cookies() {
		if c.Name == refreshCookieName {
			got[c.Path] = c
		}
	}
	return got
}

// TestRefreshCookie: with --refresh-cookie, token responses set the refresh
// token in an HttpOnly, Secure, SameSite=Strict cookie for /token and
// /revoke; the X-Passflow-CSRF header asks for cookie mode (no refresh
// token in the body) and is required to use the cookie, to refresh or to
// log out.
func TestRefreshCookie(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--refresh-cookie")
	ts.addUser("web", "web-river-stone", "data:read")
	csrf := http.Header{"X-Passflow-CSRF": {"1"}}
	withCookie := func(value string, h http.Header) http.Header {
		out := http.Header{"Cookie": {refreshCookieName + "=" + value}}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	login := "grant_type=password&username=web&password=web-river-stone"

	// Without the header: the body has the refresh token, and the cookie is set too.
	res := ts.postForm("/token", login, nil)
	if res.Status != 200 || res.JSON(t)["refresh_token"] == nil {
		t.Fatalf("login = %d %s", res.Status, res.Body)
	}
	cookies := refreshCookies(t, res)
	for _, path := range []string{"/token", "/revoke"} {
		c := cookies[path]
		if c == nil || c.Value != res.JSON(t)["refresh_token"] || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.MaxAge != 720*3600 {
			t.Errorf("cookie for %s = %+v", path, c)
		}
	}
	if len(cookies) != 2 {
		t.Errorf("cookies set for %d paths, want /token and /revoke", len(cookies))
	}

	// Cookie mode: no refresh token in the body.
	res = ts.postForm("/token", login, csrf)
	if res.Status != 200 || res.JSON(t)["refresh_token"] != nil || res.JSON(t)["access_token"] == nil {
		t.Fatalf("login in cookie mode = %d %s", res.Status, res.Body)
	}
	cookie := refreshCookies(t, res)["/token"].Value

	// The cookie without the header is refused, and not redeemed.
	res = ts.postForm("/token", "grant_type=refresh_token", withCookie(cookie, nil))
	if res.Status != 400 || res.JSON(t)["error"] != "invalid_request" || !strings.Contains(res.JSON(t)["error_description"].(string), "X-Passflow-CSRF") {
		t.Fatalf("a refresh from the cookie without the header = %d %s", res.Status, res.Body)
	}
	res = ts.postForm("/token", "grant_type=refresh_token", withCookie(cookie, csrf))
	if res.Status != 200 || res.JSON(t)["refresh_token"] != nil {
		t.Fatalf("a refresh from the cookie = %d %s", res.Status, res.Body)
	}
	next := refreshCookies(t, res)["/token"]
	if next == nil || next.Value == cookie {
		t.Fatalf("the refresh did not set the rotated token: %+v", next)
	}
	access := res.JSON(t)["access_token"].(string)

	// Logging out with the cookie clears it and ends the login.
	if res := ts.postForm("/revoke", "", withCookie(next.Value, nil)); res.Status != 400 {
		t.Errorf("a revocation from the cookie without the header = %d %s", res.Status, res.Body)
	}
	res = ts.postForm("/revoke", "", withCookie(next.Value, csrf))
	if res.Status != 200 {
		t.Fatalf("logout = %d %s", res.Status, res.Body)
	}
	if c := refreshCookies(t, res); len(c) != 2 || c["/token"].MaxAge != -1 || c["/revoke"].MaxAge != -1 {
		t.Errorf("logout did not clear both cookies: %v", res.Header.Values("Set-Cookie"))
	}
	if ts.works(access) {
		t.Error("the access token works after logging out")
	}
	if res := ts.postForm("/token", "grant_type=refresh_token", withCookie(next.Value, csrf)); res.Status != 400 || res.JSON(t)["error"] != "invalid_grant" {
		t.Errorf("the cookie's token after logout = %d %s", res.Status, res.Body)
	}
}

// TestRefreshCookieOff: without --refresh-cookie no cookie is set or read.
func TestRefreshCookieOff(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("web", "web-river-stone")
	res := ts.postForm("/token", "grant_type=password&username=web&password=web-river-stone", http.Header{"X-Passflow-CSRF": {"1"}})
	if res.Status != 200 || res.JSON(t)["refresh_token"] == nil || len(res.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("login = %d %s %v", res.Status, res.Body, res.Header.Values("Set-Cookie"))
	}
	res = ts.postForm("/token", "grant_type=refresh_token", http.Header{"X-Passflow-CSRF": {"1"},
		"Cookie": {refreshCookieName + "=" + res.JSON(t)["refresh_token"].(string)}})
	if res.Status != 400 || res.JSON(t)["error"] != "invalid_request" {
		t.Errorf("a refresh with only a cookie = %d %s", res.Status, res.Body)
	}
}
