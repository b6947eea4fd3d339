package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// MaxFamilyLifetime bounds a refresh family: no refresh token outlives 90
// days from the password login it descends from.
const MaxFamilyLifetime = 90 * 24 * time.Hour

// Grants carries out the token endpoint's grants and revocation.
type Grants struct {
	logger   *slog.Logger
	st       grantStore
	hasher   Hasher
	tokens   *Tokens
	clients  *Clients
	feed     *Feed
	throttle *Throttle
	events   Events
	cfg      GrantConfig
	now      func() time.Time
	// dummyHash is verified against when the username is unknown, so an
	// unknown name costs the same hash work as a wrong password.
	dummyHash string
}

type grantStore interface {
	store.Users
	store.RefreshTokens
	store.Changes
}

// GrantConfig says which grants the token endpoint offers, and how.
type GrantConfig struct {
	// RefreshTTL is how long a refresh token lives from its own issue.
	RefreshTTL time.Duration
	// PasswordGrant switches the password grant on.
	PasswordGrant bool
	// Scopes are the scopes a token may be asked for.
	Scopes Scopes
	// ReuseInterval is how long after a rotation the rotated refresh token
	// may be redeemed again by its client, for a new token in the same
	// family (browser tabs refreshing at once); 0: reuse is theft at once.
	ReuseInterval time.Duration
	// RequireVerifiedEmail refuses the password grant to an account whose
	// email is not verified (an account without one, which an
	// administrator made, may log in).
	RequireVerifiedEmail bool
}

// NewGrants returns the grants service. It hashes a random password once,
// to have a dummy hash with the current parameters.
func NewGrants(
	cfg GrantConfig,
	logger *slog.Logger,
	st grantStore,
	hasher Hasher,
	tokens *Tokens,
	clients *Clients,
	feed *Feed,
	throttle *Throttle,
	events Events,
	now func() time.Time,
) (*Grants, error) {
	pw, err := GeneratePassword()
	if err != nil {
		return nil, err
	}
	dummy, err := hasher.Hash(context.Background(), pw)
	if err != nil {
		return nil, fmt.Errorf("auth: dummy hash: %w", err)
	}
	return &Grants{
		logger: logger, st: st, hasher: hasher, tokens: tokens, clients: clients, feed: feed,
		throttle: throttle, events: events, cfg: cfg, now: now, dummyHash: dummy,
	}, nil
}

// GrantTypes lists the grant types the token endpoint accepts.
func (g *Grants) GrantTypes() []string {
	if g.cfg.PasswordGrant {
		return GrantTypes()
	}
	return []string{GrantRefreshToken}
}

// PasswordRequest is an RFC 6749 §4.3.2 access token request. An empty
// string means the parameter was omitted.
type PasswordRequest struct {
	Username string
	Password string
	Scope    string
	Client   ClientCredentials
	// ClientIP is the address the request came from, for throttling.
	ClientIP string
}

// Grant is what a successful grant returns.
type Grant struct {
	AccessToken  string
	ExpiresIn    time.Duration
	Scopes       []string
	RefreshToken string
}

var (
	errBadCredentials = &fault.Error{Code: fault.InvalidGrant, Description: "wrong username or password", Reason: "bad_credentials"}
	// errDisabled answers a disabled account exactly as a wrong password
	// does; only the audit log tells them apart.
	errDisabled = &fault.Error{Code: fault.InvalidGrant, Description: errBadCredentials.Description, Reason: "disabled"}
)

