// Package sqlite is passflow's embedded store: one SQLite file, pure Go
// (modernc.org/sqlite), shared safely by a server and CLI commands.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

var _ store.Store = (*Store)(nil)

// Store is a store.Store on one SQLite database file.
type Store struct {
	db *sql.DB
	// listItems is prepared once: it runs on every GET /my_data.
	listItems *sql.Stmt
	// writes queues this process's writers, so they take SQLite's one
	// write lock in turn instead of polling for it in SQLite's busy
	// handler, which sleeps up to 100ms between tries. Other processes
	// still wait through busy_timeout.
	writes sync.Mutex
}

// Open opens (creating if need be) the database at path and applies pending
// migrations. A new database file is readable by its owner only, and so
// are its -wal and -shm files, which SQLite creates with the database
// file's mode: they hold password hashes and signing keys.
//
// WAL lets readers run beside a writer; busy_timeout makes a writer wait for
// another process's write instead of failing; _txlock=immediate takes the
// write lock when a transaction begins, so two read-then-write transactions
// never deadlock into "database is locked".
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: database path %q: must be non-empty and contain no '?' or '#'", path)
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// busy_timeout first: switching a new file to WAL takes a lock that a
	// second process opening it at once must wait for, not fail on.
	dsn := path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if s.listItems, err = db.PrepareContext(ctx, `SELECT key, value, updated_at FROM items WHERE user_id = ? ORDER BY key`); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	return s, nil
}

// createPrivate creates an empty file at path, readable and writable by
// its owner only, unless a file is there already.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// ReadableByOthers lists the database's files (path and its -wal and -shm
// files) that users other than the owner may read.
func ReadableByOthers(path string) []string {
	var loose []string
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		if info, err := os.Stat(name); err == nil && info.Mode().Perm()&0o077 != 0 {
			loose = append(loose, name)
		}
	}
	return loose
}

func (s *Store) migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.db, fsys)
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	// Two processes opening a new file together (a server and a CLI) can
	// both find a migration pending; the loser's transaction fails and rolls
	// back whole, since SQLite's DDL is transactional. Trying again then
	// finds the winner's work recorded and has nothing left to do.
	for attempt := 1; ; attempt++ {
		_, err = p.Up(ctx)
		if err == nil {
			return nil
		}
		if attempt == 10 || ctx.Err() != nil {
			return fmt.Errorf("sqlite: apply migrations: %w", err)
		}
		select {
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

var _ store.Backuper = (*Store)(nil)

// Backup writes a consistent copy of the database to a new file at path
// with VACUUM INTO, which reads one snapshot while others keep writing. The
// copy is readable by its owner only, like the database.
func (s *Store) Backup(ctx context.Context, path string) error {
	// Create it first, so that it has its mode from the start: VACUUM INTO
	// fills an empty file, but would create a missing one world-readable.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("sqlite: backup: %s already exists", path)
	}
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	f.Close()
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("sqlite: backup to %s: %w", path, err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.listItems.Close()
	return s.db.Close()
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// unavailable reports a failure of the database itself (locked past the
// busy timeout, closed, out of disk, ...): the request may succeed later,
// so it is a 503 with Retry-After, never a bare 500.
func unavailable(op string, err error) error {
	return &fault.Error{
		Code:        fault.Unavailable,
		Description: "the database is unavailable; try again shortly",
		RetryAfter:  time.Second,
		Err:         fmt.Errorf("sqlite: %s: %w", op, err),
	}
}

func micros(t time.Time) int64 { return t.UTC().UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) &&
		(se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// exec runs one writing statement.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s.writes.Lock()
	defer s.writes.Unlock()
	return s.db.ExecContext(ctx, query, args...)
}

// tx runs fn in a transaction, committing when it returns nil. Every
// transaction writes (BEGIN IMMEDIATE takes the write lock).
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	s.writes.Lock()
	defer s.writes.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return unavailable("begin", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return unavailable("commit", err)
	}
	return nil
}

const userColumns = `id, username, password_hash, scopes, disabled, token_version, created_at, updated_at`

type scanner interface{ Scan(...any) error }

func scanUser(row scanner) (store.User, error) {
	var u store.User
	var scopes string
	var created, updated int64
	err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &scopes, &u.Disabled, &u.TokenVersion, &created, &updated)
	if err != nil {
		return store.User{}, err
	}
	u.Scopes = strings.Fields(scopes)
	u.CreatedAt, u.UpdatedAt = fromMicros(created), fromMicros(updated)
	return u, nil
}

// CreateUser adds u.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return insertUser(ctx, tx, u) })
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func insertUser(ctx context.Context, db execer, u store.User) error {
	_, err := db.ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, u.PasswordHash, strings.Join(u.Scopes, " "), u.Disabled, u.TokenVersion,
		micros(u.CreatedAt), micros(u.UpdatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("sqlite: create user: %w", fault.ErrConflict)
	}
	if err != nil {
		return unavailable("create user", err)
	}
	return nil
}

// CreateUsers adds users, all or none.
func (s *Store) CreateUsers(ctx context.Context, users []store.User) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for i, u := range users {
			if err := insertUser(ctx, tx, u); err != nil {
				return &store.BatchError{Index: i, Err: err}
			}
		}
		return nil
	})
}

