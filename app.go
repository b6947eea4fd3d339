package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/rs/cors"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/generated/api"
	"github.com/passflow/passflow/guard"
	"github.com/passflow/passflow/impl"
	"github.com/passflow/passflow/mail"
	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/postgres"
	"github.com/passflow/passflow/store/sqlite"
)

// openStore opens the store --db names, a postgres:// URL or a SQLite
// file, and applies its pending migrations.
func openStore(ctx context.Context, cfg config) (store.Store, error) {
	if isPostgres(cfg.DB) {
		return postgres.Open(ctx, cfg.DB, cfg.DBMaxConns)
	}
	return sqlite.OpenWith(ctx, cfg.DB, sqlite.Options{MaxConns: cfg.DBMaxConns, BusyTimeout: cfg.DBTimeout})
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

// specScopes lists the spec's scopes, for help texts.
func specScopes() string {
	doc, err := loadSpec(context.Background())
	if err != nil {
		return "(openapi.yaml does not load: " + err.Error() + ")"
	}
	return strings.Join(guard.Scopes(doc), ", ")
}

// apiRules reads from the spec what accounts and clients follow: the one
// list of scopes (the password flow's), and the usernames its paths
// reserve.
func apiRules(doc *openapi3.T) (auth.AccountConfig, error) {
	scopes, err := auth.NewScopes(guard.Scopes(doc))
	if err != nil {
		return auth.AccountConfig{}, fmt.Errorf("openapi.yaml: %w", err)
	}
	return auth.AccountConfig{Scopes: scopes, ReservedUsernames: guard.Reserved(doc)["username"]}, nil
}

// refreshCookieName is the refresh cookie's name, as openapi.yaml's
// RefreshCookie parameter declares it.
const refreshCookieName = "passflow_refresh"

// app is the wired program: what serve runs and what tests drive in process.
type app struct {
	handler  http.Handler
	accounts *auth.Accounts
	tokens   *auth.Tokens
	feed     *auth.Feed
	throttle *auth.Throttle
	logger   *slog.Logger
	sender   *mail.Sender // nil: mails wait in the outbox
}

// newApp wires everything: keys, the change feed, tokens, accounts, grants,
// the guard over doc, the handlers (wrapped in middlewares, if any) and
// every route. runBackground keeps it in step with other processes. The
// access log, a line per request, is written to accessLog; the rest goes to
// logger.
func newApp(ctx context.Context, logger *slog.Logger, accessLog io.Writer, cfg config, st store.Store, hasher auth.Hasher,
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
	feed, err := auth.NewFeed(ctx, logger, st, keys, cfg.TokenCacheSize, time.Now)
	if err != nil {
		return nil, err
	}
	tokens, err := auth.NewTokens(auth.TokenConfig{
		Issuer: cfg.Issuer, TTL: cfg.AccessTokenTTL, Leeway: cfg.ClockLeeway, CacheSize: cfg.TokenCacheSize,
	}, keys, feed, ev, time.Now)
	if err != nil {
		return nil, err
	}
	rules, err := apiRules(doc)
	if err != nil {
		return nil, err
	}
	rules.Passwords = cfg.passwordPolicy()
	if rules.Self, err = cfg.selfService(rules.Scopes); err != nil {
		return nil, err
	}
	throttle := auth.NewThrottle(st, cfg.throttleConfig(), time.Now)
	accounts := auth.NewAccounts(rules, st, hasher, throttle, feed, ev, time.Now)
	sender, err := newSender(cfg, st, accounts, m, logger)
	if err != nil {
		return nil, err
	}
	clients := auth.NewClients(auth.ClientConfig{AllowPublic: cfg.PublicClients, Scopes: rules.Scopes}, st, hasher, throttle, ev, time.Now)
	grants, err := auth.NewGrants(auth.GrantConfig{RefreshTTL: cfg.RefreshTokenTTL, PasswordGrant: cfg.PasswordGrant, Scopes: rules.Scopes,
		RequireVerifiedEmail: cfg.RequireVerifiedEmail, ReuseInterval: cfg.RefreshReuseInterval},
		logger, st, hasher, tokens, clients, feed, throttle, ev, time.Now)
	if err != nil {
		return nil, err
	}
	specJSON, err := doc.MarshalJSON()
	if err != nil {
		return nil, err
	}
	g, err := guard.New(logger, doc, tokens, cfg.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	if cfg.RefreshCookie {
		g.UseRefreshCookie(guard.RefreshCookie{Name: refreshCookieName, MaxAge: cfg.RefreshTokenTTL})
	}
	server := impl.NewServer(accounts, st, grants, clients, keys, rules.Scopes, cfg.Issuer)
	engine, err := routes(accessLog, g, server, middlewares, specJSON, m, cfg.MetricsAddr != "", proxies, st, feed)
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
			AllowedHeaders: []string{"Authorization", "Content-Type", guard.RequestIDHeader, guard.CSRFHeader},
			ExposedHeaders: []string{"WWW-Authenticate", "Retry-After", guard.RequestIDHeader},
			MaxAge:         600,
			// The refresh cookie goes only with credentialed requests.
			AllowCredentials: cfg.RefreshCookie,
		}).Handler(engine)
	}
	return &app{handler: handler, accounts: accounts, tokens: tokens, feed: feed, throttle: throttle, logger: logger, sender: sender}, nil
}

