// Package swaggerui serves Swagger UI 5 at /docs, from the assets of the
// github.com/swaggo/files/v2 module and a small page of our own, and the
// spec it reads at /openapi.yaml and /openapi.json. Nothing is loaded from
// a CDN.
package swaggerui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"

	"github.com/gin-gonic/gin"
	swaggerfiles "github.com/swaggo/files/v2"
)

//go:embed page
var page embed.FS

// assets are the only files taken from swaggo/files: its stock index page
// and initializer would fetch the petstore demo.
var assets = []string{"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"}

// security is the page's Content-Security-Policy: everything from this
// server; Swagger UI sets styles inline.
const security = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; " +
	"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Docs serves Swagger UI and the spec.
type Docs struct {
	specYAML []byte
	specJSON []byte
	files    map[string][]byte
}

// New returns the documentation of a spec given as YAML and as JSON (the
// same document).
func New(specYAML, specJSON []byte) (*Docs, error) {
	d := &Docs{specYAML: specYAML, specJSON: specJSON, files: map[string][]byte{}}
	for _, name := range assets {
		b, err := fs.ReadFile(swaggerfiles.FS, name)
		if err != nil {
			return nil, err
		}
		d.files[name] = b
	}
	for _, name := range []string{"index.html", "init.js"} {
		b, err := fs.ReadFile(page, "page/"+name)
		if err != nil {
			return nil, err
		}
		d.files[name] = b
	}
	return d, nil
}

// Routes lists every route Register adds, as "METHOD /path".
func Routes() []string {
	routes := []string{"GET /openapi.yaml", "GET /openapi.json", "GET /docs", "GET /docs/", "GET /docs/init.js"}
	for _, name := range assets {
		routes = append(routes, "GET /docs/"+name)
	}
	return routes
}

// Register adds the documentation's routes to r.
func (d *Docs) Register(r gin.IRouter) {
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", d.specYAML) })
	r.GET("/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", d.specJSON) })
	// The page's URLs are relative, so it works under a path prefix too:
	// /docs must end in a slash.
	r.GET("/docs", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, c.Request.URL.Path+"/") })
	r.GET("/docs/", d.file("index.html"))
	r.GET("/docs/init.js", d.file("init.js"))
	for _, name := range assets {
		r.GET("/docs/"+name, d.file(name))
	}
}

var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".png":  "image/png",
}

func (d *Docs) file(name string) gin.HandlerFunc {
	body, kind := d.files[name], types[path.Ext(name)]
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if name == "index.html" {
			h.Set("Content-Security-Policy", security)
			h.Set("Cache-Control", "no-cache")
		} else {
			h.Set("Cache-Control", "public, max-age=86400")
		}
		c.Data(http.StatusOK, kind, body)
	}
}
