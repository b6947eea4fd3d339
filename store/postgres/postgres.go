// Package postgres is passflow's store for many instances: PostgreSQL
// through pgx. Every instance on one database shares users, tokens, keys,
// the change feed and the login counters.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

var _ store.Store = (*Store)(nil)

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

// Advisory locks, held to the end of a transaction.
const (
	// lockChanges serialises appends to the change feed, so that seq
	// order is commit order and no follower ever skips a change.
	lockChanges int64 = 0x7066_0001
	// lockAdmins serialises changes that could remove the last admin.
	lockAdmins int64 = 0x7066_0002
	// lockKeys serialises the creation of the first signing key.
	lockKeys int64 = 0x7066_0003
	// lockCounterSpace is the first half of the two-key advisory locks
	// of login attempt counters; the second is a hash of the counter's key.
	lockCounterSpace int32 = 0x7066
)

// Open connects to the database at url (a postgres:// URL), with a pool of
// at most maxConns connections unless url sets pool_max_conns, and applies
// pending migrations, under a session advisory lock so that instances
// starting together do not race.
func Open(ctx context.Context, url string, maxConns int) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if maxConns > 0 && !strings.Contains(url, "pool_max_conns=") {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s@%s/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("postgres: apply migrations: %w", err)
	}
	return nil
}

// MaxConns is the most connections the store opens at once.
func (s *Store) MaxConns() int { return int(s.pool.Config().MaxConns) }

// Close closes every connection.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// unavailable reports a failure of the database itself (unreachable,
// restarting, out of connections, ...): the request may succeed later, so
// it is a 503 with Retry-After, never a bare 500.
func unavailable(op string, err error) error {
	return &fault.Error{
		Code:        fault.Unavailable,
		Description: "the database is unavailable; try again shortly",
		RetryAfter:  time.Second,
		Err:         fmt.Errorf("postgres: %s: %w", op, err),
	}
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func notFound(op string) error { return fmt.Errorf("postgres: %s: %w", op, fault.ErrNotFound) }

// tx runs fn in a transaction, committing when it returns nil. An error
// fn returns as it is; one of the database's own is unavailable.
func (s *Store) tx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return unavailable(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback(ctx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return unavailable(op, err)
	}
	return nil
}

func lockXact(ctx context.Context, tx pgx.Tx, key int64) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, key)
	return err
}

// arr keeps nil slices out of NOT NULL array columns.
func arr(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// optional stores a zero time as NULL.
func optional(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func zeroIfNil(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Users

const userColumns = `id, username, password_hash, scopes, disabled, token_version, created_at, updated_at`

func scanUser(row pgx.Row) (store.User, error) {
	var u store.User
	err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.Scopes, &u.Disabled, &u.TokenVersion, &u.CreatedAt, &u.UpdatedAt)
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return u, err
}

func insertUser(ctx context.Context, q queryer, u store.User) error {
	_, err := q.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		u.ID, u.Username, u.PasswordHash, arr(u.Scopes), u.Disabled, u.TokenVersion, u.CreatedAt, u.UpdatedAt)
	if isUniqueViolation(err) {
		return fmt.Errorf("postgres: create user: %w", fault.ErrConflict)
	}
	if err != nil {
		return unavailable("create user", err)
	}
	return nil
}

// CreateUser adds u.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	return insertUser(ctx, s.pool, u)
}

// CreateUsers adds users, all or none.
func (s *Store) CreateUsers(ctx context.Context, users []store.User) error {
	return s.tx(ctx, "create users", func(tx pgx.Tx) error {
		for i, u := range users {
			if err := insertUser(ctx, tx, u); err != nil {
				return &store.BatchError{Index: i, Err: err}
			}
		}
		return nil
	})
}

