package auth

import (
	"context"
	"encoding/base64"
	"sync/atomic"
	"testing"
	"time"

	"github.com/passflow/passflow/fault"
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
	st := openStore(t)
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

// countingHasher counts the secrets it verifies.
type countingHasher struct {
	Hasher
	verified atomic.Int64
}

func (h *countingHasher) Verify(ctx context.Context, encoded, password string) (bool, bool, error) {
	h.verified.Add(1)
	return h.Hasher.Verify(ctx, encoded, password)
}

// TestVerifiedSecretsAreRemembered: a client that authenticates on every
// request (a service introspecting tokens) costs one hash, not one per
// request; a wrong secret, a deleted client or a new secret never rides
// on the memory.
func TestVerifiedSecretsAreRemembered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	h := &countingHasher{Hasher: NewPasswords(cheap)}
	c := NewClients(ClientConfig{Scopes: testScopes}, st, h, nil, NoEvents{}, time.Now)
	const secret = "a-secret-of-sixteen-bytes-or-more"
	if _, err := c.Register(ctx, NewClient{ID: "svc", Secret: secret}); err != nil {
		t.Fatal(err)
	}
	good := ClientCredentials{ID: "svc", Secret: secret}
	for range 5 {
		if cl, err := c.Authenticate(ctx, good, "192.0.2.1"); err != nil || cl.ID != "svc" || cl.Public || !cl.Registered {
			t.Fatalf("Authenticate = %+v, %v", cl, err)
		}
	}
	if n := h.verified.Load(); n != 1 {
		t.Errorf("5 authentications verified the secret %d times, want 1", n)
	}
	for range 3 {
		if _, err := c.Authenticate(ctx, ClientCredentials{ID: "svc", Secret: secret + "x"}, "192.0.2.1"); fault.As(err).Code != fault.InvalidClient {
			t.Errorf("a wrong secret: %v", err)
		}
	}
	if n := h.verified.Load(); n != 4 {
		t.Errorf("3 wrong secrets brought verifications to %d, want 4", n)
	}
	if err := c.Delete(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(ctx, good, "192.0.2.1"); fault.As(err).Code != fault.InvalidClient {
		t.Errorf("a deleted client with a remembered secret: %v", err)
	}
}
