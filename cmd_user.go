package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/passflow/passflow/auth"
)

// accounts is the account service of a command-line process: it checks no
// password and verifies no token; running servers apply its changes from
// the change feed.
func accounts(ctx context.Context, in invocation) (*auth.Accounts, error) {
	hasher, rules, err := in.rules(ctx)
	if err != nil {
		return nil, err
	}
	return auth.NewAccounts(rules, in.st, hasher, nil, nil, cliEvents(in.stderr), time.Now), nil
}

var userAdd = command{
	name:    "user add",
	args:    []string{"NAME"},
	summary: "add a user; the password is read from stdin",
	store:   true,
	flags: func(fs *flag.FlagSet, c *config) {
		bindPasswords(fs, c)
		fs.StringVar(&c.Scopes, "scopes", "", "comma-separated scopes the user may be granted, of the spec's: "+specScopes()+" (default none)")
		fs.StringVar(&c.Email, "email", "", "the user's email address (default none)")
		fs.BoolVar(&c.EmailVerified, "email-verified", false, "declare --email verified (no mail is sent)")
	},
	run: func(ctx context.Context, in invocation) error {
		password, err := readPassword(in.stdin, in.stderr)
		if err != nil {
			return err
		}
		a, err := accounts(ctx, in)
		if err != nil {
			return err
		}
		u, err := a.Create(ctx, auth.NewAccount{Username: in.args[0], Password: password, Scopes: splitList(in.cfg.Scopes),
			Email: in.cfg.Email, EmailVerified: in.cfg.EmailVerified})
		if err != nil {
			return err
		}
		fmt.Fprintf(in.stdout, "added user %s with scopes %q\n", u.Username, strings.Join(u.Scopes, " "))
		return nil
	},
}

