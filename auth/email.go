package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// Self-service accounts: sign-up, email verification and password reset.
// Every mail goes through the store's outbox, queued in the transaction of
// the change it tells of; a sender delivers it (see PrepareMail). Nothing
// here answers differently for an account that does not exist.

// SelfService is how accounts may serve themselves.
type SelfService struct {
	// Open lets anyone sign up at POST /register.
	Open bool
	// Scopes are the scopes a new account gets; never users:admin.
	Scopes []string
	// RequireVerifiedEmail refuses logins of accounts whose email is not
	// verified.
	RequireVerifiedEmail bool
	// AppURL is where the links in mails lead: AppURL/verify-email?token=…
	// and AppURL/reset-password?token=….
	AppURL string
	// VerifyTTL and ResetTTL are how long a mailed token lives.
	VerifyTTL time.Duration
	ResetTTL  time.Duration
}

// MaxEmailBytes bounds an email address (RFC 5321 §4.5.3.1.3 allows a
// path of 256 octets, so an address of 254).
const MaxEmailBytes = 254

// NormalizeEmail checks an email address: a bare addr-spec (no display
// name), of at most MaxEmailBytes, with a domain. It returns it trimmed.
func NormalizeEmail(field, email string) (string, error) {
	email = strings.TrimSpace(email)
	bad := fault.Invalid(field, "email must be an address such as ann@example.com")
	if email == "" || len(email) > MaxEmailBytes || !utf8.ValidString(email) || strings.ContainsAny(email, "\r\n<>") {
		return "", bad
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Name != "" || a.Address != email {
		return "", bad
	}
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return "", bad
	}
	return email, nil
}

// Registration is a sign-up.
type Registration struct {
	Username, Password, Email string
	ClientIP                  string
}

// ErrRegistrationClosed answers a sign-up while registration is closed.
var ErrRegistrationClosed = &fault.Error{Code: fault.RegistrationClosed, Description: "this server does not let accounts sign up; ask an administrator for one"}

// Register creates an account for whoever asks, when registration is
// open: the scopes are SelfService.Scopes, and a mail to verify the email
// is queued with it. Sign-ups are counted per client IP and per username,
// as logins are.
func (a *Accounts) Register(ctx context.Context, r Registration) (store.User, error) {
	if !a.cfg.Self.Open {
		return store.User{}, ErrRegistrationClosed
	}
	if slices.Contains(a.cfg.Self.Scopes, store.ScopeUsersAdmin) {
		return store.User{}, errors.New("auth: sign-ups may never be given " + store.ScopeUsersAdmin)
	}
	name, err := a.newUsername("/username", r.Username)
	if err != nil {
		return store.User{}, err
	}
	email, err := NormalizeEmail("/email", r.Email)
	if err != nil {
		return store.User{}, err
	}
	if err := a.cfg.Passwords.Check("/password", r.Password, name, localPart(email)); err != nil {
		return store.User{}, err
	}
	if _, err := a.throttle.Reserve(ctx, signUp(name), r.ClientIP); err != nil {
		return store.User{}, err // counted, never given back: a limit on sign-ups
	}
	hash, err := a.hasher.Hash(ctx, r.Password)
	if err != nil {
		return store.User{}, err
	}
	now := a.now().UTC()
	u := store.User{
		ID: uuid.NewString(), Username: name, PasswordHash: hash, Scopes: slices.Clone(a.cfg.Self.Scopes),
		Email: email, CreatedAt: now, UpdatedAt: now,
	}
	if err := a.users.CreateUser(ctx, u, store.Mail{Kind: store.MailVerifyEmail, UserID: u.ID, To: email, CreatedAt: now}); err != nil {
		return store.User{}, createError(err)
	}
	a.events.Change(ctx, ChangeEvent{Action: "user.registered", Target: u.Username, Detail: "scopes=" + strings.Join(u.Scopes, ","), Actor: ActorSelf})
	a.mailQueued()
	return u, nil
}

// ActorSelf is the actor of a change an account made to itself without
// logging in (signing up, following a mailed link).
const ActorSelf = "self-service"

// RequestVerification queues a new verification mail for p's account,
// asked from ip. Requests are counted per account and address, as
// failed logins are: an unverified address may be someone else's, who
// must not be flooded with mail.
func (a *Accounts) RequestVerification(ctx context.Context, p *Principal, ip string) error {
	if _, err := a.throttle.Reserve(ctx, verifyMail(p.UserID), ip); err != nil {
		return err
	}
	u, err := a.users.UserByID(ctx, p.UserID)
	if err != nil {
		return notFound(err)
	}
	switch {
	case u.Email == "":
		return fault.Invalid("", "the account has no email address to verify")
	case u.EmailVerified:
		return &fault.Error{Code: fault.Conflict, Description: "the account's email address is verified already"}
	}
	if err := a.users.QueueMail(ctx, store.Mail{Kind: store.MailVerifyEmail, UserID: u.ID, To: u.Email, CreatedAt: a.now().UTC()}); err != nil {
		return err
	}
	a.mailQueued()
	return nil
}

