// Package postgres is passflow's store for many instances: PostgreSQL
// through pgx. Every instance on one database shares users, tokens, keys,
// the change feed and the login counters. Its queries are store/sqlstore's;
// this package connects, migrates, and says how PostgreSQL differs.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

var _ store.Store = (*Store)(nil)

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	*sqlstore.Store
	maxConns int
}

// Open connects to the database at url (a postgres:// URL), with at most
// maxConns connections unless url sets pool_max_conns, and applies
// pending migrations, under a session advisory lock so that instances
// starting together do not race.
func Open(ctx context.Context, url string, maxConns int) (*Store, error) {
	// pgxpool's parser knows the pool_ parameters; the pool itself is
	// database/sql's, sized from them.
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if maxConns <= 0 || strings.Contains(url, "pool_max_conns=") {
		maxConns = int(cfg.MaxConns)
	}
	db := stdlib.OpenDB(*cfg.ConnConfig)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		c := cfg.ConnConfig
		return nil, fmt.Errorf("postgres: connect to %s@%s/%s: %w", c.User, c.Host, c.Database, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	s, err := sqlstore.New(ctx, db, dialect{})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{Store: s, maxConns: maxConns}, nil
}

// MaxConns is the most connections the store opens at once.
func (s *Store) MaxConns() int { return s.maxConns }

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("postgres: apply migrations: %w", err)
	}
	return nil
}

// dialect is how PostgreSQL differs: many writers at once, serialised
// where they must be by row locks and transaction-scoped advisory locks;
// times as timestamptz; $N placeholders.
type dialect struct{}

func (dialect) Name() string { return "postgres" }

func (dialect) Rebind(query string) string { return query }

func (dialect) Time(t time.Time) any { return t.UTC() }

func (dialect) BeginWrite() func() { return func() {} }

func (dialect) Lock(ctx context.Context, tx *sql.Tx, key int64) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, key)
	return err
}

// counterSpace is the first half of the two-key advisory locks of login
// counters (the second is a hash of the counter's key): the two-key form
// keeps them apart from Lock's.
const counterSpace int32 = 0x7066

// LockCounters locks each key in sorted order, so that two transactions
// never wait on each other in a cycle.
func (dialect) LockCounters(ctx context.Context, tx *sql.Tx, keys []string) error {
	for _, k := range slices.Compact(slices.Sorted(slices.Values(keys))) {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, counterSpace, k); err != nil {
			return err
		}
	}
	return nil
}

func (dialect) ForUpdate(of string) string {
	if of == "" {
		return " FOR UPDATE"
	}
	return " FOR UPDATE OF " + of
}

func (dialect) SkipLocked() string { return " FOR UPDATE SKIP LOCKED" }

// Read keeps ctx: a query to a server can wait on the network or on locks,
// and a caller that has gone away or run out of time must end it.
func (dialect) Read(ctx context.Context) context.Context { return ctx }

func (dialect) IsUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// LatestChange reads the feed's sequence under the lock appends hold to
// commit: read while one holds a seq it has not yet committed, it would
// let a follower skip that change.
func (d dialect) LatestChange(ctx context.Context, db *sql.DB) (int64, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if err := d.Lock(ctx, tx, sqlstore.LockChanges); err != nil {
		return 0, err
	}
	var seq int64
	var called bool
	if err := tx.QueryRowContext(ctx, `SELECT last_value, is_called FROM changes_seq_seq`).Scan(&seq, &called); err != nil {
		return 0, err
	}
	if !called {
		seq = 0
	}
	return seq, tx.Commit()
}
