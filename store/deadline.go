package store

import (
	"context"
	"errors"
	"time"

	"github.com/passflow/passflow/fault"
)

// WithDeadline returns s with a deadline on every call: a database that
// stops answering, its connection open but silent, fails each call after d
// with fault.ErrUnavailable (a 503) instead of holding the request for as
// long as the outage lasts. A call that ends because its
// caller went away keeps its own error.
func WithDeadline(s Store, d time.Duration) Store {
	return &deadlined{s: s, d: d}
}

type deadlined struct {
	s Store
	d time.Duration
}

var _ Store = (*deadlined)(nil)

// call runs fn with the deadline, and names a missed deadline for what it
// is.
func call[T any](t *deadlined, ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	dctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	v, err := fn(dctx)
	if err != nil && ctx.Err() == nil && errors.Is(dctx.Err(), context.DeadlineExceeded) {
		err = &fault.Error{
			Code:        fault.Unavailable,
			Description: "the database did not answer in time; try again shortly",
			Err:         err,
		}
	}
	return v, err
}

func do(t *deadlined, ctx context.Context, fn func(context.Context) error) error {
	_, err := call(t, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

func (t *deadlined) CreateClient(ctx context.Context, c Client) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.CreateClient(ctx, c) })
}

func (t *deadlined) ClientByID(ctx context.Context, id string) (Client, error) {
	return call(t, ctx, func(ctx context.Context) (Client, error) { return t.s.ClientByID(ctx, id) })
}

func (t *deadlined) ListClients(ctx context.Context) ([]Client, error) {
	return call(t, ctx, t.s.ListClients)
}

func (t *deadlined) DeleteClient(ctx context.Context, id string, now time.Time) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.DeleteClient(ctx, id, now) })
}

func (t *deadlined) CreateUser(ctx context.Context, u User) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.CreateUser(ctx, u) })
}

func (t *deadlined) CreateUsers(ctx context.Context, users []User) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.CreateUsers(ctx, users) })
}

func (t *deadlined) UserByUsername(ctx context.Context, username string) (User, error) {
	return call(t, ctx, func(ctx context.Context) (User, error) { return t.s.UserByUsername(ctx, username) })
}

func (t *deadlined) UserByID(ctx context.Context, id string) (User, error) {
	return call(t, ctx, func(ctx context.Context) (User, error) { return t.s.UserByID(ctx, id) })
}

func (t *deadlined) ListUsers(ctx context.Context, after string, limit int) ([]User, error) {
	return call(t, ctx, func(ctx context.Context) ([]User, error) { return t.s.ListUsers(ctx, after, limit) })
}

func (t *deadlined) UpdateUser(ctx context.Context, username string, change func(*User) error) (User, error) {
	return call(t, ctx, func(ctx context.Context) (User, error) { return t.s.UpdateUser(ctx, username, change) })
}

func (t *deadlined) DeleteUser(ctx context.Context, username string) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.DeleteUser(ctx, username) })
}

func (t *deadlined) HasUserWithScope(ctx context.Context, scope string) (bool, error) {
	return call(t, ctx, func(ctx context.Context) (bool, error) { return t.s.HasUserWithScope(ctx, scope) })
}

func (t *deadlined) BootstrapAdmin(ctx context.Context, u User) (Bootstrap, error) {
	return call(t, ctx, func(ctx context.Context) (Bootstrap, error) { return t.s.BootstrapAdmin(ctx, u) })
}

func (t *deadlined) ListItems(ctx context.Context, userID string) ([]Item, error) {
	return call(t, ctx, func(ctx context.Context) ([]Item, error) { return t.s.ListItems(ctx, userID) })
}

func (t *deadlined) PutItem(ctx context.Context, userID, key, value string) (bool, error) {
	return call(t, ctx, func(ctx context.Context) (bool, error) { return t.s.PutItem(ctx, userID, key, value) })
}

func (t *deadlined) DeleteItem(ctx context.Context, userID, key string) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.DeleteItem(ctx, userID, key) })
}

