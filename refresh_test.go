package main

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func wantGrantError(t *testing.T, res response, code string) {
	t.Helper()
	if res.Status != http.StatusBadRequest || res.JSON(t)["error"] != code {
		t.Errorf("got %d %s, want 400 %s", res.Status, res.Body, code)
	}
}

// TestRefreshRotation: every refresh rotates; presenting a rotated token
// again is theft and revokes the whole family, access tokens included.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("ana", "ana-password", "data:read", "data:write")
	first := ts.passwordGrant("ana", "ana-password")
	other := ts.passwordGrant("ana", "ana-password") // a second login: another family

	second, res := ts.refresh(first.Refresh)
	if second.Access == "" {
		t.Fatalf("refresh = %d %s", res.Status, res.Body)
	}
	if second.Refresh == first.Refresh || second.Access == first.Access {
		t.Fatal("refresh did not rotate")
	}
	if res.Header.Get("Cache-Control") != "no-store" || second.Scope != "data:read data:write" {
		t.Errorf("refresh response: Cache-Control %q, scope %q", res.Header.Get("Cache-Control"), second.Scope)
	}
	_, p1 := claims(t, first.Access)
	_, p2 := claims(t, second.Access)
	if p1["sid"] != p2["sid"] || p1["sub"] != p2["sub"] {
		t.Errorf("refreshed token: sid %v sub %v, want %v %v", p2["sid"], p2["sub"], p1["sid"], p1["sub"])
	}
	third, _ := ts.refresh(second.Refresh)
	if !ts.works(first.Access) || !ts.works(third.Access) {
		t.Fatal("access tokens of a live family are refused")
	}

	// first.Refresh was rotated: presenting it again revokes the family.
	_, res = ts.refresh(first.Refresh)
	wantGrantError(t, res, "invalid_grant")
	if _, res := ts.refresh(third.Refresh); res.Status != http.StatusBadRequest {
		t.Errorf("the family's newest refresh token after a reuse = %d, want 400", res.Status)
	}
	for name, at := range map[string]string{"first": first.Access, "second": second.Access, "third": third.Access} {
		if ts.works(at) {
			t.Errorf("the %s access token of a revoked family still works", name)
		}
	}
	if !ts.works(other.Access) {
		t.Error("another login's access token was revoked too")
	}
	if p, res := ts.refresh(other.Refresh); p.Access == "" {
		t.Errorf("another login's refresh = %d %s", res.Status, res.Body)
	}
}

func TestRefreshScopesAndClients(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("ben", "ben-password", "data:read", "data:write")
	login := ts.passwordGrant("ben", "ben-password", "scope", "data:read data:write", "client_id", "app-a")
	if _, p := claims(t, login.Access); p["client_id"] != "app-a" {
		t.Errorf("client_id claim = %v, want app-a", p["client_id"])
	}

	// The refresh token is bound to its client.
	_, res := ts.refresh(login.Refresh, "client_id", "app-b")
	wantGrantError(t, res, "invalid_grant")
	_, res = ts.refresh(login.Refresh)
	wantGrantError(t, res, "invalid_grant")

	narrow, res := ts.refresh(login.Refresh, "client_id", "app-a", "scope", "data:read")
	if narrow.Scope != "data:read" {
		t.Fatalf("narrowed refresh = %d %s", res.Status, res.Body)
	}
	// The rotated refresh token keeps the scopes granted at login.
	wide, res := ts.refresh(narrow.Refresh, "client_id", "app-a")
	if wide.Scope != "data:read data:write" {
		t.Errorf("refresh after a narrowed one: scope %q, want the login's (%d %s)", wide.Scope, res.Status, res.Body)
	}
	_, res = ts.refresh(wide.Refresh, "client_id", "app-a", "scope", "users:admin")
	wantGrantError(t, res, "invalid_scope")

	// A login that asked for less can never widen.
	small := ts.passwordGrant("ben", "ben-password", "scope", "data:read")
	_, res = ts.refresh(small.Refresh, "scope", "data:write")
	wantGrantError(t, res, "invalid_scope")

	_, res = ts.grant(url.Values{"grant_type": {"refresh_token"}})
	wantGrantError(t, res, "invalid_request")
	_, res = ts.refresh("not-a-refresh-token")
	wantGrantError(t, res, "invalid_grant")
	// An access token is no refresh token: longer than any, it is refused
	// as malformed before it is looked up.
	_, res = ts.refresh(login.Access)
	wantGrantError(t, res, "invalid_request")
}

