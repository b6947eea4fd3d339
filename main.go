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
// Run `passflow help` for every command, and `passflow COMMAND -h` for its
// settings.
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

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
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

// describe renders err in one line, for a person at a terminal: the
// description of a fault in it (meant for people, never holding a secret),
// with its cause only for failures of the system itself; else its text.
func describe(err error) string {
	msg := err.Error()
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Description != "" {
		msg = fe.Description
		if fe.Err != nil && (fe.Code == fault.Unavailable || fe.Code == fault.Internal) {
			msg += ": " + fe.Err.Error()
		}
	}
	return strings.ReplaceAll(msg, "\n", " ")
}

// command is one command of the command line.
type command struct {
	// name is what is typed: "serve", "user add".
	name string
	// args names the positional arguments, one word each ("NAME"); the
	// command takes exactly these.
	args []string
	// summary says what it does, in one line.
	summary string
	// flags binds its settings beyond --db, which every command that opens
	// the store has.
	flags func(*flag.FlagSet, *config)
	// store opens the store (applying pending migrations) before run, and
	// closes it after.
	store bool
	run   func(ctx context.Context, in invocation) error
}

// invocation is what a command runs with.
type invocation struct {
	cfg    config
	fs     *flag.FlagSet // parsed: given reports what was set
	args   []string
	st     store.Store // when the command opens the store
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// rules reads what a command that changes accounts or clients needs: the
// hasher its settings name, and the spec's rules (scopes, reserved names).
func (in invocation) rules(ctx context.Context) (auth.Hasher, auth.AccountConfig, error) {
	hasher, err := in.cfg.hasher()
	if err != nil {
		return nil, auth.AccountConfig{}, err
	}
	if err := in.cfg.checkPasswordPolicy(); err != nil {
		return nil, auth.AccountConfig{}, err
	}
	doc, err := loadSpec(ctx)
	if err != nil {
		return nil, auth.AccountConfig{}, err
	}
	rules, err := apiRules(doc)
	rules.Passwords = in.cfg.passwordPolicy()
	return hasher, rules, err
}

// commands is the command line, in the order help lists it.
var commands = []command{
	serveCommand,
	userAdd, userList, userDisable, userEnable, userPasswd, userDelete, userImport,
	clientAdd, clientList, clientDelete,
	keysRotate, keysList,
	backupCommand, migrateCommand,
}

// synopsis is a command's usage line.
func (c command) synopsis() string {
	s := "passflow " + c.name
	for _, a := range c.args {
		s += " " + a
	}
	return s + " [flags]"
}

// run is the whole program: main only adds the process's signals, args,
// environment and standard streams, so tests run it in parallel.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr, "")
		return errors.New("no command given; run \"passflow help\"")
	}
	if isHelp(args[0]) {
		usage(stdout, "")
		return nil
	}
	group := args[0]
	for _, c := range commands {
		words := strings.Fields(c.name)
		if words[0] != group {
			continue
		}
		if len(words) == 1 {
			return c.execute(ctx, args[1:], getenv, stdin, stdout, stderr)
		}
		if len(args) < 2 || isHelp(args[1]) {
			usage(stdout, group)
			if len(args) < 2 {
				return fmt.Errorf("%s: missing subcommand; run \"passflow %s -h\"", group, group)
			}
			return nil
		}
		if args[1] == words[1] {
			return c.execute(ctx, args[2:], getenv, stdin, stdout, stderr)
		}
	}
	if len(args) > 1 && hasGroup(group) {
		return fmt.Errorf("%s: unknown subcommand %q; run \"passflow %s -h\"", group, args[1], group)
	}
	return fmt.Errorf("unknown command %q; run \"passflow help\"", group)
}

func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "-help" || arg == "--help"
}

func hasGroup(group string) bool {
	for _, c := range commands {
		if strings.HasPrefix(c.name, group+" ") {
			return true
		}
	}
	return false
}

// usage lists the commands, or those of one group.
func usage(w io.Writer, group string) {
	if group == "" {
		fmt.Fprint(w, "passflow: a spec-first OAuth2 password-flow API server\n\nusage:\n")
	} else {
		fmt.Fprintf(w, "usage of passflow %s:\n", group)
	}
	for _, c := range commands {
		if group == "" || strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(w, "  %-40s %s\n", strings.TrimSuffix(c.synopsis(), " [flags]"), c.summary)
		}
	}
	fmt.Fprint(w, "\nRun \"passflow COMMAND -h\" for a command's flags. Every flag --name can also be\n"+
		"set with the env PASSFLOW_NAME (upper case, dashes as underscores).\n")
}

// execute parses a command's flags and arguments, opens the store if it
// needs it, and runs it.
func (c command) execute(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	in := invocation{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	in.fs = flag.NewFlagSet(c.name, flag.ContinueOnError)
	if c.store {
		bindStore(in.fs, &in.cfg)
	}
	if c.flags != nil {
		c.flags(in.fs, &in.cfg)
	}
	pos, err := parse(in.fs, args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		c.help(stdout, in.fs)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w (see passflow %s -h)", c.name, err, c.name)
	}
	if len(pos) != len(c.args) {
		want := "takes no arguments"
		if len(c.args) > 0 {
			want = "takes one argument, " + c.args[0]
		}
		return fmt.Errorf("%s: %s; got %d (see passflow %s -h)", c.name, want, len(pos), c.name)
	}
	in.args = pos
	if c.store {
		if in.st, err = openStore(ctx, in.cfg); err != nil {
			return fmt.Errorf("%s: %s", c.name, describe(err))
		}
		defer in.st.Close()
	}
	if err := c.run(ctx, in); err != nil {
		// The one place a command's failure becomes words.
		return fmt.Errorf("%s: %s", c.name, describe(err))
	}
	return nil
}

// help writes a command's synopsis and its flags with their envs.
func (c command) help(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n\nflags:\n", c.synopsis(), c.summary)
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s  %s%s [$%s]\n", f.Name, f.Usage, def, envName(f.Name))
	})
}
