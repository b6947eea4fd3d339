package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// Grants carries out the token endpoint's grants.
type Grants struct {
	logger  *slog.Logger
	users   store.Users
	hasher  Hasher
	tokens  *Tokens
	clients *Clients
	now     func() time.Time
	// dummyHash is verified against when the username is unknown, so an
	// unknown name costs the same hash work as a wrong password.
	dummyHash string
}

// NewGrants returns the grants service. It hashes a random password once,
// to have a dummy hash with the current parameters.
func NewGrants(
	logger *slog.Logger,
	users store.Users,
	hasher Hasher,
	tokens *Tokens,
	clients *Clients,
	now func() time.Time,
) (*Grants, error) {
	pw, err := GeneratePassword()
	if err != nil {
		return nil, err
	}
	dummy, err := hasher.Hash(pw)
	if err != nil {
		return nil, fmt.Errorf("auth: dummy hash: %w", err)
	}
	return &Grants{logger: logger, users: users, hasher: hasher, tokens: tokens, clients: clients, now: now, dummyHash: dummy}, nil
}

// PasswordRequest is an RFC 6749 §4.3.2 access token request. An empty
// string means the parameter was omitted.
type PasswordRequest struct {
	Username string
	Password string
	Scope    string
	Client   ClientCredentials
}

// Grant is what a successful grant returns.
type Grant struct {
	AccessToken string
	ExpiresIn   time.Duration
	Scopes      []string
}

var errBadCredentials = fault.New(fault.InvalidGrant, "wrong username or password")

// Password carries out the resource owner password credentials grant.
// A wrong username and a wrong password are the same invalid_grant error,
// reached through the same hash work.
func (g *Grants) Password(ctx context.Context, req PasswordRequest) (Grant, error) {
	switch {
	case req.Username == "":
		return Grant{}, fault.New(fault.InvalidRequest, "missing parameter: username")
	case req.Password == "":
		return Grant{}, fault.New(fault.InvalidRequest, "missing parameter: password")
	}
	client, err := g.clients.Authenticate(ctx, req.Client)
	if err != nil {
		return Grant{}, err
	}
	requested, err := ParseScopes(req.Scope, fault.InvalidScope)
	if err != nil {
		return Grant{}, err
	}

	u, err := g.lookup(ctx, req.Username)
	if errors.Is(err, fault.ErrNotFound) {
		_, _, _ = g.hasher.Verify(g.dummyHash, req.Password)
		return Grant{}, errBadCredentials
	}
	if err != nil {
		return Grant{}, err
	}
	ok, _, err := g.hasher.Verify(u.PasswordHash, req.Password)
	if err != nil {
		return Grant{}, fmt.Errorf("auth: verify password of user %s: %w", u.ID, err)
	}
	if !ok {
		return Grant{}, errBadCredentials
	}
	if u.Disabled {
		return Grant{}, fault.New(fault.InvalidGrant, "the account is disabled")
	}

	scopes := u.Scopes
	if len(requested) > 0 {
		for _, s := range requested {
			if !u.HasScope(s) {
				return Grant{}, fault.New(fault.InvalidScope, "the account may not be granted a requested scope")
			}
		}
		scopes = requested
	}
	at, err := g.tokens.Issue(Subject{
		UserID:   u.ID,
		Username: u.Username,
		ClientID: client.ID,
		Scopes:   slices.Clone(scopes),
		Version:  u.TokenVersion,
	})
	if err != nil {
		return Grant{}, err
	}
	return Grant{AccessToken: at.Token, ExpiresIn: at.ExpiresIn, Scopes: scopes}, nil
}

// lookup finds a user by a submitted username. A name that cannot be
// normalised cannot exist, so it is not found.
func (g *Grants) lookup(ctx context.Context, username string) (store.User, error) {
	name, err := NormalizeUsername("/username", username)
	if err != nil {
		return store.User{}, fault.ErrNotFound
	}
	return g.users.UserByUsername(ctx, name)
}
