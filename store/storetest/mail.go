package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// testEmails: an email is optional, unique case-insensitively, and
// settable; an account without one has none.
func testEmails(t *testing.T, s store.Store) {
	ctx := context.Background()
	ann := user("ann")
	ann.Email = "Ann@Example.com"
	mustCreate(t, s, ann)
	mustCreate(t, s, user("bob")) // no email
	mustCreate(t, s, user("cy"))  // two accounts without one

	got, err := s.UserByEmail(ctx, store.EmailKey("ann@EXAMPLE.com"))
	if err != nil || got.Username != "ann" || got.Email != "Ann@Example.com" || got.EmailVerified {
		t.Fatalf("UserByEmail = %+v, %v", got, err)
	}
	if _, err := s.UserByEmail(ctx, "nobody@example.com"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("UserByEmail(unknown) = %v, want ErrNotFound", err)
	}
	dup := user("dan")
	dup.Email = "ANN@example.COM"
	if err := s.CreateUser(ctx, dup); !errors.Is(err, store.ErrEmailTaken) {
		t.Errorf("CreateUser with a taken email = %v, want ErrEmailTaken", err)
	}
	if _, err := s.UpdateUser(ctx, "bob", func(u *store.User) error { u.Email = "ann@example.com"; return nil }); !errors.Is(err, store.ErrEmailTaken) {
		t.Errorf("UpdateUser to a taken email = %v, want ErrEmailTaken", err)
	}
	u, err := s.UpdateUser(ctx, "bob", func(u *store.User) error { u.Email, u.EmailVerified = "bob@example.com", true; return nil })
	if err != nil || u.Email != "bob@example.com" || !u.EmailVerified {
		t.Fatalf("UpdateUser set email = %+v, %v", u, err)
	}
	if u, err := s.UserByUsername(ctx, "bob"); err != nil || u.Email != "bob@example.com" || !u.EmailVerified {
		t.Errorf("read back = %+v, %v", u, err)
	}
	// Ann changes only the case of her own address: still hers.
	if _, err := s.UpdateUser(ctx, "ann", func(u *store.User) error { u.Email = "ann@example.com"; return nil }); err != nil {
		t.Errorf("ann re-cases her own email: %v", err)
	}
	if _, err := s.UpdateUser(ctx, "bob", func(u *store.User) error { u.Email = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByEmail(ctx, "bob@example.com"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("a removed email still finds its account: %v", err)
	}
}

// testEmailTokens: a token is used once, only for its purpose, only before
// it expires, and takes the account's other tokens of its purpose with it;
// a new password ends reset tokens, a new address verification tokens.
func testEmailTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	ann := user("ann")
	ann.Email = "ann@example.com"
	mustCreate(t, s, ann)
	tok := func(hash, purpose string, expires time.Time) {
		t.Helper()
		if err := s.CreateEmailToken(ctx, store.EmailToken{Hash: hash, UserID: ann.ID, Purpose: purpose, Email: ann.Email, CreatedAt: epoch, ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
	}
	later := epoch.Add(time.Hour)
	tok("v1", store.PurposeVerify, later)
	tok("v2", store.PurposeVerify, later)
	tok("r1", store.PurposeReset, later)
	tok("old", store.PurposeReset, epoch.Add(-time.Second))

	if at, err := s.LastEmailToken(ctx, ann.ID, store.PurposeVerify); err != nil || !at.Equal(epoch) {
		t.Errorf("LastEmailToken = %v, %v; want %v", at, err, epoch)
	}
	if at, err := s.LastEmailToken(ctx, "id-nobody", store.PurposeReset); err != nil || !at.IsZero() {
		t.Errorf("LastEmailToken of an account without tokens = %v, %v", at, err)
	}
	if got, err := s.EmailToken(ctx, "v1", store.PurposeVerify, epoch); err != nil || got.UserID != ann.ID || got.Email != ann.Email {
		t.Errorf("EmailToken(v1) = %+v, %v", got, err)
	}
	for _, tt := range []struct{ hash, purpose string }{{"v1", store.PurposeReset}, {"old", store.PurposeReset}, {"none", store.PurposeVerify}} {
		if _, err := s.EmailToken(ctx, tt.hash, tt.purpose, epoch); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("EmailToken(%s, %s) = %v, want ErrNotFound", tt.hash, tt.purpose, err)
		}
	}
	verify := func(tk store.EmailToken, u *store.User) error {
		if tk.Email != u.Email {
			return errors.New("the address changed")
		}
		u.EmailVerified = true
		return nil
	}
	if _, err := s.UseEmailToken(ctx, "v1", store.PurposeReset, epoch, verify); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("a verify token used to reset = %v, want ErrNotFound", err)
	}
	if _, err := s.UseEmailToken(ctx, "old", store.PurposeReset, epoch, verify); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("an expired token = %v, want ErrNotFound", err)
	}
	u, err := s.UseEmailToken(ctx, "v1", store.PurposeVerify, epoch, verify)
	if err != nil || !u.EmailVerified {
		t.Fatalf("UseEmailToken = %+v, %v", u, err)
	}
	for _, h := range []string{"v1", "v2"} {
		if _, err := s.UseEmailToken(ctx, h, store.PurposeVerify, epoch, verify); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("verify token %s after a verification = %v, want ErrNotFound", h, err)
		}
	}
	// A change refused leaves the token unused.
	boom := errors.New("refused")
	if _, err := s.UseEmailToken(ctx, "r1", store.PurposeReset, epoch, func(store.EmailToken, *store.User) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("a refused change = %v", err)
	}
	// A password set another way ends the reset token.
	if _, err := s.UpdateUser(ctx, "ann", func(u *store.User) error { u.PasswordHash = "$argon2id$new"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseEmailToken(ctx, "r1", store.PurposeReset, epoch, verify); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("a reset token after a password change = %v, want ErrNotFound", err)
	}
	// A new address ends the verification tokens of the old one.
	tok("v3", store.PurposeVerify, later)
	if _, err := s.UpdateUser(ctx, "ann", func(u *store.User) error { u.Email = "ann@elsewhere.example"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseEmailToken(ctx, "v3", store.PurposeVerify, epoch, verify); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("a verify token after the address changed = %v, want ErrNotFound", err)
	}
	// A token's account deleted takes the token.
	tok("r2", store.PurposeReset, later)
	if err := s.DeleteUser(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseEmailToken(ctx, "r2", store.PurposeReset, epoch, verify); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("a token of a deleted account = %v, want ErrNotFound", err)
	}
}

// testOutbox: a user created with a mail queues it in the same
// transaction; mails are claimed oldest first, once per lease, retried when
// due, and done.
func testOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	ann := user("ann")
	ann.Email = "ann@example.com"
	if err := s.CreateUser(ctx, ann, store.Mail{Kind: store.MailVerifyEmail, UserID: ann.ID, To: ann.Email, CreatedAt: epoch}); err != nil {
		t.Fatal(err)
	}
	if err := s.QueueMail(ctx, store.Mail{Kind: store.MailPasswordReset, To: "nobody", CreatedAt: epoch.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	// A user refused (taken name) queues nothing.
	if err := s.CreateUser(ctx, user("ann"), store.Mail{Kind: store.MailVerifyEmail, To: "x@example.com", CreatedAt: epoch}); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("duplicate = %v", err)
	}
	if n, err := s.PendingMail(ctx); err != nil || n != 2 {
		t.Fatalf("PendingMail = %d, %v, want 2", n, err)
	}
	now := epoch.Add(time.Minute)
	m, ok, err := s.ClaimMail(ctx, now, now.Add(time.Minute))
	if err != nil || !ok || m.Kind != store.MailVerifyEmail || m.UserID != ann.ID || m.To != ann.Email || m.Attempts != 1 {
		t.Fatalf("first claim = %+v, %v, %v", m, ok, err)
	}
	m2, ok, err := s.ClaimMail(ctx, now, now.Add(time.Minute))
	if err != nil || !ok || m2.Kind != store.MailPasswordReset || m2.To != "nobody" || m2.UserID != "" {
		t.Fatalf("second claim = %+v, %v, %v", m2, ok, err)
	}
	if _, ok, _ := s.ClaimMail(ctx, now, now.Add(time.Minute)); ok {
		t.Fatal("a third claim found a mail while both are held")
	}
	if err := s.MailRetry(ctx, m.ID, now.Add(10*time.Second), "connection refused"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.ClaimMail(ctx, now.Add(5*time.Second), now.Add(time.Minute)); ok {
		t.Fatal("a mail was claimed before its retry was due")
	}
	again, ok, err := s.ClaimMail(ctx, now.Add(10*time.Second), now.Add(time.Minute))
	if err != nil || !ok || again.ID != m.ID || again.Attempts != 2 {
		t.Fatalf("the retry = %+v, %v, %v", again, ok, err)
	}
	if err := s.MailDone(ctx, m.ID, store.MailSent, now); err != nil {
		t.Fatal(err)
	}
	// The held reset mail's lease runs out: it is claimed again.
	late := now.Add(2 * time.Minute)
	back, ok, err := s.ClaimMail(ctx, late, late.Add(time.Minute))
	if err != nil || !ok || back.ID != m2.ID || back.Attempts != 2 {
		t.Fatalf("after the lease = %+v, %v, %v", back, ok, err)
	}
	if err := s.MailDone(ctx, m2.ID, store.MailDropped, late); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PendingMail(ctx); err != nil || n != 0 {
		t.Errorf("PendingMail after both = %d, %v", n, err)
	}
	if _, ok, _ := s.ClaimMail(ctx, late.Add(time.Hour), late.Add(2*time.Hour)); ok {
		t.Error("a done mail was claimed")
	}
	// Pruning drops the done mails and the expired tokens, nothing else.
	if err := s.QueueMail(ctx, store.Mail{Kind: store.MailPasswordReset, To: "later", CreatedAt: late}); err != nil {
		t.Fatal(err)
	}
	tok := store.EmailToken{Hash: "live", UserID: ann.ID, Purpose: store.PurposeReset, Email: ann.Email, CreatedAt: late, ExpiresAt: late.Add(time.Hour)}
	if err := s.CreateEmailToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	tok.Hash, tok.ExpiresAt = "dead", late
	if err := s.CreateEmailToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.PruneMail(ctx, late.Add(time.Second), late.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.PendingMail(ctx); n != 1 {
		t.Errorf("pending after pruning = %d, want the one not done", n)
	}
	if _, err := s.EmailToken(ctx, "live", store.PurposeReset, late.Add(time.Minute)); err != nil {
		t.Errorf("pruning took a live token: %v", err)
	}
	if _, err := s.UseEmailToken(ctx, "dead", store.PurposeReset, epoch, func(store.EmailToken, *store.User) error { return nil }); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("an expired token survived pruning: %v", err)
	}
}

// testOutboxClaimsOnce: senders racing for 20 mails claim each once.
func testOutboxClaimsOnce(t *testing.T, s store.Store) {
	ctx := context.Background()
	for range 20 {
		if err := s.QueueMail(ctx, store.Mail{Kind: store.MailPasswordReset, To: "someone", CreatedAt: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	now := epoch.Add(time.Minute)
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				m, ok, err := s.ClaimMail(ctx, now, now.Add(time.Hour))
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				seen[m.ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 20 {
		t.Errorf("claimed %d mails, want 20", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("mail %d claimed %d times", id, n)
		}
	}
}
