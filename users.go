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
	"time"

	"golang.org/x/term"

	"github.com/passflow/passflow/auth"
)

const userSynopsis = "passflow user add NAME [--scopes data:read,data:write] [--db FILE]"

func cmdUser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("user: missing subcommand; usage: %s", userSynopsis)
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "add":
		return cmdUserAdd(ctx, rest, getenv, stdin, stdout, stderr)
	default:
		return fmt.Errorf("user: unknown subcommand %q; usage: %s", sub, userSynopsis)
	}
}

func cmdUserAdd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg config
	var scopes string
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	bindStore(fs, &cfg)
	fs.StringVar(&scopes, "scopes", "data:read,data:write", "comma-separated scopes the user may be granted")
	pos, err := parse(fs, args, getenv)
	if err != nil {
		return flagError(err, stdout, userSynopsis, fs)
	}
	if len(pos) != 1 {
		return fmt.Errorf("user add: want exactly one NAME; usage: %s", userSynopsis)
	}
	password, err := readPassword(stdin, stderr)
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	st, err := openStore(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer st.Close()
	accounts := auth.NewAccounts(st, auth.NewArgon2id(auth.OWASPArgon2id), time.Now)
	u, err := accounts.Create(ctx, auth.NewAccount{
		Username: pos[0],
		Password: password,
		Scopes:   strings.FieldsFunc(scopes, func(r rune) bool { return r == ',' || r == ' ' }),
	})
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	fmt.Fprintf(stdout, "added user %s with scopes %q\n", u.Username, strings.Join(u.Scopes, " "))
	return nil
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
