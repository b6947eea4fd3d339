package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/passflow/passflow/client"
)

// tokenServer stands in for passflow's token endpoint, revocation and one
// protected operation: fast, and telling what it was sent.
type tokenServer struct {
	mu       sync.Mutex
	issued   int
	access   map[string]bool
	refresh  map[string]bool
	revoked  []string
	revokeBy string // the Basic user of the last revocation
	bearerAt string // the Authorization header of the last revocation
}

func newTokenServer(t *testing.T) (*tokenServer, *httptest.Server) {
	ts := &tokenServer{access: map[string]bool{}, refresh: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		r.ParseForm()
		ok := false
		switch r.PostForm.Get("grant_type") {
		case "password":
			ok = r.PostForm.Get("password") == "right-password"
		case "refresh_token":
			ok = ts.refresh[r.PostForm.Get("refresh_token")]
			delete(ts.refresh, r.PostForm.Get("refresh_token"))
		}
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant","error_description":"wrong username or password"}`)
			return
		}
		ts.issued++
		access, refresh := fmt.Sprintf("access-%d", ts.issued), fmt.Sprintf("refresh-%d", ts.issued)
		ts.access[access], ts.refresh[refresh] = true, true
		// expires_in 1: x/oauth2 refreshes it before every use.
		json.NewEncoder(w).Encode(map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 1, "refresh_token": refresh, "scope": ""})
	})
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		r.ParseForm()
		ts.revoked = append(ts.revoked, r.PostForm.Get("token"))
		ts.revokeBy, _, _ = r.BasicAuth()
		ts.bearerAt = r.Header.Get("Authorization")
	})
	mux.HandleFunc("GET /my_data", func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if !ts.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `[{"key":"k","value":"v"}]`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return ts, srv
}

func TestLoginRefreshLogout(t *testing.T) {
	t.Parallel()
	ts, srv := newTokenServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := client.Login(ctx, client.Config{BaseURL: srv.URL + "/", ClientID: "app", ClientSecret: "app-secret"}, "alice", "right-password")
	if err != nil {
		t.Fatal(err)
	}
	// The login's context ends; the client goes on, refreshing on its own.
	cancel()
	for range 2 {
		res, err := c.ListMyDataWithResponse(context.Background())
		if err != nil || res.JSON200 == nil || len(*res.JSON200) != 1 {
			t.Fatalf("a call after the login's context ended: %v %+v", err, res)
		}
	}
	if ts.issued < 3 {
		t.Errorf("%d tokens issued; want the login and a refresh per call", ts.issued)
	}
	if err := c.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(ts.revoked) != 1 || !strings.HasPrefix(ts.revoked[0], "refresh-") || ts.revokeBy != "app" || strings.HasPrefix(ts.bearerAt, "Bearer") {
		t.Errorf("revocation: %v by %q with %q; want the refresh token, the client's Basic credentials and no bearer token", ts.revoked, ts.revokeBy, ts.bearerAt)
	}
}

func TestLoginErrors(t *testing.T) {
	t.Parallel()
	_, srv := newTokenServer(t)
	_, err := client.Login(context.Background(), client.Config{BaseURL: srv.URL}, "alice", "wrong-password")
	var e *client.Error
	if !errors.As(err, &e) || e.Code != "invalid_grant" || e.Status != http.StatusBadRequest {
		t.Errorf("a wrong password: %v, want an *Error invalid_grant 400", err)
	}
	for _, base := range []string{"", "login.example.com", "://x"} {
		if _, err := client.Login(context.Background(), client.Config{BaseURL: base}, "a", "b"); err == nil || !strings.Contains(err.Error(), "is not a URL") {
			t.Errorf("BaseURL %q: %v", base, err)
		}
	}
}
