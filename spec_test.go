package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/generated/api"
	"github.com/passflow/passflow/guard"
)

// TestGeneratedSpecMatchesOpenAPIYAML: the spec embedded in the generated
// code validates and says exactly what openapi.yaml says.
func TestGeneratedSpecMatchesOpenAPIYAML(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	generated, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	if err := generated.Validate(ctx); err != nil {
		t.Fatalf("generated spec does not validate: %v", err)
	}
	embedded, err := loadSpec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := generated.MarshalJSON()
	b, _ := embedded.MarshalJSON()
	if !jsonEqual(t, a, b) {
		t.Error("generated/api's spec differs from openapi.yaml: run go generate ./...")
	}
}

// TestServedSpecs: /openapi.yaml is openapi.yaml byte for byte, and
// /openapi.json says the same in JSON.
func TestServedSpecs(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	y := ts.do(http.MethodGet, "/openapi.yaml", nil, nil)
	if y.Status != 200 || !bytes.Equal(y.Body, specYAML) {
		t.Fatalf("/openapi.yaml = %d, %d bytes; want openapi.yaml", y.Status, len(y.Body))
	}
	j := ts.do(http.MethodGet, "/openapi.json", nil, nil)
	if j.Status != 200 || j.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/openapi.json = %d %s", j.Status, j.Header.Get("Content-Type"))
	}
	var fromYAML any
	if err := yaml.Unmarshal(y.Body, &fromYAML); err != nil {
		t.Fatal(err)
	}
	asJSON, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, asJSON, j.Body) {
		t.Error("/openapi.json and /openapi.yaml differ in content")
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// TestScopesComeFromTheSpec: the password flow's scopes are the one list.
// No schema enumerates a part of them; the server accepts each of them and
// no other, lists them in its metadata, and gives them all to admin; and a
// scope added to the spec is one the server grants, with no Go changed.
func TestScopesComeFromTheSpec(t *testing.T) {
	t.Parallel()
	doc, err := loadSpec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	flow := guard.Scopes(doc)
	if len(flow) == 0 {
		t.Fatal("the spec's password flow declares no scope")
	}
	for name, ref := range doc.Components.Schemas {
		var walk func(path string, s *openapi3.Schema)
		walk = func(path string, s *openapi3.Schema) {
			if s == nil {
				return
			}
			for _, v := range s.Enum {
				if str, ok := v.(string); ok && slices.Contains(flow, str) {
					t.Errorf("schema %s enumerates scopes (%v): the password flow's list is the only one", path, s.Enum)
					return
				}
			}
			if s.Items != nil {
				walk(path+"/items", s.Items.Value)
			}
			for p, prop := range s.Properties {
				walk(path+"/"+p, prop.Value)
			}
		}
		walk(name, ref.Value)
	}

	ts := startServer(t)
	var meta struct {
		Scopes []string `json:"scopes_supported"`
	}
	json.Unmarshal(ts.do(http.MethodGet, "/.well-known/oauth-authorization-server", nil, nil).Body, &meta)
	if !slices.Equal(meta.Scopes, flow) {
		t.Errorf("scopes_supported = %v, want the flow's %v", meta.Scopes, flow)
	}
	if _, p := claims(t, ts.login("admin", ts.Admin)); p["scope"] != strings.Join(flow, " ") {
		t.Errorf("admin's scopes = %v, want every scope of the flow", p["scope"])
	}
	for _, s := range flow {
		if out, err := ts.cli("some-password\n", "user", "add", "holder-"+strings.ReplaceAll(s, ":", "-"), "--scopes", s); err != nil {
			t.Errorf("user add --scopes %s: %v %s", s, err, out)
		}
	}
	_, err = ts.cli("some-password\n", "user", "add", "bill", "--scopes", "billing:read")
	if err == nil || !strings.Contains(describe(err), "unknown scope; the scopes are "+strings.Join(flow, ", ")) {
		t.Errorf("user add with a scope the spec lacks: %v", err)
	}

	// The same server code on a spec with one more scope.
	more, _ := loadSpec(context.Background())
	more.Components.SecuritySchemes["OAuth2PasswordBearer"].Value.Flows.Password.Scopes["billing:read"] = "Read bills."
	e := newInproc(t, withSpec(more))
	if _, err := e.app.accounts.Create(context.Background(), auth.NewAccount{Username: "bill", Password: "bill-password", Scopes: []string{"billing:read"}}); err != nil {
		t.Errorf("an account with a scope added to the spec: %v", err)
	}
	if _, p := claims(t, e.login("bill")); p["scope"] != "billing:read" {
		t.Errorf("bill's token carries %v, want billing:read", p["scope"])
	}
}
