package store

import (
	"context"
	"time"
)

// AroundFunc runs call, one call of a Store method (op names it), and
// returns its error; it may change the context call gets, or the error.
type AroundFunc func(ctx context.Context, op string, call func(context.Context) error) error

// Around returns s with fn around every call of its methods: a deadline
// (WithDeadline), a count or a trace.
func Around(s Store, fn AroundFunc) Store {
	return &around{s: s, fn: fn}
}

type around struct {
	s  Store
	fn AroundFunc
}

var _ Store = (*around)(nil)

func call[T any](t *around, ctx context.Context, op string, fn func(context.Context) (T, error)) (T, error) {
	var v T
	err := t.fn(ctx, op, func(ctx context.Context) error {
		var err error
		v, err = fn(ctx)
		return err
	})
	return v, err
}

func do(t *around, ctx context.Context, op string, fn func(context.Context) error) error {
	return t.fn(ctx, op, fn)
}

func (t *around) CreateClient(ctx context.Context, c Client) error {
	return do(t, ctx, "CreateClient", func(ctx context.Context) error { return t.s.CreateClient(ctx, c) })
}

func (t *around) ClientByID(ctx context.Context, id string) (Client, error) {
	return call(t, ctx, "ClientByID", func(ctx context.Context) (Client, error) { return t.s.ClientByID(ctx, id) })
}

func (t *around) ListClients(ctx context.Context) ([]Client, error) {
	return call(t, ctx, "ListClients", t.s.ListClients)
}

func (t *around) DeleteClient(ctx context.Context, id string, now time.Time) error {
	return do(t, ctx, "DeleteClient", func(ctx context.Context) error { return t.s.DeleteClient(ctx, id, now) })
}

func (t *around) CreateUser(ctx context.Context, u User, mails ...Mail) error {
	return do(t, ctx, "CreateUser", func(ctx context.Context) error { return t.s.CreateUser(ctx, u, mails...) })
}

func (t *around) CreateUsers(ctx context.Context, users []User) error {
	return do(t, ctx, "CreateUsers", func(ctx context.Context) error { return t.s.CreateUsers(ctx, users) })
}

func (t *around) UserByUsername(ctx context.Context, username string) (User, error) {
	return call(t, ctx, "UserByUsername", func(ctx context.Context) (User, error) { return t.s.UserByUsername(ctx, username) })
}

func (t *around) UserByID(ctx context.Context, id string) (User, error) {
	return call(t, ctx, "UserByID", func(ctx context.Context) (User, error) { return t.s.UserByID(ctx, id) })
}

func (t *around) ListUsers(ctx context.Context, after string, limit int) ([]User, error) {
	return call(t, ctx, "ListUsers", func(ctx context.Context) ([]User, error) { return t.s.ListUsers(ctx, after, limit) })
}

func (t *around) UpdateUser(ctx context.Context, username string, change func(*User) error) (User, error) {
	return call(t, ctx, "UpdateUser", func(ctx context.Context) (User, error) { return t.s.UpdateUser(ctx, username, change) })
}

func (t *around) DeleteUser(ctx context.Context, username string) error {
	return do(t, ctx, "DeleteUser", func(ctx context.Context) error { return t.s.DeleteUser(ctx, username) })
}

func (t *around) HasUserWithScope(ctx context.Context, scope string) (bool, error) {
	return call(t, ctx, "HasUserWithScope", func(ctx context.Context) (bool, error) { return t.s.HasUserWithScope(ctx, scope) })
}

func (t *around) BootstrapAdmin(ctx context.Context, u User) (Bootstrap, error) {
	return call(t, ctx, "BootstrapAdmin", func(ctx context.Context) (Bootstrap, error) { return t.s.BootstrapAdmin(ctx, u) })
}

func (t *around) ListItems(ctx context.Context, userID string) ([]Item, error) {
	return call(t, ctx, "ListItems", func(ctx context.Context) ([]Item, error) { return t.s.ListItems(ctx, userID) })
}