func userWhere(ctx context.Context, q queryer, where string, arg any) (store.User, error) {
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE `+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, notFound("user")
	}
	if err != nil {
		return u, unavailable("user", err)
	}
	return u, nil
}

// UserByUsername returns the user called username.
func (s *Store) UserByUsername(ctx context.Context, username string) (store.User, error) {
	return userWhere(ctx, s.pool, `username = $1`, username)
}

// UserByID returns the user whose ID is id.
func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	return userWhere(ctx, s.pool, `id = $1`, id)
}

// ListUsers returns up to limit users after the username after.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]store.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users WHERE username > $1 ORDER BY username LIMIT $2`, after, limit)
	if err != nil {
		return nil, unavailable("list users", err)
	}
	defer rows.Close()
	users := []store.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, unavailable("list users", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list users", err)
	}
	return users, nil
}

// otherAdminExists returns store.ErrLastAdmin unless an enabled user other
// than id holds users:admin. The caller holds lockAdmins.
func otherAdminExists(ctx context.Context, tx pgx.Tx, id string) error {
	var n int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE NOT disabled AND id <> $1 AND $2 = ANY(scopes)`,
		id, store.ScopeUsersAdmin).Scan(&n)
	if err != nil {
		return unavailable("count admins", err)
	}
	if n == 0 {
		return store.ErrLastAdmin
	}
	return nil
}

// UpdateUser applies change to a user in one transaction.
func (s *Store) UpdateUser(ctx context.Context, username string, change func(*store.User) error) (store.User, error) {
	var u store.User
	err := s.tx(ctx, "update user", func(tx pgx.Tx) error {
		// Two instances demoting two admins at once must not both see the
		// other as the remaining one.
		if err := lockXact(ctx, tx, lockAdmins); err != nil {
			return unavailable("update user", err)
		}
		var err error
		if u, err = userWhere(ctx, tx, `username = $1 FOR UPDATE`, username); err != nil {
			return err
		}
		before := u
		if err := change(&u); err != nil {
			return err
		}
		if u.ID != before.ID || u.Username != before.Username || !u.CreatedAt.Equal(before.CreatedAt) {
			return errors.New("postgres: update user: id, username and created_at are immutable")
		}
		if before.IsEnabledAdmin() && !u.IsEnabledAdmin() {
			if err := otherAdminExists(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE users SET password_hash = $1, scopes = $2, disabled = $3,
			token_version = $4, updated_at = $5 WHERE id = $6`,
			u.PasswordHash, arr(u.Scopes), u.Disabled, u.TokenVersion, u.UpdatedAt, u.ID)
		if err != nil {
			return unavailable("update user", err)
		}
		return appendChange(ctx, tx, store.ChangeUser, u.ID, time.Time{})
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// DeleteUser deletes a user and everything they own.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	return s.tx(ctx, "delete user", func(tx pgx.Tx) error {
		if err := lockXact(ctx, tx, lockAdmins); err != nil {
			return unavailable("delete user", err)
		}
		u, err := userWhere(ctx, tx, `username = $1 FOR UPDATE`, username)
		if err != nil {
			return err
		}
		if u.IsEnabledAdmin() {
			if err := otherAdminExists(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, u.ID); err != nil {
			return unavailable("delete user", err)
		}
		return appendChange(ctx, tx, store.ChangeUser, u.ID, time.Time{})
	})
}

// BootstrapAdmin makes sure an enabled user holds users:admin. The admins
// lock makes instances starting together take their turns.
func (s *Store) BootstrapAdmin(ctx context.Context, u store.User) (store.Bootstrap, error) {
	did := store.BootstrapNone
	err := s.tx(ctx, "bootstrap admin", func(tx pgx.Tx) error {
		if err := lockXact(ctx, tx, lockAdmins); err != nil {
			return unavailable("bootstrap admin", err)
		}
		var has bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE NOT disabled AND $1 = ANY(scopes))`,
			store.ScopeUsersAdmin).Scan(&has); err != nil {
			return unavailable("bootstrap admin", err)
		}
		if has {
			return nil
		}
		var id string
		err := tx.QueryRow(ctx, `UPDATE users SET disabled = false, scopes = $1, updated_at = $2 WHERE username = $3 RETURNING id`,
			arr(u.Scopes), u.UpdatedAt, u.Username).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			did = store.BootstrapCreated
			return insertUser(ctx, tx, u)
		}
		if err != nil {
			return unavailable("bootstrap admin", err)
		}
		did = store.BootstrapRestored
		return appendChange(ctx, tx, store.ChangeUser, id, time.Time{})
	})
	return did, err
}

// HasUserWithScope reports whether an enabled user holds scope.
func (s *Store) HasUserWithScope(ctx context.Context, scope string) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE NOT disabled AND $1 = ANY(scopes))`, scope).Scan(&ok); err != nil {
		return false, unavailable("users with scope", err)
	}
	return ok, nil
}

