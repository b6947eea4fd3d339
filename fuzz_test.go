package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzTokenForm throws arbitrary bodies and query strings at POST /token:
// no panic, no 500, and no long submitted password ever comes back.
func FuzzTokenForm(f *testing.F) {
	e := newInproc(f)
	e.addUser("fuzz", "data:read")
	for _, seed := range []struct{ query, contentType, body string }{
		{"", "application/x-www-form-urlencoded", "grant_type=password&username=fuzz&password=fuzz-password"},
		{"", "application/x-www-form-urlencoded", "grant_type=password&username=fuzz&password=wrong-password-123"},
		{"", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=abc"},
		{"", "application/x-www-form-urlencoded", "grant_type=password&grant_type=password"},
		{"scope=x", "application/x-www-form-urlencoded", "grant_type=password"},
		{"", "application/x-www-form-urlencoded", "grant_type=%zz&username=%"},
		{"", "application/x-www-form-urlencoded; charset=utf-8", "grant_type=password&username=fuzz&password=fuzz-password&scope=data:read%20data:read"},
		{"", "application/json", `{"grant_type":"password"}`},
		{"", "", ""},
		{"", "application/x-www-form-urlencoded", "username=\xff\xfe&password=\x00&grant_type=password&client_id=a%0Ab"},
	} {
		f.Add(seed.query, seed.contentType, seed.body)
	}
	f.Fuzz(func(t *testing.T, query, contentType, body string) {
		target := "/token"
		if query != "" {
			target += "?" + url.PathEscape(query)
		}
		req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		e.app.handler.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if values, err := url.ParseQuery(body); err == nil {
			for _, pw := range values["password"] {
				if len(pw) >= 16 && strings.Contains(rec.Body.String(), pw) {
					t.Fatalf("the response repeats the submitted password: %s", rec.Body)
				}
			}
		}
	})
}

// FuzzAuthorization throws arbitrary Authorization headers at a protected
// operation: no panic, and only the answers the spec allows.
func FuzzAuthorization(f *testing.F) {
	e := newInproc(f)
	e.addUser("fuzz", "data:read")
	good := e.login("fuzz")
	for _, seed := range []string{
		"Bearer " + good, "bearer " + good, "Bearer  " + good, "Bearer " + good + "x", "Bearer",
		"Bearer ", "Basic Og==", "Bearer a.b.c", "Bearer " + strings.Repeat("A", 5000),
		"Bearer eyJhbGciOiJub25lIn0.e30.", "Bearer !!!", "Bearer \x00", "Negotiate abc",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodGet, "/my_data", nil)
		req.Header["Authorization"] = []string{header}
		rec := httptest.NewRecorder()
		e.app.handler.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 401, 403:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, header, rec.Body)
		}
		if rec.Code != 200 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer realm="passflow"`) {
			t.Fatalf("%d without a bearer challenge for %q", rec.Code, header)
		}
	})
}
