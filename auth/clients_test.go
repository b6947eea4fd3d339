package auth

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"testing"
	"time"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store/sqlite"
)

func TestParseBasic(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		header    string
		want      ClientCredentials
		present   bool
		malformed bool
	}{
		{header: "", present: false},
		{header: "Bearer abc", present: false},
		{header: "Basic Og==", want: ClientCredentials{Basic: true}, present: true},
		{header: b64("app:s3cret"), want: ClientCredentials{ID: "app", Secret: "s3cret", Basic: true}, present: true},
		{header: b64("my%20app:p%3Ass"), want: ClientCredentials{ID: "my app", Secret: "p:ss", Basic: true}, present: true},
		{header: "basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), want: ClientCredentials{ID: "a", Secret: "b", Basic: true}, present: true},
		{header: "Basic !!!", present: true, malformed: true},
		{header: b64("no-colon"), present: true, malformed: true},
		{header: b64("bad%zz:x"), present: true, malformed: true},
	}
	for _, tt := range tests {
		got, present, err := ParseBasic(tt.header)
		if present != tt.present || (err != nil) != tt.malformed || (!tt.malformed && got != tt.want) {
			t.Errorf("ParseBasic(%q) = %+v, %v, %v", tt.header, got, present, err)
		}
		if tt.malformed && fault.As(err).Code != fault.InvalidClient {
			t.Errorf("ParseBasic(%q) error %v, want invalid_client", tt.header, err)
		}
	}
}

func TestClientRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := MergeClientCredentials(ClientCredentials{ID: "a", Basic: true}, "a", ""); fault.As(err).Code != fault.InvalidRequest {
		t.Errorf("Basic and body: %v, want invalid_request", err)
	}
	if c, err := MergeClientCredentials(ClientCredentials{Basic: true}, "body-app", ""); err != nil || c.ID != "body-app" {
		t.Errorf("empty Basic and a body id = %+v, %v", c, err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	public := NewClients(ClientConfig{AllowPublic: true, Scopes: testScopes}, st, NewPasswords(cheap), nil, NoEvents{}, time.Now)
	for creds, want := range map[ClientCredentials]string{
		{}:                       DefaultClientID,
		{ID: "spa"}:              "spa",
		{ID: "spa", Basic: true}: "spa",
	} {
		if c, err := public.Authenticate(ctx, creds, "192.0.2.1"); err != nil || c.ID != want || !c.Public {
			t.Errorf("Authenticate(%+v) = %+v, %v; want public %s", creds, c, err, want)
		}
	}
	for _, creds := range []ClientCredentials{{ID: "spa", Secret: "x"}, {Secret: "x"}, {ID: "bad\nid"}} {
		if _, err := public.Authenticate(ctx, creds, "192.0.2.1"); fault.As(err).Code != fault.InvalidClient {
			t.Errorf("Authenticate(%+v) = %v, want invalid_client", creds, err)
		}
	}
	if _, err := NewClients(ClientConfig{Scopes: testScopes}, st, NewPasswords(cheap), nil, NoEvents{}, time.Now).Authenticate(ctx, ClientCredentials{}, "192.0.2.1"); fault.As(err).Code != fault.InvalidClient {
		t.Errorf("no client with public clients off: %v, want invalid_client", err)
	}
}