// Items

// ListItems returns a user's items ordered by key.
func (s *Store) ListItems(ctx context.Context, userID string) ([]store.Item, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, value, updated_at FROM items WHERE user_id = $1 ORDER BY key`, userID)
	if err != nil {
		return nil, unavailable("list items", err)
	}
	defer rows.Close()
	items := []store.Item{}
	for rows.Next() {
		var it store.Item
		if err := rows.Scan(&it.Key, &it.Value, &it.UpdatedAt); err != nil {
			return nil, unavailable("list items", err)
		}
		it.UpdatedAt = it.UpdatedAt.UTC()
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list items", err)
	}
	return items, nil
}

// PutItem creates or replaces an item.
func (s *Store) PutItem(ctx context.Context, userID, key, value string) (bool, error) {
	// xmax is 0 for a row this statement inserted, not for one it updated.
	var inserted bool
	err := s.pool.QueryRow(ctx, `INSERT INTO items (user_id, key, value, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
		RETURNING (xmax = 0)`, userID, key, value, time.Now()).Scan(&inserted)
	if err != nil {
		return false, unavailable("put item", err)
	}
	return inserted, nil
}

// DeleteItem deletes one of a user's items.
func (s *Store) DeleteItem(ctx context.Context, userID, key string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM items WHERE user_id = $1 AND key = $2`, userID, key)
	if err != nil {
		return unavailable("delete item", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("delete item")
	}
	return nil
}

// Keys

func signingKeys(ctx context.Context, q queryer) ([]store.SigningKey, error) {
	rows, err := q.Query(ctx, `SELECT id, algorithm, private_key, created_at, active_from, retired_at
		FROM signing_keys ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, unavailable("signing keys", err)
	}
	defer rows.Close()
	var keys []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var active, retired *time.Time
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.Private, &k.CreatedAt, &active, &retired); err != nil {
			return nil, unavailable("signing keys", err)
		}
		k.CreatedAt, k.ActiveFrom, k.RetiredAt = k.CreatedAt.UTC(), zeroIfNil(active), zeroIfNil(retired)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("signing keys", err)
	}
	return keys, nil
}

func insertSigningKey(ctx context.Context, tx pgx.Tx, k store.SigningKey) error {
	if _, err := tx.Exec(ctx, `INSERT INTO signing_keys (id, algorithm, private_key, created_at, active_from) VALUES ($1, $2, $3, $4, $5)`,
		k.ID, k.Algorithm, k.Private, k.CreatedAt, optional(k.ActiveFrom)); err != nil {
		return unavailable("add signing key", err)
	}
	return appendChange(ctx, tx, store.ChangeKeys, k.ID, time.Time{})
}

// SigningKeys returns every signing key, newest first.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	return signingKeys(ctx, s.pool)
}

// EnsureSigningKey stores k unless an unretired key exists.
func (s *Store) EnsureSigningKey(ctx context.Context, k store.SigningKey) ([]store.SigningKey, error) {
	var keys []store.SigningKey
	err := s.tx(ctx, "ensure signing key", func(tx pgx.Tx) error {
		if err := lockXact(ctx, tx, lockKeys); err != nil {
			return unavailable("ensure signing key", err)
		}
		var err error
		if keys, err = signingKeys(ctx, tx); err != nil {
			return err
		}
		for _, have := range keys {
			if have.RetiredAt.IsZero() {
				return nil
			}
		}
		keys = append([]store.SigningKey{k}, keys...)
		return insertSigningKey(ctx, tx, k)
	})
	return keys, err
}

// RotateSigningKey retires the unretired keys and stores k.
func (s *Store) RotateSigningKey(ctx context.Context, k store.SigningKey, keyCheck string) error {
	return s.tx(ctx, "rotate signing key", func(tx pgx.Tx) error {
		if err := lockXact(ctx, tx, lockKeys); err != nil {
			return unavailable("rotate signing key", err)
		}
		stored, err := claimSetting(ctx, tx, store.SettingKeyCheck, keyCheck)
		if err != nil {
			return err
		}
		if stored != keyCheck {
			return store.ErrKeyCheck
		}
		if _, err := tx.Exec(ctx, `UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL`, k.Active()); err != nil {
			return unavailable("retire signing keys", err)
		}
		return insertSigningKey(ctx, tx, k)
	})
}

// SealSigningKey replaces a private key with its sealed form.
func (s *Store) SealSigningKey(ctx context.Context, id string, old, sealed []byte) error {
	if _, err := s.pool.Exec(ctx, `UPDATE signing_keys SET private_key = $1 WHERE id = $2 AND private_key = $3`, sealed, id, old); err != nil {
		return unavailable("seal signing key", err)
	}
	return nil
}

func claimSetting(ctx context.Context, q queryer, name, value string) (string, error) {
	var stored string
	for attempt := 0; ; attempt++ {
		err := q.QueryRow(ctx, `WITH claimed AS (
				INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value)
			SELECT value FROM claimed UNION ALL SELECT value FROM settings WHERE name = $1 LIMIT 1`, name, value).Scan(&stored)
		// A claim racing with ours committed after this statement's
		// snapshot: it is neither inserted nor seen. The next one sees it.
		if errors.Is(err, pgx.ErrNoRows) && attempt == 0 {
			continue
		}
		if err != nil {
			return "", unavailable("claim setting", err)
		}
		return stored, nil
	}
}

// ClaimSetting sets a setting unless it is set and returns its value.
func (s *Store) ClaimSetting(ctx context.Context, name, value string) (string, error) {
	return claimSetting(ctx, s.pool, name, value)
}

// SetSetting sets a setting.
func (s *Store) SetSetting(ctx context.Context, name, value string) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value); err != nil {
		return unavailable("set setting", err)
	}
	return nil
}

// Clients

const clientColumns = `id, secret_hash, grant_types, scopes, created_at, deleted_at`

func scanClient(row pgx.Row) (store.Client, error) {
	var c store.Client
	var deleted *time.Time
	err := row.Scan(&c.ID, &c.SecretHash, &c.GrantTypes, &c.Scopes, &c.CreatedAt, &deleted)
	c.CreatedAt, c.DeletedAt = c.CreatedAt.UTC(), zeroIfNil(deleted)
	return c, err
}

// CreateClient registers a client.
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO clients (id, secret_hash, grant_types, scopes, created_at) VALUES ($1, $2, $3, $4, $5)`,
		c.ID, c.SecretHash, arr(c.GrantTypes), arr(c.Scopes), c.CreatedAt)
	if isUniqueViolation(err) {
		return fmt.Errorf("postgres: create client: %w", fault.ErrConflict)
	}
	if err != nil {
		return unavailable("create client", err)
	}
	return nil
}

// ClientByID returns a client, deleted or not.
func (s *Store) ClientByID(ctx context.Context, id string) (store.Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, notFound("client")
	}
	if err != nil {
		return c, unavailable("client", err)
	}
	return c, nil
}

