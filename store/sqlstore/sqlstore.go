// Package sqlstore is the one SQL layer under passflow's stores: every
// query and every transaction of store.Store, over database/sql, for
// SQLite (store/sqlite) and PostgreSQL (store/postgres) alike. What really
// differs between the two — how writers are serialised and rows locked,
// how times are kept, how a unique violation and the change feed's last
// sequence number are read — is a Dialect each backend supplies.
//
// Queries are written once, with $1, $2, … placeholders (the dialect may
// renumber them), space-delimited text for lists of names, and a time
// column read through the dialect.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// Dialect is what differs between the databases a Store runs on. Every
// method is safe for concurrent use.
type Dialect interface {
	// Name prefixes error messages: "sqlite", "postgres".
	Name() string
	// Rebind turns a query's $1, $2, … into the dialect's placeholders.
	Rebind(query string) string
	// Time is the value a time column is written as.
	Time(t time.Time) any
	// BeginWrite is called before a transaction that writes begins, and
	// the function it returns after it ends: where the database takes one
	// writer at a time, this queues the process's own.
	BeginWrite() (end func())
	// Lock takes the transaction-scoped lock named key (Lock* constants),
	// to serialise what row locks cannot; a no-op where the transaction
	// holds the only write lock already.
	Lock(ctx context.Context, tx *sql.Tx, key int64) error
	// LockCounters takes a transaction-scoped lock on each login counter
	// key, in an order every caller shares; a no-op as for Lock.
	LockCounters(ctx context.Context, tx *sql.Tx, keys []string) error
	// ForUpdate is the suffix that locks the rows a SELECT reads in a
	// transaction ("FOR UPDATE", "FOR UPDATE OF t"), or "" where the
	// transaction holds the only write lock. of names the table, if any.
	ForUpdate(of string) string
	// SkipLocked is the suffix of a subquery choosing rows to delete that
	// passes over rows another transaction holds, or "".
	SkipLocked() string
	// IsUniqueViolation reports whether err is a unique constraint's.
	IsUniqueViolation(err error) bool
	// Read is the context a read outside a transaction runs with. Where
	// the database is a local file read without waiting on anyone (SQLite
	// in WAL mode), it may drop ctx's cancellation: database/sql watches a
	// cancellable context with a goroutine per query, which costs more
	// than the read.
	Read(ctx context.Context) context.Context
	// LatestChange returns the Seq of the newest change ever appended,
	// pruned or not, once no append in progress can commit below it.
	LatestChange(ctx context.Context, db *sql.DB) (int64, error)
}

// Transaction-scoped locks, for Dialect.Lock.
const (
	// LockChanges serialises appends to the change feed, so that seq order
	// is commit order and no follower ever skips a change.
	LockChanges int64 = 0x7066_0001
	// LockAdmins serialises changes that could remove the last admin.
	LockAdmins int64 = 0x7066_0002
	// LockKeys serialises changes to the signing keys.
	LockKeys int64 = 0x7066_0003
)

// Store is a store.Store on a SQL database. The backends embed it and add
// what only they can do (a SQLite file's backup, a PostgreSQL pool's size).
type Store struct {
	db *sql.DB
	d  Dialect
	// queries holds each query rebound for the dialect, once.
	queries sync.Map     // string → string
	items   *itemQueries // the example resource's
}

// New returns a Store on db, whose schema is migrated, speaking d. The
// Store closes db when it is closed.
func New(ctx context.Context, db *sql.DB, d Dialect) (*Store, error) {
	s := &Store{db: db, d: d}
	var err error
	if s.items, err = prepareItems(ctx, s); err != nil {
		return nil, fmt.Errorf("%s: prepare: %w", d.Name(), err)
	}
	return s, nil
}

// DB is the database the store runs on.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error {
	s.items.close()
	return s.db.Close()
}

// PoolStats reports the connection pool's state, for tests and metrics.
func (s *Store) PoolStats() sql.DBStats { return s.db.Stats() }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return s.unavailable("ping", err)
	}
	return nil
}

// q returns query with the dialect's placeholders.
func (s *Store) q(query string) string {
	if q, ok := s.queries.Load(query); ok {
		return q.(string)
	}
	q := s.d.Rebind(query)
	s.queries.Store(query, q)
	return q
}

// unavailable reports a failure of the database itself (unreachable,
// locked past its busy timeout, out of disk, ...): the request may succeed
// later, so it is a 503, never a bare 500.
func (s *Store) unavailable(op string, err error) error {
	return &fault.Error{
		Code:        fault.Unavailable,
		Description: "the database is unavailable; try again shortly",
		Err:         fmt.Errorf("%s: %s: %w", s.d.Name(), op, err),
	}
}

