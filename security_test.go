package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestEverySecuredOperation walks openapi.yaml: every operation with a
// security requirement must refuse a request without a token (401, a bare
// challenge), with an invalid token (401 invalid_token), with two
// Authorization headers (400 invalid_request) and, where it names scopes,
// with a token lacking them (403 insufficient_scope). Adding
// `security:` to an operation is all it takes to protect it, and this test
// proves it for each.
func TestEverySecuredOperation(t *testing.T) {
	t.Parallel()
	doc, err := loadSpec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t)
	ts.addUser("noscopes", "noscopes-password")
	scopeless := ts.login("noscopes", "noscopes-password")
	param := regexp.MustCompile(`\{[^}]+\}`)

	checked := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			security := doc.Security
			if op.Security != nil {
				security = *op.Security
			}
			if len(security) == 0 {
				continue
			}
			checked++
			url := param.ReplaceAllString(path, "k1")
			var scopes []string
			for _, req := range security {
				scopes = append(scopes, req["OAuth2PasswordBearer"]...)
			}
			t.Run(method+" "+path, func(t *testing.T) {
				t.Parallel()
				res := ts.do(method, url, nil, nil)
				if res.Status != 401 || res.Header.Get("WWW-Authenticate") != `Bearer realm="passflow"` {
					t.Errorf("no token: %d %q, want 401 with a challenge without error code", res.Status, res.Header.Get("WWW-Authenticate"))
				}
				if res.JSON(t)["error"] != "unauthorized" {
					t.Errorf("no token: body %s", res.Body)
				}

				res = ts.do(method, url, bearer("not.a.token"), nil)
				if res.Status != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
					t.Errorf("invalid token: %d %q, want 401 invalid_token", res.Status, res.Header.Get("WWW-Authenticate"))
				}
				if res.JSON(t)["error"] != "invalid_token" {
					t.Errorf("invalid token: body %s", res.Body)
				}

				// Two Authorization headers: a malformed request (RFC 6750 §3.1).
				res = ts.do(method, url, http.Header{"Authorization": {"Bearer " + scopeless, "Bearer " + scopeless}}, nil)
				if res.Status != 400 || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="invalid_request"`) {
					t.Errorf("two Authorization headers: %d %q, want 400 invalid_request", res.Status, res.Header.Get("WWW-Authenticate"))
				}

				if len(scopes) == 0 {
					return
				}
				res = ts.do(method, url, bearer(scopeless), nil)
				want := `scope="` + strings.Join(scopes, " ") + `"`
				if res.Status != 403 || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) ||
					!strings.Contains(res.Header.Get("WWW-Authenticate"), want) {
					t.Errorf("scopeless token: %d %q, want 403 insufficient_scope with %s", res.Status, res.Header.Get("WWW-Authenticate"), want)
				}
				if res.JSON(t)["error"] != "insufficient_scope" {
					t.Errorf("scopeless token: body %s", res.Body)
				}
			})
		}
	}
	if checked < 4 {
		t.Fatalf("checked %d secured operations; the spec has more", checked)
	}
}

func TestBearerParsing(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("gina", "gina-password", "data:read")
	tok := ts.login("gina", "gina-password")

	tests := []struct {
		name       string
		path       string
		header     http.Header
		wantStatus int
		wantError  string // in the challenge; "" for none
	}{
		{name: "lower-case scheme", header: http.Header{"Authorization": {"bearer " + tok}}, wantStatus: 200},
		{name: "token in the query is never read", path: "/my_data?access_token=" + tok, wantStatus: 401},
		{name: "Basic scheme", header: http.Header{"Authorization": {"Basic Z2luYTpnaW5hLXBhc3N3b3Jk"}}, wantStatus: 401},
		{name: "Bearer with nothing after it", header: http.Header{"Authorization": {"Bearer "}}, wantStatus: 401},
		{name: "not base64", header: http.Header{"Authorization": {"Bearer ab$cd"}}, wantStatus: 401, wantError: "invalid_token"},
		{name: "too long", header: bearer(strings.Repeat("a", 5000)), wantStatus: 401, wantError: "invalid_token"},
		{name: "tampered", header: bearer(tok[:len(tok)-4] + "AAAA"), wantStatus: 401, wantError: "invalid_token"},
		{name: "two Authorization headers", header: http.Header{"Authorization": {"Bearer " + tok, "Bearer " + tok}}, wantStatus: 400, wantError: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tt.path
			if path == "" {
				path = "/my_data"
			}
			res := ts.do(http.MethodGet, path, tt.header, nil)
			if res.Status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.Status, tt.wantStatus, res.Body)
			}
			if tt.wantStatus == 200 {
				return
			}
			ch := res.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, `Bearer realm="passflow"`) {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", ch)
			}
			if tt.wantError == "" && ch != `Bearer realm="passflow"` {
				t.Errorf("WWW-Authenticate = %q, want no error code", ch)
			}
			if tt.wantError != "" && !strings.Contains(ch, `error="`+tt.wantError+`"`) {
				t.Errorf("WWW-Authenticate = %q, want error=%q", ch, tt.wantError)
			}
		})
	}
}

// TestItemsBelongToTheirOwner: no user ever sees or touches another's items.
func TestItemsBelongToTheirOwner(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("hank", "hank-password", "data:read", "data:write")
	ts.addUser("ivy", "ivy-password", "data:read", "data:write")
	hank, ivy := ts.login("hank", "hank-password"), ts.login("ivy", "ivy-password")

	put := func(tok, key, value string) response {
		return ts.do(http.MethodPut, "/my_data/"+key, jsonBody(bearer(tok)), strings.NewReader(`{"value":"`+value+`"}`))
	}
	if res := put(hank, "b", "hank-b"); res.Status != http.StatusCreated {
		t.Fatalf("first PUT = %d %s, want 201", res.Status, res.Body)
	}
	if res := put(hank, "b", "hank-b2"); res.Status != http.StatusOK || !strings.Contains(string(res.Body), "hank-b2") {
		t.Fatalf("second PUT = %d %s, want 200 with the new value", res.Status, res.Body)
	}
	put(hank, "a", "hank-a")
	put(ivy, "b", "ivy-b")

	if got := string(ts.do(http.MethodGet, "/my_data", bearer(hank), nil).Body); strings.TrimSpace(got) != `[{"key":"a","value":"hank-a"},{"key":"b","value":"hank-b2"}]` {
		t.Errorf("hank's items = %s", got)
	}
	if got := string(ts.do(http.MethodGet, "/my_data/", bearer(ivy), nil).Body); strings.TrimSpace(got) != `[{"key":"b","value":"ivy-b"}]` {
		t.Errorf("ivy's items = %s", got)
	}
	if res := ts.do(http.MethodDelete, "/my_data/a", bearer(ivy), nil); res.Status != http.StatusNotFound || res.JSON(t)["error"] != "not_found" {
		t.Errorf("ivy deleting hank's item = %d %s, want 404 not_found", res.Status, res.Body)
	}
	if res := ts.do(http.MethodDelete, "/my_data/a", bearer(hank), nil); res.Status != http.StatusNoContent {
		t.Errorf("hank deleting his item = %d %s, want 204", res.Status, res.Body)
	}
	if got := string(ts.do(http.MethodGet, "/my_data", bearer(hank), nil).Body); strings.TrimSpace(got) != `[{"key":"b","value":"hank-b2"}]` {
		t.Errorf("hank's items after delete = %s", got)
	}
}

func TestRequestValidation(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--max-body-bytes", "2048")
	ts.addUser("jack", "jack-password", "data:read", "data:write")
	tok := ts.login("jack", "jack-password")

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		header     http.Header
		wantStatus int
		wantError  string
		wantField  string
	}{
		{name: "key pattern", method: "PUT", path: "/my_data/a%20b", body: `{"value":"v"}`, wantStatus: 400, wantError: "invalid_request"},
		{name: "key too long", method: "PUT", path: "/my_data/" + strings.Repeat("k", 129), body: `{"value":"v"}`, wantStatus: 400, wantError: "invalid_request"},
		{name: "missing value", method: "PUT", path: "/my_data/k", body: `{}`, wantStatus: 400, wantError: "invalid_request"},
		{name: "value not a string", method: "PUT", path: "/my_data/k", body: `{"value":5}`, wantStatus: 400, wantError: "invalid_request", wantField: "/value"},
		{name: "unknown member", method: "PUT", path: "/my_data/k", body: `{"value":"v","extra":1}`, wantStatus: 400, wantError: "invalid_request"},
		{name: "member name in another case", method: "PUT", path: "/my_data/k", body: `{"VALUE":"v"}`, wantStatus: 400, wantError: "invalid_request"},
		{name: "not JSON", method: "PUT", path: "/my_data/k", body: `{"value":`, wantStatus: 400, wantError: "invalid_request"},
		{name: "two JSON values", method: "PUT", path: "/my_data/k", body: `{"value":"a"}{"value":"b"}`, wantStatus: 400, wantError: "invalid_request"},
		{name: "data after the value", method: "PUT", path: "/my_data/k", body: `{"value":"a"} junk`, wantStatus: 400, wantError: "invalid_request"},
		{name: "whitespace after the value", method: "PUT", path: "/my_data/k2", body: "{\"value\":\"a\"}\n\t ", wantStatus: 201},
		{name: "no body", method: "PUT", path: "/my_data/k", body: ``, wantStatus: 400, wantError: "invalid_request"},
		{name: "wrong content type", method: "PUT", path: "/my_data/k", body: `value=v`, header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, wantStatus: 400, wantError: "invalid_request"},
		{name: "oversized body", method: "PUT", path: "/my_data/k", body: `{"value":"` + strings.Repeat("v", 4000) + `"}`, wantStatus: 413, wantError: "payload_too_large"},
		{name: "unknown path", method: "GET", path: "/nowhere", wantStatus: 404, wantError: "not_found"},
		{name: "wrong method", method: "GET", path: "/token", wantStatus: 405, wantError: "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := jsonBody(bearer(tok))
			for k, v := range tt.header {
				h[k] = v
			}
			res := ts.do(tt.method, tt.path, h, strings.NewReader(tt.body))
			if res.Status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.Status, tt.wantStatus, res.Body)
			}
			if tt.wantError == "" {
				return
			}
			body := res.JSON(t)
			if body["error"] != tt.wantError {
				t.Errorf("error = %v, want %s", body["error"], tt.wantError)
			}
			if d, _ := body["error_description"].(string); d == "" {
				t.Errorf("no error_description: %s", res.Body)
			}
			if tt.wantField != "" && body["field"] != tt.wantField {
				t.Errorf("field = %v, want %s", body["field"], tt.wantField)
			}
		})
	}
}

// TestPublicOperationsRefuseBadBodies walks every operation the spec leaves
// open (security: []) that takes a JSON body: a body that is not JSON, one
// with a member the schema does not name, and an empty object are each a
// 400 invalid_request with the error body, before any handler runs.
func TestPublicOperationsRefuseBadBodies(t *testing.T) {
	t.Parallel()
	doc, err := loadSpec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, "--registration", "open")
	checked := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Security == nil || len(*op.Security) != 0 || op.RequestBody == nil || op.RequestBody.Value.Content.Get("application/json") == nil {
				continue
			}
			checked++
			t.Run(method+" "+path, func(t *testing.T) {
				t.Parallel()
				for _, body := range []string{`{`, `{"surely_not_a_member":1}`, `{}`} {
					res := ts.do(method, path, jsonBody(nil), strings.NewReader(body))
					if res.Status != http.StatusBadRequest || res.JSON(t)["error"] != "invalid_request" {
						t.Errorf("body %s: %d %s, want 400 invalid_request", body, res.Status, res.Body)
					}
				}
			})
		}
	}
	if checked < 4 {
		t.Fatalf("checked %d public JSON operations; the spec has more", checked)
	}
}