// Password carries out the resource owner password credentials grant.
// A wrong username and a wrong password are the same invalid_grant error,
// reached through the same hash work. Attempts are throttled before any
// hashing; every outcome is reported to the events.
func (g *Grants) Password(ctx context.Context, req PasswordRequest) (grant Grant, err error) {
	var u store.User // the account, once known to exist
	defer func() {
		outcome := "success"
		if err != nil {
			if outcome = fault.As(err).Reason; outcome == "" {
				outcome = "rejected"
			}
		}
		g.events.Login(ctx, LoginEvent{Outcome: outcome, Username: u.Username, UserID: u.ID, ClientID: req.Client.ID, ClientIP: req.ClientIP})
	}()
	switch {
	case !g.cfg.PasswordGrant:
		return Grant{}, fault.New(fault.UnsupportedGrantType, "the password grant is switched off")
	case req.Username == "":
		return Grant{}, fault.New(fault.InvalidRequest, "missing parameter: username")
	case req.Password == "":
		return Grant{}, fault.New(fault.InvalidRequest, "missing parameter: password")
	}
	client, requested, err := g.preamble(ctx, GrantPassword, req.Client, req.ClientIP, req.Scope)
	if err != nil {
		return Grant{}, err
	}

	u, err = g.checkPassword(ctx, req.Username, req.Password, req.ClientIP)
	if err != nil {
		return Grant{}, err
	}
	if g.cfg.RequireVerifiedEmail && u.Email != "" && !u.EmailVerified {
		return Grant{}, errUnverified
	}

	scopes, err := narrow(client.Limit(u.Scopes), requested, "the account or client may not be granted a requested scope")
	if err != nil {
		return Grant{}, err
	}
	if !client.Allows(GrantRefreshToken) {
		return g.issue(u, store.RefreshFamily{ClientID: client.ID}, scopes, "")
	}

	now := g.now()
	fam := store.RefreshFamily{
		ID: uuid.NewString(), UserID: u.ID, ClientID: client.ID, Scopes: scopes,
		TokenVersion: u.TokenVersion, CreatedAt: now, ExpiresAt: now.Add(MaxFamilyLifetime),
	}
	refresh, hash, err := newRefreshToken()
	if err != nil {
		return Grant{}, err
	}
	first := store.RefreshToken{Hash: hash, IssuedAt: now, ExpiresAt: now.Add(g.cfg.RefreshTTL)}
	if err := g.st.CreateRefreshFamily(ctx, fam, first); err != nil {
		return Grant{}, err
	}
	return g.issue(u, fam, scopes, refresh)
}

// errUnverified refuses a login, its password right, until the account's
// email is verified.
var errUnverified = &fault.Error{
	Code:        fault.InvalidGrant,
	Description: "the account's email address is not verified yet: follow the link in the mail sent to it",
	Reason:      "unverified",
}

// preamble is what every grant does first: authenticate the client, check
// that it may use grant, and read the scopes requested.
func (g *Grants) preamble(ctx context.Context, grant string, creds ClientCredentials, ip, scope string) (Client, []string, error) {
	client, err := g.clients.Authenticate(ctx, creds, ip)
	if err != nil {
		return Client{}, nil, err
	}
	if !client.Allows(grant) {
		return Client{}, nil, fault.New(fault.UnauthorizedClient, "this client may not use the "+grant+" grant")
	}
	requested, err := g.cfg.Scopes.Parse(scope, fault.InvalidScope)
	if err != nil {
		return Client{}, nil, err
	}
	return client, requested, nil
}

// checkPassword returns the account whose username and password these
// are, or errBadCredentials (with the account, when it exists). The attempt
// is counted against the throttle's limits before any hashing; a good one
// gives its count back.
func (g *Grants) checkPassword(ctx context.Context, username, password, ip string) (store.User, error) {
	name, err := NormalizeUsername("", username)
	if err != nil {
		// A name that cannot be normalised cannot exist; count it as sent.
		name = username
	}
	// Beyond the hashing queue, refuse before counting the attempt (a
	// store write), alike for every account: a flood must not slow the
	// logins under way.
	if full, ok := g.hasher.(interface{ Full() bool }); ok && full.Full() {
		return store.User{}, ErrOverloaded
	}
	attempt, err := g.throttle.Reserve(ctx, AccountPassword(name), ip)
	if err != nil {
		return store.User{}, err
	}
	u, err := g.st.UserByUsername(ctx, name)
	hash := u.PasswordHash
	switch {
	case errors.Is(err, fault.ErrNotFound):
		// The same hash work as a wrong password, and the same failure
		// when hashing is overloaded: nothing tells the two apart.
		hash = g.dummyHash
	case err != nil:
		attempt.Abandon(ctx)
		return store.User{}, err
	}
	ok, rehash, err := g.hasher.Verify(ctx, hash, password)
	if err != nil {
		attempt.Abandon(ctx)
		return store.User{}, fmt.Errorf("auth: verify password: %w", err)
	}
	switch {
	case !ok || u.ID == "":
		return u, errBadCredentials
	case u.Disabled:
		// The same answer as a wrong password, and the attempt stays
		// counted: a disabled account's password proves nothing.
		return u, errDisabled
	}
	if err := attempt.Succeeded(ctx); err != nil {
		return store.User{}, err
	}
	if rehash {
		g.rehash(ctx, u, password)
	}
	return u, nil
}