// optional is the value of a time column that may be NULL: NULL for the
// zero time.
func (s *Store) optional(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.d.Time(t)
}

func (s *Store) notFound(op string) error {
	return fmt.Errorf("%s: %s: %w", s.d.Name(), op, fault.ErrNotFound)
}

func (s *Store) conflict(op string) error {
	return fmt.Errorf("%s: %s: %w", s.d.Name(), op, fault.ErrConflict)
}

// tx runs fn in a transaction that writes, committing when fn returns nil.
// An error fn returns is returned as it is; the database's own are
// unavailable.
func (s *Store) tx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	defer s.d.BeginWrite()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.unavailable(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return s.unavailable(op, err)
	}
	return nil
}

// exec runs one writing statement outside a transaction.
func (s *Store) exec(ctx context.Context, op, query string, args ...any) (sql.Result, error) {
	defer s.d.BeginWrite()()
	res, err := s.db.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, s.unavailable(op, err)
	}
	return res, nil
}

// execTx runs one statement in tx.
func (s *Store) execTx(ctx context.Context, tx *sql.Tx, op, query string, args ...any) (sql.Result, error) {
	res, err := tx.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, s.unavailable(op, err)
	}
	return res, nil
}

// affected returns how many rows a statement changed.
func (s *Store) affected(op string, res sql.Result) (int64, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.unavailable(op, err)
	}
	return n, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type scanner interface{ Scan(dest ...any) error }

// all runs a query and scans every row.
func all[T any](ctx context.Context, s *Store, q querier, op string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(s.read(ctx, q), s.q(query), args...)
	if err != nil {
		return nil, s.unavailable(op, err)
	}
	return scanAll(s, op, rows, scan)
}

// read is the context of a query through q: the dialect's read context
// outside a transaction, ctx itself inside one.
func (s *Store) read(ctx context.Context, q querier) context.Context {
	if db, ok := q.(*sql.DB); ok && db == s.db {
		return s.d.Read(ctx)
	}
	return ctx
}

func scanAll[T any](s *Store, op string, rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.unavailable(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.unavailable(op, err)
	}
	return out, nil
}

// one runs a query for one row: fault.ErrNotFound when there is none.
func one[T any](ctx context.Context, s *Store, q querier, op string, scan func(scanner) (T, error), query string, args ...any) (T, error) {
	v, err := scan(q.QueryRowContext(s.read(ctx, q), s.q(query), args...))
	if errors.Is(err, sql.ErrNoRows) {
		return v, s.notFound(op)
	}
	if err != nil {
		return v, s.unavailable(op, err)
	}
	return v, nil
}

// timeCol scans a time column, kept as Unix microseconds (SQLite) or a
// timestamp (PostgreSQL); NULL is the zero time.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.t = time.Time{}
	case int64:
		*c.t = time.UnixMicro(v).UTC()
	case time.Time:
		*c.t = v.UTC()
	default:
		return fmt.Errorf("a time column holds %T", src)
	}
	return nil
}

// listCol scans a list of names kept space-delimited.
type listCol struct{ l *[]string }

func (c listCol) Scan(src any) error {
	switch v := src.(type) {
	case string:
		*c.l = strings.Fields(v)
	case []byte:
		*c.l = strings.Fields(string(v))
	default:
		return fmt.Errorf("a list column holds %T", src)
	}
	return nil
}

func list(l []string) string { return strings.Join(l, " ") }

// in returns "$from, $from+1, …" for n values, and the values as args.
func in(from int, values []string) (string, []any) {
	marks := make([]string, len(values))
	args := make([]any, len(values))
	for i, v := range values {
		marks[i] = "$" + strconv.Itoa(from+i)
		args[i] = v
	}
	return strings.Join(marks, ", "), args
}

// Users

const userColumns = `id, username, password_hash, scopes, disabled, token_version, created_at, updated_at, email, email_verified`

func scanUser(row scanner) (store.User, error) {
	var u store.User
	var email sql.NullString
	err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, listCol{&u.Scopes}, &u.Disabled, &u.TokenVersion,
		timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}, &email, &u.EmailVerified)
	u.Email = email.String
	return u, err
}

// emailCols are the values of the email and email_key columns: NULL for
// an account without one.
func emailCols(email string) (any, any) {
	if email == "" {
		return nil, nil
	}
	return email, store.EmailKey(email)
}