func (s *Store) userWhere(ctx context.Context, q queryer, where string, arg any) (store.User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("sqlite: user: %w", fault.ErrNotFound)
	}
	if err != nil {
		return store.User{}, unavailable("user", err)
	}
	return u, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// UserByUsername returns the user called username.
func (s *Store) UserByUsername(ctx context.Context, username string) (store.User, error) {
	return s.userWhere(ctx, s.db, `username = ?`, username)
}

// UserByID returns the user whose ID is id.
func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	return s.userWhere(ctx, s.db, `id = ?`, id)
}

// ListUsers returns up to limit users after the username after.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]store.User, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+userColumns+` FROM users WHERE username > ? ORDER BY username LIMIT ?`, after, limit)
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

// UpdateUser applies change to a user in one transaction.
func (s *Store) UpdateUser(ctx context.Context, username string, change func(*store.User) error) (store.User, error) {
	var u store.User
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if u, err = s.userWhere(ctx, tx, `username = ?`, username); err != nil {
			return err
		}
		before := u
		if err := change(&u); err != nil {
			return err
		}
		if u.ID != before.ID || u.Username != before.Username || !u.CreatedAt.Equal(before.CreatedAt) {
			return errors.New("sqlite: update user: id, username and created_at are immutable")
		}
		if before.IsEnabledAdmin() && !u.IsEnabledAdmin() {
			if err := otherAdminExists(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, scopes = ?, disabled = ?,
			token_version = ?, updated_at = ? WHERE id = ?`,
			u.PasswordHash, strings.Join(u.Scopes, " "), u.Disabled, u.TokenVersion, micros(u.UpdatedAt), u.ID)
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

// DeleteUser deletes a user and their items.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		u, err := s.userWhere(ctx, tx, `username = ?`, username)
		if err != nil {
			return err
		}
		if u.IsEnabledAdmin() {
			if err := otherAdminExists(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, u.ID); err != nil {
			return unavailable("delete user", err)
		}
		return appendChange(ctx, tx, store.ChangeUser, u.ID, time.Time{})
	})
}

// hasScopeSQL matches a row whose space-delimited scopes hold the argument.
const hasScopeSQL = `(' ' || scopes || ' ') LIKE ('% ' || ? || ' %')`

// otherAdminExists returns store.ErrLastAdmin unless an enabled user other
// than id holds users:admin.
func otherAdminExists(ctx context.Context, tx *sql.Tx, id string) error {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE disabled = 0 AND id != ? AND `+hasScopeSQL,
		id, store.ScopeUsersAdmin).Scan(&n)
	if err != nil {
		return unavailable("count admins", err)
	}
	if n == 0 {
		return store.ErrLastAdmin
	}
	return nil
}

// BootstrapAdmin makes sure an enabled user holds users:admin.
func (s *Store) BootstrapAdmin(ctx context.Context, u store.User) (store.Bootstrap, error) {
	did := store.BootstrapNone
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE disabled = 0 AND `+hasScopeSQL,
			store.ScopeUsersAdmin).Scan(&n); err != nil {
			return unavailable("bootstrap admin", err)
		}
		if n > 0 {
			return nil
		}
		res, err := tx.ExecContext(ctx, `UPDATE users SET disabled = 0, scopes = ?, updated_at = ? WHERE username = ?`,
			strings.Join(u.Scopes, " "), micros(u.UpdatedAt), u.Username)
		if err != nil {
			return unavailable("bootstrap admin", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			did = store.BootstrapCreated
			return insertUser(ctx, tx, u)
		}
		did = store.BootstrapRestored
		existing, err := s.userWhere(ctx, tx, `username = ?`, u.Username)
		if err != nil {
			return err
		}
		return appendChange(ctx, tx, store.ChangeUser, existing.ID, time.Time{})
	})
	return did, err
}

// HasUserWithScope reports whether an enabled user holds scope.
func (s *Store) HasUserWithScope(ctx context.Context, scope string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE disabled = 0 AND `+hasScopeSQL, scope).Scan(&n)
	if err != nil {
		return false, unavailable("users with scope", err)
	}
	return n > 0, nil
}

