package guard

import (
	"fmt"

	"github.com/gin-gonic/gin"

	"github.com/passflow/passflow/fault"
)

// Engine returns a gin engine set up the way the guard's answers need,
// for any oapi-codegen gin service: paths are never redirected (a redirect
// is an answer no spec declares), a wrong method is a 405, every request
// carries an id, and unknown paths, wrong methods and panics get the
// guard's error bodies. use runs after the request id and before the panic
// recovery, so a logger there sees every answer, a panic's 500 included.
// Register the generated routes on a group with Middleware.
func (g *Guard) Engine(use ...gin.HandlerFunc) *gin.Engine {
	engine := gin.New()
	engine.ContextWithFallback = true
	engine.RedirectTrailingSlash = false
	engine.RedirectFixedPath = false
	engine.HandleMethodNotAllowed = true
	engine.Use(RequestID())
	engine.Use(use...)
	engine.Use(g.Recover())
	engine.NoRoute(g.NoRoute)
	engine.NoMethod(g.NoMethod)
	return engine
}

// BindError answers a request body the generated strict handler could not
// bind. The guard checked the body against the spec first, so it is rare:
// for the strict handler's RequestErrorHandlerFunc.
func (g *Guard) BindError(c *gin.Context, err error) {
	g.WriteError(c, fault.Wrap(fault.InvalidRequest, "the request could not be read", err))
}

// ParamError is BindError for the generated wrapper's parameter errors:
// for GinServerOptions.ErrorHandler.
func (g *Guard) ParamError(c *gin.Context, err error, _ int) { g.BindError(c, err) }

// CheckRoutes fails when a route of engine is neither an operation of the
// spec, which the guard checks, nor listed in unguarded ("GET /healthz"):
// no route slips past the guard unnoticed.
func (g *Guard) CheckRoutes(engine *gin.Engine, unguarded map[string]bool) error {
	for _, r := range engine.Routes() {
		if !unguarded[r.Method+" "+r.Path] && !g.Covers(r.Method, r.Path) {
			return fmt.Errorf("route %s %s is neither in the spec nor listed as unguarded", r.Method, r.Path)
		}
	}
	return nil
}
