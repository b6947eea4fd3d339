// Package store defines passflow's storage: what is kept and the interfaces
// that keep it. Implementations live beside it (sqlite/, the embedded
// default, and postgres/, for many instances); handlers and the auth
// package see only these interfaces.
//
// Errors: a missing row is fault.ErrNotFound, a uniqueness clash
// fault.ErrConflict, an unreachable database fault.ErrUnavailable, each
// wrapped with context. Anything else is the store's own failure.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/passflow/passflow/fault"
)

// ScopeUsersAdmin is the scope of those who manage accounts: the store
// keeps at least one enabled account holding it. The spec declares it with
// every other scope (the server checks that at start); no other scope is
// named in Go.
const ScopeUsersAdmin = "users:admin"

// User is an account.
type User struct {
	// ID is immutable and becomes the tokens' sub claim.
	ID string
	// Username is unique and already normalised (see auth.NormalizeUsername).
	Username string
	// PasswordHash is a PHC string; it never leaves the server.
	PasswordHash string
	// Scopes are the scopes the user may be granted, sorted.
	Scopes   []string
	Disabled bool
	// TokenVersion rises whenever every token the user holds must die
	// (password change, disable, logout everywhere); tokens carry the
	// version they were issued at.
	TokenVersion int64
	// Email is the account's address as given, "" when it has none; it is
	// unique by EmailKey(Email). EmailVerified says its owner followed a
	// link mailed to it.
	Email         string
	EmailVerified bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// EmailKey is the form in which an address is unique: case folded, so
// Ann@Example.com and ann@example.com are one.
func EmailKey(email string) string { return strings.ToLower(email) }

// HasScope reports whether the user may be granted scope.
func (u User) HasScope(scope string) bool {
	for _, s := range u.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// SigningKey is a private key tokens are signed with.
type SigningKey struct {
	// ID is the key's kid: its RFC 7638 thumbprint.
	ID string
	// Algorithm is the JWS alg the key signs with, such as EdDSA.
	Algorithm string
	// Private is the private key: PKCS #8 DER, or raw bytes for HMAC keys,
	// possibly encrypted (the auth package decides).
	Private   []byte
	CreatedAt time.Time
	// ActiveFrom is when the key starts signing; zero means from
	// CreatedAt. A rotated-in key is published (in the JWKS, to every
	// instance) for a while before it signs.
	ActiveFrom time.Time
	// RetiredAt is zero while the key signs; once set, the key stops
	// signing at it, and then only verifies the tokens it signed until
	// they expire.
	RetiredAt time.Time
}

// Active is when k starts signing.
func (k SigningKey) Active() time.Time {
	if k.ActiveFrom.IsZero() {
		return k.CreatedAt
	}
	return k.ActiveFrom
}

// Client is a registered OAuth2 client.
type Client struct {
	ID string
	// SecretHash is the hash of a confidential client's secret; empty for
	// a public client.
	SecretHash string
	// GrantTypes and Scopes are what the client may use and request.
	GrantTypes []string
	Scopes     []string
	CreatedAt  time.Time
	// DeletedAt is zero unless the client was deleted. A deleted client
	// keeps its id for ever: no other client, registered or public, may
	// use it, and no token issued to it is accepted.
	DeletedAt time.Time
}

// Clients keeps registered clients.
type Clients interface {
	// CreateClient returns fault.ErrConflict when the id is taken, by a
	// deleted client too.
	CreateClient(ctx context.Context, c Client) error
	// ClientByID returns the client with id, deleted or not. It returns
	// fault.ErrNotFound when no client ever had that id.
	ClientByID(ctx context.Context, id string) (Client, error)
	// ListClients returns every client by id, deleted ones too.
	ListClients(ctx context.Context) ([]Client, error)
	// DeleteClient marks the client deleted at now, revokes every refresh
	// family issued to it and appends a ChangeClient, in one transaction.
	// It returns fault.ErrNotFound when there is no such client, or it
	// was deleted already.
	DeleteClient(ctx context.Context, id string, now time.Time) error
}

// BatchError says which element of a batch failed, and why.
type BatchError struct {
	Index int
	Err   error
}

func (e *BatchError) Error() string { return fmt.Sprintf("item %d: %v", e.Index, e.Err) }
func (e *BatchError) Unwrap() error { return e.Err }

// ErrLastAdmin refuses a change that would leave no enabled account holding
// users:admin, so that someone can always manage the accounts.
var ErrLastAdmin = &fault.Error{Code: fault.Conflict, Description: "this is the last enabled account holding users:admin"}

// IsEnabledAdmin reports whether u can manage accounts.
func (u User) IsEnabledAdmin() bool { return !u.Disabled && u.HasScope(ScopeUsersAdmin) }

// Users keeps accounts.
type Users interface {
	// CreateUser adds u, and queues mails in the same transaction; u.ID,
	// u.CreatedAt and u.UpdatedAt must be set. It returns fault.ErrConflict
	// when the username is taken and ErrEmailTaken when the email is.
	CreateUser(ctx context.Context, u User, mails ...Mail) error
	// CreateUsers adds users in one transaction: all of them or none. A
	// taken username is a *BatchError naming it, wrapping fault.ErrConflict.
	CreateUsers(ctx context.Context, users []User) error
	// UserByUsername returns fault.ErrNotFound when there is no such user.
	UserByUsername(ctx context.Context, username string) (User, error)
	// UserByID returns fault.ErrNotFound when there is no such user.
	UserByID(ctx context.Context, id string) (User, error)
	// UserByEmail returns the user whose EmailKey is key, or
	// fault.ErrNotFound.
	UserByEmail(ctx context.Context, key string) (User, error)
	// ListUsers returns up to limit users whose usernames sort after
	// after, in username order.
	ListUsers(ctx context.Context, after string, limit int) ([]User, error)
	// UpdateUser applies change to the user in one transaction and returns
	// the result. change may not alter ID, Username or CreatedAt. It returns
	// fault.ErrNotFound when there is no such user, ErrLastAdmin when the
	// change would leave no enabled user holding users:admin, ErrEmailTaken
	// when another account has the new email, and passes on any error
	// change returns. A new password hash ends the account's reset tokens;
	// a new email, its verification tokens.
	UpdateUser(ctx context.Context, username string, change func(*User) error) (User, error)
	// DeleteUser deletes the user and everything they own. It returns
	// fault.ErrNotFound when there is no such user and ErrLastAdmin when the
	// user is the last enabled one holding users:admin.
	DeleteUser(ctx context.Context, username string) error
	// HasUserWithScope reports whether any enabled user holds scope.
	HasUserWithScope(ctx context.Context, scope string) (bool, error)
	// BootstrapAdmin makes sure an enabled user holds users:admin, in one
	// transaction that processes starting together take in turn: when
	// none does, it creates u, or, when u.Username is taken, enables that
	// user and gives it u.Scopes (appending a ChangeUser). It reports which
	// it did; BootstrapNone when an enabled admin existed.
	BootstrapAdmin(ctx context.Context, u User) (Bootstrap, error)
}

// ErrEmailTaken refuses an email another account has.
var ErrEmailTaken = &fault.Error{Code: fault.Conflict, Description: "another account has this email address", Field: "/email"}

// Purposes of an EmailToken.
const (
	PurposeVerify = "verify"
	PurposeReset  = "reset"
)

// EmailToken is a single-use token mailed to an account: a link to verify
// its email, or to reset its password. Only its hash is kept.
type EmailToken struct {
	Hash    string
	UserID  string
	Purpose string
	// Email is the address it was mailed to: a verification holds only
	// while the account still has it.
	Email     string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Mail kinds.
const (
	MailVerifyEmail   = "verify_email"
	MailPasswordReset = "password_reset"
)

// Mail is a message waiting in the outbox. It holds no token and no body:
// the sender makes both when it sends, so the outbox never holds a
// credential.
type Mail struct {
	ID   int64
	Kind string
	// UserID is the account a verification mail is for.
	UserID string
	// To is the address of a verification mail, or the username or email
	// a password reset was asked for (which may name no account).
	To        string
	Attempts  int
	CreatedAt time.Time
}

// Mail outcomes, recorded when a mail leaves the outbox.
const (
	MailSent    = "sent"
	MailDropped = "dropped" // nothing to send: no such account, or no email
	MailFailed  = "failed"  // given up after its attempts
)

// Outbox keeps mails until a sender delivers them. A mail is queued in the
// transaction of the change it tells of, then claimed by one sender at a
// time (across processes) for a lease, and either marked done or put back
// for a later attempt.
type Outbox interface {
	// QueueMail adds m to the outbox, due at once.
	QueueMail(ctx context.Context, m Mail) error
	// ClaimMail takes the oldest mail due at now that no sender holds, for
	// this caller until until, counting an attempt; false when none is due.
	ClaimMail(ctx context.Context, now, until time.Time) (Mail, bool, error)
	// MailDone takes the mail id out of the outbox with outcome.
	MailDone(ctx context.Context, id int64, outcome string, at time.Time) error
	// MailRetry releases the mail id until next, recording why it failed.
	MailRetry(ctx context.Context, id int64, next time.Time, reason string) error
	// PendingMail counts the mails not yet done.
	PendingMail(ctx context.Context) (int, error)
	// PruneMail deletes the mails done before doneBefore and the tokens
	// expired at now.
	PruneMail(ctx context.Context, doneBefore, now time.Time) error
	// CreateEmailToken stores t.
	CreateEmailToken(ctx context.Context, t EmailToken) error
	// LastEmailToken returns when the newest token of the account for
	// purpose was made, the zero time when it has none.
	LastEmailToken(ctx context.Context, userID, purpose string) (time.Time, error)
	// EmailToken returns the token whose hash is hash, made for purpose
	// and alive at now, without using it; fault.ErrNotFound when there is
	// none. A read: what a guess costs before any write.
	EmailToken(ctx context.Context, hash, purpose string, now time.Time) (EmailToken, error)
	// UseEmailToken consumes the token whose hash is hash, made for purpose
	// and not expired at now, and applies change to its account, in one
	// transaction (as UpdateUser does); every other token of the account
	// for that purpose ends with it. fault.ErrNotFound when there is no such
	// token.
	UseEmailToken(ctx context.Context, hash, purpose string, now time.Time, change func(EmailToken, *User) error) (User, error)
}

// Bootstrap is what BootstrapAdmin did.
type Bootstrap int

// What BootstrapAdmin can do.
const (
	BootstrapNone Bootstrap = iota
	BootstrapCreated
	BootstrapRestored
)

// Keys keeps signing keys, and the settings every process must agree on.
type Keys interface {
	// SigningKeys returns every key, newest first.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// EnsureSigningKey stores k unless an unretired key exists, in one
	// transaction, and returns every key, newest first. Processes starting
	// together on one store thus agree on one key.
	EnsureSigningKey(ctx context.Context, k SigningKey) ([]SigningKey, error)
	// RotateSigningKey retires every unretired key at k.Active() and
	// stores k, in one transaction, provided keyCheck is the store's
	// SettingKeyCheck (which it becomes when unset): else ErrKeyCheck.
	RotateSigningKey(ctx context.Context, k SigningKey, keyCheck string) error
	// SealSigningKey replaces the private key of the key id with sealed,
	// the same key encrypted, unless it no longer is old. It appends no
	// change: what the key signs with stays the same.
	SealSigningKey(ctx context.Context, id string, old, sealed []byte) error
	// ClaimSetting sets the setting name to value unless it is set, and
	// returns its value.
	ClaimSetting(ctx context.Context, name, value string) (string, error)
	// SetSetting sets the setting name to value.
	SetSetting(ctx context.Context, name, value string) error
}

// RefreshFamily is every refresh token descended from one password login.
type RefreshFamily struct {
	ID       string
	UserID   string
	ClientID string
	// Scopes are the scopes granted at login; every token keeps them.
	Scopes []string
	// TokenVersion is the user's token version at login: the family dies
	// when the user's version rises.
	TokenVersion int64
	CreatedAt    time.Time
	// ExpiresAt bounds every token of the family.
	ExpiresAt time.Time
	// RevokedAt is zero unless the family was revoked.
	RevokedAt time.Time
}

// RefreshToken is one refresh token of a family, kept only as a hash.
type RefreshToken struct {
	Hash      []byte
	FamilyID  string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Refresh token failures, beside fault.ErrNotFound for an unknown token.
var (
	// ErrRefreshReused: the token was already rotated. Presenting it again
	// is theft, so the family has been revoked.
	ErrRefreshReused = errors.New("store: refresh token already used")
	// ErrRefreshRevoked: the token's family was revoked.
	ErrRefreshRevoked = errors.New("store: refresh token family revoked")
	// ErrRefreshExpired: the token or its family has expired.
	ErrRefreshExpired = errors.New("store: refresh token expired")
)

// RefreshTokens keeps refresh token families.
type RefreshTokens interface {
	// CreateRefreshFamily stores a new family and its first token.
	CreateRefreshFamily(ctx context.Context, f RefreshFamily, first RefreshToken) error
	// RotateRefreshToken redeems the token with hash at now, in one
	// transaction: it marks the token used and stores next in its family,
	// with next.ExpiresAt cut to the family's expiry, and returns the
	// family. Two calls racing for one token yield one rotation; the other
	// finds it used. A token used less than reuseGrace ago is redeemed
	// again (next joins the family; two browser tabs refreshing at once);
	// past it, or with reuseGrace 0, reuse is theft. Errors:
	// fault.ErrNotFound, ErrRefreshRevoked, ErrRefreshExpired, and
	// ErrRefreshReused, after which the family is revoked as by
	// RevokeRefreshFamily (that much is committed).
	RotateRefreshToken(ctx context.Context, hash []byte, next RefreshToken, now, accessUntil time.Time, reuseGrace time.Duration) (RefreshFamily, error)
	// RefreshFamilyByToken returns the family of the token with hash, used
	// or not. It returns fault.ErrNotFound when there is none.
	RefreshFamilyByToken(ctx context.Context, hash []byte) (RefreshFamily, error)
	// RevokeRefreshFamily revokes a family at now and appends a
	// ChangeFamily whose ExpiresAt is accessUntil, the time after which no
	// access token issued from the family can be alive.
	RevokeRefreshFamily(ctx context.Context, familyID string, now, accessUntil time.Time) error
	// PruneRefreshFamilies deletes families that expired or were revoked
	// before cutoff.
	PruneRefreshFamilies(ctx context.Context, cutoff time.Time) error
}

// Kinds of Change.
const (
	// ChangeUser: an account changed or was deleted; Subject is its ID.
	ChangeUser = "user"
	// ChangeAccessToken: an access token was revoked; Subject is its jti.
	ChangeAccessToken = "access_token"
	// ChangeKeys: the signing keys changed.
	ChangeKeys = "keys"
	// ChangeFamily: a refresh family was revoked, and with it the access
	// tokens issued from it; Subject is its ID.
	ChangeFamily = "family"
	// ChangeClient: a client was deleted, and with it every token issued
	// to it; Subject is its ID.
	ChangeClient = "client"
)

// Change is one entry of the change feed: something every process must
// apply to what it keeps in memory.
type Change struct {
	Seq     int64
	Kind    string
	Subject string
	// ExpiresAt is set for revoked access tokens and families: after it,
	// every access token concerned is dead anyway.
	ExpiresAt time.Time
	CreatedAt time.Time
}

// Changes is the change feed. UpdateUser, DeleteUser, DeleteClient,
// EnsureSigningKey, RotateSigningKey, RevokeRefreshFamily and
// RevokeAccessToken append to it in the same transaction as their change,
// so a process that has read the feed up to a Seq has seen every change
// before it.
type Changes interface {
	// ChangesSince returns up to limit changes after seq, in order.
	ChangesSince(ctx context.Context, seq int64, limit int) ([]Change, error)
	// LatestChange returns the Seq of the newest change ever appended (even
	// if pruned since), 0 when none.
	LatestChange(ctx context.Context) (int64, error)
	// RevokeAccessToken records that the access token jti, which expires at
	// expiresAt, is revoked, and reports whether it was not already: a
	// token revoked again adds nothing to the feed.
	RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) (bool, error)
	// Revoked returns the revoked access tokens and refresh families whose
	// access tokens may still be alive at now.
	Revoked(ctx context.Context, now time.Time) ([]Change, error)
	// PruneChanges drops revocations that expired before cutoff and other
	// changes created before it.
	PruneChanges(ctx context.Context, cutoff time.Time) error
}

// LoginCounter counts the attempts of one key (a username or client id, a
// client IP, or such a pair) that failed or are still being checked, in a
// window that starts at its first counted attempt.
type LoginCounter struct {
	Key         string
	Failures    int
	WindowStart time.Time
	LastFailure time.Time
}

// LoginAttempts keeps the counters that throttle password and client
// secret checks, shared by every process on the store, so that attempts
// spread over instances, or made at once, count together.
type LoginAttempts interface {
	// ReserveLoginAttempt counts an attempt at now against every key, in
	// one transaction, before the caller checks any credential: admit is
	// called inside it with the counters of those keys that have one, as
	// they stand, and when it returns an error nothing is counted and that
	// error is returned. A counter whose window has passed starts again at
	// one. Reservations made at once, by any process, are serialised per
	// key, so the limits admit enforces hold across them.
	ReserveLoginAttempt(ctx context.Context, keys []string, now time.Time, window time.Duration,
		admit func([]LoginCounter) error) error
	// ReleaseLoginAttempt takes one reserved attempt back from each key of
	// release, and deletes the counters of clear, in one transaction.
	ReleaseLoginAttempt(ctx context.Context, release, clear []string) error
	// PruneLoginFailures deletes counters whose last attempt is before
	// cutoff.
	PruneLoginFailures(ctx context.Context, cutoff time.Time) error
}

// Backuper is a store that can copy itself, consistently, while in use.
type Backuper interface {
	// Backup writes a consistent copy of the store to a new file at path.
	Backup(ctx context.Context, path string) error
}

// Store is everything passflow keeps.
type Store interface {
	Users
	Items
	Keys
	Clients
	RefreshTokens
	LoginAttempts
	Changes
	Outbox
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	Close() error
}