func (s *Store) insertUser(ctx context.Context, tx *sql.Tx, u store.User) error {
	if err := s.emailFree(ctx, tx, u.Email, u.ID); err != nil {
		return err
	}
	email, key := emailCols(u.Email)
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO users (`+userColumns+`, email_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`),
		u.ID, u.Username, u.PasswordHash, list(u.Scopes), u.Disabled, u.TokenVersion, s.d.Time(u.CreatedAt), s.d.Time(u.UpdatedAt),
		email, u.EmailVerified, key)
	if s.d.IsUniqueViolation(err) {
		return s.conflict("create user")
	}
	if err != nil {
		return s.unavailable("create user", err)
	}
	return nil
}

// emailFree returns store.ErrEmailTaken when an account other than id has
// email. Checked first, so that a unique violation of the insert or
// update that follows names the username (or a race on the address).
func (s *Store) emailFree(ctx context.Context, tx *sql.Tx, email, id string) error {
	if email == "" {
		return nil
	}
	var other string
	err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM users WHERE email_key = $1`), store.EmailKey(email)).Scan(&other)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return s.unavailable("check email", err)
	case other != id:
		return store.ErrEmailTaken
	}
	return nil
}

// CreateUser adds u and queues mails with it.
func (s *Store) CreateUser(ctx context.Context, u store.User, mails ...store.Mail) error {
	return s.tx(ctx, "create user", func(tx *sql.Tx) error {
		if err := s.insertUser(ctx, tx, u); err != nil {
			return err
		}
		for _, m := range mails {
			if err := s.queueMail(ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	})
}

// CreateUsers adds users, all or none.
func (s *Store) CreateUsers(ctx context.Context, users []store.User) error {
	return s.tx(ctx, "create users", func(tx *sql.Tx) error {
		for i, u := range users {
			if err := s.insertUser(ctx, tx, u); err != nil {
				return &store.BatchError{Index: i, Err: err}
			}
		}
		return nil
	})
}

// UserByUsername returns the user called username.
func (s *Store) UserByUsername(ctx context.Context, username string) (store.User, error) {
	return one(ctx, s, s.db, "user", scanUser, `SELECT `+userColumns+` FROM users WHERE username = $1`, username)
}

// UserByID returns the user whose ID is id.
func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	return one(ctx, s, s.db, "user", scanUser, `SELECT `+userColumns+` FROM users WHERE id = $1`, id)
}

// UserByEmail returns the user whose email has the key key.
func (s *Store) UserByEmail(ctx context.Context, key string) (store.User, error) {
	return one(ctx, s, s.db, "user", scanUser, `SELECT `+userColumns+` FROM users WHERE email_key = $1`, key)
}

// ListUsers returns up to limit users after the username after.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]store.User, error) {
	return all(ctx, s, s.db, "list users", scanUser,
		`SELECT `+userColumns+` FROM users WHERE username > $1 ORDER BY username LIMIT $2`, after, limit)
}

// hasScope matches a row whose space-delimited scopes hold the argument.
const hasScope = `(' ' || scopes || ' ') LIKE ('% ' || $1 || ' %')`

// adminRow matches an enabled user holding users:admin. The partial index
// users_admins has this WHERE clause word for word, so that the query
// planners of both databases use it: finding an admin reads the admins
// only, however many users there are.
const adminRow = `NOT disabled AND (' ' || scopes || ' ') LIKE '% ` + store.ScopeUsersAdmin + ` %'`

// AdminExists asks whether an enabled user holds users:admin (exported for
// the tests that read its query plan).
const AdminExists = `SELECT EXISTS (SELECT 1 FROM users WHERE ` + adminRow + `)`

// otherAdminExists returns store.ErrLastAdmin unless an enabled user other
// than id holds users:admin. The caller holds LockAdmins.
func (s *Store) otherAdminExists(ctx context.Context, tx *sql.Tx, id string) error {
	var found bool
	err := tx.QueryRowContext(ctx, s.q(`SELECT EXISTS (SELECT 1 FROM users WHERE `+adminRow+` AND id <> $1)`), id).Scan(&found)
	if err != nil {
		return s.unavailable("count admins", err)
	}
	if !found {
		return store.ErrLastAdmin
	}
	return nil
}

