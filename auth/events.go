package auth

import "context"

// Events receives what auth does, for metrics and the audit log. Nothing
// it receives is a secret: no password, token or client secret.
type Events interface {
	// Login reports the outcome of one password login, or of another
	// check of a password or a client secret.
	Login(ctx context.Context, e LoginEvent)
	// TokenRejected reports why a bearer token was refused: a word from a
	// fixed vocabulary (malformed, expired, signature, ...).
	TokenRejected(reason string)
	// Change reports a change to accounts, clients or keys.
	Change(ctx context.Context, e ChangeEvent)
}

// What a LoginEvent checked.
const (
	// CheckLogin is a password login at the token endpoint.
	CheckLogin = ""
	// CheckPasswordChange is the current password checked before a change.
	CheckPasswordChange = "password_change"
	// CheckClientSecret is a client's secret (reported when it is wrong).
	CheckClientSecret = "client_secret"
)

// LoginEvent is one check of a password or a client secret.
type LoginEvent struct {
	// Check says what was checked: CheckLogin, CheckPasswordChange or
	// CheckClientSecret.
	Check string
	// Outcome is success, bad_credentials, throttled, disabled,
	// overloaded, or rejected (any other refusal).
	Outcome string
	// Username and UserID name the account when it exists, and are empty
	// otherwise: a submitted name matching no account may be a password
	// typed in the wrong box, and is never reported.
	Username string
	UserID   string
	ClientID string
	ClientIP string
}

// ChangeEvent is one administrative change.
type ChangeEvent struct {
	// Action is user.created, user.updated, user.deleted, user.imported,
	// user.password_changed, user.logged_out_everywhere, user.registered,
	// user.email_verified, user.password_reset, client.created,
	// client.deleted or keys.rotated.
	Action string
	// Target is what changed: a username, a client id, a key id.
	Target string
	// Detail says more, without secrets (which fields changed, counts).
	Detail string
	// Actor says who made the change when no authenticated user did:
	// ActorStartup, ActorSelf (an account through a mailed link or a
	// sign-up), or empty for the command line.
	Actor string
}

// ActorStartup is the actor of changes a server makes as it starts.
const ActorStartup = "startup"

// NoEvents discards events.
type NoEvents struct{}

// Login discards e.
func (NoEvents) Login(context.Context, LoginEvent) {}

// TokenRejected discards reason.
func (NoEvents) TokenRejected(string) {}

// Change discards e.
func (NoEvents) Change(context.Context, ChangeEvent) {}
