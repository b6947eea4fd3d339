// Package storetest is the one test suite every store.Store implementation
// must pass. Each backend's tests call Run with a function that opens a
// fresh, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// Run runs the suite. open must return a fresh, empty store and arrange for
// it to be closed when the test ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Users", testUsers},
		{"ListUsers", testListUsers},
		{"UpdateUser", testUpdateUser},
		{"DeleteUserTakesItems", testDeleteUserTakesItems},
		{"HasUserWithScope", testHasUserWithScope},
		{"BootstrapAdmin", testBootstrapAdmin},
		{"BootstrapRestores", testBootstrapRestores},
		{"LastAdmin", testLastAdmin},
		{"Items", testItems},
		{"ConcurrentPuts", testConcurrentPuts},
		{"SigningKeys", testSigningKeys},
		{"RefreshRotation", testRefreshRotation},
		{"RefreshReuse", testRefreshReuse},
		{"RefreshReuseGrace", testRefreshReuseGrace},
		{"RefreshExpiry", testRefreshExpiry},
		{"RefreshRace", testRefreshRace},
		{"ChangeFeed", testChangeFeed},
		{"CreateUsers", testCreateUsers},
		{"Clients", testClients},
		{"RotateSigningKey", testRotateSigningKey},
		{"Settings", testSettings},
		{"LoginFailures", testLoginFailures},
		{"Emails", testEmails},
		{"EmailTokens", testEmailTokens},
		{"Outbox", testOutbox},
		{"OutboxClaimsOnce", testOutboxClaimsOnce},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

func user(name string, scopes ...string) store.User {
	return store.User{
		ID: "id-" + name, Username: name, PasswordHash: "$argon2id$hash-of-" + name,
		Scopes: scopes, CreatedAt: epoch, UpdatedAt: epoch,
	}
}

func mustCreate(t *testing.T, s store.Store, u store.User) {
	t.Helper()
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", u.Username, err)
	}
}

func testUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := user("alice", "data:read", "data:write")
	u.TokenVersion = 3
	mustCreate(t, s, u)

	got, err := s.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != u.ID || got.PasswordHash != u.PasswordHash || fmt.Sprint(got.Scopes) != fmt.Sprint(u.Scopes) ||
		got.TokenVersion != 3 || got.Disabled || !got.CreatedAt.Equal(epoch) || !got.UpdatedAt.Equal(epoch) {
		t.Errorf("UserByUsername = %+v, want %+v", got, u)
	}
	if byID, err := s.UserByID(ctx, u.ID); err != nil || byID.Username != "alice" {
		t.Errorf("UserByID = %+v, %v", byID, err)
	}
	if _, err := s.UserByUsername(ctx, "bob"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("UserByUsername(bob) error = %v, want not found", err)
	}
	if _, err := s.UserByID(ctx, "nope"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("UserByID(nope) error = %v, want not found", err)
	}
	dup := user("alice")
	dup.ID = "other-id"
	if err := s.CreateUser(ctx, dup); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("CreateUser(duplicate) error = %v, want conflict", err)
	}
	noScopes := user("carl")
	mustCreate(t, s, noScopes)
	if got, _ := s.UserByUsername(ctx, "carl"); len(got.Scopes) != 0 {
		t.Errorf("scopes of a user without any = %q", got.Scopes)
	}
}

func testListUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, n := range []string{"dora", "bea", "eve", "amy", "cid"} {
		mustCreate(t, s, user(n))
	}
	page, err := s.ListUsers(ctx, "", 2)
	if err != nil || len(page) != 2 || page[0].Username != "amy" || page[1].Username != "bea" {
		t.Fatalf("first page = %v, %v", names(page), err)
	}
	page, err = s.ListUsers(ctx, "bea", 10)
	if err != nil || fmt.Sprint(names(page)) != "[cid dora eve]" {
		t.Fatalf("after bea = %v, %v", names(page), err)
	}
	page, err = s.ListUsers(ctx, "eve", 10)
	if err != nil || page == nil || len(page) != 0 {
		t.Fatalf("after the last = %v, %v; want an empty, non-nil list", page, err)
	}
}

func names(us []store.User) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Username)
	}
	return out
}