// TestRefreshRace: many clients redeem one refresh token at once; exactly
// one gets new tokens, and the reuse revokes the family.
func TestRefreshRace(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("cai", "cai-password", "data:read")
	login := ts.passwordGrant("cai", "cai-password")
	const n = 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []tokenPair
	statuses := map[int]int{}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := ts.postForm("/token", "grant_type=refresh_token&refresh_token="+url.QueryEscape(login.Refresh), nil)
			mu.Lock()
			defer mu.Unlock()
			statuses[res.Status]++
			if res.Status == http.StatusOK {
				body := res.JSON(t)
				won = append(won, tokenPair{Access: body["access_token"].(string), Refresh: body["refresh_token"].(string)})
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 || statuses[http.StatusBadRequest] != n-1 {
		t.Fatalf("statuses %v: want exactly one 200", statuses)
	}
	if ts.works(won[0].Access) || ts.works(login.Access) {
		t.Error("access tokens of the raced family survived the reuse")
	}
}

// TestRefreshAfterAccountChanges: a password change or a disable ends the
// refresh tokens too.
func TestRefreshAfterAccountChanges(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("dee", "dee-password", "data:read")
	ts.addUser("eli", "eli-password", "data:read")
	dee, eli := ts.passwordGrant("dee", "dee-password"), ts.passwordGrant("eli", "eli-password")
	if out, err := ts.cli("dee-password-2\n", "user", "passwd", "dee"); err != nil {
		t.Fatal(err, out)
	}
	if out, err := ts.cli("", "user", "disable", "eli"); err != nil {
		t.Fatal(err, out)
	}
	_, res := ts.refresh(dee.Refresh)
	wantGrantError(t, res, "invalid_grant")
	_, res = ts.refresh(eli.Refresh)
	wantGrantError(t, res, "invalid_grant")
}

// TestRevoke covers RFC 7009: a refresh token takes its family and access
// tokens with it; an access token is denied until it expires; anything
// else is 200 too.
func TestRevoke(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("fox", "fox-password", "data:read")
	a, b := ts.passwordGrant("fox", "fox-password"), ts.passwordGrant("fox", "fox-password")
	a2, _ := ts.refresh(a.Refresh)

	revoke := func(form string) response {
		t.Helper()
		res := ts.postForm("/revoke", form, nil)
		if res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("POST /revoke without Cache-Control: no-store")
		}
		return res
	}
	if res := revoke("token=" + url.QueryEscape(a2.Refresh) + "&token_type_hint=refresh_token"); res.Status != 200 {
		t.Fatalf("revoke refresh = %d %s", res.Status, res.Body)
	}
	if ts.works(a.Access) || ts.works(a2.Access) {
		t.Error("access tokens of a revoked refresh family still work")
	}
	if _, res := ts.refresh(a2.Refresh); res.Status != 400 {
		t.Errorf("refreshing a revoked token = %d", res.Status)
	}
	if !ts.works(b.Access) {
		t.Fatal("another login was revoked too")
	}

	// An access token, with a wrong hint: the server looks further.
	if res := revoke("token=" + b.Access + "&token_type_hint=refresh_token"); res.Status != 200 {
		t.Fatalf("revoke access = %d %s", res.Status, res.Body)
	}
	if ts.works(b.Access) {
		t.Error("a revoked access token still works")
	}
	if p, _ := ts.refresh(b.Refresh); p.Access == "" || !ts.works(p.Access) {
		t.Error("revoking an access token must leave its refresh token alive")
	}

	for name, form := range map[string]string{
		"unknown token": "token=no-such-token",
		"revoked again": "token=" + url.QueryEscape(a2.Refresh),
		"unknown hint":  "token=x&token_type_hint=id_token",
		"a garbage JWT": "token=a.b.c",
		"public client": "token=y&client_id=some-app",
		"empty hint":    "token=z&token_type_hint=",
	} {
		if res := revoke(form); res.Status != 200 {
			t.Errorf("%s: %d %s, want 200", name, res.Status, res.Body)
		}
	}
	for name, tt := range map[string]struct{ path, form, code string }{
		"no token":      {"/revoke", "token_type_hint=access_token", "invalid_request"},
		"query string":  {"/revoke?token=x", "token=x", "invalid_request"},
		"repeated":      {"/revoke", "token=x&token=y", "invalid_request"},
		"client secret": {"/revoke", "token=x&client_id=app&client_secret=s", "invalid_client"},
	} {
		res := ts.postForm(tt.path, tt.form, nil)
		if res.Status < 400 || res.JSON(t)["error"] != tt.code {
			t.Errorf("%s: %d %s, want %s", name, res.Status, res.Body, tt.code)
		}
	}
}

