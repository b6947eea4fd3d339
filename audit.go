package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"

	"github.com/passflow/passflow/auth"
)

// events turns auth's events into metrics and audit log lines. The audit
// log says who did what, never a password, token or secret.
type events struct {
	metrics *metrics // nil in command-line processes
	audit   *slog.Logger
}

var _ auth.Events = events{}

func (e events) Login(ctx context.Context, l auth.LoginEvent) {
	event := "login"
	if l.Check != auth.CheckLogin {
		event = l.Check
	} else if e.metrics != nil {
		e.metrics.logins.WithLabelValues(l.Outcome).Inc()
	}
	e.audit.LogAttrs(ctx, slog.LevelInfo, "audit",
		slog.String("event", event), slog.String("outcome", l.Outcome),
		slog.String("username", l.Username), slog.String("subject", l.UserID),
		slog.String("client_id", printable(l.ClientID)), slog.String("client_ip", l.ClientIP))
}

func (e events) TokenRejected(reason string) {
	if e.metrics != nil {
		e.metrics.rejected.WithLabelValues(reason).Inc()
	}
}

func (e events) Change(ctx context.Context, c auth.ChangeEvent) {
	actor := "command line"
	if p, ok := auth.PrincipalFrom(ctx); ok {
		actor = p.Username
	} else if c.Actor != "" {
		actor = c.Actor
	}
	e.audit.LogAttrs(ctx, slog.LevelInfo, "audit",
		slog.String("event", c.Action), slog.String("target", c.Target),
		slog.String("detail", c.Detail), slog.String("actor", actor))
}

// printable bounds a submitted value for a log line and escapes what is
// not printable ASCII.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

// cliEvents writes the audit log of a command-line process to stderr.
func cliEvents(stderr io.Writer) events {
	return events{audit: slog.New(slog.NewTextHandler(stderr, nil))}
}
