package auth

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/sqlite"
)

// TestFeedFollowsChanges runs two "processes" on one store: a change
// made through one is in force there at once and in the other after it
// syncs.
func TestFeedFollowsChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	open := func() *sqlite.Store {
		st, err := sqlite.Open(ctx, path, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	stA, stB := open(), open()
	now := time.Now
	newRevs := func(st *sqlite.Store) *Feed {
		keys, err := LoadKeys(ctx, st, KeyConfig{Alg: AlgEdDSA, Verify: time.Minute}, slog.New(slog.DiscardHandler), now)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewFeed(ctx, slog.New(slog.DiscardHandler), st, keys, 10, now)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := newRevs(stA), newRevs(stB)
	accounts := NewAccounts(AccountConfig{Scopes: testScopes}, stA, NewArgon2id(cheap), nil, a, NoEvents{}, now)
	for _, name := range []string{"root", "ann", "bo"} {
		scopes := []string{"data:read"}
		if name == "root" {
			scopes = append(scopes, store.ScopeUsersAdmin)
		}
		if _, err := accounts.Create(ctx, NewAccount{Username: name, Password: "password-" + name, Scopes: scopes}); err != nil {
			t.Fatal(err)
		}
	}
	principal := func(name, jti string) *Principal {
		u, err := stA.UserByUsername(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return &Principal{UserID: u.ID, TokenID: jti, Version: u.TokenVersion}
	}
	check := func(r *Feed, p *Principal, ok bool, what string) {
		t.Helper()
		err := r.Check(ctx, p)
		if ok && err != nil {
			t.Errorf("%s: %v, want accepted", what, err)
		}
		if !ok && fault.As(err).Code != fault.InvalidToken {
			t.Errorf("%s: %v, want invalid_token", what, err)
		}
	}
	ann, bo := principal("ann", "ann-1"), principal("bo", "bo-1")
	check(a, ann, true, "ann on A")
	check(b, ann, true, "ann on B (now cached)")

	disabled := true
	if _, err := accounts.Update(ctx, "ann", Change{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	check(a, ann, false, "disabled ann on A, at once")
	check(b, ann, true, "disabled ann on B before it syncs (from its cache)")
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	check(b, ann, false, "disabled ann on B after sync")

	enabled := false
	if _, err := accounts.Update(ctx, "ann", Change{Disabled: &enabled}); err != nil {
		t.Fatal(err)
	}
	check(a, ann, false, "ann's old token after re-enabling: still revoked")
	check(a, principal("ann", "ann-2"), true, "ann's new token")

	pw := "a-new-password"
	if _, err := accounts.Update(ctx, "bo", Change{Password: &pw}); err != nil {
		t.Fatal(err)
	}
	check(a, bo, false, "bo after a password change")
	if _, err := stB.RevokeAccessToken(ctx, "bo-2", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	bo2 := principal("bo", "bo-2")
	check(a, bo2, true, "a revoked jti before A syncs")
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	check(a, bo2, false, "a revoked jti after A syncs")
	check(a, principal("bo", "bo-3"), true, "another token of bo")

	if err := accounts.Delete(ctx, "bo"); err != nil {
		t.Fatal(err)
	}
	check(a, principal("root", "r"), true, "root")
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	check(b, &Principal{UserID: bo.UserID, TokenID: "bo-4", Version: 1}, false, "deleted bo on B")
}
