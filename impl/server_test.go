package impl_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/generated/api"
	"github.com/passflow/passflow/impl"
	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/sqlite"
)

// cheap keeps these tests fast; hashing cost is tested in auth.
var cheap = auth.Argon2idParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}

type env struct {
	server   *impl.Server
	accounts *auth.Accounts
	st       store.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logger := slog.New(slog.DiscardHandler)
	hasher := auth.NewPasswords(cheap)
	keys, err := auth.LoadKeys(ctx, st, auth.KeyConfig{Alg: auth.AlgEdDSA, Verify: time.Hour}, logger, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	feed, err := auth.NewFeed(ctx, logger, st, keys, 10, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens(auth.TokenConfig{Issuer: "https://id.example.test", TTL: time.Minute, CacheSize: 10}, keys, feed, auth.NoEvents{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	throttle := auth.NewThrottle(st, auth.ThrottleConfig{MaxFailures: 5, MaxPerUser: 50, MaxPerIP: 100, Window: time.Minute, MaxBackoff: time.Minute}, time.Now)
	scopes, err := auth.NewScopes([]string{"data:read", "data:write", "users:admin"})
	if err != nil {
		t.Fatal(err)
	}
	accounts := auth.NewAccounts(auth.AccountConfig{Scopes: scopes, ReservedUsernames: []string{"me"}}, st, hasher, throttle, feed, auth.NoEvents{}, time.Now)
	clients := auth.NewClients(auth.ClientConfig{AllowPublic: true, Scopes: scopes}, st, hasher, throttle, auth.NoEvents{}, time.Now)
	grants, err := auth.NewGrants(auth.GrantConfig{RefreshTTL: time.Hour, PasswordGrant: true, Scopes: scopes}, logger, st, hasher, tokens, clients, feed, throttle, auth.NoEvents{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &env{server: impl.NewServer(accounts, st, grants, clients, keys, scopes, "https://id.example.test"), accounts: accounts, st: st}
}

// as is a context as the request gate leaves it: the caller's address and,
// for a protected operation, the principal.
func as(p *auth.Principal) context.Context {
	return auth.WithCaller(context.Background(), &auth.Caller{ClientIP: "192.0.2.1", Principal: p})
}

func TestTokenNeedsTheCallersAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	req := api.IssueTokenRequestObject{Body: &api.IssueTokenFormdataRequestBody{GrantType: api.TokenRequestGrantTypePassword}}
	// Never one empty address for every client: a missing one is a bug.
	if _, err := e.server.IssueToken(context.Background(), req); err == nil || fault.As(err).Code != fault.Internal {
		t.Errorf("a token request without the caller's address: %v, want an internal error", err)
	}
}

func TestServerMetadataComesFromTheIssuer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res, err := e.server.GetServerMetadata(context.Background(), api.GetServerMetadataRequestObject{})
	if err != nil {
		t.Fatal(err)
	}
	m := res.(api.GetServerMetadata200JSONResponse)
	if m.Body.Issuer != "https://id.example.test" || m.Body.TokenEndpoint != "https://id.example.test/token" ||
		m.Body.JwksUri != "https://id.example.test/.well-known/jwks.json" || m.Headers.CacheControl == nil {
		t.Errorf("metadata = %+v", m)
	}
}

func TestItems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, err := e.accounts.Create(context.Background(), auth.NewAccount{Username: "ann", Password: "ann-password", Scopes: []string{"data:read"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := as(&auth.Principal{UserID: u.ID, Username: u.Username})
	empty, err := e.server.ListMyData(ctx, api.ListMyDataRequestObject{})
	if err != nil || empty.(api.ListMyData200JSONResponse) == nil {
		t.Fatalf("no items = %#v, %v; want an empty list, not null", empty, err)
	}
	put := func() api.PutMyDataResponseObject {
		res, err := e.server.PutMyData(ctx, api.PutMyDataRequestObject{Key: "k", Body: &api.PutMyDataJSONRequestBody{Value: "v"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if _, ok := put().(api.PutMyData201JSONResponse); !ok {
		t.Error("a new item is not 201")
	}
	if _, ok := put().(api.PutMyData200JSONResponse); !ok {
		t.Error("a replaced item is not 200")
	}
	if _, err := e.server.DeleteMyData(ctx, api.DeleteMyDataRequestObject{Key: "nope"}); fault.As(err).Code != fault.NotFound {
		t.Errorf("deleting a missing item: %v, want not_found", err)
	}
}

func TestMeOfADeletedAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.server.GetMe(as(&auth.Principal{UserID: "gone"}), api.GetMeRequestObject{})
	if fault.As(err).Code != fault.InvalidToken {
		t.Errorf("GET /users/me of a deleted account: %v, want invalid_token", err)
	}
}

func TestUserPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, name := range []string{"a1", "a2", "a3"} {
		if _, err := e.accounts.Create(context.Background(), auth.NewAccount{Username: name, Password: name + "-password"}); err != nil {
			t.Fatal(err)
		}
	}
	limit := 2
	res, err := e.server.ListUsers(as(nil), api.ListUsersRequestObject{Params: api.ListUsersParams{Limit: &limit}})
	if err != nil {
		t.Fatal(err)
	}
	page := res.(api.ListUsers200JSONResponse)
	if len(page.Users) != 2 || page.NextAfter == nil || *page.NextAfter != "a2" {
		t.Fatalf("first page = %+v", page)
	}
	res, _ = e.server.ListUsers(as(nil), api.ListUsersRequestObject{Params: api.ListUsersParams{Limit: &limit, After: page.NextAfter}})
	if last := res.(api.ListUsers200JSONResponse); len(last.Users) != 1 || last.NextAfter != nil {
		t.Errorf("last page = %+v", last)
	}
	// No scopes given is none; an account without any shows [] in JSON.
	created, err := e.server.CreateUser(as(nil), api.CreateUserRequestObject{Body: &api.CreateUserJSONRequestBody{Username: "b", Password: ptr("b-password")}})
	if err != nil || created.(api.CreateUser201JSONResponse).Scopes == nil {
		t.Errorf("a user created without scopes = %+v, %v", created, err)
	}
	if _, err := e.server.UpdateUser(as(nil), api.UpdateUserRequestObject{Username: "nobody", Body: &api.UpdateUserJSONRequestBody{Disabled: ptr(true)}}); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("updating no such user: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
