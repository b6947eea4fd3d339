package guard

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/fault"
)

// RequestID gives every request an id: the client's X-Request-ID when it is
// sane (1 to 64 of [A-Za-z0-9._-]), else a new one, unique to the process
// (a random prefix drawn at start and a counter). The id is echoed in the
// response, where the access log and error writer read it.
func RequestID() gin.HandlerFunc {
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := hex.EncodeToString(b[:]) + "-"
	var n atomic.Uint64
	return func(c *gin.Context) {
		// Read and write the header under its canonical key directly:
		// Get and Set would canonicalise "X-Request-ID" on every request.
		var id string
		if ids := c.Request.Header[canonicalRequestID]; len(ids) == 1 && saneRequestID(ids[0]) {
			id = ids[0]
		} else {
			var buf [32]byte
			id = string(strconv.AppendUint(append(buf[:0], prefix...), n.Add(1), 36))
		}
		c.Writer.Header()[canonicalRequestID] = []string{id}
		c.Next()
	}
}

var canonicalRequestID = http.CanonicalHeaderKey(RequestIDHeader)

func saneRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			return false
		}
	}
	return true
}

// Method is the name metrics and logs give a request's method: one of the
// methods of RFC 9110 and RFC 5789, or "other". A method is text the client
// chooses, as long as it likes, so it is never recorded as sent.
func Method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// maxLoggedPath bounds the path an access log line records.
const maxLoggedPath = 256

// Clip bounds s, a value a client chose, to n bytes of valid UTF-8 for a
// log line, marking a cut with "...".
func Clip(s string, n int) string {
	if len(s) <= n {
		return strings.ToValidUTF8(s, "\ufffd")
	}
	return strings.ToValidUTF8(s[:n], "\ufffd") + "..."
}

// AccessLog logs one line per request: never its query string, body or
// credentials; the subject is the authenticated user's id. Every field is
// bounded: a client's method and path are named or clipped, never logged
// whole.
func AccessLog(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !logger.Enabled(c.Request.Context(), slog.LevelInfo) {
			c.Next()
			return
		}
		start := time.Now()
		c.Next()
		attrs := make([]slog.Attr, 0, 10)
		attrs = append(attrs,
			slog.String("request_id", c.Writer.Header().Get(RequestIDHeader)),
			slog.String("method", Method(c.Request.Method)),
			slog.String("path", Clip(c.Request.URL.Path, maxLoggedPath)),
			slog.String("route", c.FullPath()),
			slog.Int("status", c.Writer.Status()),
			slog.Duration("duration", time.Since(start)),
			slog.Int("bytes", c.Writer.Size()),
		)
		if caller, ok := auth.CallerFrom(c.Request.Context()); ok {
			attrs = append(attrs, slog.String("remote", caller.ClientIP))
			if p := caller.Principal; p != nil {
				attrs = append(attrs, slog.String("subject", p.UserID), slog.String("client_id", p.ClientID))
			}
		} else {
			attrs = append(attrs, slog.String("remote", c.ClientIP()))
		}
		logger.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", attrs...)
	}
}

// Recover turns a panic into a logged 500 internal_error whose body says
// nothing of the cause.
func (g *Guard) Recover() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			g.logger.LogAttrs(c.Request.Context(), slog.LevelError, "panic",
				slog.String("request_id", c.Writer.Header().Get(RequestIDHeader)),
				slog.String("panic", fmt.Sprint(v)),
				slog.String("stack", string(debug.Stack())))
			if c.Writer.Written() {
				c.Abort()
				return
			}
			g.WriteError(c, fault.Wrap(fault.Internal, "", fmt.Errorf("panic: %v", v)))
		}()
		c.Next()
	}
}

// NoRoute answers requests for paths nothing serves.
func (g *Guard) NoRoute(c *gin.Context) {
	g.WriteError(c, fault.New(fault.NotFound, "no such path"))
}

// NoMethod answers requests whose path exists but not with that method.
func (g *Guard) NoMethod(c *gin.Context) {
	g.WriteError(c, fault.New(fault.MethodNotAllowed, "method not allowed on this path"))
}
