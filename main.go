// Command passflow is a spec-first OAuth2 password-flow API server.
//
// Usage:
//
//	passflow serve [flags]
//	passflow user add NAME [--scopes data:read,data:write] [--db FILE]
//	passflow user list | disable NAME | enable NAME | passwd NAME | delete NAME | import FILE
//	passflow client add ID | list | delete ID
//	passflow keys rotate | list
//	passflow backup FILE
//	passflow migrate
//
// Run `passflow help` for every command and setting.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gin-gonic/gin"

	"github.com/passflow/passflow/fault"
)

// specYAML is openapi.yaml, the contract, embedded here because go:embed
// cannot reach a parent folder from the packages that use it.
//
//go:embed openapi.yaml
var specYAML []byte

func init() {
	// gin's debug mode prints every route; passflow logs through slog.
	gin.SetMode(gin.ReleaseMode)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "passflow: %s\n", describe(err))
		os.Exit(1)
	}
}

// describe renders err in one line: its text, with a fault's part replaced
// by the fault's description, which is meant for people and never holds a
// secret; a cause is kept only for failures of the server itself.
func describe(err error) string {
	msg := err.Error()
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Description != "" {
		desc := fe.Description
		if fe.Err != nil && (fe.Code == fault.Unavailable || fe.Code == fault.Internal) {
			// The operator at the terminal needs the cause too.
			desc += ": " + fe.Err.Error()
		}
		msg = strings.Replace(msg, fe.Error(), desc, 1)
	}
	return strings.ReplaceAll(msg, "\n", " ")
}

const topUsage = `passflow: a spec-first OAuth2 password-flow API server

usage:
  passflow serve [flags]                       serve the API (embedded SQLite, or --db postgres://...)
  passflow user add NAME [--scopes ...]        add a user; the password is read from stdin
  passflow user list                           list users
  passflow user disable NAME | enable NAME     disable (ending its tokens) or enable a user
  passflow user passwd NAME                    set a user's password from stdin
  passflow user delete NAME                    delete a user and everything it owns
  passflow user import FILE                    import users with password hashes (.jsonl or .csv)
  passflow client add ID [--secret-stdin | --public] [--scopes ...] [--grant-types ...]
                                               register a client (a secret is generated unless given)
  passflow client list | delete ID             list or remove registered clients
  passflow keys rotate                         add a new signing key; the old one verifies until its tokens expire
  passflow keys list                           list signing keys
  passflow backup FILE                         write a consistent copy of the (running) SQLite database
  passflow migrate                             apply pending database migrations, then exit

Run "passflow COMMAND -h" for a command's flags. Every flag --name can also be
set with the env PASSFLOW_NAME (upper case, dashes as underscores).
`

// run is the whole program: main only adds the process's signals, args,
// environment and standard streams, so tests run it in parallel.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return errors.New("no command given")
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = cmdServe(ctx, rest, getenv, stdout, stderr)
	case "user":
		err = cmdUser(ctx, rest, getenv, stdin, stdout, stderr)
	case "client":
		err = cmdClient(ctx, rest, getenv, stdin, stdout, stderr)
	case "keys":
		err = cmdKeys(ctx, rest, getenv, stdout, stderr)
	case "backup":
		err = cmdBackup(ctx, rest, getenv, stdout)
	case "migrate":
		err = cmdMigrate(ctx, rest, getenv, stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, topUsage)
	default:
		err = fmt.Errorf("unknown command %q; run \"passflow help\"", cmd)
	}
	if errors.Is(err, errHelpShown) {
		return nil
	}
	return err
}

// errHelpShown ends a command after -h printed its usage.
var errHelpShown = errors.New("help shown")

// flagError turns a flag parsing error into one line, and -h into usage.
func flagError(err error, w io.Writer, synopsis string, fs *flag.FlagSet) error {
	if errors.Is(err, flag.ErrHelp) {
		usage(w, synopsis, fs)
		return errHelpShown
	}
	return fmt.Errorf("%v (see -h)", err)
}