// ListClients returns every client, deleted ones too.
func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+clientColumns+` FROM clients ORDER BY id`)
	if err != nil {
		return nil, unavailable("list clients", err)
	}
	defer rows.Close()
	clients := []store.Client{}
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, unavailable("list clients", err)
		}
		clients = append(clients, c)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list clients", err)
	}
	return clients, nil
}

// DeleteClient marks a client deleted and revokes what it was issued.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) error {
	return s.tx(ctx, "delete client", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE clients SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL`, now, id)
		if err != nil {
			return unavailable("delete client", err)
		}
		if tag.RowsAffected() == 0 {
			return notFound("delete client")
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_families SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL`, now, id); err != nil {
			return unavailable("delete client", err)
		}
		return appendChange(ctx, tx, store.ChangeClient, id, time.Time{})
	})
}

// Refresh tokens

const familyColumns = `f.id, f.user_id, f.client_id, f.scopes, f.token_version, f.created_at, f.expires_at, f.revoked_at`

func scanFamily(row pgx.Row, extra ...any) (store.RefreshFamily, error) {
	var f store.RefreshFamily
	var revoked *time.Time
	dest := append([]any{&f.ID, &f.UserID, &f.ClientID, &f.Scopes, &f.TokenVersion, &f.CreatedAt, &f.ExpiresAt, &revoked}, extra...)
	err := row.Scan(dest...)
	f.CreatedAt, f.ExpiresAt, f.RevokedAt = f.CreatedAt.UTC(), f.ExpiresAt.UTC(), zeroIfNil(revoked)
	return f, err
}