func testUpdateUser(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, user("fay", "data:read"))
	later := epoch.Add(time.Hour)
	got, err := s.UpdateUser(ctx, "fay", func(u *store.User) error {
		u.Disabled, u.TokenVersion, u.Scopes, u.PasswordHash, u.UpdatedAt = true, 7, []string{"data:write"}, "new-hash", later
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := s.UserByUsername(ctx, "fay")
	for _, u := range []store.User{got, again} {
		if !u.Disabled || u.TokenVersion != 7 || fmt.Sprint(u.Scopes) != "[data:write]" || u.PasswordHash != "new-hash" || !u.UpdatedAt.Equal(later) {
			t.Errorf("after update: %+v", u)
		}
	}

	refuse := errors.New("refused")
	if _, err := s.UpdateUser(ctx, "fay", func(u *store.User) error { u.Disabled = false; return refuse }); !errors.Is(err, refuse) {
		t.Errorf("error from change = %v, want it passed on", err)
	}
	if u, _ := s.UserByUsername(ctx, "fay"); !u.Disabled {
		t.Error("a refused change was written")
	}
	if _, err := s.UpdateUser(ctx, "fay", func(u *store.User) error { u.Username = "other"; return nil }); err == nil {
		t.Error("renaming through UpdateUser succeeded")
	}
	if _, err := s.UpdateUser(ctx, "ghost", func(*store.User) error { return nil }); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("UpdateUser(ghost) error = %v, want not found", err)
	}
}

func testDeleteUserTakesItems(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, user("gus"))
	if _, err := s.PutItem(ctx, "id-gus", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "gus"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByUsername(ctx, "gus"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("deleted user still found: %v", err)
	}
	if items, err := s.ListItems(ctx, "id-gus"); err != nil || len(items) != 0 {
		t.Errorf("deleted user's items = %v, %v", items, err)
	}
	if err := s.DeleteUser(ctx, "gus"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("second delete error = %v, want not found", err)
	}
}

func testBootstrapAdmin(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Processes starting together on an empty store create one admin.
	var wg sync.WaitGroup
	var mu sync.Mutex
	did := map[store.Bootstrap]int{}
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := user("admin", "data:read", "users:admin")
			u.ID = fmt.Sprintf("admin-%d", i)
			d, err := s.BootstrapAdmin(ctx, u)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			did[d]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if did[store.BootstrapCreated] != 1 || did[store.BootstrapNone] != 5 {
		t.Fatalf("6 bootstraps at once did %v; want one creation", did)
	}
	before, _ := s.LatestChange(ctx)
	if d, err := s.BootstrapAdmin(ctx, user("admin", "users:admin")); err != nil || d != store.BootstrapNone {
		t.Errorf("with an enabled admin: %v, %v", d, err)
	}
	if changes, _ := s.ChangesSince(ctx, before, 10); len(changes) != 0 {
		t.Errorf("a bootstrap that did nothing appended %+v", changes)
	}
}

func testBootstrapRestores(t *testing.T, s store.Store) {
	ctx := context.Background()
	// admin exists, disabled and without the scope: no one can manage
	// accounts (an import can leave a store so).
	off := user("admin")
	off.Disabled = true
	mustCreate(t, s, off)
	before, _ := s.LatestChange(ctx)
	later := epoch.Add(time.Hour)
	u := user("admin", "data:read", "users:admin")
	u.ID, u.UpdatedAt = "another-id", later
	if d, err := s.BootstrapAdmin(ctx, u); err != nil || d != store.BootstrapRestored {
		t.Fatalf("BootstrapAdmin = %v, %v; want restored", d, err)
	}
	got, _ := s.UserByUsername(ctx, "admin")
	if got.ID != off.ID || got.Disabled || !got.IsEnabledAdmin() || got.PasswordHash != off.PasswordHash || !got.UpdatedAt.Equal(later) {
		t.Errorf("restored admin = %+v", got)
	}
	if changes, _ := s.ChangesSince(ctx, before, 10); len(changes) != 1 || changes[0].Subject != off.ID {
		t.Errorf("restoring appended %+v", changes)
	}
}