// ListItems returns a user's items ordered by key.
func (s *Store) ListItems(ctx context.Context, userID string) ([]store.Item, error) {
	rows, err := s.listItems.QueryContext(ctx, userID)
	if err != nil {
		return nil, unavailable("list items", err)
	}
	defer rows.Close()
	items := []store.Item{}
	for rows.Next() {
		var it store.Item
		var updated int64
		if err := rows.Scan(&it.Key, &it.Value, &updated); err != nil {
			return nil, unavailable("list items", err)
		}
		it.UpdatedAt = fromMicros(updated)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list items", err)
	}
	return items, nil
}

// PutItem creates or replaces an item.
func (s *Store) PutItem(ctx context.Context, userID, key, value string) (bool, error) {
	var existed bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM items WHERE user_id = ? AND key = ?`, userID, key).Scan(&n); err != nil {
			return unavailable("put item", err)
		}
		existed = n > 0
		_, err := tx.ExecContext(ctx, `INSERT INTO items (user_id, key, value, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			userID, key, value, micros(time.Now()))
		if err != nil {
			return unavailable("put item", err)
		}
		return nil
	})
	return !existed, err
}

// DeleteItem deletes one of a user's items.
func (s *Store) DeleteItem(ctx context.Context, userID, key string) error {
	res, err := s.exec(ctx, `DELETE FROM items WHERE user_id = ? AND key = ?`, userID, key)
	if err != nil {
		return unavailable("delete item", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return unavailable("delete item", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: delete item: %w", fault.ErrNotFound)
	}
	return nil
}

// SigningKeys returns every signing key, newest first.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	return signingKeys(ctx, s.db)
}

type rowser interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func signingKeys(ctx context.Context, q rowser) ([]store.SigningKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, algorithm, private_key, created_at, active_from, retired_at
		FROM signing_keys ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, unavailable("signing keys", err)
	}
	defer rows.Close()
	var keys []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var created int64
		var active, retired sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.Private, &created, &active, &retired); err != nil {
			return nil, unavailable("signing keys", err)
		}
		k.CreatedAt = fromMicros(created)
		if active.Valid {
			k.ActiveFrom = fromMicros(active.Int64)
		}
		if retired.Valid {
			k.RetiredAt = fromMicros(retired.Int64)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("signing keys", err)
	}
	return keys, nil
}

func insertSigningKey(ctx context.Context, tx *sql.Tx, k store.SigningKey) error {
	var active any
	if !k.ActiveFrom.IsZero() {
		active = micros(k.ActiveFrom)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (id, algorithm, private_key, created_at, active_from) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.Algorithm, k.Private, micros(k.CreatedAt), active)
	if err != nil {
		return unavailable("add signing key", err)
	}
	return appendChange(ctx, tx, store.ChangeKeys, k.ID, time.Time{})
}

