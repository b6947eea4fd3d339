package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/google/uuid"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// Accounts manages users: the one place their rules live, for the HTTP API
// and the command line alike.
type Accounts struct {
	users  store.Users
	hasher Hasher
	now    func() time.Time
}

// NewAccounts returns the account service.
func NewAccounts(
	users store.Users,
	hasher Hasher,
	now func() time.Time,
) *Accounts {
	return &Accounts{users: users, hasher: hasher, now: now}
}

// NewAccount describes an account to create.
type NewAccount struct {
	Username string
	Password string
	Scopes   []string
}

// Create adds an account: the username is normalised, the password checked
// and hashed, the scopes checked. A taken username is fault.ErrConflict.
func (a *Accounts) Create(ctx context.Context, n NewAccount) (store.User, error) {
	name, err := NormalizeUsername("/username", n.Username)
	if err != nil {
		return store.User{}, err
	}
	if err := CheckPassword("/password", n.Password); err != nil {
		return store.User{}, err
	}
	scopes, err := CheckScopes(n.Scopes, fault.InvalidRequest)
	if err != nil {
		if fe := fault.As(err); fe.Field == "" {
			fe.Field = "/scopes"
		}
		return store.User{}, err
	}
	hash, err := a.hasher.Hash(n.Password)
	if err != nil {
		return store.User{}, err
	}
	now := a.now().UTC()
	u := store.User{
		ID:           uuid.NewString(),
		Username:     name,
		PasswordHash: hash,
		Scopes:       scopes,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if err := a.users.CreateUser(ctx, u); err != nil {
		if fault.As(err).Code == fault.Conflict {
			return store.User{}, &fault.Error{Code: fault.Conflict, Description: "username is taken", Field: "/username", Err: err}
		}
		return store.User{}, err
	}
	return u, nil
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
