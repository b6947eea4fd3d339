package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/passflow/passflow/auth"
)

// clients is the client service of a command-line process.
func clients(ctx context.Context, in invocation) (*auth.Clients, error) {
	hasher, rules, err := in.rules(ctx)
	if err != nil {
		return nil, err
	}
	return auth.NewClients(auth.ClientConfig{AllowPublic: true, Scopes: rules.Scopes}, in.st, hasher, nil, cliEvents(in.stderr), time.Now), nil
}

var clientAdd = command{
	name:    "client add",
	args:    []string{"ID"},
	summary: "register a client; a secret is generated unless --secret-stdin or --public",
	store:   true,
	flags: func(fs *flag.FlagSet, c *config) {
		bindPasswords(fs, c)
		fs.BoolVar(&c.SecretStdin, "secret-stdin", false, "read the client secret from stdin (one line) instead of generating one")
		fs.BoolVar(&c.Public, "public", false, "register a public client, which has no secret")
		fs.StringVar(&c.Scopes, "scopes", "", "comma-separated scopes the client may request, of the spec's: "+specScopes()+" (default all)")
		fs.StringVar(&c.GrantTypes, "grant-types", "", "comma-separated grant types the client may use (default password,refresh_token); none for a service that only introspects tokens")
	},
	run: func(ctx context.Context, in invocation) error {
		if in.cfg.SecretStdin && in.cfg.Public {
			return errors.New("--secret-stdin and --public exclude each other")
		}
		n := auth.NewClient{ID: in.args[0], Scopes: splitList(in.cfg.Scopes), GrantTypes: splitList(in.cfg.GrantTypes)}
		generated := false
		var err error
		switch {
		case in.cfg.SecretStdin:
			if n.Secret, err = readPassword(in.stdin, in.stderr); err != nil {
				return err
			}
		case !in.cfg.Public:
			if n.Secret, err = auth.GeneratePassword(); err != nil {
				return err
			}
			generated = true
		}
		cs, err := clients(ctx, in)
		if err != nil {
			return err
		}
		c, err := cs.Register(ctx, n)
		if err != nil {
			return err
		}
		kind := "confidential"
		if in.cfg.Public {
			kind = "public"
		}
		fmt.Fprintf(in.stdout, "added %s client %s: grant types %q, scopes %q\n", kind, c.ID, grantList(c.GrantTypes), strings.Join(c.Scopes, " "))
		if generated {
			fmt.Fprintf(in.stdout, "client secret (shown only now): %s\n", n.Secret)
		}
		return nil
	},
}

var clientList = command{
	name:    "client list",
	flags:   bindPasswords,
	summary: "list registered clients",
	store:   true,
	run: func(ctx context.Context, in invocation) error {
		cs, err := clients(ctx, in)
		if err != nil {
			return err
		}
		all, err := cs.List(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(in.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tTYPE\tGRANT TYPES\tSCOPES\tCREATED")
		for _, c := range all {
			kind := "confidential"
			if c.SecretHash == "" {
				kind = "public"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.ID, kind, grantList(c.GrantTypes),
				strings.Join(c.Scopes, " "), c.CreatedAt.Format(time.RFC3339))
		}
		return w.Flush()
	},
}

var clientDelete = command{
	name:    "client delete",
	flags:   bindPasswords,
	args:    []string{"ID"},
	summary: "delete a client, ending every token it was issued",
	store:   true,
	run: func(ctx context.Context, in invocation) error {
		cs, err := clients(ctx, in)
		if err != nil {
			return err
		}
		if err := cs.Delete(ctx, in.args[0]); err != nil {
			return err
		}
		fmt.Fprintf(in.stdout, "deleted client %s\n", in.args[0])
		return nil
	},
}

// grantList shows a client's grant types; none for a client that only
// introspects.
func grantList(grants []string) string {
	if len(grants) == 0 {
		return auth.NoGrants
	}
	return strings.Join(grants, " ")
}