func (t *deadlined) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	return call(t, ctx, t.s.SigningKeys)
}

func (t *deadlined) EnsureSigningKey(ctx context.Context, k SigningKey) ([]SigningKey, error) {
	return call(t, ctx, func(ctx context.Context) ([]SigningKey, error) { return t.s.EnsureSigningKey(ctx, k) })
}

func (t *deadlined) RotateSigningKey(ctx context.Context, k SigningKey, keyCheck string) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.RotateSigningKey(ctx, k, keyCheck) })
}

func (t *deadlined) SealSigningKey(ctx context.Context, id string, old, sealed []byte) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.SealSigningKey(ctx, id, old, sealed) })
}

func (t *deadlined) ClaimSetting(ctx context.Context, name, value string) (string, error) {
	return call(t, ctx, func(ctx context.Context) (string, error) { return t.s.ClaimSetting(ctx, name, value) })
}

func (t *deadlined) SetSetting(ctx context.Context, name, value string) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.SetSetting(ctx, name, value) })
}

func (t *deadlined) CreateRefreshFamily(ctx context.Context, f RefreshFamily, first RefreshToken) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.CreateRefreshFamily(ctx, f, first) })
}

func (t *deadlined) RotateRefreshToken(ctx context.Context, hash []byte, next RefreshToken, now, accessUntil time.Time) (RefreshFamily, error) {
	return call(t, ctx, func(ctx context.Context) (RefreshFamily, error) {
		return t.s.RotateRefreshToken(ctx, hash, next, now, accessUntil)
	})
}

func (t *deadlined) RefreshFamilyByToken(ctx context.Context, hash []byte) (RefreshFamily, error) {
	return call(t, ctx, func(ctx context.Context) (RefreshFamily, error) { return t.s.RefreshFamilyByToken(ctx, hash) })
}

func (t *deadlined) RevokeRefreshFamily(ctx context.Context, familyID string, now, accessUntil time.Time) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.RevokeRefreshFamily(ctx, familyID, now, accessUntil) })
}

func (t *deadlined) PruneRefreshFamilies(ctx context.Context, cutoff time.Time) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.PruneRefreshFamilies(ctx, cutoff) })
}

func (t *deadlined) ChangesSince(ctx context.Context, seq int64, limit int) ([]Change, error) {
	return call(t, ctx, func(ctx context.Context) ([]Change, error) { return t.s.ChangesSince(ctx, seq, limit) })
}

func (t *deadlined) LatestChange(ctx context.Context) (int64, error) {
	return call(t, ctx, t.s.LatestChange)
}

func (t *deadlined) RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) (bool, error) {
	return call(t, ctx, func(ctx context.Context) (bool, error) { return t.s.RevokeAccessToken(ctx, jti, expiresAt) })
}

func (t *deadlined) Revoked(ctx context.Context, now time.Time) ([]Change, error) {
	return call(t, ctx, func(ctx context.Context) ([]Change, error) { return t.s.Revoked(ctx, now) })
}

func (t *deadlined) PruneChanges(ctx context.Context, cutoff time.Time) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.PruneChanges(ctx, cutoff) })
}

func (t *deadlined) ReserveLoginAttempt(ctx context.Context, keys []string, now time.Time, window time.Duration,
	admit func([]LoginCounter) error) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.ReserveLoginAttempt(ctx, keys, now, window, admit) })
}

func (t *deadlined) ReleaseLoginAttempt(ctx context.Context, release, clear []string) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.ReleaseLoginAttempt(ctx, release, clear) })
}

func (t *deadlined) PruneLoginFailures(ctx context.Context, cutoff time.Time) error {
	return do(t, ctx, func(ctx context.Context) error { return t.s.PruneLoginFailures(ctx, cutoff) })
}

func (t *deadlined) Ping(ctx context.Context) error {
	return do(t, ctx, t.s.Ping)
}

// Close closes the store it wraps.
func (t *deadlined) Close() error { return t.s.Close() }
