package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/sqlite"
)

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"ann@example.com":     "ann@example.com",
		" Ann@Example.COM ":   "Ann@Example.COM",
		"a.b+tag@sub.example": "a.b+tag@sub.example",
		"zoë@example.com":     "zoë@example.com",
	} {
		if got, err := NormalizeEmail("/email", in); err != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ann", "ann@", "@example.com", "Ann <ann@example.com>", "ann@example.com\r\nBcc: x@y.z",
		"a b@example.com", strings.Repeat("a", 250) + "@example.com", "ann@example.com, bob@example.com"} {
		if _, err := NormalizeEmail("/email", bad); fault.As(err).Code != fault.InvalidRequest || fault.As(err).Field != "/email" {
			t.Errorf("NormalizeEmail(%q) = %v, want invalid_request about /email", bad, err)
		}
	}
}

type selfEnv struct {
	accounts *Accounts
	st       *sqlite.Store
}

func newSelfEnv(t *testing.T, self SelfService, tc ThrottleConfig) *selfEnv {
	t.Helper()
	st := openStore(t)
	if self.VerifyTTL == 0 {
		self.VerifyTTL, self.ResetTTL = 24*time.Hour, time.Hour
	}
	if self.AppURL == "" {
		self.AppURL = "https://app.example/"
	}
	a := NewAccounts(AccountConfig{Scopes: testScopes, Passwords: PasswordPolicy{MinScore: DefaultMinPasswordScore}, Self: self},
		st, NewArgon2id(cheap), NewThrottle(st, tc, time.Now), nil, NoEvents{}, time.Now)
	return &selfEnv{accounts: a, st: st}
}

// claim takes the next mail of the outbox, failing the test without one.
func (e *selfEnv) claim(t *testing.T) store.Mail {
	t.Helper()
	now := time.Now()
	m, ok, err := e.st.ClaimMail(context.Background(), now.Add(time.Second), now.Add(time.Minute))
	if err != nil || !ok {
		t.Fatalf("no mail in the outbox: %v", err)
	}
	return m
}

func TestRegister(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	closed := newSelfEnv(t, SelfService{}, looseThrottle)
	if _, err := closed.accounts.Register(ctx, Registration{Username: "ann", Password: "ann-river-stone", Email: "ann@example.com"}); err != ErrRegistrationClosed {
		t.Fatalf("closed: %v", err)
	}
	e := newSelfEnv(t, SelfService{Open: true, Scopes: []string{"data:read"}}, looseThrottle)
	u, err := e.accounts.Register(ctx, Registration{Username: "Ann", Password: "ann-river-stone", Email: "ann@example.com", ClientIP: "192.0.2.1"})
	if err != nil || u.Username != "ann" || u.Email != "ann@example.com" || u.EmailVerified || len(u.Scopes) != 1 {
		t.Fatalf("Register = %+v, %v", u, err)
	}
	if m := e.claim(t); m.Kind != store.MailVerifyEmail || m.UserID != u.ID || m.To != "ann@example.com" {
		t.Errorf("queued = %+v", m)
	}
	// The address's local part counts as the account's name for the policy.
	if _, err := e.accounts.Register(ctx, Registration{Username: "bob", Password: "marguerite1", Email: "marguerite@example.com"}); fault.As(err).Field != "/password" {
		t.Errorf("a password built on the address = %v", err)
	}
}

// TestSignUpsAreCounted: sign-ups from one address stop at its limit.
func TestSignUpsAreCounted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSelfEnv(t, SelfService{Open: true}, ThrottleConfig{MaxFailures: 100, MaxPerUser: 100, MaxPerIP: 3, Window: time.Minute, MaxBackoff: time.Minute})
	for i, name := range []string{"ann", "bob", "cy", "dee"} {
		_, err := e.accounts.Register(ctx, Registration{Username: name, Password: name + "-river-stone", Email: name + "@example.com", ClientIP: "192.0.2.9"})
		if i < 3 && err != nil {
			t.Fatalf("sign-up %d: %v", i, err)
		}
		if i == 3 && fault.As(err).Code != fault.SlowDown {
			t.Fatalf("sign-up past the limit = %v, want slow_down", err)
		}
	}
}

