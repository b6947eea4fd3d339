package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/passflow/passflow/store"
)

const backupSynopsis = "passflow backup FILE [--db FILE]"

// cmdBackup writes a consistent copy of a running SQLite store.
func cmdBackup(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	bindStore(fs, &cfg)
	pos, err := parse(fs, args, getenv)
	if err != nil {
		return flagError(err, stdout, backupSynopsis, fs)
	}
	if len(pos) != 1 {
		return fmt.Errorf("backup: want exactly one FILE; run \"passflow help\"")
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	b, ok := st.(store.Backuper)
	if !ok {
		return fmt.Errorf("backup: only a SQLite store copies itself; back PostgreSQL up with pg_dump")
	}
	if err := b.Backup(ctx, pos[0]); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "wrote a consistent copy of %s to %s\n", redactDB(cfg.DB), pos[0])
	return nil
}

const migrateSynopsis = "passflow migrate [--db FILE|URL]"

// cmdMigrate applies pending migrations without serving.
func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	bindStore(fs, &cfg)
	pos, err := parse(fs, args, getenv)
	if err != nil {
		return flagError(err, stdout, migrateSynopsis, fs)
	}
	if len(pos) != 0 {
		return fmt.Errorf("migrate: takes no arguments, got %q", pos[0])
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	st.Close()
	fmt.Fprintf(stdout, "%s is up to date\n", redactDB(cfg.DB))
	return nil
}
