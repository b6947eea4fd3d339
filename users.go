package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/passflow/passflow/auth"
)

const userSynopsis = `passflow user add NAME [--scopes data:read,data:write] [--db FILE]
       passflow user list | disable NAME | enable NAME | passwd NAME | delete NAME | import FILE [--db FILE]`

// userCommand describes one `passflow user` subcommand.
type userCommand struct {
	// arg names the command's one argument (NAME, FILE), if it takes one.
	arg string
	run func(ctx context.Context, a *auth.Accounts, arg string, io userIO) error
}

type userIO struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	scopes         string
}

var userCommands = map[string]userCommand{
	"add": {arg: "NAME", run: func(ctx context.Context, a *auth.Accounts, name string, io userIO) error {
		password, err := readPassword(io.stdin, io.stderr)
		if err != nil {
			return err
		}
		u, err := a.Create(ctx, auth.NewAccount{Username: name, Password: password, Scopes: splitScopes(io.scopes)})
		if err != nil {
			return err
		}
		fmt.Fprintf(io.stdout, "added user %s with scopes %q\n", u.Username, strings.Join(u.Scopes, " "))
		return nil
	}},
	"list": {run: func(ctx context.Context, a *auth.Accounts, _ string, io userIO) error {
		w := tabwriter.NewWriter(io.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "USERNAME\tSCOPES\tDISABLED\tCREATED")
		after := ""
		for {
			users, next, err := a.List(ctx, after, 500)
			if err != nil {
				return err
			}
			for _, u := range users {
				fmt.Fprintf(w, "%s\t%s\t%v\t%s\n", u.Username, strings.Join(u.Scopes, " "), u.Disabled, u.CreatedAt.Format(time.RFC3339))
			}
			if next == "" {
				return w.Flush()
			}
			after = next
		}
	}},
	"disable": {arg: "NAME", run: func(ctx context.Context, a *auth.Accounts, name string, io userIO) error {
		return setDisabled(ctx, a, name, true, io.stdout)
	}},
	"enable": {arg: "NAME", run: func(ctx context.Context, a *auth.Accounts, name string, io userIO) error {
		return setDisabled(ctx, a, name, false, io.stdout)
	}},
	"passwd": {arg: "NAME", run: func(ctx context.Context, a *auth.Accounts, name string, io userIO) error {
		password, err := readPassword(io.stdin, io.stderr)
		if err != nil {
			return err
		}
		u, err := a.Update(ctx, name, auth.Change{Password: &password})
		if err != nil {
			return err
		}
		fmt.Fprintf(io.stdout, "changed the password of %s; its tokens no longer work\n", u.Username)
		return nil
	}},
	"import": {arg: "FILE", run: func(ctx context.Context, a *auth.Accounts, path string, io userIO) error {
		users, err := readImport(path)
		if err == nil {
			err = a.Import(ctx, users)
		}
		if err != nil {
			return fmt.Errorf("%w; nothing was imported", err)
		}
		fmt.Fprintf(io.stdout, "imported %d users\n", len(users))
		return nil
	}},
	"delete": {arg: "NAME", run: func(ctx context.Context, a *auth.Accounts, name string, io userIO) error {
		if err := a.Delete(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(io.stdout, "deleted user %s and everything it owned\n", name)
		return nil
	}},
}

func setDisabled(ctx context.Context, a *auth.Accounts, name string, disabled bool, stdout io.Writer) error {
	u, err := a.Update(ctx, name, auth.Change{Disabled: &disabled})
	if err != nil {
		return err
	}
	if disabled {
		fmt.Fprintf(stdout, "disabled user %s; its tokens no longer work\n", u.Username)
	} else {
		fmt.Fprintf(stdout, "enabled user %s\n", u.Username)
	}
	return nil
}

func cmdUser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("user: missing subcommand; run \"passflow help\"")
	}
	sub := args[0]
	cmd, ok := userCommands[sub]
	if !ok {
		return fmt.Errorf("user: unknown subcommand %q; run \"passflow help\"", sub)
	}
	var cfg config
	uio := userIO{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	bindStore(fs, &cfg)
	if sub == "add" {
		fs.StringVar(&uio.scopes, "scopes", "data:read,data:write", "comma-separated scopes the user may be granted")
	}
	pos, err := parse(fs, args[1:], getenv)
	if err != nil {
		return flagError(err, stdout, userSynopsis, fs)
	}
	arg := ""
	switch {
	case cmd.arg != "" && len(pos) != 1:
		return fmt.Errorf("user %s: want exactly one %s; run \"passflow help\"", sub, cmd.arg)
	case cmd.arg == "" && len(pos) != 0:
		return fmt.Errorf("user %s: takes no arguments, got %q", sub, pos[0])
	case cmd.arg != "":
		arg = pos[0]
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	accounts := auth.NewAccounts(st, auth.NewPasswords(auth.OWASPArgon2id), nil, nil, cliEvents(stderr), time.Now)
	if err := cmd.run(ctx, accounts, arg, uio); err != nil {
		return fmt.Errorf("user %s: %w", sub, err)
	}
	return nil
}

func splitScopes(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

// readPassword reads a password from stdin: without echo, and twice, from
// a terminal; one line from a pipe.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Again: ")
		second, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(first) != string(second) {
			return "", errors.New("the passwords differ")
		}
		return string(first), nil
	}
	// Read one line, a little over the limit so an overlong one is reported
	// as too long rather than cut short.
	line, err := bufio.NewReaderSize(io.LimitReader(stdin, auth.MaxPasswordBytes+2), auth.MaxPasswordBytes+2).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password on stdin: pipe one line, or run on a terminal to be asked")
	}
	return line, nil
}