func insertRefreshToken(ctx context.Context, tx pgx.Tx, t store.RefreshToken, familyExpires time.Time) error {
	if t.ExpiresAt.After(familyExpires) {
		t.ExpiresAt = familyExpires
	}
	_, err := tx.Exec(ctx, `INSERT INTO refresh_tokens (hash, family_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)`,
		t.Hash, t.FamilyID, t.IssuedAt, t.ExpiresAt)
	if err != nil {
		return unavailable("store refresh token", err)
	}
	return nil
}

// CreateRefreshFamily stores a family and its first token.
func (s *Store) CreateRefreshFamily(ctx context.Context, f store.RefreshFamily, first store.RefreshToken) error {
	return s.tx(ctx, "create refresh family", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO refresh_families (id, user_id, client_id, scopes, token_version, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			f.ID, f.UserID, f.ClientID, arr(f.Scopes), f.TokenVersion, f.CreatedAt, f.ExpiresAt)
		if err != nil {
			return unavailable("create refresh family", err)
		}
		first.FamilyID = f.ID
		return insertRefreshToken(ctx, tx, first, f.ExpiresAt)
	})
}

// RotateRefreshToken redeems a refresh token and stores its successor. The
// token's row is locked first: of two instances racing for it, the second
// waits, then finds it used.
func (s *Store) RotateRefreshToken(ctx context.Context, hash []byte, next store.RefreshToken, now, accessUntil time.Time) (store.RefreshFamily, error) {
	var f store.RefreshFamily
	reused := false
	err := s.tx(ctx, "rotate refresh token", func(tx pgx.Tx) error {
		var used *time.Time
		var expires time.Time
		var err error
		f, err = scanFamily(tx.QueryRow(ctx, `SELECT `+familyColumns+`, t.used_at, t.expires_at
			FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = $1 FOR UPDATE OF t`, hash),
			&used, &expires)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return notFound("rotate refresh token")
		case err != nil:
			return unavailable("rotate refresh token", err)
		case !f.RevokedAt.IsZero():
			return store.ErrRefreshRevoked
		case used != nil:
			// Reuse: revoke the family, and commit that.
			reused = true
			return revokeFamily(ctx, tx, f.ID, now, accessUntil)
		case !now.Before(expires) || !now.Before(f.ExpiresAt):
			return store.ErrRefreshExpired
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2`, now, hash); err != nil {
			return unavailable("rotate refresh token", err)
		}
		next.FamilyID = f.ID
		return insertRefreshToken(ctx, tx, next, f.ExpiresAt)
	})
	if reused && err == nil {
		err = store.ErrRefreshReused
	}
	return f, err
}

// RefreshFamilyByToken returns the family of a refresh token.
func (s *Store) RefreshFamilyByToken(ctx context.Context, hash []byte) (store.RefreshFamily, error) {
	f, err := scanFamily(s.pool.QueryRow(ctx, `SELECT `+familyColumns+`
		FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return f, notFound("refresh family")
	}
	if err != nil {
		return f, unavailable("refresh family", err)
	}
	return f, nil
}

// RevokeRefreshFamily revokes a family.
func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string, now, accessUntil time.Time) error {
	return s.tx(ctx, "revoke refresh family", func(tx pgx.Tx) error {
		return revokeFamily(ctx, tx, familyID, now, accessUntil)
	})
}

