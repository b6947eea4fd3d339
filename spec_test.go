package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/passflow/passflow/generated/api"
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
