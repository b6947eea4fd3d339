package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/passflow/passflow/auth"
)

var keysRotate = command{
	name:    "keys rotate",
	summary: "add a signing key; the one it replaces verifies until its tokens expire",
	store:   true,
	flags: func(fs *flag.FlagSet, c *config) {
		bindKeys(fs, c)
		fs.DurationVar(&c.PublishAhead, "publish-ahead", 0,
			"how long the new key is published before it signs; services checking tokens with passflow's JWK Set read it every 5m, so 6m spares them any refused token (default: at once)")
	},
	run: func(ctx context.Context, in invocation) error {
		if in.cfg.PublishAhead < 0 || in.cfg.PublishAhead > 24*time.Hour {
			return errors.New("--publish-ahead must be between 0s and 24h")
		}
		kc, err := in.cfg.keyConfig()
		if err != nil {
			return err
		}
		alg := ""
		if given(in.fs, "signing-alg") {
			alg = in.cfg.SigningAlg
		}
		k, previous, err := auth.RotateKeys(ctx, in.st, kc, alg, in.cfg.PublishAhead, time.Now())
		if err != nil {
			return err
		}
		cliEvents(in.stderr).Change(ctx, auth.ChangeEvent{Action: "keys.rotated", Target: k.ID, Detail: k.Algorithm})
		if previous != "" && previous != k.Algorithm {
			fmt.Fprintf(in.stdout, "switched signing from %s to %s: ", previous, k.Algorithm)
		}
		fmt.Fprintf(in.stdout, "added %s signing key %s; every server has it now and signs with it from %s, and the keys it replaces verify until their tokens expire\n",
			k.Algorithm, k.ID, k.ActiveFrom.Format(time.RFC3339Nano))
		return nil
	},
}

var keysList = command{
	name:    "keys list",
	summary: "list signing keys",
	store:   true,
	run: func(ctx context.Context, in invocation) error {
		keys, err := in.st.SigningKeys(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(in.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "KID\tALG\tCREATED\tSIGNS FROM\tRETIRED\tENCRYPTED")
		for _, k := range keys {
			retired := "-"
			if !k.RetiredAt.IsZero() {
				retired = k.RetiredAt.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%v\n", k.ID, k.Algorithm, k.CreatedAt.Format(time.RFC3339),
				k.Active().Format(time.RFC3339), retired, auth.Sealed(k))
		}
		return w.Flush()
	},
}
