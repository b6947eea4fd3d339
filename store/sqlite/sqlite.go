// Package sqlite is passflow's embedded store: one SQLite file, pure Go
// (modernc.org/sqlite), shared safely by a server and CLI commands. Its
// queries are store/sqlstore's; this package opens the file and says how
// SQLite differs.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

var _ store.Store = (*Store)(nil)

// DefaultMaxConns is the pool size Open uses when given none.
const DefaultMaxConns = 10

// Store is a store.Store on one SQLite database file.
type Store struct {
	*sqlstore.Store
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
//
// The pool keeps up to maxConns connections (DefaultMaxConns when 0), all
// of them idle between requests: a connection opened anew per request
// would re-run its pragmas and prepare its statements again, which under
// concurrency cost more than the queries.
func Open(ctx context.Context, path string, maxConns int) (*Store, error) {
	return OpenWith(ctx, path, Options{MaxConns: maxConns})
}

// Options are how OpenWith opens a database.
type Options struct {
	// MaxConns is the most connections the pool keeps (0: DefaultMaxConns).
	MaxConns int
	// BusyTimeout is the longest a write waits for another connection's
	// or process's write lock before failing as unavailable (0:
	// DefaultBusyTimeout). It is the only wait a local database has, so it
	// is what bounds a call: serve sets it to --db-timeout.
	BusyTimeout time.Duration
}

// DefaultBusyTimeout is a write's longest wait for the write lock.
const DefaultBusyTimeout = 5 * time.Second

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, o Options) (*Store, error) {
	maxConns := o.MaxConns
	busy := o.BusyTimeout
	if busy <= 0 {
		busy = DefaultBusyTimeout
	}
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: database path %q: must be non-empty and contain no '?' or '#'", path)
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// busy_timeout first: switching a new file to WAL takes a lock that a
	// second process opening it at once must wait for, not fail on.
	dsn := path + fmt.Sprintf("?_pragma=busy_timeout(%d)", busy.Milliseconds()) + "&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	// A new file switched to WAL by two processes at once: SQLite answers
	// one of them "database is locked" at once, without waiting (waiting
	// could deadlock), so the first connection tries again for a while.
	deadline := time.Now().Add(15 * time.Second)
	for attempt := 1; ; attempt++ {
		err := db.PingContext(ctx)
		if err == nil {
			break
		}
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) || ctx.Err() != nil {
			db.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		time.Sleep(min(time.Duration(attempt)*10*time.Millisecond, 200*time.Millisecond))
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	s, err := sqlstore.New(ctx, db, &dialect{})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{s}, nil
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

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys)
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	// Two processes opening a new file together (a server and a CLI) can
	// both find a migration pending; the loser's transaction fails and rolls
	// back whole, since SQLite's DDL is transactional. Trying again then
	// finds the winner's work recorded and has nothing left to do.
	// The winner may take a while (every migration of a new file, each
	// committed to disk): the loser tries again for up to 15 seconds.
	deadline := time.Now().Add(15 * time.Second)
	for attempt := 1; ; attempt++ {
		_, err = p.Up(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("sqlite: apply migrations: %w", err)
		}
		select {
		case <-time.After(min(time.Duration(attempt)*20*time.Millisecond, 200*time.Millisecond)):
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
	if _, err := s.DB().ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("sqlite: backup to %s: %w", path, err)
	}
	return nil
}

// dialect is how SQLite differs: one writer at a time (BEGIN IMMEDIATE
// takes the database's write lock, so no row or advisory locks are
// needed), times as Unix microseconds, ?N placeholders.
type dialect struct {
	// writes queues this process's writers, so they take SQLite's one
	// write lock in turn instead of polling for it in SQLite's busy
	// handler, which sleeps up to 100ms between tries. Other processes
	// still wait through busy_timeout.
	writes sync.Mutex
}

func (*dialect) Name() string { return "sqlite" }

var placeholder = regexp.MustCompile(`\$(\d+)`)

func (*dialect) Rebind(query string) string { return placeholder.ReplaceAllString(query, "?$1") }

func (*dialect) Time(t time.Time) any { return t.UTC().UnixMicro() }

func (d *dialect) BeginWrite() func() {
	d.writes.Lock()
	return d.writes.Unlock
}

func (*dialect) Lock(context.Context, *sql.Tx, int64) error { return nil }

func (*dialect) LockCounters(context.Context, *sql.Tx, []string) error { return nil }

func (*dialect) ForUpdate(string) string { return "" }

func (*dialect) SkipLocked() string { return "" }

// Read drops ctx's cancellation and deadline: a read in WAL mode waits for
// no writer, and the busy timeout bounds the rare wait for the WAL index.
func (*dialect) Read(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

func (*dialect) IsUniqueViolation(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) &&
		(se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// LatestChange reads sqlite_sequence: AUTOINCREMENT keeps the highest Seq
// ever used there, so the feed never moves back, even once pruned empty.
// Appends hold the one write lock, so none is half done.
func (*dialect) LatestChange(ctx context.Context, db *sql.DB) (int64, error) {
	var seq int64
	err := db.QueryRowContext(ctx, `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)`).Scan(&seq)
	return seq, err
}