func testHasUserWithScope(t *testing.T, s store.Store) {
	ctx := context.Background()
	has := func() bool {
		t.Helper()
		ok, err := s.HasUserWithScope(ctx, "users:admin")
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if has() {
		t.Error("an empty store has an admin")
	}
	mustCreate(t, s, user("hal", "data:read", "users:admin-ish"))
	if has() {
		t.Error("users:admin-ish counted as users:admin")
	}
	disabled := user("ida", "users:admin")
	disabled.Disabled = true
	mustCreate(t, s, disabled)
	if has() {
		t.Error("a disabled admin counted")
	}
	mustCreate(t, s, user("ike", "data:read", "users:admin"))
	if !has() {
		t.Error("ike holds users:admin")
	}
}

// testLastAdmin: no change may leave the store without an enabled admin.
func testLastAdmin(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, user("root", "users:admin"))
	mustCreate(t, s, user("pat", "data:read"))
	refused := map[string]func(*store.User) error{
		"disable":     func(u *store.User) error { u.Disabled = true; return nil },
		"drop scope":  func(u *store.User) error { u.Scopes = []string{"data:read"}; return nil },
		"drop scopes": func(u *store.User) error { u.Scopes = nil; return nil },
	}
	for name, change := range refused {
		if _, err := s.UpdateUser(ctx, "root", change); !errors.Is(err, store.ErrLastAdmin) {
			t.Errorf("%s the last admin: %v, want ErrLastAdmin", name, err)
		}
	}
	if err := s.DeleteUser(ctx, "root"); !errors.Is(err, store.ErrLastAdmin) {
		t.Errorf("delete the last admin: %v, want ErrLastAdmin", err)
	}
	if _, err := s.UpdateUser(ctx, "root", func(u *store.User) error { u.TokenVersion++; return nil }); err != nil {
		t.Errorf("a change keeping the admin: %v", err)
	}
	// With a second admin, either may go.
	if _, err := s.UpdateUser(ctx, "pat", func(u *store.User) error { u.Scopes = []string{"users:admin"}; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "root"); err != nil {
		t.Errorf("delete one of two admins: %v", err)
	}
	if _, err := s.UpdateUser(ctx, "pat", func(u *store.User) error { u.Disabled = true; return nil }); !errors.Is(err, store.ErrLastAdmin) {
		t.Errorf("disable the remaining admin: %v, want ErrLastAdmin", err)
	}
}

func testItems(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, user("jo"))
	mustCreate(t, s, user("kai"))
	if items, err := s.ListItems(ctx, "id-jo"); err != nil || items == nil || len(items) != 0 {
		t.Fatalf("no items = %v, %v; want an empty, non-nil list", items, err)
	}
	for _, kv := range [][2]string{{"b", "1"}, {"a", "2"}, {"c", "3"}} {
		if created, err := s.PutItem(ctx, "id-jo", kv[0], kv[1]); err != nil || !created {
			t.Fatalf("PutItem(%s) = %v, %v; want created", kv[0], created, err)
		}
	}
	if created, err := s.PutItem(ctx, "id-jo", "b", "4"); err != nil || created {
		t.Fatalf("replacing PutItem = %v, %v; want not created", created, err)
	}
	if _, err := s.PutItem(ctx, "id-kai", "a", "kai's"); err != nil {
		t.Fatal(err)
	}
	items, err := s.ListItems(ctx, "id-jo")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.Key+"="+it.Value)
		if it.UpdatedAt.IsZero() {
			t.Errorf("item %s has no UpdatedAt", it.Key)
		}
	}
	if fmt.Sprint(got) != "[a=2 b=4 c=3]" {
		t.Errorf("jo's items = %v", got)
	}
	if err := s.DeleteItem(ctx, "id-kai", "b"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("deleting another user's key: %v, want not found", err)
	}
	if err := s.DeleteItem(ctx, "id-jo", "b"); err != nil {
		t.Fatal(err)
	}
	if items, _ := s.ListItems(ctx, "id-jo"); len(items) != 2 {
		t.Errorf("after delete: %v", items)
	}
}

func testConcurrentPuts(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, user("lou"))
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.PutItem(ctx, "id-lou", fmt.Sprintf("k%02d", i%10), fmt.Sprint(i))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent PutItem: %v", err)
		}
	}
	if items, _ := s.ListItems(ctx, "id-lou"); len(items) != 10 {
		t.Errorf("%d items, want 10", len(items))
	}
}

func testSigningKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	if keys, err := s.SigningKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("SigningKeys of an empty store = %v, %v", keys, err)
	}
	first := store.SigningKey{ID: "k1", Algorithm: "EdDSA", Private: []byte{1, 2, 3}, CreatedAt: epoch}
	keys, err := s.EnsureSigningKey(ctx, first)
	if err != nil || len(keys) != 1 || keys[0].ID != "k1" || string(keys[0].Private) != "\x01\x02\x03" || !keys[0].Active().Equal(epoch) {
		t.Fatalf("EnsureSigningKey = %+v, %v", keys, err)
	}
	// Any unretired key, of any algorithm, is the store's: Ensure adds none.
	for _, k := range []store.SigningKey{
		{ID: "k2", Algorithm: "EdDSA", Private: []byte{4}, CreatedAt: epoch.Add(time.Hour)},
		{ID: "k3", Algorithm: "ES256", Private: []byte{5}, CreatedAt: epoch.Add(time.Hour)},
	} {
		if keys, err := s.EnsureSigningKey(ctx, k); err != nil || len(keys) != 1 || keys[0].ID != "k1" {
			t.Fatalf("EnsureSigningKey(%s) beside an unretired key = %+v, %v; want only k1", k.ID, keys, err)
		}
	}
	// Sealing replaces the private key, unless it changed meanwhile.
	if err := s.SealSigningKey(ctx, "k1", []byte{9}, []byte{7, 7}); err != nil {
		t.Fatal(err)
	}
	if err := s.SealSigningKey(ctx, "k1", []byte{1, 2, 3}, []byte{8, 8}); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.SigningKeys(ctx); len(all) != 1 || string(all[0].Private) != "\x08\x08" || !all[0].CreatedAt.Equal(epoch) {
		t.Errorf("SigningKeys after sealing = %+v", all)
	}
}