// UpdateUser applies change to a user in one transaction.
func (s *Store) UpdateUser(ctx context.Context, username string, change func(*store.User) error) (store.User, error) {
	var u store.User
	err := s.tx(ctx, "update user", func(tx *sql.Tx) error {
		// Two instances demoting two admins at once must not both see the
		// other as the remaining one.
		if err := s.d.Lock(ctx, tx, LockAdmins); err != nil {
			return s.unavailable("update user", err)
		}
		var err error
		u, err = one(ctx, s, tx, "update user", scanUser,
			`SELECT `+userColumns+` FROM users WHERE username = $1`+s.d.ForUpdate(""), username)
		if err != nil {
			return err
		}
		u, err = s.updateUser(ctx, tx, u, func(u *store.User) error { return change(u) })
		return err
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// updateUser applies change to u, read in tx under LockAdmins, and writes
// it back with its change to the feed.
func (s *Store) updateUser(ctx context.Context, tx *sql.Tx, u store.User, change func(*store.User) error) (store.User, error) {
	before := u
	if err := change(&u); err != nil {
		return store.User{}, err
	}
	if u.ID != before.ID || u.Username != before.Username || !u.CreatedAt.Equal(before.CreatedAt) {
		return store.User{}, fmt.Errorf("%s: update user: id, username and created_at are immutable", s.d.Name())
	}
	if before.IsEnabledAdmin() && !u.IsEnabledAdmin() {
		if err := s.otherAdminExists(ctx, tx, u.ID); err != nil {
			return store.User{}, err
		}
	}
	if u.Email != before.Email {
		if err := s.emailFree(ctx, tx, u.Email, u.ID); err != nil {
			return store.User{}, err
		}
	}
	email, key := emailCols(u.Email)
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE users SET password_hash = $1, scopes = $2, disabled = $3,
		token_version = $4, updated_at = $5, email = $6, email_key = $7, email_verified = $8 WHERE id = $9`),
		u.PasswordHash, list(u.Scopes), u.Disabled, u.TokenVersion, s.d.Time(u.UpdatedAt), email, key, u.EmailVerified, u.ID); err != nil {
		if s.d.IsUniqueViolation(err) {
			return store.User{}, store.ErrEmailTaken
		}
		return store.User{}, s.unavailable("update user", err)
	}
	// A token mailed for the old password or the old address dies with it.
	for purpose, changed := range map[string]bool{store.PurposeReset: u.PasswordHash != before.PasswordHash, store.PurposeVerify: store.EmailKey(u.Email) != store.EmailKey(before.Email)} {
		if changed {
			if _, err := s.execTx(ctx, tx, "update user", `DELETE FROM email_tokens WHERE user_id = $1 AND purpose = $2`, u.ID, purpose); err != nil {
				return store.User{}, err
			}
		}
	}
	return u, s.appendChange(ctx, tx, store.ChangeUser, u.ID, time.Time{})
}

// DeleteUser deletes a user and everything they own.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	return s.tx(ctx, "delete user", func(tx *sql.Tx) error {
		if err := s.d.Lock(ctx, tx, LockAdmins); err != nil {
			return s.unavailable("delete user", err)
		}
		u, err := one(ctx, s, tx, "delete user", scanUser,
			`SELECT `+userColumns+` FROM users WHERE username = $1`+s.d.ForUpdate(""), username)
		if err != nil {
			return err
		}
		if u.IsEnabledAdmin() {
			if err := s.otherAdminExists(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		if _, err := s.execTx(ctx, tx, "delete user", `DELETE FROM users WHERE id = $1`, u.ID); err != nil {
			return err
		}
		return s.appendChange(ctx, tx, store.ChangeUser, u.ID, time.Time{})
	})
}

// HasUserWithScope reports whether an enabled user holds scope.
func (s *Store) HasUserWithScope(ctx context.Context, scope string) (bool, error) {
	return s.hasUserWithScope(ctx, s.db, scope)
}

func (s *Store) hasUserWithScope(ctx context.Context, q querier, scope string) (bool, error) {
	var found bool
	var err error
	if scope == store.ScopeUsersAdmin {
		err = q.QueryRowContext(ctx, AdminExists).Scan(&found)
	} else {
		err = q.QueryRowContext(ctx, s.q(`SELECT EXISTS (SELECT 1 FROM users WHERE NOT disabled AND `+hasScope+`)`), scope).Scan(&found)
	}
	if err != nil {
		return false, s.unavailable("users with scope", err)
	}
	return found, nil
}

// BootstrapAdmin makes sure an enabled user holds users:admin. LockAdmins
// makes processes starting together take their turns.
func (s *Store) BootstrapAdmin(ctx context.Context, u store.User) (store.Bootstrap, error) {
	did := store.BootstrapNone
	err := s.tx(ctx, "bootstrap admin", func(tx *sql.Tx) error {
		if err := s.d.Lock(ctx, tx, LockAdmins); err != nil {
			return s.unavailable("bootstrap admin", err)
		}
		if has, err := s.hasUserWithScope(ctx, tx, store.ScopeUsersAdmin); err != nil || has {
			return err
		}
		existing, err := one(ctx, s, tx, "bootstrap admin", scanUser,
			`SELECT `+userColumns+` FROM users WHERE username = $1`+s.d.ForUpdate(""), u.Username)
		if errors.Is(err, fault.ErrNotFound) {
			did = store.BootstrapCreated
			return s.insertUser(ctx, tx, u)
		}
		if err != nil {
			return err
		}
		did = store.BootstrapRestored
		if _, err := s.execTx(ctx, tx, "bootstrap admin", `UPDATE users SET disabled = $1, scopes = $2, updated_at = $3 WHERE id = $4`,
			false, list(u.Scopes), s.d.Time(u.UpdatedAt), existing.ID); err != nil {
			return err
		}
		return s.appendChange(ctx, tx, store.ChangeUser, existing.ID, time.Time{})
	})
	return did, err
}

// Signing keys and settings

func scanKey(row scanner) (store.SigningKey, error) {
	var k store.SigningKey
	err := row.Scan(&k.ID, &k.Algorithm, &k.Private, timeCol{&k.CreatedAt}, timeCol{&k.ActiveFrom}, timeCol{&k.RetiredAt})
	return k, err
}

func (s *Store) signingKeys(ctx context.Context, q querier) ([]store.SigningKey, error) {
	return all(ctx, s, q, "signing keys", scanKey,
		`SELECT id, algorithm, private_key, created_at, active_from, retired_at FROM signing_keys ORDER BY created_at DESC, id`)
}

// SigningKeys returns every signing key, newest first.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	return s.signingKeys(ctx, s.db)
}

func (s *Store) insertSigningKey(ctx context.Context, tx *sql.Tx, k store.SigningKey) error {
	if _, err := s.execTx(ctx, tx, "add signing key", `INSERT INTO signing_keys (id, algorithm, private_key, created_at, active_from)
		VALUES ($1, $2, $3, $4, $5)`, k.ID, k.Algorithm, k.Private, s.d.Time(k.CreatedAt), s.optional(k.ActiveFrom)); err != nil {
		return err
	}
	return s.appendChange(ctx, tx, store.ChangeKeys, k.ID, time.Time{})
}

// EnsureSigningKey stores k unless an unretired key exists.
func (s *Store) EnsureSigningKey(ctx context.Context, k store.SigningKey) ([]store.SigningKey, error) {
	var keys []store.SigningKey
	err := s.tx(ctx, "ensure signing key", func(tx *sql.Tx) error {
		if err := s.d.Lock(ctx, tx, LockKeys); err != nil {
			return s.unavailable("ensure signing key", err)
		}
		var err error
		if keys, err = s.signingKeys(ctx, tx); err != nil {
			return err
		}
		for _, have := range keys {
			if have.RetiredAt.IsZero() {
				return nil
			}
		}
		keys = append([]store.SigningKey{k}, keys...)
		return s.insertSigningKey(ctx, tx, k)
	})
	return keys, err
}

// RotateSigningKey retires the unretired keys and stores k.
func (s *Store) RotateSigningKey(ctx context.Context, k store.SigningKey, keyCheck string) error {
	return s.tx(ctx, "rotate signing key", func(tx *sql.Tx) error {
		if err := s.d.Lock(ctx, tx, LockKeys); err != nil {
			return s.unavailable("rotate signing key", err)
		}
		stored, err := s.claimSetting(ctx, tx, store.SettingKeyCheck, keyCheck)
		if err != nil {
			return err
		}
		if stored != keyCheck {
			return store.ErrKeyCheck
		}
		if _, err := s.execTx(ctx, tx, "retire signing keys", `UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL`,
			s.d.Time(k.Active())); err != nil {
			return err
		}
		return s.insertSigningKey(ctx, tx, k)
	})
}

// SealSigningKey replaces a private key with its sealed form.
func (s *Store) SealSigningKey(ctx context.Context, id string, old, sealed []byte) error {
	_, err := s.exec(ctx, "seal signing key", `UPDATE signing_keys SET private_key = $1 WHERE id = $2 AND private_key = $3`, sealed, id, old)
	return err
}

// claimSetting inserts the setting unless it is set, then reads it: a
// claim racing with this one has committed by the time the insert has
// given way to it, and the read, a statement of its own, sees it.
func (s *Store) claimSetting(ctx context.Context, tx *sql.Tx, name, value string) (string, error) {
	if _, err := s.execTx(ctx, tx, "claim setting", `INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
		name, value); err != nil {
		return "", err
	}
	var stored string
	if err := tx.QueryRowContext(ctx, s.q(`SELECT value FROM settings WHERE name = $1`), name).Scan(&stored); err != nil {
		return "", s.unavailable("claim setting", err)
	}
	return stored, nil
}

// ClaimSetting sets a setting unless it is set and returns its value.
func (s *Store) ClaimSetting(ctx context.Context, name, value string) (string, error) {
	var stored string
	err := s.tx(ctx, "claim setting", func(tx *sql.Tx) error {
		var err error
		stored, err = s.claimSetting(ctx, tx, name, value)
		return err
	})
	return stored, err
}

// SetSetting sets a setting.
func (s *Store) SetSetting(ctx context.Context, name, value string) error {
	_, err := s.exec(ctx, "set setting", `INSERT INTO settings (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	return err
}

// Clients

const clientColumns = `id, secret_hash, grant_types, scopes, created_at, deleted_at`

func scanClient(row scanner) (store.Client, error) {
	var c store.Client
	err := row.Scan(&c.ID, &c.SecretHash, listCol{&c.GrantTypes}, listCol{&c.Scopes}, timeCol{&c.CreatedAt}, timeCol{&c.DeletedAt})
	return c, err
}

// CreateClient registers a client.
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	defer s.d.BeginWrite()()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO clients (id, secret_hash, grant_types, scopes, created_at) VALUES ($1, $2, $3, $4, $5)`),
		c.ID, c.SecretHash, list(c.GrantTypes), list(c.Scopes), s.d.Time(c.CreatedAt))
	if s.d.IsUniqueViolation(err) {
		return s.conflict("create client")
	}
	if err != nil {
		return s.unavailable("create client", err)
	}
	return nil
}

// ClientByID returns a client, deleted or not.
func (s *Store) ClientByID(ctx context.Context, id string) (store.Client, error) {
	return one(ctx, s, s.db, "client", scanClient, `SELECT `+clientColumns+` FROM clients WHERE id = $1`, id)
}

// ListClients returns every client, deleted ones too.
func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	return all(ctx, s, s.db, "list clients", scanClient, `SELECT `+clientColumns+` FROM clients ORDER BY id`)
}

