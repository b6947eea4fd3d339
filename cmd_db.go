package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/passflow/passflow/store"
)

var backupCommand = command{
	name:    "backup",
	args:    []string{"FILE"},
	summary: "write a consistent copy of the (running) SQLite database",
	store:   true,
	run: func(ctx context.Context, in invocation) error {
		b, ok := in.st.(store.Backuper)
		if !ok {
			return errors.New("only a SQLite store copies itself; back PostgreSQL up with pg_dump")
		}
		if err := b.Backup(ctx, in.args[0]); err != nil {
			return err
		}
		fmt.Fprintf(in.stdout, "wrote a consistent copy of %s to %s\n", redactDB(in.cfg.DB), in.args[0])
		return nil
	},
}

var migrateCommand = command{
	name:    "migrate",
	summary: "apply pending database migrations, then exit",
	// Opening the store migrates it.
	store: true,
	run: func(_ context.Context, in invocation) error {
		fmt.Fprintf(in.stdout, "%s is up to date\n", redactDB(in.cfg.DB))
		return nil
	},
}
