package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/passflow/passflow/generated/api"
)

// captureToken is a strict server whose IssueToken records its request.
type captureToken struct {
	api.StrictServerInterface
	got *api.IssueTokenRequestObject
}

func (c *captureToken) IssueToken(_ context.Context, req api.IssueTokenRequestObject) (api.IssueTokenResponseObject, error) {
	c.got = &req
	return api.IssueToken200JSONResponse{}, nil
}

// TestFormBodyOverrideApplies proves templates/strict/strict-gin.tmpl is in
// force: the generated handler, without the guard in front, must not take
// form parameters from the URL query.
func TestFormBodyOverrideApplies(t *testing.T) {
	t.Parallel()
	capture := &captureToken{}
	engine := gin.New()
	api.RegisterHandlers(engine, api.NewStrictHandler(capture, nil))

	req := httptest.NewRequest(http.MethodPost, "/token?scope=leaked&username=leaked", strings.NewReader("grant_type=password"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	engine.ServeHTTP(httptest.NewRecorder(), req)

	if capture.got == nil || capture.got.Body == nil {
		t.Fatal("IssueToken was not called with a body")
	}
	if b := capture.got.Body; b.Scope != nil || b.Username != nil {
		t.Errorf("query parameters leaked into the form body: scope %v, username %v", b.Scope, b.Username)
	}
	if capture.got.Body.GrantType != api.TokenRequestGrantTypePassword {
		t.Errorf("grant_type = %q, want password from the body", capture.got.Body.GrantType)
	}
}

// TestEveryOverrideIsNamed: a template file that the config does not name
// would be silently ignored.
func TestEveryOverrideIsNamed(t *testing.T) {
	t.Parallel()
	cfg, err := os.ReadFile("oapi-codegen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("templates/strict")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := "strict/" + e.Name()
		if !strings.Contains(string(cfg), name+": templates/"+name) {
			t.Errorf("templates/%s is not named in oapi-codegen.yaml's user-templates", name)
		}
		body, err := os.ReadFile("templates/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), "passflow override:") {
			t.Errorf("templates/%s marks no change with a passflow override: comment", name)
		}
	}
}
