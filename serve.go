package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
	"github.com/rs/cors"
	"golang.org/x/term"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/docs"
	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/generated/api"
	"github.com/passflow/passflow/guard"
	"github.com/passflow/passflow/impl"
	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/postgres"
	"github.com/passflow/passflow/store/sqlite"
)

const serveSynopsis = "passflow serve [flags]"

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	bindServe(fs, &cfg)
	pos, err := parse(fs, args, getenv)
	if err != nil {
		return flagError(err, stdout, serveSynopsis, fs)
	}
	if len(pos) > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", pos[0])
	}
	cfg.signingAlgSet = given(fs, "signing-alg")
	if err := cfg.validate(); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	raw, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer raw.Close()
	st := store.WithDeadline(raw, cfg.DBTimeout)
	if !isPostgres(cfg.DB) {
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
	hasher := auth.NewBounded(auth.NewPasswords(auth.OWASPArgon2id), cfg.HashConcurrency, cfg.HashQueue, 2*time.Second)
	m := newMetrics(hasher.Waiting)
	a, err := newApp(ctx, logger, cfg, st, hasher, doc, m, nil)
	if err != nil {
		return err
	}
	if err := bootstrapAdmin(ctx, logger, cfg, a.accounts, stderr); err != nil {
		return err
	}
	background, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	go every(background, auth.SyncInterval, func() {
		if err := a.revocations.Sync(background); err != nil && background.Err() == nil {
			logger.Warn("reading the change feed failed; will retry", "error", err)
		}
	})
	go every(background, time.Hour, func() {
		if err := a.throttle.Prune(background); err != nil && background.Err() == nil {
			logger.Warn("pruning login counters failed", "error", err)
		}
	})

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
	if pg, ok := raw.(*postgres.Store); ok {
		attrs = append(attrs, "db_max_conns", pg.MaxConns())
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

// every calls fn each period until ctx ends.
func every(ctx context.Context, period time.Duration, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// openStore opens the store --db names, a postgres:// URL or a SQLite
// file, and applies its pending migrations.
func openStore(ctx context.Context, cfg config) (store.Store, error) {
	if isPostgres(cfg.DB) {
		return postgres.Open(ctx, cfg.DB, cfg.DBMaxConns)
	}
	return sqlite.Open(ctx, cfg.DB)
}

// isPostgres reports whether a --db value names a PostgreSQL database.
func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// redactDB hides a password in a --db URL, for logs.
func redactDB(db string) string {
	if u, err := url.Parse(db); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return db
}

// loadSpec parses and validates the embedded openapi.yaml.
func loadSpec(ctx context.Context) (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(specYAML)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return doc, nil
}

// app is the wired program: what serve runs and what tests drive in process.
type app struct {
	handler     http.Handler
	accounts    *auth.Accounts
	tokens      *auth.Tokens
	revocations *auth.Revocations
	throttle    *auth.Throttle
}

// newApp wires everything: keys, revocations, tokens, accounts, grants, the
// guard over doc, the handlers (wrapped in middlewares, if any) and every
// route. Sync a.revocations every auth.SyncInterval to follow changes other
// processes make.
func newApp(ctx context.Context, logger *slog.Logger, cfg config, st store.Store, hasher auth.Hasher,
	doc *openapi3.T, m *metrics, middlewares []api.StrictMiddlewareFunc) (*app, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("no issuer")
	}
	kc, err := cfg.keyConfig()
	if err != nil {
		return nil, err
	}
	proxies, err := cfg.trustedProxies()
	if err != nil {
		return nil, err
	}
	ev := events{metrics: m, audit: logger}
	keys, err := auth.LoadKeys(ctx, st, kc, logger, time.Now)
	if err != nil {
		return nil, err
	}
	revs, err := auth.NewRevocations(ctx, logger, st, keys, cfg.TokenCacheSize, time.Now)
	if err != nil {
		return nil, err
	}
	tokens, err := auth.NewTokens(cfg.Issuer, cfg.AccessTokenTTL, cfg.ClockLeeway, keys, revs, ev, cfg.TokenCacheSize, time.Now)
	if err != nil {
		return nil, err
	}
	throttle := auth.NewThrottle(st, auth.ThrottleConfig{
		MaxFailures: cfg.LoginMaxFailures, MaxPerUser: cfg.LoginMaxFailuresPerUser, MaxPerIP: cfg.LoginMaxFailuresPerIP,
		Window: cfg.LoginWindow, MaxBackoff: 15 * time.Minute,
	}, time.Now)
	accounts := auth.NewAccounts(st, hasher, throttle, revs, ev, time.Now)
	clients := auth.NewClients(st, hasher, throttle, cfg.PublicClients, ev, time.Now)
	grants, err := auth.NewGrants(logger, st, hasher, tokens, clients, revs, throttle, ev, cfg.RefreshTokenTTL, cfg.PasswordGrant, time.Now)
	if err != nil {
		return nil, err
	}
	specJSON, err := doc.MarshalJSON()
	if err != nil {
		return nil, err
	}
	g, err := guard.New(logger, doc, tokens, cfg.MaxBodyBytes, aliases)
	if err != nil {
		return nil, err
	}
	server := impl.NewServer(accounts, st, grants, clients, keys, cfg.Issuer)
	engine, err := routes(logger, g, server, middlewares, specJSON, m, cfg.MetricsAddr != "", proxies, st, revs)
	if err != nil {
		return nil, err
	}
	origins, err := cfg.corsOrigins()
	if err != nil {
		return nil, err
	}
	var handler http.Handler = engine
	if len(origins) > 0 {
		// Browser apps on these origins may call the API; preflights from
		// any other origin get no CORS headers, so browsers refuse them.
		handler = cors.New(cors.Options{
			AllowedOrigins: origins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
			AllowedHeaders: []string{"Authorization", "Content-Type", guard.RequestIDHeader},
			ExposedHeaders: []string{"WWW-Authenticate", "Retry-After", guard.RequestIDHeader},
			MaxAge:         600,
		}).Handler(engine)
	}
	return &app{handler: handler, accounts: accounts, tokens: tokens, revocations: revs, throttle: throttle}, nil
}

// aliases are gin routes served by a spec operation besides its own path.
var aliases = []guard.Alias{
	// The FastAPI seed's trailing-slash path.
	{Method: http.MethodGet, GinPath: "/my_data/", SpecPath: "/my_data"},
}

// unguarded are the routes the spec does not describe, served beside it.
var unguarded = func() map[string]bool {
	m := map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true}
	for _, r := range docs.Routes() {
		m[r] = true
	}
	return m
}()

// routes registers every route in one place: the generated ones behind the
// guard, and the few the spec does not describe. It fails when a route is
// neither, so no route can slip past the guard.
func routes(logger *slog.Logger, g *guard.Guard, server api.StrictServerInterface, middlewares []api.StrictMiddlewareFunc,
	specJSON []byte, m *metrics, metricsApart bool, trustedProxies []string, st store.Store, feed *auth.Revocations) (*gin.Engine, error) {
	engine := gin.New()
	engine.ContextWithFallback = true
	engine.RedirectTrailingSlash = false
	engine.RedirectFixedPath = false
	engine.HandleMethodNotAllowed = true
	// The client IP is the connection's, unless it is a trusted proxy's:
	// then X-Forwarded-For, read from the right, names it.
	if err := engine.SetTrustedProxies(trustedProxies); err != nil {
		return nil, err
	}
	engine.RemoteIPHeaders = []string{"X-Forwarded-For"}
	engine.Use(guard.RequestID(), guard.AccessLog(logger), m.middleware(), g.Recover())
	engine.NoRoute(g.NoRoute)
	engine.NoMethod(g.NoMethod)

	engine.GET("/healthz", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	})
	engine.GET("/readyz", func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			g.WriteError(c, &fault.Error{Code: fault.Unavailable, Description: "the database is unreachable", Err: err})
			return
		}
		if err := feed.Ready(); err != nil {
			g.WriteError(c, &fault.Error{Code: fault.Unavailable, Description: "this instance is behind the change feed", Err: err})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
	if !metricsApart {
		engine.GET("/metrics", gin.WrapH(m.handler()))
	}
	d, err := docs.New(specYAML, specJSON)
	if err != nil {
		return nil, err
	}
	d.Register(engine)

	bindErr := func(c *gin.Context, err error) {
		g.WriteError(c, fault.Wrap(fault.InvalidRequest, "the request could not be read", err))
	}
	strict := api.NewStrictHandlerWithOptions(server, middlewares, api.StrictGinServerOptions{
		RequestErrorHandlerFunc:  bindErr,
		HandlerErrorFunc:         g.WriteError,
		ResponseErrorHandlerFunc: g.WriteError,
	})
	wrapperErr := func(c *gin.Context, err error, _ int) { bindErr(c, err) }
	gated := engine.Group("", g.Middleware())
	api.RegisterHandlersWithOptions(gated, strict, api.GinServerOptions{ErrorHandler: wrapperErr})
	wrapper := api.ServerInterfaceWrapper{Handler: strict, ErrorHandler: wrapperErr}
	gated.GET("/my_data/", wrapper.ListMyData)

	for _, r := range engine.Routes() {
		if !unguarded[r.Method+" "+r.Path] && !g.Covers(r.Method, r.Path) {
			return nil, fmt.Errorf("route %s %s is neither in the spec nor listed as unguarded", r.Method, r.Path)
		}
	}
	return engine, nil
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