// TestForgotQueuesAlike: a reset asked for an unknown account queues a
// mail as a known one does; only preparing it finds there is nothing to
// send. A second reset for one account within MailCooldown is dropped.
func TestForgotQueuesAlike(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSelfEnv(t, SelfService{}, looseThrottle)
	if _, err := e.accounts.Create(ctx, NewAccount{Username: "ann", Password: "ann-river-stone", Email: "Ann@Example.com"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.accounts.Create(ctx, NewAccount{Username: "off", Password: "off-river-stone", Email: "off@example.com"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.accounts.Update(ctx, "off", Change{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		identifier string
		send       bool
	}{
		{"ANN", true}, {"ann@EXAMPLE.com", false}, {"nobody", false}, {"nobody@example.com", false}, {"off", false}, {"a b", false},
	} {
		if err := e.accounts.ForgotPassword(ctx, tt.identifier, "192.0.2.1"); err != nil {
			t.Fatalf("ForgotPassword(%q) = %v", tt.identifier, err)
		}
		m := e.claim(t)
		if m.Kind != store.MailPasswordReset || m.To != tt.identifier {
			t.Fatalf("queued for %q: %+v", tt.identifier, m)
		}
		l, send, err := e.accounts.PrepareMail(ctx, m)
		if err != nil || send != tt.send {
			t.Fatalf("PrepareMail(%q) = %v, %v; want send %v", tt.identifier, send, err, tt.send)
		}
		if send && (l.To != "Ann@Example.com" || l.Username != "ann" || !strings.HasPrefix(l.Link, "https://app.example/reset-password?token=") || l.ExpiresIn != time.Hour) {
			t.Errorf("letter = %+v", l)
		}
	}
}

// TestVerificationFollowsTheAddress: a verification mail is prepared only
// while the account still has the address; its link verifies once.
func TestVerificationFollowsTheAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSelfEnv(t, SelfService{Open: true}, looseThrottle)
	u, err := e.accounts.Register(ctx, Registration{Username: "ann", Password: "ann-river-stone", Email: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	m := e.claim(t)
	l, send, err := e.accounts.PrepareMail(ctx, m)
	if err != nil || !send || !strings.HasPrefix(l.Link, "https://app.example/verify-email?token=") || l.ExpiresIn != 24*time.Hour {
		t.Fatalf("PrepareMail = %+v, %v, %v", l, send, err)
	}
	if _, err := e.accounts.VerifyEmail(ctx, "not-"+l.Token); !errors.Is(err, errBadLink) {
		t.Errorf("a wrong token = %v", err)
	}
	got, err := e.accounts.VerifyEmail(ctx, l.Token)
	if err != nil || !got.EmailVerified || got.ID != u.ID {
		t.Fatalf("VerifyEmail = %+v, %v", got, err)
	}
	if _, err := e.accounts.VerifyEmail(ctx, l.Token); !errors.Is(err, errBadLink) {
		t.Errorf("the token twice = %v", err)
	}
	// A verified account is mailed no more verifications.
	if _, send, _ := e.accounts.PrepareMail(ctx, m); send {
		t.Error("a verification was prepared for a verified address")
	}
	// A new address is unverified; a mail for the old one is dropped.
	if _, err := e.accounts.Update(ctx, "ann", Change{Email: ptr("ann@elsewhere.example")}); err != nil {
		t.Fatal(err)
	}
	if _, send, _ := e.accounts.PrepareMail(ctx, m); send {
		t.Error("a verification was prepared for an address the account no longer has")
	}
	p := &Principal{UserID: u.ID}
	if err := e.accounts.RequestVerification(ctx, p, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if next := e.claim(t); next.To != "ann@elsewhere.example" {
		t.Errorf("the new request is for %q", next.To)
	}
}

func ptr[T any](v T) *T { return &v }

// TestResetGuessesBlockOnlyTheGuesser: guessed reset links count against
// the guesser's address, never against the resets of others.
func TestResetGuessesBlockOnlyTheGuesser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSelfEnv(t, SelfService{}, ThrottleConfig{MaxFailures: 100, MaxPerUser: 3, MaxPerIP: 3, Window: time.Minute, MaxBackoff: time.Minute})
	if _, err := e.accounts.Create(ctx, NewAccount{Username: "ann", Password: "ann-river-stone", Email: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	var last error
	for i := range 5 {
		last = e.accounts.ResetPassword(ctx, fmt.Sprintf("guess-%d", i), "ann-new-harbor", "198.51.100.7")
	}
	if fault.As(last).Code != fault.SlowDown {
		t.Fatalf("the fifth guess = %v, want slow_down", last)
	}
	if err := e.accounts.ForgotPassword(ctx, "ann", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	l, send, err := e.accounts.PrepareMail(ctx, e.claim(t))
	if err != nil || !send {
		t.Fatalf("PrepareMail = %v, %v", send, err)
	}
	if err := e.accounts.ResetPassword(ctx, l.Token, "ann-new-harbor", "192.0.2.1"); err != nil {
		t.Fatalf("the owner's reset after another's guesses: %v", err)
	}
}

// TestVerificationRequestsAreCounted: an account cannot have its
// (perhaps someone else's) address flooded with verification mails.
func TestVerificationRequestsAreCounted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSelfEnv(t, SelfService{}, ThrottleConfig{MaxFailures: 2, MaxPerUser: 100, MaxPerIP: 100, Window: time.Minute, MaxBackoff: time.Minute})
	u, err := e.accounts.Create(ctx, NewAccount{Username: "ann", Password: "ann-river-stone", Email: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	var last error
	for range 3 {
		last = e.accounts.RequestVerification(ctx, &Principal{UserID: u.ID}, "192.0.2.1")
	}
	if fault.As(last).Code != fault.SlowDown {
		t.Fatalf("the third request = %v, want slow_down", last)
	}
	if n, _ := e.st.PendingMail(ctx); n != 2 {
		t.Errorf("%d mails queued, want 2", n)
	}
}

// TestMailCooldown: a second mail of a kind within MailCooldown is dropped,
// but a retry of the first (an attempt that failed) is not.
func TestMailCooldown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSelfEnv(t, SelfService{}, looseThrottle)
	if _, err := e.accounts.Create(ctx, NewAccount{Username: "ann", Password: "ann-river-stone", Email: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := e.accounts.ForgotPassword(ctx, "ann", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	first := e.claim(t)
	if _, send, err := e.accounts.PrepareMail(ctx, first); err != nil || !send {
		t.Fatalf("the first = %v, %v", send, err)
	}
	first.Attempts++ // its sending failed; the sender tries again
	if _, send, err := e.accounts.PrepareMail(ctx, first); err != nil || !send {
		t.Errorf("a retry of the first = %v, %v; want sent", send, err)
	}
	if _, send, err := e.accounts.PrepareMail(ctx, e.claim(t)); err != nil || send {
		t.Errorf("a second request within the cooldown = %v, %v; want dropped", send, err)
	}
}

// TestResetJudgesThePasswordByItsAccount: a reset refuses a password built
// on the account's name, before using the link, which then still works.
func TestResetJudgesThePasswordByItsAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSelfEnv(t, SelfService{}, looseThrottle)
	if _, err := e.accounts.Create(ctx, NewAccount{Username: "marguerite", Password: "ann-river-stone", Email: "m@example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := e.accounts.ForgotPassword(ctx, "marguerite", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	l, _, err := e.accounts.PrepareMail(ctx, e.claim(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.accounts.ResetPassword(ctx, l.Token, "marguerite1", "192.0.2.1"); fault.As(err).Field != "/new_password" ||
		!strings.Contains(fault.As(err).Description, "account's name") {
		t.Fatalf("a password built on the username = %v", err)
	}
	if err := e.accounts.ResetPassword(ctx, l.Token, "ann-new-harbor", "192.0.2.1"); err != nil {
		t.Fatalf("the link after a refused password: %v", err)
	}
}
