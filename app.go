package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/rs/cors"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/generated/api"
	"github.com/passflow/passflow/guard"
	"github.com/passflow/passflow/impl"
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