// rehash replaces a hash weaker than the current parameters (bcrypt from
// an import, older argon2id) now that the password is known. It is the same
// password, so the user's tokens live on. A failure only delays it.
func (g *Grants) rehash(ctx context.Context, u store.User, password string) {
	hash, err := g.hasher.Hash(ctx, password)
	if err == nil {
		_, err = g.st.UpdateUser(ctx, u.Username, func(cur *store.User) error {
			if cur.PasswordHash == u.PasswordHash {
				cur.PasswordHash, cur.UpdatedAt = hash, g.now().UTC()
			}
			return nil
		})
	}
	if err != nil {
		g.logger.Warn("rehashing a password failed; will try at the next login", "subject", u.ID, "error", err)
		return
	}
	g.logger.Info("rehashed a password to the current parameters", "subject", u.ID)
}

// narrow returns requested if it is a subset of allowed, all of allowed if
// requested is empty, and invalid_scope otherwise.
func narrow(allowed, requested []string, desc string) ([]string, error) {
	if len(requested) == 0 {
		return allowed, nil
	}
	for _, s := range requested {
		if !slices.Contains(allowed, s) {
			return nil, fault.New(fault.InvalidScope, desc)
		}
	}
	return requested, nil
}

// issue signs an access token of family fam for u with scopes, and returns
// it with the refresh token.
func (g *Grants) issue(u store.User, fam store.RefreshFamily, scopes []string, refresh string) (Grant, error) {
	at, err := g.tokens.Issue(Subject{
		UserID:    u.ID,
		Username:  u.Username,
		ClientID:  fam.ClientID,
		Scopes:    slices.Clone(scopes),
		Version:   u.TokenVersion,
		SessionID: fam.ID,
	})
	if err != nil {
		return Grant{}, err
	}
	return Grant{AccessToken: at.Token, ExpiresIn: at.ExpiresIn, Scopes: scopes, RefreshToken: refresh}, nil
}

// RefreshRequest is an RFC 6749 §6 refresh request.
type RefreshRequest struct {
	RefreshToken string
	Scope        string
	Client       ClientCredentials
	// ClientIP is the address the request came from, for throttling.
	ClientIP string
}

var errBadRefresh = fault.New(fault.InvalidGrant, "refresh token is invalid")

// Refresh carries out the refresh_token grant (RFC 6749 §6, RFC 9700
// §4.14.2): the token is rotated, and a token presented a second time
// revokes its whole family. scope may only narrow the new access token;
// the new refresh token keeps the family's scopes.
func (g *Grants) Refresh(ctx context.Context, req RefreshRequest) (Grant, error) {
	if req.RefreshToken == "" {
		return Grant{}, fault.New(fault.InvalidRequest, "missing parameter: refresh_token")
	}
	client, requested, err := g.preamble(ctx, GrantRefreshToken, req.Client, req.ClientIP, req.Scope)
	if err != nil {
		return Grant{}, err
	}
	hash := hashRefresh(req.RefreshToken)
	fam, err := g.st.RefreshFamilyByToken(ctx, hash)
	if errors.Is(err, fault.ErrNotFound) {
		return Grant{}, errBadRefresh
	}
	if err != nil {
		return Grant{}, err
	}
	if fam.ClientID != client.ID {
		return Grant{}, fault.New(fault.InvalidGrant, "refresh token was issued to another client")
	}
	u, err := g.st.UserByID(ctx, fam.UserID)
	if errors.Is(err, fault.ErrNotFound) {
		return Grant{}, errBadRefresh
	}
	if err != nil {
		return Grant{}, err
	}
	switch {
	case u.Disabled:
		return Grant{}, fault.New(fault.InvalidGrant, "the account is disabled")
	case fam.TokenVersion != u.TokenVersion:
		return Grant{}, fault.New(fault.InvalidGrant, "refresh token has been revoked")
	}
	scopes, err := narrow(client.Limit(fam.Scopes), requested, "scope may only narrow what was granted at login")
	if err != nil {
		return Grant{}, err
	}

	refresh, next, err := newRefreshToken()
	if err != nil {
		return Grant{}, err
	}
	now := g.now()
	_, err = g.st.RotateRefreshToken(ctx, hash,
		store.RefreshToken{Hash: next, IssuedAt: now, ExpiresAt: now.Add(g.cfg.RefreshTTL)}, now, g.tokens.DeadAfter(now), g.cfg.ReuseInterval)
	switch {
	case errors.Is(err, store.ErrRefreshReused):
		g.logger.Warn("refresh token reused: its family is revoked", "family", fam.ID, "subject", fam.UserID)
		// End the family's access tokens here before answering.
		g.feed.Applied(ctx, store.Change{Kind: store.ChangeFamily, Subject: fam.ID, ExpiresAt: g.tokens.DeadAfter(now)})
		return Grant{}, fault.New(fault.InvalidGrant, "refresh token was already used; every token of its login is now revoked")
	case errors.Is(err, store.ErrRefreshRevoked):
		return Grant{}, fault.New(fault.InvalidGrant, "refresh token has been revoked")
	case errors.Is(err, store.ErrRefreshExpired):
		return Grant{}, fault.New(fault.InvalidGrant, "refresh token has expired")
	case errors.Is(err, fault.ErrNotFound):
		return Grant{}, errBadRefresh
	case err != nil:
		return Grant{}, err
	}
	return g.issue(u, fam, scopes, refresh)
}