var userList = command{
	name:    "user list",
	flags:   bindPasswords,
	summary: "list users",
	store:   true,
	run: func(ctx context.Context, in invocation) error {
		a, err := accounts(ctx, in)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(in.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "USERNAME\tSCOPES\tDISABLED\tEMAIL\tCREATED")
		after := ""
		for {
			users, next, err := a.List(ctx, after, 500)
			if err != nil {
				return err
			}
			for _, u := range users {
				email := "-"
				if u.Email != "" {
					email = u.Email
					if !u.EmailVerified {
						email += " (unverified)"
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\n", u.Username, strings.Join(u.Scopes, " "), u.Disabled, email, u.CreatedAt.Format(time.RFC3339))
			}
			if next == "" {
				return w.Flush()
			}
			after = next
		}
	},
}

var userDisable = command{
	name:    "user disable",
	flags:   bindPasswords,
	args:    []string{"NAME"},
	summary: "disable a user, ending its tokens",
	store:   true,
	run: func(ctx context.Context, in invocation) error {
		return setDisabled(ctx, in, true)
	},
}

var userEnable = command{
	name:    "user enable",
	flags:   bindPasswords,
	args:    []string{"NAME"},
	summary: "enable a disabled user",
	store:   true,
	run: func(ctx context.Context, in invocation) error {
		return setDisabled(ctx, in, false)
	},
}

func setDisabled(ctx context.Context, in invocation, disabled bool) error {
	a, err := accounts(ctx, in)
	if err != nil {
		return err
	}
	u, err := a.Update(ctx, in.args[0], auth.Change{Disabled: &disabled})
	if err != nil {
		return err
	}
	if disabled {
		fmt.Fprintf(in.stdout, "disabled user %s; its tokens no longer work\n", u.Username)
	} else {
		fmt.Fprintf(in.stdout, "enabled user %s\n", u.Username)
	}
	return nil
}

var userPasswd = command{
	name:    "user passwd",
	flags:   bindPasswords,
	args:    []string{"NAME"},
	summary: "set a user's password from stdin, ending its tokens",
	store:   true,
	run: func(ctx context.Context, in invocation) error {
		password, err := readPassword(in.stdin, in.stderr)
		if err != nil {
			return err
		}
		a, err := accounts(ctx, in)
		if err != nil {
			return err
		}
		u, err := a.Update(ctx, in.args[0], auth.Change{Password: &password})
		if err != nil {
			return err
		}
		fmt.Fprintf(in.stdout, "changed the password of %s; its tokens no longer work\n", u.Username)
		return nil
	},
}

var userDelete = command{
	name:    "user delete",
	flags:   bindPasswords,
	args:    []string{"NAME"},
	summary: "delete a user and everything it owns",
	store:   true,
	run: func(ctx context.Context, in invocation) error {
		a, err := accounts(ctx, in)
		if err != nil {
			return err
		}
		if err := a.Delete(ctx, in.args[0]); err != nil {
			return err
		}
		fmt.Fprintf(in.stdout, "deleted user %s and everything it owned\n", in.args[0])
		return nil
	},
}

var userImport = command{
	name:    "user import",
	flags:   bindPasswords,
	args:    []string{"FILE"},
	summary: "import users with password hashes (.jsonl or .csv), all or none",
	store:   true,
	run: func(ctx context.Context, in invocation) error {
		a, err := accounts(ctx, in)
		if err != nil {
			return err
		}
		users, err := readImport(in.args[0])
		if err == nil {
			err = a.Import(ctx, users)
		}
		if err != nil {
			return fmt.Errorf("%s; nothing was imported", describe(err))
		}
		fmt.Fprintf(in.stdout, "imported %d users\n", len(users))
		return nil
	},
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

// maxImportLine bounds one line of an import file.
const maxImportLine = 64 << 10

// readImport reads users to import from a .jsonl or .csv file, chosen by
// extension. Both carry FastAPI's names: username, hashed_password, scopes
// (a JSON array; space-delimited in CSV), disabled and email, with
// email_verified beside it. Other fields (full_name, ...) are ignored.
func readImport(path string) ([]auth.ImportedUser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl":
		return readJSONL(f)
	case ".csv":
		return readCSV(f)
	}
	return nil, fmt.Errorf("%s: the file must end in .jsonl or .csv", path)
}

func readJSONL(r io.Reader) ([]auth.ImportedUser, error) {
	var users []auth.ImportedUser
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxImportLine)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var rec struct {
			Username       *string  `json:"username"`
			HashedPassword *string  `json:"hashed_password"`
			Scopes         []string `json:"scopes"`
			Disabled       *bool    `json:"disabled"`
			Email          *string  `json:"email"`
			EmailVerified  *bool    `json:"email_verified"`
		}
		dec := json.NewDecoder(bytes.NewReader(text))
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("line %d: not a JSON object with username, hashed_password, scopes and disabled", line)
		}
		if rec.Username == nil || rec.HashedPassword == nil {
			return nil, fmt.Errorf("line %d: username and hashed_password are required", line)
		}
		users = append(users, auth.ImportedUser{
			Line: line, Username: *rec.Username, HashedPassword: *rec.HashedPassword,
			Scopes: rec.Scopes, Disabled: rec.Disabled != nil && *rec.Disabled,
			Email: valueOr(rec.Email), EmailVerified: rec.EmailVerified != nil && *rec.EmailVerified,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return users, nil
}

func readCSV(r io.Reader) ([]auth.ImportedUser, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, errors.New("line 1: want a header row naming username, hashed_password, scopes, disabled")
	}
	col := map[string]int{}
	for i, name := range header {
		col[strings.TrimSpace(strings.TrimPrefix(name, "\ufeff"))] = i
	}
	for _, required := range []string{"username", "hashed_password"} {
		if _, ok := col[required]; !ok {
			return nil, fmt.Errorf("line 1: the header has no %s column", required)
		}
	}
	field := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var users []auth.ImportedUser
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return users, nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("line %d: malformed CSV", line)
		}
		disabled := false
		if d := field(rec, "disabled"); d != "" {
			if disabled, err = strconv.ParseBool(d); err != nil {
				return nil, fmt.Errorf("line %d: disabled must be true or false", line)
			}
		}
		verified := false
		if v := field(rec, "email_verified"); v != "" {
			if verified, err = strconv.ParseBool(v); err != nil {
				return nil, fmt.Errorf("line %d: email_verified must be true or false", line)
			}
		}
		users = append(users, auth.ImportedUser{
			Line: line, Username: field(rec, "username"), HashedPassword: field(rec, "hashed_password"),
			Scopes: strings.Fields(field(rec, "scopes")), Disabled: disabled,
			Email: field(rec, "email"), EmailVerified: verified,
		})
	}
}

// valueOr is *s, or "" for nil.
func valueOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
