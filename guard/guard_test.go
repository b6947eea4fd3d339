package guard

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/fault"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// spec is passflow's openapi.yaml, loaded and validated once.
var spec = sync.OnceValues(func() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromFile("../openapi.yaml")
	if err != nil {
		return nil, err
	}
	return doc, doc.Validate(context.Background())
})

// stubVerifier accepts the tokens it knows, with their scopes.
type stubVerifier map[string][]string

func (v stubVerifier) Verify(_ context.Context, raw string) (*auth.Principal, error) {
	if raw == "store-down" {
		return nil, fault.New(fault.Unavailable, "the database is unavailable")
	}
	scopes, ok := v[raw]
	if !ok {
		return nil, &fault.Error{Code: fault.InvalidToken, Description: "token is invalid"}
	}
	return &auth.Principal{UserID: "u-" + raw, Scopes: scopes, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

// gate serves every operation of the real spec behind the guard, with a
// handler that answers 200 with what reached it.
func gate(t *testing.T) *httptest.Server {
	t.Helper()
	doc, err := spec()
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(slog.New(slog.DiscardHandler), doc, stubVerifier{"reader": {"data:read"}, "admin": {"users:admin"}}, 2048)
	if err != nil {
		t.Fatal(err)
	}
	engine := gin.New()
	engine.HandleMethodNotAllowed = true
	engine.NoRoute(g.NoRoute)
	engine.NoMethod(g.NoMethod)
	gated := engine.Group("", g.Middleware())
	reached := func(c *gin.Context) {
		caller, _ := auth.CallerFrom(c.Request.Context())
		body, _ := io.ReadAll(c.Request.Body)
		c.JSON(http.StatusOK, gin.H{"caller": caller, "body": string(body)})
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			gated.Handle(method, ginPath(path), reached)
		}
	}
	srv := httptest.NewServer(engine)
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func send(t *testing.T, srv *httptest.Server, method, path string, header http.Header, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	a := answer{status: res.StatusCode, header: res.Header}
	json.NewDecoder(res.Body).Decode(&a.body)
	return a
}

func TestGinPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/users":                "/users",
		"/users/{username}":     "/users/:username",
		"/a/{b}/c/{d}":          "/a/:b/c/:d",
		"/my_data/{key}":        "/my_data/:key",
		"/broken/{unterminated": "/broken/{unterminated",
	} {
		if got := ginPath(in); got != want {
			t.Errorf("ginPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRouteTable(t *testing.T) {
	t.Parallel()
	doc, err := spec()
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(slog.New(slog.DiscardHandler), doc, stubVerifier{}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		method, path string
		want         bool
	}{
		{"POST", "/token", true}, {"GET", "/my_data", true}, {"GET", "/my_data/", true},
		{"PATCH", "/users/:username", true}, {"GET", "/users/{username}", false}, {"DELETE", "/token", false},
	} {
		if got := g.Covers(r.method, r.path); got != r.want {
			t.Errorf("Covers(%s %s) = %v, want %v", r.method, r.path, got, r.want)
		}
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		headers []string
		token   string
		err     error
	}{
		{"none", nil, "", errNoCredentials},
		{"bearer", []string{"Bearer abc.def"}, "abc.def", nil},
		{"scheme in another case", []string{"bEaReR abc"}, "abc", nil},
		{"extra spaces", []string{"Bearer    abc"}, "abc", nil},
		{"empty token", []string{"Bearer "}, "", errNoCredentials},
		{"scheme alone", []string{"Bearer"}, "", errNoCredentials},
		{"another scheme", []string{"Basic Og=="}, "", errNoCredentials},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", errManyAuthorizations},
	} {
		h := http.Header{}
		for _, v := range tt.headers {
			h.Add("Authorization", v)
		}
		token, err := bearerToken(h)
		if token != tt.token || err != tt.err {
			t.Errorf("%s: bearerToken = %q, %v; want %q, %v", tt.name, token, err, tt.token, tt.err)
		}
	}
}

// TestChallenges: every credentials failure on a protected operation is
// answered per RFC 6750 §3, before any handler runs.
func TestChallenges(t *testing.T) {
	t.Parallel()
	srv := gate(t)
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	for _, tt := range []struct {
		name      string
		header    http.Header
		status    int
		code      string
		challenge string
	}{
		{"no token", nil, 401, "unauthorized", `Bearer realm="passflow"`},
		{"another scheme", http.Header{"Authorization": {"Basic Og=="}}, 401, "unauthorized", `Bearer realm="passflow"`},
		{"bad token", bearer("forged"), 401, "invalid_token", `Bearer realm="passflow", error="invalid_token", error_description="token is invalid"`},
		{"too few scopes", bearer("admin"), 403, "insufficient_scope",
			`Bearer realm="passflow", error="insufficient_scope", error_description="the token lacks a scope this operation requires", scope="data:read"`},
		{"two Authorization headers", http.Header{"Authorization": {"Bearer reader", "Bearer reader"}}, 400, "invalid_request",
			`Bearer realm="passflow", error="invalid_request", error_description="more than one Authorization header"`},
		{"the store is down", bearer("store-down"), 503, "unavailable", ""},
	} {
		a := send(t, srv, "GET", "/my_data", tt.header, "")
		if a.status != tt.status || a.body["error"] != tt.code || a.header.Get("WWW-Authenticate") != tt.challenge {
			t.Errorf("%s: %d %v, challenge %q; want %d %s, %q", tt.name, a.status, a.body, a.header.Get("WWW-Authenticate"), tt.status, tt.code, tt.challenge)
		}
	}
	a := send(t, srv, "GET", "/my_data", bearer("reader"), "")
	if a.status != 200 || a.body["caller"].(map[string]any)["Principal"].(map[string]any)["UserID"] != "u-reader" {
		t.Errorf("a good token: %d %v", a.status, a.body)
	}
}

// TestValidationErrors pins how each kind of kin-openapi failure is told
// to the client: what kin offers as types is matched by type, and these
// cases catch any change in what it does not.
func TestValidationErrors(t *testing.T) {
	t.Parallel()
	srv := gate(t)
	admin := http.Header{"Authorization": {"Bearer admin"}, "Content-Type": {"application/json"}}
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for _, tt := range []struct {
		name, method, path string
		header             http.Header
		body               string
		status             int
		code, desc, field  string
	}{
		{"wrong content type", "POST", "/users", http.Header{"Authorization": {"Bearer admin"}, "Content-Type": {"text/plain"}}, `x`,
			400, "invalid_request", "Content-Type must be application/json", ""},
		{"malformed JSON", "POST", "/users", admin, `{"username":`, 400, "invalid_request", "the request body is malformed", ""},
		{"data after the value", "POST", "/users", admin, `{"username":"a","password":"password1"} {}`, 400, "invalid_request", "the request body is malformed", ""},
		{"no body", "POST", "/users", admin, ``, 400, "invalid_request", "a request body is required", ""},
		{"missing member", "POST", "/users", admin, `{"username":"a"}`, 400, "invalid_request", `request body: property "password" is missing`, "/password"},
		{"member of the wrong type", "POST", "/users", admin, `{"username":5,"password":"password1"}`, 400, "invalid_request", "/username: value must be a string", "/username"},
		{"unknown member", "POST", "/users", admin, `{"username":"a","password":"password1","x":1}`, 400, "invalid_request", `request body: property "x" is unsupported`, ""},
		{"query parameter out of range", "GET", "/users?limit=0", admin, ``, 400, "invalid_request", `query parameter "limit": number must be at least 1`, ""},
		{"path parameter", "PUT", "/my_data/a%20b", http.Header{"Authorization": {"Bearer admin"}}, ``, 403, "insufficient_scope", "the token lacks a scope this operation requires", ""},
		{"oversized body", "POST", "/users", admin, `{"username":"` + strings.Repeat("a", 3000) + `"}`, 413, "payload_too_large", "the request body exceeds 2048 bytes", ""},
		{"unknown grant type", "POST", "/token", form, `grant_type=passwordblah`, 400, "unsupported_grant_type", `grant_type: value is not one of the allowed values ["password","refresh_token"]`, ""},
		{"no grant type", "POST", "/token", form, `username=a`, 400, "invalid_request", `request body: property "grant_type" is missing`, ""},
		{"form parameter too long", "POST", "/token", form, `grant_type=password&username=` + strings.Repeat("u", 1100), 400, "invalid_request", "username: maximum string length is 1024", ""},
		{"unknown path", "GET", "/nowhere", nil, ``, 404, "not_found", "no such path", ""},
		{"unknown method", "DELETE", "/token", nil, ``, 405, "method_not_allowed", "method not allowed on this path", ""},
	} {
		a := send(t, srv, tt.method, tt.path, tt.header, tt.body)
		field, _ := a.body["field"].(string)
		if a.status != tt.status || a.body["error"] != tt.code || a.body["error_description"] != tt.desc || field != tt.field {
			t.Errorf("%s: %d %v; want %d %s %q field %q", tt.name, a.status, a.body, tt.status, tt.code, tt.desc, tt.field)
		}
	}
}

// TestOAuthFormRules: RFC 6749's transport rules at the token endpoint,
// applied before validation.
func TestOAuthFormRules(t *testing.T) {
	t.Parallel()
	srv := gate(t)
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for _, tt := range []struct {
		name, path, body string
		header           http.Header
		status           int
		desc             string
	}{
		{"query string", "/token?scope=x", "grant_type=password", form, 400, "parameters belong in the form body, not the URL query"},
		{"empty query", "/token?", "grant_type=password", form, 400, "parameters belong in the form body, not the URL query"},
		{"repeated parameter", "/token", "grant_type=password&grant_type=password", form, 400, "a parameter is repeated: grant_type"},
		{"repeated, unprintable name", "/token", "grant_type=password&%01=a&%01=b", form, 400, "a parameter is repeated: (unnamed)"},
		{"malformed form", "/token", "grant_type=%zz", form, 400, "the form body is malformed"},
		{"two Authorization headers", "/token", "grant_type=password", http.Header{"Content-Type": form["Content-Type"], "Authorization": {"Basic Og==", "Basic Og=="}},
			400, "more than one Authorization header"},
	} {
		a := send(t, srv, "POST", tt.path, tt.header, tt.body)
		if a.status != tt.status || a.body["error"] != "invalid_request" || a.body["error_description"] != tt.desc ||
			a.header.Get("Cache-Control") != "no-store" || a.header.Get("Pragma") != "no-cache" || a.header.Get("WWW-Authenticate") != "" {
			t.Errorf("%s: %d %v %v; want %d invalid_request %q, no-store, no challenge", tt.name, a.status, a.body, a.header, tt.status, tt.desc)
		}
	}
	// Empty parameters count as omitted; the handler sees the form as
	// sent otherwise, and Basic credentials on the caller's context.
	a := send(t, srv, "POST", "/token", form, "grant_type=password&scope=&username=al%20ice")
	if a.status != 200 {
		t.Fatalf("a good form: %d %v", a.status, a.body)
	}
	if got, _ := url.ParseQuery(a.body["body"].(string)); got.Encode() != "grant_type=password&username=al+ice" {
		t.Errorf("the handler saw %q", a.body["body"])
	}
}

// TestScopesAndReservedNames reads the spec's one list of scopes, and the
// path segments that collide with a parameter.
func TestScopesAndReservedNames(t *testing.T) {
	t.Parallel()
	doc, err := spec()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(Scopes(doc), " "); got != "data:read data:write reports:read reports:write users:admin" {
		t.Errorf("Scopes = %s", got)
	}
	if got := Reserved(doc); len(got) != 1 || strings.Join(got["username"], " ") != "me" {
		t.Errorf("Reserved = %v, want username: me", got)
	}
	extra := openapi3.NewPaths()
	for _, p := range []string{"/a/{x}", "/a/b", "/a/c/d", "/e/{y}/f", "/e/g/f", "/e/h/i"} {
		extra.Set(p, &openapi3.PathItem{})
	}
	got := Reserved(&openapi3.T{Paths: extra})
	if strings.Join(got["x"], " ") != "b" || strings.Join(got["y"], " ") != "g" || len(got) != 2 {
		t.Errorf("Reserved of made-up paths = %v, want x: b, y: g", got)
	}
}