func testSettings(t *testing.T, s store.Store) {
	ctx := context.Background()
	if v, err := s.ClaimSetting(ctx, "colour", "blue"); err != nil || v != "blue" {
		t.Fatalf("ClaimSetting of an unset setting = %q, %v", v, err)
	}
	if v, err := s.ClaimSetting(ctx, "colour", "red"); err != nil || v != "blue" {
		t.Errorf("ClaimSetting of a set setting = %q, %v; want the first value", v, err)
	}
	if err := s.SetSetting(ctx, "colour", "green"); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.ClaimSetting(ctx, "colour", "red"); v != "green" {
		t.Errorf("after SetSetting = %q", v)
	}
	// Processes claiming at once agree on one value.
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.ClaimSetting(ctx, "race", fmt.Sprint(i))
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		}()
	}
	wg.Wait()
	for _, v := range got {
		if v != got[0] {
			t.Errorf("concurrent claims disagree: %v", got)
			break
		}
	}
}

func family(t *testing.T, s store.Store, id string, first []byte) store.RefreshFamily {
	t.Helper()
	mustCreate(t, s, user("u-"+id))
	f := store.RefreshFamily{
		ID: id, UserID: "id-u-" + id, ClientID: "app", Scopes: []string{"data:read", "data:write"},
		TokenVersion: 2, CreatedAt: epoch, ExpiresAt: epoch.Add(90 * 24 * time.Hour),
	}
	tok := store.RefreshToken{Hash: first, IssuedAt: epoch, ExpiresAt: epoch.Add(30 * 24 * time.Hour)}
	if err := s.CreateRefreshFamily(context.Background(), f, tok); err != nil {
		t.Fatal(err)
	}
	return f
}

func next(hash string, at time.Time, ttl time.Duration) store.RefreshToken {
	return store.RefreshToken{Hash: []byte(hash), IssuedAt: at, ExpiresAt: at.Add(ttl)}
}

func testRefreshRotation(t *testing.T, s store.Store) {
	ctx := context.Background()
	want := family(t, s, "fam1", []byte("h1"))
	got, err := s.RefreshFamilyByToken(ctx, []byte("h1"))
	if err != nil || got.ID != "fam1" || got.UserID != want.UserID || got.ClientID != "app" ||
		fmt.Sprint(got.Scopes) != "[data:read data:write]" || got.TokenVersion != 2 || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("RefreshFamilyByToken = %+v, %v", got, err)
	}
	now := epoch.Add(time.Hour)
	f, err := s.RotateRefreshToken(ctx, []byte("h1"), next("h2", now, 30*24*time.Hour), now, now.Add(time.Hour), 0)
	if err != nil || f.ID != "fam1" {
		t.Fatalf("rotate h1 = %+v, %v", f, err)
	}
	now = now.Add(time.Hour)
	if _, err := s.RotateRefreshToken(ctx, []byte("h2"), next("h3", now, 30*24*time.Hour), now, now.Add(time.Hour), 0); err != nil {
		t.Fatalf("rotate h2: %v", err)
	}
	if f, err := s.RefreshFamilyByToken(ctx, []byte("h1")); err != nil || f.ID != "fam1" || !f.RevokedAt.IsZero() {
		t.Errorf("a used token's family = %+v, %v; want found, not revoked", f, err)
	}
	if _, err := s.RotateRefreshToken(ctx, []byte("nope"), next("x", now, time.Hour), now, now, 0); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("rotating an unknown token: %v, want not found", err)
	}
	if _, err := s.RefreshFamilyByToken(ctx, []byte("nope")); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("family of an unknown token: %v, want not found", err)
	}
	// Revoking the family ends its live token and feeds the change.
	before, _ := s.LatestChange(ctx)
	if err := s.RevokeRefreshFamily(ctx, "fam1", now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateRefreshToken(ctx, []byte("h3"), next("h4", now, time.Hour), now, now, 0); !errors.Is(err, store.ErrRefreshRevoked) {
		t.Errorf("rotating in a revoked family: %v, want ErrRefreshRevoked", err)
	}
	changes, _ := s.ChangesSince(ctx, before, 10)
	if len(changes) != 1 || changes[0].Kind != store.ChangeFamily || changes[0].Subject != "fam1" || !changes[0].ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Errorf("changes after revoking = %+v", changes)
	}
	if err := s.RevokeRefreshFamily(ctx, "fam1", now, now); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
	if changes, _ := s.ChangesSince(ctx, before, 10); len(changes) != 1 {
		t.Errorf("revoking twice fed %d changes, want 1", len(changes))
	}
}

