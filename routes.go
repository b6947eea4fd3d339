package main

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/generated/api"
	"github.com/passflow/passflow/guard"
	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/swaggerui"
)

// unguarded are the routes the spec does not describe, served beside it.
var unguarded = func() map[string]bool {
	m := map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true}
	for _, r := range swaggerui.Routes() {
		m[r] = true
	}
	return m
}()

// routes registers every route in one place: the generated ones behind the
// guard, and the few the spec does not describe. It fails when a route is
// neither, so no route can slip past the guard.
func routes(accessLog io.Writer, g *guard.Guard, server api.StrictServerInterface, middlewares []api.StrictMiddlewareFunc,
	specJSON []byte, m *metrics, metricsApart bool, trustedProxies []string, st store.Store, feed *auth.Feed) (*gin.Engine, error) {
	engine := g.Engine(guard.AccessLogTo(accessLog), m.middleware())
	// The client IP is the connection's, unless it is a trusted proxy's:
	// then X-Forwarded-For, read from the right, names it.
	if err := engine.SetTrustedProxies(trustedProxies); err != nil {
		return nil, err
	}
	engine.RemoteIPHeaders = []string{"X-Forwarded-For"}

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
	d, err := swaggerui.New(specYAML, specJSON)
	if err != nil {
		return nil, err
	}
	d.Register(engine)

	strict := api.NewStrictHandlerWithOptions(server, middlewares, api.StrictGinServerOptions{
		RequestErrorHandlerFunc:  g.BindError,
		HandlerErrorFunc:         g.WriteError,
		ResponseErrorHandlerFunc: g.WriteError,
	})
	api.RegisterHandlersWithOptions(engine.Group("", g.Middleware()), strict, api.GinServerOptions{ErrorHandler: g.ParamError})
	if err := g.CheckRoutes(engine, unguarded); err != nil {
		return nil, err
	}
	return engine, nil
}
