package auth

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
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

// newBenchFeed is a feed on a new SQLite store holding one account, and a
// principal of that account whose state the feed has cached.
func newBenchFeed(b *testing.B) (*Feed, *sqlite.Store, *Principal) {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "p.db"), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	_, f, _ := newTokenCore(b, st, NoEvents{})
	u, err := NewAccounts(AccountConfig{Scopes: testScopes}, st, NewArgon2id(cheap), nil, f, NoEvents{}, time.Now).
		Create(ctx, NewAccount{Username: "ann", Password: "a-long-password"})
	if err != nil {
		b.Fatal(err)
	}
	p := &Principal{UserID: u.ID, TokenID: "live-token", SessionID: "live-family", ClientID: "passflow", Version: u.TokenVersion}
	if err := f.Check(ctx, p); err != nil {
		b.Fatal(err)
	}
	return f, st, p
}

// BenchmarkFeedCheck is the revocation check of every token verification,
// with no revocations held and with 100,000 revoked access tokens and
// 100,000 revoked refresh families still alive; heap-MB is the memory they
// take. They are held only until their tokens expire (the access token
// lifetime, 15 minutes by default, and a minute more), so the revocations
// made in that time bound them: about 90 bytes each (18 MB for these
// 200,000).
func BenchmarkFeedCheck(b *testing.B) {
	for _, n := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("revoked=%d", n), func(b *testing.B) {
			f, _, p := newBenchFeed(b)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			exp := time.Now().Add(15 * time.Minute)
			for i := range n {
				f.applyOne(context.Background(), store.Change{Kind: store.ChangeAccessToken, Subject: uuid.NewString(), ExpiresAt: exp})
				f.applyOne(context.Background(), store.Change{Kind: store.ChangeFamily, Subject: fmt.Sprintf("family-%d", i), ExpiresAt: exp})
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			ctx := context.Background()
			for b.Loop() {
				if err := f.Check(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(after.HeapAlloc-min(before.HeapAlloc, after.HeapAlloc))/(1<<20), "heap-MB")
		})
	}
}

// BenchmarkFeedSync is one poll of the change feed that finds nothing new,
// with 1 and with 10,000 changes kept in the store's feed (changes stay a
// day): the poll reads from its last position by the feed's primary key,
// so what the feed holds does not change its cost.
func BenchmarkFeedSync(b *testing.B) {
	for _, n := range []int{1, 10_000} {
		b.Run(fmt.Sprintf("changes=%d", n), func(b *testing.B) {
			f, st, _ := newBenchFeed(b)
			ctx := context.Background()
			tx, err := st.DB().BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now().UnixMicro()
			for i := range n {
				if _, err := tx.ExecContext(ctx, `INSERT INTO changes (kind, subject, expires_at, created_at) VALUES (?, ?, ?, ?)`,
					string(store.ChangeAccessToken), fmt.Sprintf("jti-%d", i), now+int64(time.Hour/time.Microsecond), now); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(ctx); err != nil { // reads the n changes once
				b.Fatal(err)
			}
			for b.Loop() {
				if err := f.Sync(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