// errBadLink answers a token that is unknown, used or expired.
var errBadLink = fault.Invalid("/token", "the link is invalid, used or expired; ask for a new one")

// VerifyEmail marks the email of the token's account verified, if the
// account still has the address it was mailed to.
func (a *Accounts) VerifyEmail(ctx context.Context, token string) (store.User, error) {
	hash := hashEmailToken(token)
	// A read first: a guessed token costs no write.
	if _, err := a.users.EmailToken(ctx, hash, store.PurposeVerify, a.now()); err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return store.User{}, errBadLink
		}
		return store.User{}, err
	}
	u, err := a.users.UseEmailToken(ctx, hash, store.PurposeVerify, a.now(), func(t store.EmailToken, u *store.User) error {
		if store.EmailKey(t.Email) != store.EmailKey(u.Email) {
			return errBadLink
		}
		u.EmailVerified, u.UpdatedAt = true, a.now().UTC()
		return nil
	})
	if errors.Is(err, fault.ErrNotFound) {
		return store.User{}, errBadLink
	}
	if err != nil {
		return store.User{}, err
	}
	a.events.Change(ctx, ChangeEvent{Action: "user.email_verified", Target: u.Username, Actor: ActorSelf})
	return u, nil
}

// ForgotPassword queues a password reset for the account called
// identifier (a username, or an email when it holds an @), or for none: the
// same work and the same answer either way. The sender finds the account,
// if any, and mails its owner; so nothing in the answer, or its time, says
// whether the account exists. Asking is counted per client IP and per
// identifier.
func (a *Accounts) ForgotPassword(ctx context.Context, identifier, ip string) error {
	identifier = strings.TrimSpace(identifier)
	if identifier == "" || len(identifier) > MaxEmailBytes || !utf8.ValidString(identifier) {
		return fault.Invalid("", "give the username or the email address of the account")
	}
	if _, err := a.throttle.Reserve(ctx, forgot(identifierKey(identifier)), ip); err != nil {
		return err
	}
	if err := a.users.QueueMail(ctx, store.Mail{Kind: store.MailPasswordReset, To: identifier, CreatedAt: a.now().UTC()}); err != nil {
		return err
	}
	a.mailQueued()
	return nil
}

// identifierKey is what an identifier is counted by: an email's key, or a
// normalised username.
func identifierKey(identifier string) string {
	if strings.Contains(identifier, "@") {
		return store.EmailKey(identifier)
	}
	if name, err := NormalizeUsername("", identifier); err == nil {
		return name
	}
	return identifier
}

// ResetPassword sets the password of the token's account, and ends every
// token the account holds, as a password change does. Following the link
// proves the owner reads the address, which is then verified. Attempts
// are counted per client IP; a good one gives its count back.
func (a *Accounts) ResetPassword(ctx context.Context, token, password, ip string) error {
	tokenHash := hashEmailToken(token)
	attempt, err := a.throttle.Reserve(ctx, resetLink(tokenHash), ip)
	if err != nil {
		return err
	}
	// Reads first: a guessed token costs neither a hash nor a write, and
	// the policy is judged outside the transaction that uses the token.
	var owner store.User
	t, err := a.users.EmailToken(ctx, tokenHash, store.PurposeReset, a.now())
	if err == nil {
		owner, err = a.users.UserByID(ctx, t.UserID)
	}
	if errors.Is(err, fault.ErrNotFound) {
		return errBadLink // counted: a guessed link is a failure
	}
	if err != nil {
		attempt.Abandon(ctx)
		return err
	}
	if err := a.cfg.Passwords.Check("/new_password", password, owner.Username, localPart(owner.Email)); err != nil {
		attempt.Abandon(ctx) // the link is good; the password is not
		return err
	}
	hash, err := a.hasher.Hash(ctx, password)
	if err != nil {
		attempt.Abandon(ctx)
		return err
	}
	u, err := a.users.UseEmailToken(ctx, tokenHash, store.PurposeReset, a.now(), func(t store.EmailToken, u *store.User) error {
		u.PasswordHash = hash
		u.TokenVersion++
		if store.EmailKey(t.Email) == store.EmailKey(u.Email) {
			u.EmailVerified = true
		}
		u.UpdatedAt = a.now().UTC()
		return nil
	})
	if errors.Is(err, fault.ErrNotFound) {
		return errBadLink // used or expired since it was read
	}
	if err != nil {
		attempt.Abandon(ctx)
		return err
	}
	_ = attempt.Succeeded(ctx)
	a.events.Change(ctx, ChangeEvent{Action: "user.password_reset", Target: u.Username, Actor: ActorSelf})
	a.feed.Applied(ctx, store.Change{Kind: store.ChangeUser, Subject: u.ID})
	return nil
}