// DeleteClient marks a client deleted and revokes what it was issued.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) error {
	return s.tx(ctx, "delete client", func(tx *sql.Tx) error {
		res, err := s.execTx(ctx, tx, "delete client", `UPDATE clients SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL`,
			s.d.Time(now), id)
		if err != nil {
			return err
		}
		if n, err := s.affected("delete client", res); err != nil {
			return err
		} else if n == 0 {
			return s.notFound("delete client")
		}
		if _, err := s.execTx(ctx, tx, "delete client", `UPDATE refresh_families SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL`,
			s.d.Time(now), id); err != nil {
			return err
		}
		return s.appendChange(ctx, tx, store.ChangeClient, id, time.Time{})
	})
}

// Refresh tokens

const familyColumns = `f.id, f.user_id, f.client_id, f.scopes, f.token_version, f.created_at, f.expires_at, f.revoked_at`

func familyDest(f *store.RefreshFamily) []any {
	return []any{&f.ID, &f.UserID, &f.ClientID, listCol{&f.Scopes}, &f.TokenVersion, timeCol{&f.CreatedAt}, timeCol{&f.ExpiresAt}, timeCol{&f.RevokedAt}}
}

func scanFamily(row scanner) (store.RefreshFamily, error) {
	var f store.RefreshFamily
	err := row.Scan(familyDest(&f)...)
	return f, err
}