// testRefreshReuseGrace: within the grace after its rotation, a token is
// redeemed again into the same family (both successors live); past it,
// reuse revokes the family.
func testRefreshReuseGrace(t *testing.T, s store.Store) {
	ctx := context.Background()
	family(t, s, "famg", []byte("g1"))
	now := epoch.Add(time.Minute)
	grace := 10 * time.Second
	if _, err := s.RotateRefreshToken(ctx, []byte("g1"), next("g2", now, time.Hour), now, now.Add(time.Hour), grace); err != nil {
		t.Fatal(err)
	}
	soon := now.Add(5 * time.Second)
	if f, err := s.RotateRefreshToken(ctx, []byte("g1"), next("g3", soon, time.Hour), soon, soon.Add(time.Hour), grace); err != nil || f.ID != "famg" {
		t.Fatalf("g1 again within the grace = %+v, %v", f, err)
	}
	for i, h := range []string{"g2", "g3"} {
		if _, err := s.RotateRefreshToken(ctx, []byte(h), next(fmt.Sprint("g", 4+i), soon, time.Hour), soon, soon.Add(time.Hour), grace); err != nil {
			t.Errorf("%s, a successor, = %v", h, err)
		}
	}
	late := now.Add(20 * time.Second)
	if _, err := s.RotateRefreshToken(ctx, []byte("g1"), next("g6", late, time.Hour), late, late.Add(time.Hour), grace); !errors.Is(err, store.ErrRefreshReused) {
		t.Fatalf("g1 past the grace = %v, want ErrRefreshReused", err)
	}
	if _, err := s.RotateRefreshToken(ctx, []byte("g4"), next("g7", late, time.Hour), late, late, grace); !errors.Is(err, store.ErrRefreshRevoked) {
		t.Errorf("the family after a late reuse: %v, want ErrRefreshRevoked", err)
	}
}

func testRefreshReuse(t *testing.T, s store.Store) {
	ctx := context.Background()
	family(t, s, "fam2", []byte("r1"))
	now := epoch.Add(time.Minute)
	if _, err := s.RotateRefreshToken(ctx, []byte("r1"), next("r2", now, time.Hour), now, now.Add(time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	f, err := s.RotateRefreshToken(ctx, []byte("r1"), next("r3", now, time.Hour), now, now.Add(time.Hour), 0)
	if !errors.Is(err, store.ErrRefreshReused) || f.ID != "fam2" {
		t.Fatalf("reusing r1 = %+v, %v; want the family and ErrRefreshReused", f, err)
	}
	if _, err := s.RotateRefreshToken(ctx, []byte("r2"), next("r4", now, time.Hour), now, now, 0); !errors.Is(err, store.ErrRefreshRevoked) {
		t.Errorf("r2 after r1's reuse: %v, want ErrRefreshRevoked", err)
	}
	if _, err := s.RefreshFamilyByToken(ctx, []byte("r3")); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("the token offered with the reuse was stored: %v", err)
	}
	revoked, err := s.Revoked(ctx, now)
	if err != nil || len(revoked) != 1 || revoked[0].Subject != "fam2" {
		t.Errorf("Revoked = %+v, %v; want fam2", revoked, err)
	}
}

func testRefreshExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	family(t, s, "fam3", []byte("e1"))
	late := epoch.Add(30*24*time.Hour + time.Second)
	if _, err := s.RotateRefreshToken(ctx, []byte("e1"), next("e2", late, time.Hour), late, late, 0); !errors.Is(err, store.ErrRefreshExpired) {
		t.Errorf("rotating after the token's expiry: %v, want ErrRefreshExpired", err)
	}
	// A token's expiry is cut to its family's: rotate every 25 days, each
	// token living 30, until a token would outlive the family.
	f2 := family(t, s, "fam4", []byte("c0"))
	day := func(d int) time.Time { return epoch.Add(time.Duration(d) * 24 * time.Hour) }
	for i, d := range []int{25, 50, 75} {
		cur, nxt := fmt.Sprint("c", i), fmt.Sprint("c", i+1)
		if _, err := s.RotateRefreshToken(ctx, []byte(cur), next(nxt, day(d), 30*24*time.Hour), day(d), day(d), 0); err != nil {
			t.Fatalf("rotate %s on day %d: %v", cur, d, err)
		}
	}
	// c3 was issued on day 75 for 30 days, but the family ends on day 90.
	after := f2.ExpiresAt.Add(time.Second)
	if _, err := s.RotateRefreshToken(ctx, []byte("c3"), next("c4", after, time.Hour), after, after, 0); !errors.Is(err, store.ErrRefreshExpired) {
		t.Errorf("rotating after the family's expiry: %v, want ErrRefreshExpired", err)
	}
	if err := s.PruneRefreshFamilies(ctx, after.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RefreshFamilyByToken(ctx, []byte("c3")); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("an expired family survived pruning: %v", err)
	}
	if _, err := s.RefreshFamilyByToken(ctx, []byte("e1")); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("an older expired family survived pruning: %v", err)
	}
}