// EnsureSigningKey stores k unless an unretired key exists and returns every key.
func (s *Store) EnsureSigningKey(ctx context.Context, k store.SigningKey) ([]store.SigningKey, error) {
	var keys []store.SigningKey
	err := s.tx(ctx, func(tx *sql.Tx) error {
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
	return s.tx(ctx, func(tx *sql.Tx) error {
		stored, err := claimSetting(ctx, tx, store.SettingKeyCheck, keyCheck)
		if err != nil {
			return err
		}
		if stored != keyCheck {
			return store.ErrKeyCheck
		}
		if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL`, micros(k.Active())); err != nil {
			return unavailable("retire signing keys", err)
		}
		return insertSigningKey(ctx, tx, k)
	})
}

// SealSigningKey replaces a private key with its sealed form.
func (s *Store) SealSigningKey(ctx context.Context, id string, old, sealed []byte) error {
	if _, err := s.exec(ctx, `UPDATE signing_keys SET private_key = ? WHERE id = ? AND private_key = ?`, sealed, id, old); err != nil {
		return unavailable("seal signing key", err)
	}
	return nil
}

func claimSetting(ctx context.Context, tx *sql.Tx, name, value string) (string, error) {
	if _, err := tx.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
		return "", unavailable("claim setting", err)
	}
	var stored string
	if err := tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&stored); err != nil {
		return "", unavailable("claim setting", err)
	}
	return stored, nil
}

// ClaimSetting sets a setting unless it is set and returns its value.
func (s *Store) ClaimSetting(ctx context.Context, name, value string) (string, error) {
	var stored string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		stored, err = claimSetting(ctx, tx, name, value)
		return err
	})
	return stored, err
}

// SetSetting sets a setting.
func (s *Store) SetSetting(ctx context.Context, name, value string) error {
	if _, err := s.exec(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value); err != nil {
		return unavailable("set setting", err)
	}
	return nil
}

const clientColumns = `id, secret_hash, grant_types, scopes, created_at, deleted_at`

func scanClient(row scanner) (store.Client, error) {
	var c store.Client
	var grants, scopes string
	var created int64
	var deleted sql.NullInt64
	if err := row.Scan(&c.ID, &c.SecretHash, &grants, &scopes, &created, &deleted); err != nil {
		return c, err
	}
	c.GrantTypes, c.Scopes, c.CreatedAt = strings.Fields(grants), strings.Fields(scopes), fromMicros(created)
	if deleted.Valid {
		c.DeletedAt = fromMicros(deleted.Int64)
	}
	return c, nil
}

// CreateClient registers a client.
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	_, err := s.exec(ctx, `INSERT INTO clients (id, secret_hash, grant_types, scopes, created_at) VALUES (?, ?, ?, ?, ?)`,
		c.ID, c.SecretHash, strings.Join(c.GrantTypes, " "), strings.Join(c.Scopes, " "), micros(c.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("sqlite: create client: %w", fault.ErrConflict)
	}
	if err != nil {
		return unavailable("create client", err)
	}
	return nil
}

// ClientByID returns a client, deleted or not.
func (s *Store) ClientByID(ctx context.Context, id string) (store.Client, error) {
	c, err := scanClient(s.db.QueryRowContext(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("sqlite: client: %w", fault.ErrNotFound)
	}
	if err != nil {
		return c, unavailable("client", err)
	}
	return c, nil
}

// ListClients returns every client, deleted ones too.
func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+clientColumns+` FROM clients ORDER BY id`)
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
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE clients SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL`, micros(now), id)
		if err != nil {
			return unavailable("delete client", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return unavailable("delete client", err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: delete client: %w", fault.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE refresh_families SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL`,
			micros(now), id); err != nil {
			return unavailable("delete client", err)
		}
		return appendChange(ctx, tx, store.ChangeClient, id, time.Time{})
	})
}

func scanCounters(rows *sql.Rows, err error) ([]store.LoginCounter, error) {
	if err != nil {
		return nil, unavailable("login failures", err)
	}
	defer rows.Close()
	var out []store.LoginCounter
	for rows.Next() {
		var c store.LoginCounter
		var start, last int64
		if err := rows.Scan(&c.Key, &c.Failures, &start, &last); err != nil {
			return nil, unavailable("login failures", err)
		}
		c.WindowStart, c.LastFailure = fromMicros(start), fromMicros(last)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("login failures", err)
	}
	return out, nil
}

func keyArgs(keys []string) (string, []any) {
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(keys)), ", "), args
}

const counterColumns = `key, failures, window_start, last_failure`

// ReserveLoginAttempt counts an attempt for every key unless admit refuses
// it. SQLite's one write lock, taken when the transaction begins, makes
// every reservation see the ones before it.
func (s *Store) ReserveLoginAttempt(ctx context.Context, keys []string, now time.Time, window time.Duration,
	admit func([]store.LoginCounter) error) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		marks, args := keyArgs(keys)
		counters, err := scanCounters(tx.QueryContext(ctx,
			`SELECT `+counterColumns+` FROM login_failures WHERE key IN (`+marks+`)`, args...))
		if err != nil {
			return err
		}
		if err := admit(counters); err != nil {
			return err
		}
		for _, k := range keys {
			_, err := tx.ExecContext(ctx, `INSERT INTO login_failures (key, failures, window_start, last_failure)
				VALUES (?1, 1, ?2, ?2)
				ON CONFLICT (key) DO UPDATE SET
					failures     = CASE WHEN window_start <= ?3 THEN 1 ELSE failures + 1 END,
					window_start = CASE WHEN window_start <= ?3 THEN ?2 ELSE window_start END,
					last_failure = ?2`,
				k, micros(now), micros(now.Add(-window)))
			if err != nil {
				return unavailable("reserve login attempt", err)
			}
		}
		return nil
	})
}