// CreateRefreshFamily stores a family and its first token.
func (s *Store) CreateRefreshFamily(ctx context.Context, f store.RefreshFamily, first store.RefreshToken) error {
	return s.tx(ctx, "create refresh family", func(tx *sql.Tx) error {
		if _, err := s.execTx(ctx, tx, "create refresh family", `INSERT INTO refresh_families
			(id, user_id, client_id, scopes, token_version, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			f.ID, f.UserID, f.ClientID, list(f.Scopes), f.TokenVersion, s.d.Time(f.CreatedAt), s.d.Time(f.ExpiresAt)); err != nil {
			return err
		}
		first.FamilyID = f.ID
		return s.insertRefreshToken(ctx, tx, first, f.ExpiresAt)
	})
}

func (s *Store) insertRefreshToken(ctx context.Context, tx *sql.Tx, t store.RefreshToken, familyExpires time.Time) error {
	if t.ExpiresAt.After(familyExpires) {
		t.ExpiresAt = familyExpires
	}
	_, err := s.execTx(ctx, tx, "store refresh token", `INSERT INTO refresh_tokens (hash, family_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)`,
		t.Hash, t.FamilyID, s.d.Time(t.IssuedAt), s.d.Time(t.ExpiresAt))
	return err
}

// RotateRefreshToken redeems a refresh token and stores its successor. The
// token's row is locked first: of two processes racing for it, the second
// waits, then finds it used.
func (s *Store) RotateRefreshToken(ctx context.Context, hash []byte, next store.RefreshToken, now, accessUntil time.Time, reuseGrace time.Duration) (store.RefreshFamily, error) {
	var f store.RefreshFamily
	reused := false
	err := s.tx(ctx, "rotate refresh token", func(tx *sql.Tx) error {
		var used, expires time.Time
		err := tx.QueryRowContext(ctx, s.q(`SELECT `+familyColumns+`, t.used_at, t.expires_at
			FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = $1`+s.d.ForUpdate("t")), hash).
			Scan(append(familyDest(&f), timeCol{&used}, timeCol{&expires})...)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return s.notFound("rotate refresh token")
		case err != nil:
			return s.unavailable("rotate refresh token", err)
		case !f.RevokedAt.IsZero():
			return store.ErrRefreshRevoked
		case !used.IsZero() && !(reuseGrace > 0 && now.Sub(used) < reuseGrace):
			// Reuse: revoke the family, and commit that.
			reused = true
			return s.revokeFamily(ctx, tx, f.ID, now, accessUntil)
		case !now.Before(expires) || !now.Before(f.ExpiresAt):
			return store.ErrRefreshExpired
		}
		if used.IsZero() {
			if _, err := s.execTx(ctx, tx, "rotate refresh token", `UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2`,
				s.d.Time(now), hash); err != nil {
				return err
			}
		}
		next.FamilyID = f.ID
		return s.insertRefreshToken(ctx, tx, next, f.ExpiresAt)
	})
	if reused && err == nil {
		err = store.ErrRefreshReused
	}
	return f, err
}

// RefreshFamilyByToken returns the family of a refresh token.
func (s *Store) RefreshFamilyByToken(ctx context.Context, hash []byte) (store.RefreshFamily, error) {
	return one(ctx, s, s.db, "refresh family", scanFamily, `SELECT `+familyColumns+`
		FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = $1`, hash)
}

// RevokeRefreshFamily revokes a family.
func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string, now, accessUntil time.Time) error {
	return s.tx(ctx, "revoke refresh family", func(tx *sql.Tx) error {
		return s.revokeFamily(ctx, tx, familyID, now, accessUntil)
	})
}

func (s *Store) revokeFamily(ctx context.Context, tx *sql.Tx, familyID string, now, accessUntil time.Time) error {
	res, err := s.execTx(ctx, tx, "revoke refresh family", `UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`,
		s.d.Time(now), familyID)
	if err != nil {
		return err
	}
	if n, err := s.affected("revoke refresh family", res); err != nil || n == 0 {
		return err // unknown or revoked already
	}
	return s.appendChange(ctx, tx, store.ChangeFamily, familyID, accessUntil)
}

// PruneRefreshFamilies deletes families long expired or revoked.
func (s *Store) PruneRefreshFamilies(ctx context.Context, cutoff time.Time) error {
	_, err := s.exec(ctx, "prune refresh families", `DELETE FROM refresh_families WHERE expires_at < $1 OR revoked_at < $1`,
		s.d.Time(cutoff))
	return err
}

// Login attempt counters

const counterColumns = `key, failures, window_start, last_failure`

func scanCounter(row scanner) (store.LoginCounter, error) {
	var c store.LoginCounter
	err := row.Scan(&c.Key, &c.Failures, timeCol{&c.WindowStart}, timeCol{&c.LastFailure})
	return c, err
}

// ReserveLoginAttempt counts an attempt for every key unless admit refuses
// it. The keys' locks (or the one write lock) make every reservation see
// the ones before it.
func (s *Store) ReserveLoginAttempt(ctx context.Context, keys []string, now time.Time, window time.Duration,
	admit func([]store.LoginCounter) error) error {
	return s.tx(ctx, "reserve login attempt", func(tx *sql.Tx) error {
		if err := s.d.LockCounters(ctx, tx, keys); err != nil {
			return s.unavailable("reserve login attempt", err)
		}
		marks, args := in(1, keys)
		counters, err := all(ctx, s, tx, "reserve login attempt", scanCounter,
			`SELECT `+counterColumns+` FROM login_failures WHERE key IN (`+marks+`)`, args...)
		if err != nil {
			return err
		}
		if err := admit(counters); err != nil {
			return err
		}
		for _, k := range keys {
			if _, err := s.execTx(ctx, tx, "reserve login attempt", `INSERT INTO login_failures (key, failures, window_start, last_failure)
				VALUES ($1, 1, $2, $2)
				ON CONFLICT (key) DO UPDATE SET
					failures     = CASE WHEN login_failures.window_start <= $3 THEN 1 ELSE login_failures.failures + 1 END,
					window_start = CASE WHEN login_failures.window_start <= $3 THEN $2 ELSE login_failures.window_start END,
					last_failure = $2`,
				k, s.d.Time(now), s.d.Time(now.Add(-window))); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReleaseLoginAttempt takes reserved attempts back and clears counters.
func (s *Store) ReleaseLoginAttempt(ctx context.Context, release, clear []string) error {
	return s.tx(ctx, "release login attempt", func(tx *sql.Tx) error {
		if err := s.d.LockCounters(ctx, tx, append(append([]string(nil), release...), clear...)); err != nil {
			return s.unavailable("release login attempt", err)
		}
		for _, k := range release {
			if _, err := s.execTx(ctx, tx, "release login attempt",
				`UPDATE login_failures SET failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END WHERE key = $1`, k); err != nil {
				return err
			}
		}
		for _, k := range clear {
			if _, err := s.execTx(ctx, tx, "clear login attempts", `DELETE FROM login_failures WHERE key = $1`, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// PruneLoginFailures deletes stale counters, passing over any a
// reservation holds: it must never keep a login waiting.
func (s *Store) PruneLoginFailures(ctx context.Context, cutoff time.Time) error {
	_, err := s.exec(ctx, "prune login failures", `DELETE FROM login_failures WHERE key IN
		(SELECT key FROM login_failures WHERE last_failure < $1`+s.d.SkipLocked()+`)`, s.d.Time(cutoff))
	return err
}

// The change feed

const changeColumns = `seq, kind, subject, expires_at, created_at`

func scanChange(row scanner) (store.Change, error) {
	var c store.Change
	err := row.Scan(&c.Seq, &c.Kind, &c.Subject, timeCol{&c.ExpiresAt}, timeCol{&c.CreatedAt})
	return c, err
}

// appendChange adds to the change feed inside tx, as its last statement:
// the lock it takes is held to commit, so a later seq is always committed
// later, and a follower that has read up to a seq has seen every change
// before it.
func (s *Store) appendChange(ctx context.Context, tx *sql.Tx, kind, subject string, expiresAt time.Time) error {
	if err := s.d.Lock(ctx, tx, LockChanges); err != nil {
		return s.unavailable("append change", err)
	}
	_, err := s.execTx(ctx, tx, "append change", `INSERT INTO changes (kind, subject, expires_at, created_at) VALUES ($1, $2, $3, $4)`,
		kind, subject, s.optional(expiresAt), s.d.Time(time.Now()))
	return err
}

// ChangesSince returns up to limit changes after seq.
func (s *Store) ChangesSince(ctx context.Context, seq int64, limit int) ([]store.Change, error) {
	return all(ctx, s, s.db, "changes", scanChange,
		`SELECT `+changeColumns+` FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2`, seq, limit)
}

// LatestChange returns the Seq of the newest change ever appended.
func (s *Store) LatestChange(ctx context.Context) (int64, error) {
	seq, err := s.d.LatestChange(ctx, s.db)
	if err != nil {
		return 0, s.unavailable("latest change", err)
	}
	return seq, nil
}

// RevokeAccessToken records a revoked access token, once.
func (s *Store) RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) (bool, error) {
	added := false
	err := s.tx(ctx, "revoke access token", func(tx *sql.Tx) error {
		if err := s.d.Lock(ctx, tx, LockChanges); err != nil {
			return s.unavailable("revoke access token", err)
		}
		res, err := s.execTx(ctx, tx, "revoke access token", `INSERT INTO changes (kind, subject, expires_at, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (subject) WHERE kind = 'access_token' DO NOTHING`,
			store.ChangeAccessToken, jti, s.d.Time(expiresAt), s.d.Time(time.Now()))
		if err != nil {
			return err
		}
		n, err := s.affected("revoke access token", res)
		added = n == 1
		return err
	})
	return added, err
}

// Revoked returns revoked access tokens and families still concerning
// live access tokens.
func (s *Store) Revoked(ctx context.Context, now time.Time) ([]store.Change, error) {
	return all(ctx, s, s.db, "changes", scanChange, `SELECT `+changeColumns+` FROM changes
		WHERE kind IN ($1, $2) AND expires_at > $3 ORDER BY seq`, store.ChangeAccessToken, store.ChangeFamily, s.d.Time(now))
}

// PruneChanges drops changes nobody needs any more.
func (s *Store) PruneChanges(ctx context.Context, cutoff time.Time) error {
	_, err := s.exec(ctx, "prune changes", `DELETE FROM changes WHERE
		CASE WHEN expires_at IS NULL THEN created_at < $1 ELSE expires_at < $1 END`, s.d.Time(cutoff))
	return err
}

var _ store.Store = (*Store)(nil)
