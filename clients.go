package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/passflow/passflow/auth"
)

const clientSynopsis = `passflow client add ID [--secret-stdin | --public] [--scopes a,b] [--grant-types password,refresh_token] [--db FILE]
       passflow client list | delete ID [--db FILE]`

func cmdClient(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("client: missing subcommand; run \"passflow help\"")
	}
	sub := args[0]
	var cfg config
	var secretStdin, public bool
	var scopes, grants string
	fs := flag.NewFlagSet("client "+sub, flag.ContinueOnError)
	bindStore(fs, &cfg)
	wantID := true
	switch sub {
	case "add":
		fs.BoolVar(&secretStdin, "secret-stdin", false, "read the client secret from stdin (one line) instead of generating one")
		fs.BoolVar(&public, "public", false, "register a public client, which has no secret")
		fs.StringVar(&scopes, "scopes", "", "comma-separated scopes the client may request (default all)")
		fs.StringVar(&grants, "grant-types", "", "comma-separated grant types the client may use (default password,refresh_token)")
	case "list":
		wantID = false
	case "delete":
	default:
		return fmt.Errorf("client: unknown subcommand %q; run \"passflow help\"", sub)
	}
	pos, err := parse(fs, args[1:], getenv)
	if err != nil {
		return flagError(err, stdout, clientSynopsis, fs)
	}
	switch {
	case wantID && len(pos) != 1:
		return fmt.Errorf("client %s: want exactly one ID; run \"passflow help\"", sub)
	case !wantID && len(pos) != 0:
		return fmt.Errorf("client %s: takes no arguments, got %q", sub, pos[0])
	case secretStdin && public:
		return fmt.Errorf("client add: --secret-stdin and --public exclude each other")
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	clients := auth.NewClients(st, auth.NewPasswords(auth.OWASPArgon2id), nil, true, cliEvents(stderr), time.Now)

	switch sub {
	case "add":
		n := auth.NewClient{ID: pos[0], Scopes: splitScopes(scopes), GrantTypes: splitScopes(grants)}
		generated := false
		switch {
		case secretStdin:
			if n.Secret, err = readPassword(stdin, stderr); err != nil {
				return fmt.Errorf("client add: %w", err)
			}
		case !public:
			if n.Secret, err = auth.GeneratePassword(); err != nil {
				return err
			}
			generated = true
		}
		c, err := clients.Register(ctx, n)
		if err != nil {
			return fmt.Errorf("client add: %w", err)
		}
		kind := "confidential"
		if public {
			kind = "public"
		}
		fmt.Fprintf(stdout, "added %s client %s: grant types %q, scopes %q\n", kind, c.ID,
			strings.Join(c.GrantTypes, " "), strings.Join(c.Scopes, " "))
		if generated {
			fmt.Fprintf(stdout, "client secret (shown only now): %s\n", n.Secret)
		}
	case "list":
		all, err := clients.List(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tTYPE\tGRANT TYPES\tSCOPES\tCREATED")
		for _, c := range all {
			kind := "confidential"
			if c.SecretHash == "" {
				kind = "public"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.ID, kind, strings.Join(c.GrantTypes, " "),
				strings.Join(c.Scopes, " "), c.CreatedAt.Format(time.RFC3339))
		}
		return w.Flush()
	case "delete":
		if err := clients.Delete(ctx, pos[0]); err != nil {
			return fmt.Errorf("client delete: %w", err)
		}
		fmt.Fprintf(stdout, "deleted client %s\n", pos[0])
	}
	return nil
}