func revokeFamily(ctx context.Context, tx pgx.Tx, familyID string, now, accessUntil time.Time) error {
	tag, err := tx.Exec(ctx, `UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, now, familyID)
	if err != nil {
		return unavailable("revoke refresh family", err)
	}
	if tag.RowsAffected() == 0 {
		return nil // unknown or revoked already
	}
	return appendChange(ctx, tx, store.ChangeFamily, familyID, accessUntil)
}

// PruneRefreshFamilies deletes families long expired or revoked.
func (s *Store) PruneRefreshFamilies(ctx context.Context, cutoff time.Time) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM refresh_families WHERE expires_at < $1 OR revoked_at < $1`, cutoff); err != nil {
		return unavailable("prune refresh families", err)
	}
	return nil
}

// Login failures

func scanCounters(rows pgx.Rows, err error) ([]store.LoginCounter, error) {
	if err != nil {
		return nil, unavailable("login failures", err)
	}
	defer rows.Close()
	var out []store.LoginCounter
	for rows.Next() {
		var c store.LoginCounter
		if err := rows.Scan(&c.Key, &c.Failures, &c.WindowStart, &c.LastFailure); err != nil {
			return nil, unavailable("login failures", err)
		}
		c.WindowStart, c.LastFailure = c.WindowStart.UTC(), c.LastFailure.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("login failures", err)
	}
	return out, nil
}

const counterColumns = `key, failures, window_start, last_failure`

// lockCounters takes a transaction-scoped advisory lock on each key, in
// sorted order so that two transactions never wait on each other in a
// cycle. The two-key form keeps these locks apart from the one-key locks
// above.
func lockCounters(ctx context.Context, tx pgx.Tx, keys []string) error {
	for _, k := range slices.Sorted(slices.Values(keys)) {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockCounterSpace, k); err != nil {
			return err
		}
	}
	return nil
}