// newSender is the sender of the outbox's mails, nil without --smtp-url:
// mails then wait in the outbox. Queued mails wake it, and are counted.
func newSender(cfg config, st store.Store, accounts *auth.Accounts, m *metrics, logger *slog.Logger) (*mail.Sender, error) {
	queued := func() { m.mail.WithLabelValues("queued").Inc() }
	if cfg.SMTPURL == "" {
		accounts.OnMailQueued(queued)
		return nil, nil
	}
	server, err := mail.ParseServer(cfg.SMTPURL)
	if err != nil {
		return nil, err
	}
	if cfg.SMTPCA != "" {
		if server.RootCAs, err = mail.LoadCA(cfg.SMTPCA); err != nil {
			return nil, err
		}
	}
	templates, err := mail.LoadTemplates(cfg.MailTemplates)
	if err != nil {
		return nil, fmt.Errorf("--mail-templates: %w", err)
	}
	sender := mail.NewSender(st, accounts.PrepareMail, mail.Config{
		Server: server, From: cfg.MailFrom, Templates: templates,
		Observe: func(outcome string) { m.mail.WithLabelValues(outcome).Inc() },
	}, logger, time.Now)
	accounts.OnMailQueued(func() { queued(); sender.Wake() })
	return sender, nil
}

// runBackground follows the change feed every auth.SyncInterval, and keeps
// house every hour (pruning what the feed and the login counters no longer
// need), off every request's path, until ctx ends. It returns once both
// loops have stopped: nothing runs on a store about to close.
func (a *app) runBackground(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		every(ctx, auth.SyncInterval, func() {
			if err := a.feed.Sync(ctx); err != nil && ctx.Err() == nil {
				a.logger.Warn("reading the change feed failed; will retry", "error", err)
			}
		})
	})
	if a.sender != nil {
		wg.Go(func() { a.sender.Run(ctx) })
	}
	wg.Go(func() {
		every(ctx, time.Hour, func() {
			if err := a.feed.Prune(ctx); err != nil && ctx.Err() == nil {
				a.logger.Warn("pruning the change feed failed; will retry", "error", err)
			}
			if err := a.throttle.Prune(ctx); err != nil && ctx.Err() == nil {
				a.logger.Warn("pruning login counters failed; will retry", "error", err)
			}
			if err := a.accounts.PruneMail(ctx); err != nil && ctx.Err() == nil {
				a.logger.Warn("pruning sent mails and expired tokens failed; will retry", "error", err)
			}
		})
	})
	wg.Wait()
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