// testRefreshRace: many redeem one token at once; exactly one wins, the
// others find it used, and the family ends revoked.
func testRefreshRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	family(t, s, "fam5", []byte("race"))
	now := epoch.Add(time.Minute)
	const n = 8
	results := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.RotateRefreshToken(ctx, []byte("race"), next(fmt.Sprint("won-", i), now, time.Hour), now, now.Add(time.Hour), 0)
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	won, reused := 0, 0
	for err := range results {
		switch {
		case err == nil:
			won++
		case errors.Is(err, store.ErrRefreshReused), errors.Is(err, store.ErrRefreshRevoked):
			reused++
		default:
			t.Errorf("racing rotation: %v", err)
		}
	}
	if won != 1 || reused != n-1 {
		t.Errorf("%d won and %d found it used; want 1 and %d", won, reused, n-1)
	}
	if f, _ := s.RefreshFamilyByToken(ctx, []byte("race")); f.RevokedAt.IsZero() {
		t.Error("the family survived a reuse")
	}
}

func testChangeFeed(t *testing.T, s store.Store) {
	ctx := context.Background()
	start, err := s.LatestChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, user("zed"))
	if _, err := s.UpdateUser(ctx, "zed", func(u *store.User) error { u.TokenVersion++; return nil }); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	if added, err := s.RevokeAccessToken(ctx, "jti-1", exp); err != nil || !added {
		t.Fatalf("RevokeAccessToken = %v, %v", added, err)
	}
	// Revoked again: nothing more in the feed.
	if added, err := s.RevokeAccessToken(ctx, "jti-1", exp); err != nil || added {
		t.Errorf("RevokeAccessToken again = %v, %v; want nothing added", added, err)
	}
	if err := s.DeleteUser(ctx, "zed"); err != nil {
		t.Fatal(err)
	}
	changes, err := s.ChangesSince(ctx, start, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, c := range changes {
		got = append(got, c.Kind+":"+c.Subject)
		if i > 0 && c.Seq <= changes[i-1].Seq {
			t.Errorf("changes out of order: %+v", changes)
		}
	}
	if fmt.Sprint(got) != "[user:id-zed access_token:jti-1 user:id-zed]" {
		t.Errorf("changes = %v", got)
	}
	if latest, _ := s.LatestChange(ctx); latest != changes[len(changes)-1].Seq {
		t.Errorf("LatestChange = %d, want %d", latest, changes[len(changes)-1].Seq)
	}
	if page, _ := s.ChangesSince(ctx, start, 2); len(page) != 2 {
		t.Errorf("limit 2 gave %d changes", len(page))
	}
	revoked, err := s.Revoked(ctx, time.Now())
	if err != nil || len(revoked) != 1 || revoked[0].Subject != "jti-1" || !revoked[0].ExpiresAt.Equal(exp) {
		t.Errorf("Revoked = %+v, %v", revoked, err)
	}
	if revoked, _ := s.Revoked(ctx, exp.Add(time.Second)); len(revoked) != 0 {
		t.Errorf("Revoked after expiry = %+v", revoked)
	}
	if err := s.PruneChanges(ctx, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if rest, _ := s.ChangesSince(ctx, start, 10); len(rest) != 0 {
		t.Errorf("after pruning: %+v", rest)
	}
	if latest, _ := s.LatestChange(ctx); latest < changes[len(changes)-1].Seq {
		t.Errorf("pruning moved the feed back: %d", latest)
	}
}

func testCreateUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, user("taken"))
	batch := []store.User{user("b1"), user("b2"), user("taken"), user("b3")}
	batch[2].ID = "other-id"
	err := s.CreateUsers(ctx, batch)
	var be *store.BatchError
	if !errors.As(err, &be) || be.Index != 2 || !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("CreateUsers with a taken name = %v, want a BatchError at 2 wrapping conflict", err)
	}
	if _, err := s.UserByUsername(ctx, "b1"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("a failed batch left b1 behind: %v", err)
	}
	if err := s.CreateUsers(ctx, []store.User{user("b1"), user("b2")}); err != nil {
		t.Fatal(err)
	}
	if users, _ := s.ListUsers(ctx, "", 10); len(users) != 3 {
		t.Errorf("after the batch: %v", names(users))
	}
}

