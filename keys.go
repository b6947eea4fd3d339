package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/passflow/passflow/auth"
)

const keysSynopsis = `passflow keys rotate [--signing-alg ALG] [--key-encryption-key K] [--db FILE]
       passflow keys list [--db FILE]`

func cmdKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("keys: missing subcommand; run \"passflow help\"")
	}
	sub := args[0]
	if sub != "rotate" && sub != "list" {
		return fmt.Errorf("keys: unknown subcommand %q; run \"passflow help\"", sub)
	}
	var cfg config
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	bindKeys(fs, &cfg)
	pos, err := parse(fs, args[1:], getenv)
	if err != nil {
		return flagError(err, stdout, keysSynopsis, fs)
	}
	if len(pos) != 0 {
		return fmt.Errorf("keys %s: takes no arguments, got %q", sub, pos[0])
	}
	kc, err := cfg.keyConfig()
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()

	if sub == "rotate" {
		alg := ""
		if given(fs, "signing-alg") {
			alg = cfg.SigningAlg
		}
		k, previous, err := auth.RotateKeys(ctx, st, kc, alg, time.Now())
		if err != nil {
			return fmt.Errorf("keys rotate: %w", err)
		}
		cliEvents(stderr).Change(ctx, auth.ChangeEvent{Action: "keys.rotated", Target: k.ID, Detail: k.Algorithm})
		if previous != "" && previous != k.Algorithm {
			fmt.Fprintf(stdout, "switched signing from %s to %s: ", previous, k.Algorithm)
		}
		fmt.Fprintf(stdout, "added %s signing key %s; every server has it now and signs with it from %s, and the keys it replaces verify until their tokens expire\n",
			k.Algorithm, k.ID, k.ActiveFrom.Format(time.RFC3339Nano))
		return nil
	}
	keys, err := st.SigningKeys(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
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
}
