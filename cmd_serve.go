package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/sqlite"
)

var serveCommand = command{
	name:    "serve",
	summary: "serve the API (embedded SQLite, or --db postgres://...)",
	flags: func(fs *flag.FlagSet, c *config) {
		// It opens the store itself, to put a deadline on every call.
		bindStore(fs, c)
		bindServe(fs, c)
	},
	run: runServe,
}

// runServe serves until ctx ends (SIGINT, SIGTERM), then drains requests
// in flight and stops.
func runServe(ctx context.Context, in invocation) error {
	cfg := in.cfg
	cfg.signingAlgSet = given(in.fs, "signing-alg")
	if err := cfg.validate(); err != nil {
		return err
	}
	sink := newLogSink(in.stderr, 100*time.Millisecond)
	defer sink.Close() // deferred first: the last lines are written last
	logger := slog.New(slog.NewTextHandler(sink, nil))
	accessLog := sink.Buffered()

	raw, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer raw.Close()
	// A server database can stop answering with its connection open: every
	// call to it gets --db-timeout. SQLite is a local file whose only wait
	// is for the write lock, which its busy timeout (--db-timeout too)
	// bounds; a deadline per call would cost more than its reads.
	st := raw
	if isPostgres(cfg.DB) {
		st = store.WithDeadline(raw, cfg.DBTimeout)
	} else {
		if loose := sqlite.ReadableByOthers(cfg.DB); len(loose) > 0 {
			logger.Warn("the database holds password hashes and signing keys, and other users can read it: run chmod 600 on each file",
				"files", strings.Join(loose, " "))
		}
	}
	doc, err := loadSpec(ctx)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	if cfg.Issuer == "" {
		cfg.Issuer = issuerFor(cfg.Addr, ln.Addr(), cfg.TLSCert != "")
	}
	passwords, err := cfg.hasher()
	if err != nil {
		return err
	}
	if params, _ := auth.ParseArgon2idParams(cfg.Argon2idParams); params.BelowOWASP() {
		logger.Warn("--argon2id-params are cheaper than every configuration OWASP recommends: fit for tests, not for real passwords", "argon2id_params", params.String())
	}
	hasher := auth.NewBounded(passwords, cfg.HashConcurrency, cfg.HashQueue, 2*time.Second)
	m := newMetrics(hasher.Waiting)
	a, err := newApp(ctx, logger, accessLog, cfg, st, hasher, doc, m, nil)
	if err != nil {
		return err
	}
	if err := bootstrapAdmin(ctx, logger, cfg, a.accounts, in.stderr); err != nil {
		return err
	}
	background, stopBackground := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { a.runBackground(background); close(stopped) }()
	// Deferred after the store's Close, so run before it.
	defer func() { stopBackground(); <-stopped }()

	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 2)
	var metricsSrv *http.Server
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.handler())
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: srv.ErrorLog}
		go func() { served <- metricsSrv.Serve(mln) }()
		logger.Info("serving metrics", "addr", mln.Addr().String())
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
		go func() { served <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey) }()
	} else {
		go func() { served <- srv.Serve(ln) }()
	}
	attrs := []any{"addr", ln.Addr().String(), "scheme", scheme, "issuer", cfg.Issuer, "db", redactDB(cfg.DB)}
	if pool, ok := raw.(interface{ PoolStats() sql.DBStats }); ok {
		attrs = append(attrs, "db_max_conns", pool.PoolStats().MaxOpenConnections)
	}
	logger.Info("serving", attrs...)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if metricsSrv != nil {
		metricsSrv.Shutdown(shutdownCtx)
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// bootstrapAdmin makes sure an enabled account holds users:admin: when
// none does, it creates admin with every scope (or gives them back to
// admin). Its password is the configured one, or a generated one shown once
// on the terminal or, without one, written to a new 0600 file beside the
// database. A password never goes into a log line.
func bootstrapAdmin(ctx context.Context, logger *slog.Logger, cfg config, accounts *auth.Accounts, stderr io.Writer) error {
	has, err := accounts.HasAdmin(ctx)
	if err != nil {
		return err
	}
	if has {
		if cfg.AdminPassword != "" {
			logger.Info("the admin password setting is ignored: an account holds users:admin already (change a password with passflow user passwd)")
		}
		return nil
	}
	pw, generated := cfg.AdminPassword, false
	if pw == "" {
		if pw, err = auth.GeneratePassword(); err != nil {
			return err
		}
		generated = true
	}
	var file *os.File
	path := cfg.DB + ".admin-password"
	if isPostgres(cfg.DB) {
		// No file beside a database server: the working directory.
		path = "passflow.admin-password"
	}
	toTerminal := false
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		toTerminal = true
	}
	if generated && !toTerminal {
		// O_EXCL: never an existing file, nor one a link points at.
		file, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: it may hold an earlier admin password; read it if you need it, delete it, and start again", path)
		}
		if err != nil {
			return fmt.Errorf("write admin password: %w", err)
		}
	}
	did, err := accounts.Bootstrap(ctx, pw)
	if file != nil && (err != nil || did != store.BootstrapCreated) {
		file.Close()
		os.Remove(path)
	}
	switch {
	case err != nil:
		return fmt.Errorf("create admin: %w", err)
	case did == store.BootstrapRestored:
		logger.Warn("no enabled account held users:admin; enabled admin and gave it every scope (its password is unchanged)")
		return nil
	case did == store.BootstrapNone:
		return nil // another instance, starting together, did it
	case !generated:
		logger.Info("created account admin with the configured password")
		return nil
	case toTerminal:
		fmt.Fprintf(stderr, "\n  Created account admin with password: %s\n  It is shown only this once.\n\n", pw)
		return nil
	}
	if _, err := file.WriteString(pw + "\n"); err != nil {
		file.Close()
		return fmt.Errorf("write admin password: %w", err)
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("write admin password: %w", err)
	}
	logger.Warn("created account admin; its generated password is in a file readable only by this user", "path", path)
	return nil
}
