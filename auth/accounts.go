package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// Accounts manages users: the one place their rules live, for the HTTP API
// and the command line alike.
type Accounts struct {
	cfg      AccountConfig
	queued   func()
	users    accountStore
	hasher   Hasher
	throttle *Throttle
	feed     *Feed
	events   Events
	now      func() time.Time
}

// accountStore is what accounts are kept in, with the outbox of the mails
// they are sent.
type accountStore interface {
	store.Users
	store.Outbox
}

// AccountConfig is the rules accounts follow that come from the API.
type AccountConfig struct {
	// Scopes are the scopes an account may hold.
	Scopes Scopes
	// ReservedUsernames are names no account may take: the fixed path
	// segments that stand where a username would (me, as in /users/me
	// beside /users/{username}).
	ReservedUsernames []string
	// Passwords is what a new password must be.
	Passwords PasswordPolicy
	// Self is how accounts may serve themselves.
	Self SelfService
}

// NewAccounts returns the account service. Checks of a current password
// are limited by throttle, as logins are. After a change that ends tokens
// it syncs feed, so the change is in force in this process before the call
// returns; throttle and feed are nil in a process that checks no password
// and verifies no tokens (the command line), whose changes servers pick up
// from the change feed.
func NewAccounts(
	cfg AccountConfig,
	users accountStore,
	hasher Hasher,
	throttle *Throttle,
	feed *Feed,
	events Events,
	now func() time.Time,
) *Accounts {
	return &Accounts{cfg: cfg, users: users, hasher: hasher, throttle: throttle, feed: feed, events: events, now: now}
}

// NewAccount describes an account to create.
type NewAccount struct {
	Username string
	Password string
	Scopes   []string
	// Email is optional; EmailVerified declares it verified.
	Email         string
	EmailVerified bool
}

