package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/generated/api"
)

// benchEnv is the whole program in process (newInproc), called directly,
// with a user holding three items. No benchmark logs in inside its loop.
type benchEnv struct {
	*inproc
	userID string
}

func newBenchEnv(b *testing.B, opts ...inprocOption) *benchEnv {
	b.Helper()
	ctx := context.Background()
	e := newInproc(b, opts...)
	u, err := e.app.accounts.Create(ctx, auth.NewAccount{Username: "bench", Password: "bench-password", Scopes: []string{"data:read", "data:write", "users:admin"}})
	if err != nil {
		b.Fatal(err)
	}
	for i, v := range []string{"one", "two", "three"} {
		if _, err := e.st.PutItem(ctx, u.ID, fmt.Sprintf("key-%d", i), v); err != nil {
			b.Fatal(err)
		}
	}
	return &benchEnv{inproc: e, userID: u.ID}
}

// token gets a fresh access token through POST /token.
func (e *benchEnv) token(b *testing.B) string {
	b.Helper()
	req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader("grant_type=password&username=bench&password=bench-password"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
		b.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	return body.AccessToken
}

// serve runs one GET through h and checks the answer.
func serve(b *testing.B, h http.Handler, req *http.Request) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "three") {
		b.Fatalf("GET %s: %d %s", req.URL.Path, rec.Code, rec.Body)
	}
}

// BenchmarkPipelineCacheHit is one protected GET /my_data through the whole
// pipeline (request id, access log, metrics, recovery, the guard with
// openapi3filter and the bearer check, the generated wrapper, the handler,
// the store) with a token already verified once.
func BenchmarkPipelineCacheHit(b *testing.B) {
	benchCacheHit(b, newBenchEnv(b))
}

func benchCacheHit(b *testing.B, e *benchEnv) {
	req := httptest.NewRequest(http.MethodGet, "/my_data", nil)
	req.Header.Set("Authorization", "Bearer "+e.token(b))
	serve(b, e.handler, req)
	b.ReportAllocs()
	for b.Loop() {
		serve(b, e.handler, req)
	}
}

// BenchmarkPipelineCacheMiss is the same with a fresh token every request:
// every signature is checked.
func BenchmarkPipelineCacheMiss(b *testing.B) {
	e := newBenchEnv(b)
	// Mint b.N tokens ahead, outside the timed loop.
	tokens := make([]string, b.N)
	for i := range tokens {
		at, err := e.app.tokens.Issue(auth.Subject{UserID: e.userID, Username: "bench", ClientID: "passflow", Scopes: []string{"data:read", "data:write", "users:admin"}})
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = "Bearer " + at.Token
	}
	req := httptest.NewRequest(http.MethodGet, "/my_data", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req.Header.Set("Authorization", tokens[i])
		serve(b, e.handler, req)
	}
}

// BenchmarkBareRoute is the baseline: a bare gin route doing the same store
// read and returning the same JSON, with no middleware, validation or auth.
func BenchmarkBareRoute(b *testing.B) {
	e := newBenchEnv(b)
	engine := gin.New()
	engine.GET("/my_data", func(c *gin.Context) {
		items, err := e.st.ListItems(c, e.userID)
		if err != nil {
			c.Status(500)
			return
		}
		out := make([]api.Item, len(items))
		for i, it := range items {
			out[i] = api.Item{Key: it.Key, Value: it.Value}
		}
		c.JSON(http.StatusOK, out)
	})
	req := httptest.NewRequest(http.MethodGet, "/my_data", nil)
	b.ReportAllocs()
	for b.Loop() {
		serve(b, engine, req)
	}
}

// BenchmarkPipelineBigSpec is BenchmarkPipelineCacheHit with 300 more
// operations in the spec: the guard finds the operation through a table
// built once, so the cost must not change.
func BenchmarkPipelineBigSpec(b *testing.B) {
	doc, err := loadSpec(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	template := doc.Paths.Find("/my_data/{key}")
	for i := range 300 {
		doc.Paths.Set(fmt.Sprintf("/extra%03d/{key}", i), template)
	}
	if doc.Paths.Len() < 300 {
		b.Fatal("the extra operations were not added")
	}
	benchCacheHit(b, newBenchEnv(b, withSpec(doc)))
}