// MailCooldown is the least time between two mails of one kind (a
// verification, a reset) to one account; requests between are dropped.
const MailCooldown = time.Minute

// Letter is what a mail tells its recipient; the mail package renders it.
type Letter struct {
	Kind     string // store.MailVerifyEmail, store.MailPasswordReset
	To       string
	Username string
	// Token is the single-use token the mail carries, Link the app's page
	// that takes it, ExpiresIn its lifetime.
	Token     string
	Link      string
	ExpiresIn time.Duration
}

// PrepareMail makes the letter of a mail from the outbox, with a fresh
// token whose hash it stores, or reports that there is nothing to send (no
// such account any more, no email, an address since changed or verified,
// a disabled account).
func (a *Accounts) PrepareMail(ctx context.Context, m store.Mail) (Letter, bool, error) {
	var (
		u   store.User
		err error
	)
	switch m.Kind {
	case store.MailVerifyEmail:
		u, err = a.users.UserByID(ctx, m.UserID)
	case store.MailPasswordReset:
		if strings.Contains(m.To, "@") {
			u, err = a.users.UserByEmail(ctx, store.EmailKey(m.To))
		} else if name, nerr := NormalizeUsername("", m.To); nerr == nil {
			u, err = a.users.UserByUsername(ctx, name)
		} else {
			return Letter{}, false, nil
		}
	default:
		return Letter{}, false, nil
	}
	if errors.Is(err, fault.ErrNotFound) {
		return Letter{}, false, nil
	}
	if err != nil {
		return Letter{}, false, err
	}
	purpose, ttl, page := store.PurposeReset, a.cfg.Self.ResetTTL, "/reset-password"
	switch {
	case u.Email == "" || u.Disabled:
		return Letter{}, false, nil
	case m.Kind == store.MailVerifyEmail:
		if u.EmailVerified || store.EmailKey(u.Email) != store.EmailKey(m.To) {
			return Letter{}, false, nil
		}
		purpose, ttl, page = store.PurposeVerify, a.cfg.Self.VerifyTTL, "/verify-email"
	}
	now := a.now().UTC()
	// At most one mail of a kind a minute to an account: asking again and
	// again from many addresses must not flood its owner's inbox. A retry
	// of this very mail (its earlier attempt made a token) is not a new one.
	if m.Attempts <= 1 {
		last, err := a.users.LastEmailToken(ctx, u.ID, purpose)
		if err != nil {
			return Letter{}, false, err
		}
		if !last.IsZero() && now.Sub(last) < MailCooldown {
			return Letter{}, false, nil
		}
	}
	token, err := newEmailToken()
	if err != nil {
		return Letter{}, false, err
	}
	if err := a.users.CreateEmailToken(ctx, store.EmailToken{
		Hash: hashEmailToken(token), UserID: u.ID, Purpose: purpose, Email: u.Email, CreatedAt: now, ExpiresAt: now.Add(ttl),
	}); err != nil {
		return Letter{}, false, err
	}
	return Letter{
		Kind: m.Kind, To: u.Email, Username: u.Username, Token: token, ExpiresIn: ttl,
		Link: strings.TrimRight(a.cfg.Self.AppURL, "/") + page + "?token=" + url.QueryEscape(token),
	}, true, nil
}

// mailRetention is how long a sent (or dropped) mail's row is kept.
const mailRetention = 7 * 24 * time.Hour

// PruneMail drops mails done a week ago and expired tokens. It belongs in
// a housekeeping loop.
func (a *Accounts) PruneMail(ctx context.Context) error {
	now := a.now()
	return a.users.PruneMail(ctx, now.Add(-mailRetention), now)
}

// OnMailQueued sets what runs after a mail is queued (waking the sender).
func (a *Accounts) OnMailQueued(f func()) { a.queued = f }

func (a *Accounts) mailQueued() {
	if a.queued != nil {
		a.queued()
	}
}

func newEmailToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashEmailToken is how a mailed token is stored: 256 random bits need no
// slow hash.
func hashEmailToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// localPart is the part of an address before its @, a word a password
// should not be built on.
func localPart(email string) string {
	if at := strings.LastIndexByte(email, '@'); at > 0 {
		return email[:at]
	}
	return ""
}

// The throttle's secrets for self-service: each counts its attempts per
// subject, per (subject, IP) and per IP. A reset's subject is the token
// tried, new with every guess, so guesses are bounded by the address's
// limit and no one can block the resets of others.
func signUp(username string) Secret     { return Secret{"signup", username} }
func forgot(identifier string) Secret   { return Secret{"forgot", identifier} }
func verifyMail(userID string) Secret   { return Secret{"verify-mail", userID} }
func resetLink(tokenHash string) Secret { return Secret{"reset", tokenHash} }