// Create adds an account: the username is normalised, the password checked
// and hashed, the scopes checked. A taken username is fault.ErrConflict.
func (a *Accounts) Create(ctx context.Context, n NewAccount) (store.User, error) {
	name, err := a.newUsername("/username", n.Username)
	if err != nil {
		return store.User{}, err
	}
	var email string
	if n.Email != "" {
		if email, err = NormalizeEmail("/email", n.Email); err != nil {
			return store.User{}, err
		}
	}
	if err := a.cfg.Passwords.Check("/password", n.Password, name, localPart(email)); err != nil {
		return store.User{}, err
	}
	scopes, err := a.cfg.Scopes.Check(n.Scopes, fault.InvalidRequest)
	if err != nil {
		return store.User{}, withField(err, "/scopes")
	}
	hash, err := a.hasher.Hash(ctx, n.Password)
	if err != nil {
		return store.User{}, err
	}
	now := a.now().UTC()
	u := store.User{
		ID:           uuid.NewString(),
		Username:     name,
		PasswordHash: hash,
		Scopes:       scopes,
		Email:        email,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	u.EmailVerified = email != "" && n.EmailVerified
	if err := a.users.CreateUser(ctx, u); err != nil {
		return store.User{}, createError(err)
	}
	a.events.Change(ctx, ChangeEvent{Action: "user.created", Target: u.Username, Detail: "scopes=" + strings.Join(u.Scopes, ",")})
	return u, nil
}

// createError names what a failed CreateUser clashed with: the email
// (store.ErrEmailTaken says so), else the username.
func createError(err error) error {
	if fault.As(err).Code == fault.Conflict && !errors.Is(err, store.ErrEmailTaken) {
		return &fault.Error{Code: fault.Conflict, Description: "username is taken", Field: "/username", Err: err}
	}
	return err
}

// newUsername is the normalised name of a new account: one PRECIS allows
// and no path of the API reserves.
func (a *Accounts) newUsername(field, username string) (string, error) {
	name, err := NormalizeUsername(field, username)
	if err != nil {
		return "", err
	}
	if slices.Contains(a.cfg.ReservedUsernames, name) {
		return "", fault.Invalid(field, fmt.Sprintf("username %s is reserved: the API has a path where it would stand for a username", name))
	}
	return name, nil
}

// ByID returns the account whose immutable id is id.
func (a *Accounts) ByID(ctx context.Context, id string) (store.User, error) {
	u, err := a.users.UserByID(ctx, id)
	return u, notFound(err)
}

// List returns up to limit accounts whose usernames sort after after, and
// the username to pass as after for the next page ("" on the last).
func (a *Accounts) List(ctx context.Context, after string, limit int) ([]store.User, string, error) {
	users, err := a.users.ListUsers(ctx, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(users) <= limit {
		return users, "", nil
	}
	users = users[:limit]
	return users, users[limit-1].Username, nil
}

// Change describes a change to an account; nil fields stay as they are.
type Change struct {
	Disabled *bool
	Scopes   []string // nil: unchanged; empty: none
	Password *string
	// Email sets the address ("" removes it); a new address is unverified
	// unless EmailVerified says otherwise.
	Email         *string
	EmailVerified *bool
}

// Update applies c to the account called username. Disabling it, changing
// its password or taking a scope away ends every token it holds (its token
// version rises), in this process before it returns. The last enabled
// account holding users:admin cannot be disabled or lose that scope:
// store.ErrLastAdmin. Once the change is committed it returns no error.
func (a *Accounts) Update(ctx context.Context, username string, c Change) (store.User, error) {
	name, err := NormalizeUsername("", username)
	if err != nil {
		return store.User{}, err
	}
	var hash string
	if c.Password != nil {
		if err := a.cfg.Passwords.Check("/password", *c.Password, name); err != nil {
			return store.User{}, err
		}
		// Hash before the transaction: it is slow, and needs no lock.
		if hash, err = a.hasher.Hash(ctx, *c.Password); err != nil {
			return store.User{}, err
		}
	}
	var scopes []string
	if c.Scopes != nil {
		if scopes, err = a.cfg.Scopes.Check(c.Scopes, fault.InvalidRequest); err != nil {
			return store.User{}, withField(err, "/scopes")
		}
	}
	var email string
	if c.Email != nil && *c.Email != "" {
		if email, err = NormalizeEmail("/email", *c.Email); err != nil {
			return store.User{}, err
		}
	}
	u, err := a.users.UpdateUser(ctx, name, func(u *store.User) error {
		if c.Email != nil && email != u.Email {
			u.Email, u.EmailVerified = email, false
		}
		if c.EmailVerified != nil {
			if *c.EmailVerified && u.Email == "" {
				return fault.Invalid("/email_verified", "the account has no email address to verify")
			}
			u.EmailVerified = *c.EmailVerified
		}
		revoke := false
		if c.Disabled != nil {
			revoke = *c.Disabled && !u.Disabled
			u.Disabled = *c.Disabled
		}
		if c.Scopes != nil {
			for _, s := range u.Scopes {
				revoke = revoke || !slices.Contains(scopes, s)
			}
			u.Scopes = scopes
		}
		if c.Password != nil {
			u.PasswordHash = hash
			revoke = true
		}
		if revoke {
			u.TokenVersion++
		}
		u.UpdatedAt = a.now().UTC()
		return nil
	})
	if err != nil {
		return store.User{}, notFound(err)
	}
	a.events.Change(ctx, ChangeEvent{Action: "user.updated", Target: u.Username, Detail: c.describe()})
	a.feed.Applied(ctx, store.Change{Kind: store.ChangeUser, Subject: u.ID})
	return u, nil
}

// describe lists what a change sets, never the password itself.
func (c Change) describe() string {
	var parts []string
	if c.Disabled != nil {
		parts = append(parts, fmt.Sprintf("disabled=%v", *c.Disabled))
	}
	if c.Scopes != nil {
		parts = append(parts, "scopes="+strings.Join(c.Scopes, ","))
	}
	if c.Password != nil {
		parts = append(parts, "password")
	}
	if c.Email != nil {
		parts = append(parts, "email")
	}
	if c.EmailVerified != nil {
		parts = append(parts, fmt.Sprintf("email_verified=%v", *c.EmailVerified))
	}
	return strings.Join(parts, " ")
}

// ChangePassword sets the password of p's own account, asked from ip,
// after checking its current one. The new password's rules are checked
// first, so a refused change confirms nothing about the current one; the
// check of the current one is throttled and audited like a login, on the
// same counters. Every token the account holds stops working, p's included.
func (a *Accounts) ChangePassword(ctx context.Context, p *Principal, current, next, ip string) error {
	if err := a.cfg.Passwords.Check("/new_password", next, p.Username); err != nil {
		return err
	}
	u, err := a.users.UserByID(ctx, p.UserID)
	if err != nil {
		return notFound(err)
	}
	event := LoginEvent{Check: CheckPasswordChange, Outcome: "success", Username: u.Username, UserID: u.ID, ClientID: p.ClientID, ClientIP: ip}
	attempt, err := a.throttle.Reserve(ctx, AccountPassword(u.Username), ip)
	if err != nil {
		if event.Outcome = fault.As(err).Reason; event.Outcome == "" {
			event.Outcome = "rejected"
		}
		a.events.Login(ctx, event)
		return err
	}
	ok, _, err := a.hasher.Verify(ctx, u.PasswordHash, current)
	if err != nil {
		attempt.Abandon(ctx)
		return err
	}
	if !ok {
		event.Outcome = "bad_credentials"
		a.events.Login(ctx, event)
		return fault.Invalid("/current_password", "the current password is wrong")
	}
	if err := attempt.Succeeded(ctx); err != nil {
		return err
	}
	a.events.Login(ctx, event)
	_, err = a.Update(ctx, u.Username, Change{Password: &next})
	if err == nil {
		a.events.Change(ctx, ChangeEvent{Action: "user.password_changed", Target: u.Username, Detail: "by the user"})
	}
	return err
}

// LogoutEverywhere ends every token p's account holds: its access tokens
// and every refresh family, on every device.
func (a *Accounts) LogoutEverywhere(ctx context.Context, p *Principal) error {
	_, err := a.users.UpdateUser(ctx, p.Username, func(u *store.User) error {
		if u.ID != p.UserID {
			return fault.ErrNotFound
		}
		u.TokenVersion++
		u.UpdatedAt = a.now().UTC()
		return nil
	})
	if err != nil {
		return notFound(err)
	}
	a.events.Change(ctx, ChangeEvent{Action: "user.logged_out_everywhere", Target: p.Username})
	a.feed.Applied(ctx, store.Change{Kind: store.ChangeUser, Subject: p.UserID})
	return nil
}

// Delete deletes the account called username and everything it owns. The
// last enabled account holding users:admin cannot be deleted.
func (a *Accounts) Delete(ctx context.Context, username string) error {
	name, err := NormalizeUsername("", username)
	if err != nil {
		return err
	}
	u, err := a.users.UserByUsername(ctx, name)
	if err != nil {
		return notFound(err)
	}
	if err := a.users.DeleteUser(ctx, name); err != nil {
		return notFound(err)
	}
	a.events.Change(ctx, ChangeEvent{Action: "user.deleted", Target: name})
	a.feed.Applied(ctx, store.Change{Kind: store.ChangeUser, Subject: u.ID})
	return nil
}

// notFound names a missing account for the client.
func notFound(err error) error {
	if errors.Is(err, fault.ErrNotFound) {
		return fault.Wrap(fault.NotFound, "no such user", err)
	}
	return err
}

// withField returns err naming field as the part of the request at fault,
// unless it names one already. It never changes the error it was given,
// which may be shared.
func withField(err error, field string) error {
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Field != "" {
		return err
	}
	named := *fe
	named.Field = field
	return &named
}

// ImportedUser is an account brought from elsewhere with its password hash.
type ImportedUser struct {
	// Line is where the account came from, for error messages.
	Line           int
	Username       string
	HashedPassword string
	Scopes         []string
	Disabled       bool
	// Email is optional; imported addresses count as verified when
	// EmailVerified says so.
	Email         string
	EmailVerified bool
}

// Import creates every account of users, or none. Hashes must be argon2id
// or bcrypt ($2a$, $2b$, $2y$), as passlib and FastAPI's recipe write them,
// of a cost the hasher accepts; a weaker hash is replaced at the account's
// next successful login.
func (a *Accounts) Import(ctx context.Context, users []ImportedUser) error {
	lineErr := func(u ImportedUser, err error) error {
		return fault.Invalid("", fmt.Sprintf("line %d: %s", u.Line, describe(err)))
	}
	now := a.now().UTC()
	batch := make([]store.User, len(users))
	seen := map[string]int{}
	for i, in := range users {
		name, err := a.newUsername("", in.Username)
		if err != nil {
			return lineErr(in, err)
		}
		if first, ok := seen[name]; ok {
			return lineErr(in, fmt.Errorf("username %s is also on line %d", name, first))
		}
		seen[name] = in.Line
		if err := a.hasher.Accept(in.HashedPassword); err != nil {
			return lineErr(in, fmt.Errorf("hashed_password: %w", err))
		}
		scopes, err := a.cfg.Scopes.Check(in.Scopes, fault.InvalidRequest)
		if err != nil {
			return lineErr(in, err)
		}
		var email string
		if in.Email != "" {
			if email, err = NormalizeEmail("", in.Email); err != nil {
				return lineErr(in, err)
			}
			if first, ok := seen["@"+store.EmailKey(email)]; ok {
				return lineErr(in, fmt.Errorf("email %s is also on line %d", email, first))
			}
			seen["@"+store.EmailKey(email)] = in.Line
		}
		batch[i] = store.User{
			ID: uuid.NewString(), Username: name, PasswordHash: in.HashedPassword,
			Scopes: scopes, Disabled: in.Disabled, CreatedAt: now, UpdatedAt: now,
			Email: email, EmailVerified: email != "" && in.EmailVerified,
		}
	}
	err := a.users.CreateUsers(ctx, batch)
	var be *store.BatchError
	if errors.As(err, &be) && errors.Is(err, store.ErrEmailTaken) {
		return lineErr(users[be.Index], fmt.Errorf("email %s is taken", batch[be.Index].Email))
	}
	if errors.As(err, &be) && errors.Is(err, fault.ErrConflict) {
		return lineErr(users[be.Index], fmt.Errorf("username %s is taken", batch[be.Index].Username))
	}
	if err == nil {
		a.events.Change(ctx, ChangeEvent{Action: "user.imported", Detail: fmt.Sprintf("%d users", len(batch))})
	}
	return err
}

// describe is an error's client-facing description, or its text.
func describe(err error) string {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Description != "" {
		return fe.Description
	}
	return err.Error()
}

// Bootstrap makes sure someone can manage the accounts: when no enabled
// account holds users:admin, it creates admin with password and every
// scope, or, when admin exists, enables it and gives it every scope (its
// password unchanged). Processes starting together on one store do it
// once between them; the others do nothing. It reports what it did.
func (a *Accounts) Bootstrap(ctx context.Context, password string) (store.Bootstrap, error) {
	if has, err := a.HasAdmin(ctx); err != nil || has {
		return store.BootstrapNone, err
	}
	if err := a.cfg.Passwords.Check("/password", password, "admin"); err != nil {
		return store.BootstrapNone, err
	}
	hash, err := a.hasher.Hash(ctx, password)
	if err != nil {
		return store.BootstrapNone, err
	}
	now := a.now().UTC()
	u := store.User{ID: uuid.NewString(), Username: "admin", PasswordHash: hash, Scopes: a.cfg.Scopes.All(), CreatedAt: now, UpdatedAt: now}
	did, err := a.users.BootstrapAdmin(ctx, u)
	switch {
	case err != nil:
		return did, err
	case did == store.BootstrapCreated:
		a.events.Change(ctx, ChangeEvent{Action: "user.created", Target: u.Username, Detail: "scopes=" + strings.Join(u.Scopes, ","), Actor: ActorStartup})
	case did == store.BootstrapRestored:
		a.events.Change(ctx, ChangeEvent{Action: "user.updated", Target: u.Username, Detail: "disabled=false scopes=" + strings.Join(u.Scopes, ","), Actor: ActorStartup})
		existing, err := a.users.UserByUsername(ctx, u.Username)
		if err == nil {
			a.feed.Applied(ctx, store.Change{Kind: store.ChangeUser, Subject: existing.ID})
		}
	}
	return did, nil
}

// HasAdmin reports whether any enabled account holds users:admin.
func (a *Accounts) HasAdmin(ctx context.Context) (bool, error) {
	return a.users.HasUserWithScope(ctx, store.ScopeUsersAdmin)
}

// GeneratePassword returns a random password of 32 characters (192 bits).
func GeneratePassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
