// Command reports is an example of a team's other service protected by
// passflow: its own openapi.yaml and handlers, and passflow's guard checking
// passflow's tokens against its spec's scopes before a handler runs.
//
//	go run ./examples/reports --issuer http://127.0.0.1:8080
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/passflow/passflow/examples/reports/api"
	"github.com/passflow/passflow/guard"
	"github.com/passflow/passflow/remote"
)

func main() {
	gin.SetMode(gin.ReleaseMode)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "reports:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("reports", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "address to serve on")
	issuer := fs.String("issuer", "http://127.0.0.1:8080", "passflow's issuer URL")
	introspectAs := fs.String("introspect-as", "", "client id to introspect every token as (its secret in REPORTS_CLIENT_SECRET), so a revoked token is refused at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := remote.Config{Issuer: *issuer}
	if *introspectAs != "" {
		secret := getenv("REPORTS_CLIENT_SECRET")
		if secret == "" {
			return errors.New("--introspect-as needs the client's secret in REPORTS_CLIENT_SECRET")
		}
		cfg.Introspection = &remote.Introspection{ClientID: *introspectAs, ClientSecret: secret}
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	handler, err := newService(ctx, logger, cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("serving", "addr", ln.Addr().String(), "issuer", *issuer)
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newService wires the service: passflow's verifier, the guard over this
// service's spec, and the generated routes behind it.
func newService(ctx context.Context, logger *slog.Logger, cfg remote.Config) (http.Handler, error) {
	doc, err := api.GetSwagger()
	if err != nil {
		return nil, err
	}
	verifier, err := remote.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := verifier.Supports(guard.Scopes(doc)); err != nil {
		return nil, err
	}
	g, err := guard.New(logger, doc, verifier, 1<<20)
	if err != nil {
		return nil, err
	}
	engine := g.Engine(guard.AccessLog(logger))
	engine.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	strict := api.NewStrictHandlerWithOptions(&reports{}, nil, api.StrictGinServerOptions{
		RequestErrorHandlerFunc: g.BindError, HandlerErrorFunc: g.WriteError, ResponseErrorHandlerFunc: g.WriteError,
	})
	api.RegisterHandlersWithOptions(engine.Group("", g.Middleware()), strict, api.GinServerOptions{ErrorHandler: g.ParamError})
	return engine, g.CheckRoutes(engine, map[string]bool{"GET /healthz": true})
}