func (t *around) PutItem(ctx context.Context, userID, key, value string) (bool, error) {
	return call(t, ctx, "PutItem", func(ctx context.Context) (bool, error) { return t.s.PutItem(ctx, userID, key, value) })
}

func (t *around) DeleteItem(ctx context.Context, userID, key string) error {
	return do(t, ctx, "DeleteItem", func(ctx context.Context) error { return t.s.DeleteItem(ctx, userID, key) })
}

func (t *around) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	return call(t, ctx, "SigningKeys", t.s.SigningKeys)
}

func (t *around) EnsureSigningKey(ctx context.Context, k SigningKey) ([]SigningKey, error) {
	return call(t, ctx, "EnsureSigningKey", func(ctx context.Context) ([]SigningKey, error) { return t.s.EnsureSigningKey(ctx, k) })
}

func (t *around) RotateSigningKey(ctx context.Context, k SigningKey, keyCheck string) error {
	return do(t, ctx, "RotateSigningKey", func(ctx context.Context) error { return t.s.RotateSigningKey(ctx, k, keyCheck) })
}

func (t *around) SealSigningKey(ctx context.Context, id string, old, sealed []byte) error {
	return do(t, ctx, "SealSigningKey", func(ctx context.Context) error { return t.s.SealSigningKey(ctx, id, old, sealed) })
}

func (t *around) ClaimSetting(ctx context.Context, name, value string) (string, error) {
	return call(t, ctx, "ClaimSetting", func(ctx context.Context) (string, error) { return t.s.ClaimSetting(ctx, name, value) })
}

func (t *around) SetSetting(ctx context.Context, name, value string) error {
	return do(t, ctx, "SetSetting", func(ctx context.Context) error { return t.s.SetSetting(ctx, name, value) })
}

func (t *around) CreateRefreshFamily(ctx context.Context, f RefreshFamily, first RefreshToken) error {
	return do(t, ctx, "CreateRefreshFamily", func(ctx context.Context) error { return t.s.CreateRefreshFamily(ctx, f, first) })
}

func (t *around) RotateRefreshToken(ctx context.Context, hash []byte, next RefreshToken, now, accessUntil time.Time, reuseGrace time.Duration) (RefreshFamily, error) {
	return call(t, ctx, "RotateRefreshToken", func(ctx context.Context) (RefreshFamily, error) {
		return t.s.RotateRefreshToken(ctx, hash, next, now, accessUntil, reuseGrace)
	})
}

func (t *around) RefreshFamilyByToken(ctx context.Context, hash []byte) (RefreshFamily, error) {
	return call(t, ctx, "RefreshFamilyByToken", func(ctx context.Context) (RefreshFamily, error) { return t.s.RefreshFamilyByToken(ctx, hash) })
}

func (t *around) RevokeRefreshFamily(ctx context.Context, familyID string, now, accessUntil time.Time) error {
	return do(t, ctx, "RevokeRefreshFamily", func(ctx context.Context) error { return t.s.RevokeRefreshFamily(ctx, familyID, now, accessUntil) })
}

func (t *around) PruneRefreshFamilies(ctx context.Context, cutoff time.Time) error {
	return do(t, ctx, "PruneRefreshFamilies", func(ctx context.Context) error { return t.s.PruneRefreshFamilies(ctx, cutoff) })
}

func (t *around) ChangesSince(ctx context.Context, seq int64, limit int) ([]Change, error) {
	return call(t, ctx, "ChangesSince", func(ctx context.Context) ([]Change, error) { return t.s.ChangesSince(ctx, seq, limit) })
}

func (t *around) LatestChange(ctx context.Context) (int64, error) {
	return call(t, ctx, "LatestChange", t.s.LatestChange)
}

func (t *around) RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) (bool, error) {
	return call(t, ctx, "RevokeAccessToken", func(ctx context.Context) (bool, error) { return t.s.RevokeAccessToken(ctx, jti, expiresAt) })
}

func (t *around) Revoked(ctx context.Context, now time.Time) ([]Change, error) {
	return call(t, ctx, "Revoked", func(ctx context.Context) ([]Change, error) { return t.s.Revoked(ctx, now) })
}