// ReleaseLoginAttempt takes reserved attempts back and clears counters.
func (s *Store) ReleaseLoginAttempt(ctx context.Context, release, clear []string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, k := range release {
			if _, err := tx.ExecContext(ctx, `UPDATE login_failures SET failures = max(failures - 1, 0) WHERE key = ?`, k); err != nil {
				return unavailable("release login attempt", err)
			}
		}
		for _, k := range clear {
			if _, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE key = ?`, k); err != nil {
				return unavailable("clear login attempts", err)
			}
		}
		return nil
	})
}

// PruneLoginFailures deletes stale counters.
func (s *Store) PruneLoginFailures(ctx context.Context, cutoff time.Time) error {
	if _, err := s.exec(ctx, `DELETE FROM login_failures WHERE last_failure < ?`, micros(cutoff)); err != nil {
		return unavailable("prune login failures", err)
	}
	return nil
}

// appendChange adds to the change feed inside tx. Writers hold SQLite's
// one write lock, so Seq order is commit order.
func appendChange(ctx context.Context, tx *sql.Tx, kind, subject string, expiresAt time.Time) error {
	var exp any
	if !expiresAt.IsZero() {
		exp = micros(expiresAt)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO changes (kind, subject, expires_at, created_at) VALUES (?, ?, ?, ?)`,
		kind, subject, exp, micros(time.Now()))
	if err != nil {
		return unavailable("append change", err)
	}
	return nil
}

func scanChanges(rows *sql.Rows, err error) ([]store.Change, error) {
	if err != nil {
		return nil, unavailable("changes", err)
	}
	defer rows.Close()
	var out []store.Change
	for rows.Next() {
		var c store.Change
		var exp sql.NullInt64
		var created int64
		if err := rows.Scan(&c.Seq, &c.Kind, &c.Subject, &exp, &created); err != nil {
			return nil, unavailable("changes", err)
		}
		if exp.Valid {
			c.ExpiresAt = fromMicros(exp.Int64)
		}
		c.CreatedAt = fromMicros(created)
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
	return scanChanges(s.db.QueryContext(ctx,
		`SELECT `+changeColumns+` FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`, seq, limit))
}

// LatestChange returns the Seq of the newest change ever appended.
func (s *Store) LatestChange(ctx context.Context) (int64, error) {
	var seq int64
	// AUTOINCREMENT keeps the highest Seq ever used in sqlite_sequence, so
	// the feed never moves back, even once pruned empty.
	if err := s.db.QueryRowContext(ctx,
		`SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)`).Scan(&seq); err != nil {
		return 0, unavailable("latest change", err)
	}
	return seq, nil
}

// RevokeAccessToken records a revoked access token, once.
func (s *Store) RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) (bool, error) {
	res, err := s.exec(ctx, `INSERT INTO changes (kind, subject, expires_at, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (subject) WHERE kind = 'access_token' DO NOTHING`,
		store.ChangeAccessToken, jti, micros(expiresAt), micros(time.Now()))
	if err != nil {
		return false, unavailable("revoke access token", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, unavailable("revoke access token", err)
	}
	return n == 1, nil
}

// Revoked returns revoked access tokens and families still concerning
// live access tokens.
func (s *Store) Revoked(ctx context.Context, now time.Time) ([]store.Change, error) {
	return scanChanges(s.db.QueryContext(ctx,
		`SELECT `+changeColumns+` FROM changes WHERE kind IN (?, ?) AND expires_at > ? ORDER BY seq`,
		store.ChangeAccessToken, store.ChangeFamily, micros(now)))
}

// PruneChanges drops changes nobody needs any more.
func (s *Store) PruneChanges(ctx context.Context, cutoff time.Time) error {
	_, err := s.exec(ctx, `DELETE FROM changes WHERE
		CASE WHEN expires_at IS NULL THEN created_at < ? ELSE expires_at < ? END`,
		micros(cutoff), micros(cutoff))
	if err != nil {
		return unavailable("prune changes", err)
	}
	return nil
}

const familyColumns = `f.id, f.user_id, f.client_id, f.scopes, f.token_version, f.created_at, f.expires_at, f.revoked_at`

func scanFamily(row scanner, extra ...any) (store.RefreshFamily, error) {
	var f store.RefreshFamily
	var scopes string
	var created, expires int64
	var revoked sql.NullInt64
	dest := append([]any{&f.ID, &f.UserID, &f.ClientID, &scopes, &f.TokenVersion, &created, &expires, &revoked}, extra...)
	if err := row.Scan(dest...); err != nil {
		return f, err
	}
	f.Scopes = strings.Fields(scopes)
	f.CreatedAt, f.ExpiresAt = fromMicros(created), fromMicros(expires)
	if revoked.Valid {
		f.RevokedAt = fromMicros(revoked.Int64)
	}
	return f, nil
}

// CreateRefreshFamily stores a family and its first token.
func (s *Store) CreateRefreshFamily(ctx context.Context, f store.RefreshFamily, first store.RefreshToken) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO refresh_families
			(id, user_id, client_id, scopes, token_version, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			f.ID, f.UserID, f.ClientID, strings.Join(f.Scopes, " "), f.TokenVersion, micros(f.CreatedAt), micros(f.ExpiresAt))
		if err != nil {
			return unavailable("create refresh family", err)
		}
		first.FamilyID = f.ID
		return insertRefreshToken(ctx, tx, first, f.ExpiresAt)
	})
}