// ReserveLoginAttempt counts an attempt for every key unless admit refuses
// it. The keys' advisory locks serialise reservations on every instance.
func (s *Store) ReserveLoginAttempt(ctx context.Context, keys []string, now time.Time, window time.Duration,
	admit func([]store.LoginCounter) error) error {
	return s.tx(ctx, "reserve login attempt", func(tx pgx.Tx) error {
		if err := lockCounters(ctx, tx, keys); err != nil {
			return unavailable("reserve login attempt", err)
		}
		counters, err := scanCounters(tx.Query(ctx, `SELECT `+counterColumns+` FROM login_failures WHERE key = ANY($1)`, keys))
		if err != nil {
			return err
		}
		if err := admit(counters); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO login_failures (key, failures, window_start, last_failure)
			SELECT k, 1, $2, $2 FROM unnest($1::text[]) AS k
			ON CONFLICT (key) DO UPDATE SET
				failures     = CASE WHEN login_failures.window_start <= $3 THEN 1 ELSE login_failures.failures + 1 END,
				window_start = CASE WHEN login_failures.window_start <= $3 THEN $2 ELSE login_failures.window_start END,
				last_failure = $2`, keys, now, now.Add(-window))
		if err != nil {
			return unavailable("reserve login attempt", err)
		}
		return nil
	})
}

// ReleaseLoginAttempt takes reserved attempts back and clears counters.
func (s *Store) ReleaseLoginAttempt(ctx context.Context, release, clear []string) error {
	return s.tx(ctx, "release login attempt", func(tx pgx.Tx) error {
		if err := lockCounters(ctx, tx, append(slices.Clone(release), clear...)); err != nil {
			return unavailable("release login attempt", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE login_failures SET failures = greatest(failures - 1, 0) WHERE key = ANY($1)`, release); err != nil {
			return unavailable("release login attempt", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM login_failures WHERE key = ANY($1)`, clear); err != nil {
			return unavailable("clear login attempts", err)
		}
		return nil
	})
}

// PruneLoginFailures deletes stale counters, passing over any a
// reservation holds: it must never keep a login waiting.
func (s *Store) PruneLoginFailures(ctx context.Context, cutoff time.Time) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM login_failures WHERE key IN
		(SELECT key FROM login_failures WHERE last_failure < $1 FOR UPDATE SKIP LOCKED)`, cutoff)
	if err != nil {
		return unavailable("prune login failures", err)
	}
	return nil
}

// The change feed

// appendChange adds to the change feed inside tx, as its last statement:
// the advisory lock it takes is held to commit, so a later seq is always
// committed later, and a follower that has read up to a seq has seen
// every change before it.
func appendChange(ctx context.Context, tx pgx.Tx, kind, subject string, expiresAt time.Time) error {
	if err := lockXact(ctx, tx, lockChanges); err != nil {
		return unavailable("append change", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO changes (kind, subject, expires_at, created_at) VALUES ($1, $2, $3, $4)`,
		kind, subject, optional(expiresAt), time.Now()); err != nil {
		return unavailable("append change", err)
	}
	return nil
}

func scanChanges(rows pgx.Rows, err error) ([]store.Change, error) {
	if err != nil {
		return nil, unavailable("changes", err)
	}
	defer rows.Close()
	var out []store.Change
	for rows.Next() {
		var c store.Change
		var exp *time.Time
		if err := rows.Scan(&c.Seq, &c.Kind, &c.Subject, &exp, &c.CreatedAt); err != nil {
			return nil, unavailable("changes", err)
		}
		c.ExpiresAt, c.CreatedAt = zeroIfNil(exp), c.CreatedAt.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("changes", err)
	}
	return out, nil
}

const changeColumns = `seq, kind, subject, expires_at, created_at`

// ChangesSince returns up to limit changes after seq.
func (s *Store) ChangesSince(ctx context.Context, seq int64, limit int) ([]store.Change, error) {
	return scanChanges(s.pool.Query(ctx, `SELECT `+changeColumns+` FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2`, seq, limit))
}

// LatestChange returns the Seq of the newest change ever appended. It
// waits for an append in progress to commit: reading the sequence while
// one holds a seq it has not yet committed would skip that change.
func (s *Store) LatestChange(ctx context.Context) (int64, error) {
	var seq int64
	err := s.tx(ctx, "latest change", func(tx pgx.Tx) error {
		if err := lockXact(ctx, tx, lockChanges); err != nil {
			return unavailable("latest change", err)
		}
		var called bool
		if err := tx.QueryRow(ctx, `SELECT last_value, is_called FROM changes_seq_seq`).Scan(&seq, &called); err != nil {
			return unavailable("latest change", err)
		}
		if !called {
			seq = 0
		}
		return nil
	})
	return seq, err
}

// RevokeAccessToken records a revoked access token, once.
func (s *Store) RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) (bool, error) {
	added := false
	err := s.tx(ctx, "revoke access token", func(tx pgx.Tx) error {
		if err := lockXact(ctx, tx, lockChanges); err != nil {
			return unavailable("revoke access token", err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO changes (kind, subject, expires_at, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (subject) WHERE kind = 'access_token' DO NOTHING`, store.ChangeAccessToken, jti, expiresAt, time.Now())
		if err != nil {
			return unavailable("revoke access token", err)
		}
		added = tag.RowsAffected() == 1
		return nil
	})
	return added, err
}

// Revoked returns revoked access tokens and families still concerning
// live access tokens.
func (s *Store) Revoked(ctx context.Context, now time.Time) ([]store.Change, error) {
	return scanChanges(s.pool.Query(ctx, `SELECT `+changeColumns+` FROM changes
		WHERE kind IN ($1, $2) AND expires_at > $3 ORDER BY seq`, store.ChangeAccessToken, store.ChangeFamily, now))
}

// PruneChanges drops changes nobody needs any more.
func (s *Store) PruneChanges(ctx context.Context, cutoff time.Time) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM changes WHERE
		CASE WHEN expires_at IS NULL THEN created_at < $1 ELSE expires_at < $1 END`, cutoff)
	if err != nil {
		return unavailable("prune changes", err)
	}
	return nil
}