func testClients(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := store.Client{ID: "app", SecretHash: "$argon2id$x", GrantTypes: []string{"password", "refresh_token"},
		Scopes: []string{"data:read"}, CreatedAt: epoch}
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, store.Client{ID: "spa", CreatedAt: epoch}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, c); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("duplicate client: %v, want conflict", err)
	}
	got, err := s.ClientByID(ctx, "app")
	if err != nil || got.SecretHash != c.SecretHash || fmt.Sprint(got.GrantTypes) != "[password refresh_token]" ||
		fmt.Sprint(got.Scopes) != "[data:read]" || !got.CreatedAt.Equal(epoch) {
		t.Errorf("ClientByID = %+v, %v", got, err)
	}
	if spa, _ := s.ClientByID(ctx, "spa"); spa.SecretHash != "" || len(spa.Scopes) != 0 {
		t.Errorf("public client = %+v", spa)
	}
	if all, err := s.ListClients(ctx); err != nil || len(all) != 2 || all[0].ID != "app" {
		t.Errorf("ListClients = %+v, %v", all, err)
	}
	// Deleting a client revokes its families and feeds a ChangeClient.
	mustCreate(t, s, user("cat"))
	f := store.RefreshFamily{ID: "fam-app", UserID: "id-cat", ClientID: "app", TokenVersion: 0, CreatedAt: epoch, ExpiresAt: epoch.Add(time.Hour)}
	if err := s.CreateRefreshFamily(ctx, f, store.RefreshToken{Hash: []byte("app-token"), IssuedAt: epoch, ExpiresAt: epoch.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.LatestChange(ctx)
	gone := epoch.Add(time.Minute)
	if err := s.DeleteClient(ctx, "app", gone); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ClientByID(ctx, "app"); err != nil || !got.DeletedAt.Equal(gone) || got.SecretHash != c.SecretHash {
		t.Errorf("a deleted client = %+v, %v; want it kept, marked deleted", got, err)
	}
	if fam, _ := s.RefreshFamilyByToken(ctx, []byte("app-token")); !fam.RevokedAt.Equal(gone) {
		t.Errorf("the deleted client's family = %+v, want it revoked", fam)
	}
	if changes, _ := s.ChangesSince(ctx, before, 10); len(changes) != 1 || changes[0].Kind != store.ChangeClient || changes[0].Subject != "app" {
		t.Errorf("changes of a deletion = %+v", changes)
	}
	if err := s.DeleteClient(ctx, "app", gone); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("deleting twice: %v", err)
	}
	if err := s.DeleteClient(ctx, "never", gone); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("deleting a client that never was: %v", err)
	}
	if err := s.CreateClient(ctx, store.Client{ID: "app", CreatedAt: epoch}); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("reusing a deleted client's id: %v, want conflict", err)
	}
	if all, _ := s.ListClients(ctx); len(all) != 2 || all[0].DeletedAt.IsZero() || !all[1].DeletedAt.IsZero() {
		t.Errorf("ListClients after a deletion = %+v", all)
	}
}

func testRotateSigningKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.EnsureSigningKey(ctx, store.SigningKey{ID: "a1", Algorithm: "EdDSA", Private: []byte{1}, CreatedAt: epoch}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.LatestChange(ctx)
	later, active := epoch.Add(time.Hour), epoch.Add(time.Hour+time.Second)
	if err := s.RotateSigningKey(ctx, store.SigningKey{ID: "b1", Algorithm: "ES256", Private: []byte{3}, CreatedAt: later, ActiveFrom: active}, "check-1"); err != nil {
		t.Fatal(err)
	}
	keys, _ := s.SigningKeys(ctx)
	if len(keys) != 2 || keys[0].ID != "b1" || !keys[0].Active().Equal(active) || !keys[0].RetiredAt.IsZero() || !keys[1].RetiredAt.Equal(active) {
		t.Errorf("after rotating: %+v; want b1 active from %v, and a1 retired then", keys, active)
	}
	if changes, _ := s.ChangesSince(ctx, before, 10); len(changes) != 1 || changes[0].Kind != store.ChangeKeys {
		t.Errorf("rotation changes = %+v", changes)
	}
	// The first rotation set the check; another check is refused.
	if v, _ := s.ClaimSetting(ctx, store.SettingKeyCheck, "x"); v != "check-1" {
		t.Errorf("the key check after the first rotation = %q", v)
	}
	err := s.RotateSigningKey(ctx, store.SigningKey{ID: "c1", Algorithm: "EdDSA", Private: []byte{4}, CreatedAt: later}, "check-2")
	if !errors.Is(err, store.ErrKeyCheck) {
		t.Errorf("rotating with another key check: %v, want ErrKeyCheck", err)
	}
	if keys, _ := s.SigningKeys(ctx); len(keys) != 2 {
		t.Errorf("a refused rotation stored a key: %+v", keys)
	}
}

func testLoginFailures(t *testing.T, s store.Store) {
	ctx := context.Background()
	const window = 15 * time.Minute
	keys := []string{"pair", "user", "ip"}
	// seen reserves an attempt at at, admitting it always, and returns the
	// counters as they stood before it.
	seen := func(keys []string, at time.Time) map[string]store.LoginCounter {
		t.Helper()
		m := map[string]store.LoginCounter{}
		err := s.ReserveLoginAttempt(ctx, keys, at, window, func(cs []store.LoginCounter) error {
			for _, c := range cs {
				m[c.Key] = c
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if got := seen(keys, epoch.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("no attempts yet: %+v", got)
	}
	seen(keys, epoch.Add(2*time.Minute))
	got := seen(keys, epoch.Add(3*time.Minute))
	if c := got["pair"]; len(got) != 3 || c.Failures != 2 || !c.WindowStart.Equal(epoch.Add(time.Minute)) || !c.LastFailure.Equal(epoch.Add(2*time.Minute)) {
		t.Errorf("after two attempts: %+v", got)
	}
	// A refused reservation counts nothing.
	refused := errors.New("refused")
	if err := s.ReserveLoginAttempt(ctx, keys, epoch.Add(4*time.Minute), window, func([]store.LoginCounter) error { return refused }); err != refused {
		t.Fatalf("a refused reservation returned %v", err)
	}
	// Releasing takes one back; clearing deletes.
	if err := s.ReleaseLoginAttempt(ctx, []string{"user", "ip"}, []string{"pair"}); err != nil {
		t.Fatal(err)
	}
	got = seen(keys, epoch.Add(5*time.Minute))
	if _, ok := got["pair"]; ok || got["user"].Failures != 2 || got["ip"].Failures != 2 {
		t.Errorf("after a release: %+v", got)
	}
	// After the window, an attempt starts a new one.
	late := epoch.Add(time.Minute + window + time.Second)
	seen([]string{"user"}, late)
	if got := seen([]string{"user"}, late); got["user"].Failures != 1 || !got["user"].WindowStart.Equal(late) {
		t.Errorf("after the window = %+v", got)
	}

	// Concurrent reservations see each other: with a limit of 5, 20 at
	// once admit exactly 5, whichever process or connection they run on.
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each shares "busy" and has keys of its own, in varied order.
			own := []string{fmt.Sprintf("own-%d", i), "busy", fmt.Sprintf("also-%d", i)}
			err := s.ReserveLoginAttempt(ctx, own, epoch, window, func(cs []store.LoginCounter) error {
				for _, c := range cs {
					if c.Key == "busy" && c.Failures >= 5 {
						return refused
					}
				}
				return nil
			})
			switch {
			case err == nil:
				mu.Lock()
				admitted++
				mu.Unlock()
			case err != refused:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if admitted != 5 {
		t.Errorf("20 concurrent reservations under a limit of 5 admitted %d", admitted)
	}
	if err := s.PruneLoginFailures(ctx, epoch.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := seen([]string{"busy", "ip"}, late.Add(time.Hour)); len(got) != 0 {
		t.Errorf("after pruning: %+v", got)
	}
}