func insertRefreshToken(ctx context.Context, tx *sql.Tx, t store.RefreshToken, familyExpires time.Time) error {
	if t.ExpiresAt.After(familyExpires) {
		t.ExpiresAt = familyExpires
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO refresh_tokens (hash, family_id, issued_at, expires_at) VALUES (?, ?, ?, ?)`,
		t.Hash, t.FamilyID, micros(t.IssuedAt), micros(t.ExpiresAt))
	if err != nil {
		return unavailable("store refresh token", err)
	}
	return nil
}

// RotateRefreshToken redeems a refresh token and stores its successor.
func (s *Store) RotateRefreshToken(ctx context.Context, hash []byte, next store.RefreshToken, now, accessUntil time.Time) (store.RefreshFamily, error) {
	var f store.RefreshFamily
	reused := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var used sql.NullInt64
		var expires int64
		var err error
		f, err = scanFamily(tx.QueryRowContext(ctx, `SELECT `+familyColumns+`, t.used_at, t.expires_at
			FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = ?`, hash), &used, &expires)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlite: rotate refresh token: %w", fault.ErrNotFound)
		case err != nil:
			return unavailable("rotate refresh token", err)
		case !f.RevokedAt.IsZero():
			return store.ErrRefreshRevoked
		case used.Valid:
			// Reuse: revoke the family, and commit that.
			reused = true
			return revokeFamily(ctx, tx, f.ID, now, accessUntil)
		case !now.Before(fromMicros(expires)) || !now.Before(f.ExpiresAt):
			return store.ErrRefreshExpired
		}
		res, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL`, micros(now), hash)
		if err != nil {
			return unavailable("rotate refresh token", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("sqlite: rotate refresh token: %d rows, %v", n, err)
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
	f, err := scanFamily(s.db.QueryRowContext(ctx, `SELECT `+familyColumns+`
		FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("sqlite: refresh family: %w", fault.ErrNotFound)
	}
	if err != nil {
		return f, unavailable("refresh family", err)
	}
	return f, nil
}

// RevokeRefreshFamily revokes a family.
func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string, now, accessUntil time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		return revokeFamily(ctx, tx, familyID, now, accessUntil)
	})
}

func revokeFamily(ctx context.Context, tx *sql.Tx, familyID string, now, accessUntil time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE refresh_families SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`,
		micros(now), familyID)
	if err != nil {
		return unavailable("revoke refresh family", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // unknown or revoked already
	}
	return appendChange(ctx, tx, store.ChangeFamily, familyID, accessUntil)
}

// PruneRefreshFamilies deletes families long expired or revoked.
func (s *Store) PruneRefreshFamilies(ctx context.Context, cutoff time.Time) error {
	_, err := s.exec(ctx, `DELETE FROM refresh_families WHERE expires_at < ? OR revoked_at < ?`,
		micros(cutoff), micros(cutoff))
	if err != nil {
		return unavailable("prune refresh families", err)
	}
	return nil
}