func (t *around) PruneChanges(ctx context.Context, cutoff time.Time) error {
	return do(t, ctx, "PruneChanges", func(ctx context.Context) error { return t.s.PruneChanges(ctx, cutoff) })
}

func (t *around) ReserveLoginAttempt(ctx context.Context, keys []string, now time.Time, window time.Duration,
	admit func([]LoginCounter) error) error {
	return do(t, ctx, "ReserveLoginAttempt", func(ctx context.Context) error { return t.s.ReserveLoginAttempt(ctx, keys, now, window, admit) })
}

func (t *around) ReleaseLoginAttempt(ctx context.Context, release, clear []string) error {
	return do(t, ctx, "ReleaseLoginAttempt", func(ctx context.Context) error { return t.s.ReleaseLoginAttempt(ctx, release, clear) })
}

func (t *around) PruneLoginFailures(ctx context.Context, cutoff time.Time) error {
	return do(t, ctx, "PruneLoginFailures", func(ctx context.Context) error { return t.s.PruneLoginFailures(ctx, cutoff) })
}

func (t *around) Ping(ctx context.Context) error {
	return do(t, ctx, "Ping", t.s.Ping)
}

// Close closes the store it wraps.
func (t *around) Close() error { return t.s.Close() }

func (t *around) UserByEmail(ctx context.Context, key string) (User, error) {
	return call(t, ctx, "UserByEmail", func(ctx context.Context) (User, error) { return t.s.UserByEmail(ctx, key) })
}

func (t *around) QueueMail(ctx context.Context, m Mail) error {
	return do(t, ctx, "QueueMail", func(ctx context.Context) error { return t.s.QueueMail(ctx, m) })
}

func (t *around) ClaimMail(ctx context.Context, now, until time.Time) (Mail, bool, error) {
	var found bool
	m, err := call(t, ctx, "ClaimMail", func(ctx context.Context) (Mail, error) {
		var (
			m   Mail
			err error
		)
		m, found, err = t.s.ClaimMail(ctx, now, until)
		return m, err
	})
	return m, found, err
}

func (t *around) MailDone(ctx context.Context, id int64, outcome string, at time.Time) error {
	return do(t, ctx, "MailDone", func(ctx context.Context) error { return t.s.MailDone(ctx, id, outcome, at) })
}

func (t *around) MailRetry(ctx context.Context, id int64, next time.Time, reason string) error {
	return do(t, ctx, "MailRetry", func(ctx context.Context) error { return t.s.MailRetry(ctx, id, next, reason) })
}

func (t *around) PendingMail(ctx context.Context) (int, error) {
	return call(t, ctx, "PendingMail", t.s.PendingMail)
}

func (t *around) CreateEmailToken(ctx context.Context, tok EmailToken) error {
	return do(t, ctx, "CreateEmailToken", func(ctx context.Context) error { return t.s.CreateEmailToken(ctx, tok) })
}

func (t *around) UseEmailToken(ctx context.Context, hash, purpose string, now time.Time, change func(EmailToken, *User) error) (User, error) {
	return call(t, ctx, "UseEmailToken", func(ctx context.Context) (User, error) {
		return t.s.UseEmailToken(ctx, hash, purpose, now, change)
	})
}

func (t *around) PruneMail(ctx context.Context, doneBefore, now time.Time) error {
	return do(t, ctx, "PruneMail", func(ctx context.Context) error { return t.s.PruneMail(ctx, doneBefore, now) })
}

func (t *around) EmailToken(ctx context.Context, hash, purpose string, now time.Time) (EmailToken, error) {
	return call(t, ctx, "EmailToken", func(ctx context.Context) (EmailToken, error) {
		return t.s.EmailToken(ctx, hash, purpose, now)
	})
}

func (t *around) LastEmailToken(ctx context.Context, userID, purpose string) (time.Time, error) {
	return call(t, ctx, "LastEmailToken", func(ctx context.Context) (time.Time, error) {
		return t.s.LastEmailToken(ctx, userID, purpose)
	})
}