// RevokeRequest is an RFC 7009 §2.1 revocation request.
type RevokeRequest struct {
	Token  string
	Hint   string
	Client ClientCredentials
	// ClientIP is the address the request came from, for throttling.
	ClientIP string
}

// Revoke carries out RFC 7009 revocation. Revoking a refresh token revokes
// its family and the access tokens issued from it; revoking an access
// token denies it until it expires. An unknown or invalid token is no
// error. Tokens of public clients may be revoked by anyone holding them;
// those of a registered confidential client only by that client.
func (g *Grants) Revoke(ctx context.Context, req RevokeRequest) error {
	if req.Token == "" {
		return fault.New(fault.InvalidRequest, "missing parameter: token")
	}
	client, err := g.clients.Authenticate(ctx, req.Client, req.ClientIP)
	if err != nil {
		return err
	}
	// A JWT has two dots; an opaque refresh token none. The hint only
	// says where to look first.
	looksAccess := strings.Count(req.Token, ".") == 2
	tries := []func(context.Context, Client, string) (bool, error){g.revokeRefresh, g.revokeAccess}
	if looksAccess && req.Hint != "refresh_token" || req.Hint == "access_token" {
		slices.Reverse(tries)
	}
	for _, try := range tries {
		done, err := try(ctx, client, req.Token)
		if err != nil || done {
			return err
		}
	}
	return nil
}

// mayRevoke refuses the revocation of a confidential client's token by
// anyone but that client.
func (g *Grants) mayRevoke(ctx context.Context, caller Client, owner string) error {
	if caller.ID == owner {
		return nil
	}
	confidential, err := g.clients.Confidential(ctx, owner)
	if err != nil {
		return err
	}
	if confidential {
		return fault.New(fault.UnauthorizedClient, "the token was issued to another client")
	}
	return nil
}

func (g *Grants) revokeRefresh(ctx context.Context, caller Client, token string) (bool, error) {
	fam, err := g.st.RefreshFamilyByToken(ctx, hashRefresh(token))
	if errors.Is(err, fault.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := g.mayRevoke(ctx, caller, fam.ClientID); err != nil {
		return false, err
	}
	now := g.now()
	if err := g.st.RevokeRefreshFamily(ctx, fam.ID, now, g.tokens.DeadAfter(now)); err != nil {
		return false, err
	}
	g.feed.Applied(ctx, store.Change{Kind: store.ChangeFamily, Subject: fam.ID, ExpiresAt: g.tokens.DeadAfter(now)})
	return true, nil
}

func (g *Grants) revokeAccess(ctx context.Context, caller Client, token string) (bool, error) {
	p, err := g.tokens.parse(ctx, token)
	if err != nil {
		// Invalid or expired: nothing left to revoke.
		return false, nil
	}
	if err := g.mayRevoke(ctx, caller, p.ClientID); err != nil {
		return false, err
	}
	until := g.tokens.expiry(p)
	added, err := g.st.RevokeAccessToken(ctx, p.TokenID, until)
	if err != nil {
		return false, err
	}
	if added {
		g.feed.Applied(ctx, store.Change{Kind: store.ChangeAccessToken, Subject: p.TokenID, ExpiresAt: until})
	}
	return true, nil
}

// newRefreshToken returns a fresh opaque refresh token (256 random bits)
// and the hash it is stored as.
func newRefreshToken() (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	return token, hashRefresh(token), nil
}

// hashRefresh is how refresh tokens are stored: a fast hash suffices for a
// secret with 256 bits of entropy.
func hashRefresh(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}