func TestLogoutEverywhereAndChangePassword(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("gil", "gil-password", "data:read")
	phone, laptop := ts.passwordGrant("gil", "gil-password"), ts.passwordGrant("gil", "gil-password")
	if res := ts.do(http.MethodPost, "/users/me/logout-all", bearer(phone.Access), nil); res.Status != 204 {
		t.Fatalf("logout-all = %d %s", res.Status, res.Body)
	}
	for name, p := range map[string]tokenPair{"phone": phone, "laptop": laptop} {
		if ts.works(p.Access) {
			t.Errorf("%s's access token survived logout-all", name)
		}
		if _, res := ts.refresh(p.Refresh); res.Status != 400 {
			t.Errorf("%s's refresh token survived logout-all", name)
		}
	}

	s := ts.passwordGrant("gil", "gil-password")
	change := func(body string) response {
		return ts.do(http.MethodPost, "/users/me/password", jsonBody(bearer(s.Access)), strings.NewReader(body))
	}
	if res := change(`{"current_password":"wrong-password","new_password":"gil-password-2"}`); res.Status != 400 ||
		res.JSON(t)["field"] != "/current_password" || strings.Contains(string(res.Body), "wrong-password") {
		t.Errorf("wrong current password = %d %s", res.Status, res.Body)
	}
	if res := change(`{"current_password":"gil-password","new_password":"short"}`); res.Status != 400 || res.JSON(t)["field"] != "/new_password" {
		t.Errorf("short new password = %d %s", res.Status, res.Body)
	}
	if res := change(`{"current_password":"gil-password","new_password":"gil-password-2"}`); res.Status != 204 {
		t.Fatalf("change = %d %s", res.Status, res.Body)
	}
	if ts.works(s.Access) {
		t.Error("the caller's token survived its password change")
	}
	if _, res := ts.refresh(s.Refresh); res.Status != 400 {
		t.Error("the refresh token survived the password change")
	}
	if res := ts.postForm("/token", "grant_type=password&username=gil&password=gil-password", nil); res.Status != 400 {
		t.Error("the old password still works")
	}
	ts.passwordGrant("gil", "gil-password-2")
}

// TestRefreshReuseInterval: two tabs refreshing with the same token at once
// both get new tokens in the same login; the same token presented after
// the interval is theft, and the login ends.
func TestRefreshReuseInterval(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--refresh-reuse-interval", "2s")
	ts.addUser("tab", "tab-river-stone", "data:read")
	login := ts.passwordGrant("tab", "tab-river-stone")
	tab1, res := ts.refresh(login.Refresh)
	if tab1.Access == "" {
		t.Fatalf("tab 1 = %d %s", res.Status, res.Body)
	}
	tab2, res := ts.refresh(login.Refresh) // the same token, a moment later
	if tab2.Access == "" {
		t.Fatalf("tab 2 within the interval = %d %s", res.Status, res.Body)
	}
	_, p1 := claims(t, tab1.Access)
	_, p2 := claims(t, tab2.Access)
	if p1["sid"] != p2["sid"] || tab1.Refresh == tab2.Refresh {
		t.Errorf("the tabs' tokens: sid %v and %v, refresh tokens equal: %v", p1["sid"], p2["sid"], tab1.Refresh == tab2.Refresh)
	}
	for i, tab := range []tokenPair{tab1, tab2} {
		if next, res := ts.refresh(tab.Refresh); next.Access == "" {
			t.Errorf("tab %d refreshing its own token = %d %s", i+1, res.Status, res.Body)
		}
	}
	time.Sleep(2100 * time.Millisecond)
	_, res = ts.refresh(login.Refresh)
	wantGrantError(t, res, "invalid_grant")
	if ts.works(tab1.Access) || ts.works(tab2.Access) {
		t.Error("the login's access tokens work after a reuse past the interval")
	}
}
