package guard

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

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
// whole. AccessLogTo writes the same line, cheaper.
func AccessLog(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !logger.Enabled(c.Request.Context(), slog.LevelInfo) {
			c.Next()
			return
		}
		start := time.Now()
		c.Next()
		var line accessLine
		line.read(c, start)
		logger.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", line.attrs()...)
	}
}

// AccessLogTo is AccessLog writing each line to w in slog's text format
// (a TextHandler's line at level INFO with message "request"), built in a
// pooled buffer without slog's records: under load the access log was the
// largest cost of a protected read after the store. Each line is one Write.
func AccessLogTo(w io.Writer) gin.HandlerFunc {
	pool := sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		var line accessLine
		line.read(c, start)
		bp := pool.Get().(*[]byte)
		*bp = line.appendText((*bp)[:0], start)
		// A log that cannot be written has nowhere to say so.
		_, _ = w.Write(*bp)
		if cap(*bp) <= 4<<10 {
			pool.Put(bp)
		}
	}
}

// accessLine is what an access log line records.
type accessLine struct {
	requestID, method, path, route string
	status, bytes                  int
	duration                       time.Duration
	remote, subject, clientID      string
	authenticated                  bool
}

func (l *accessLine) read(c *gin.Context, start time.Time) {
	if ids := c.Writer.Header()[canonicalRequestID]; len(ids) > 0 {
		l.requestID = ids[0]
	}
	l.method = Method(c.Request.Method)
	l.path = Clip(c.Request.URL.Path, maxLoggedPath)
	l.route = c.FullPath()
	l.status = c.Writer.Status()
	l.duration = time.Since(start)
	l.bytes = c.Writer.Size()
	if caller, ok := auth.CallerFrom(c.Request.Context()); ok {
		l.remote = caller.ClientIP
		if p := caller.Principal; p != nil {
			l.authenticated, l.subject, l.clientID = true, p.UserID, p.ClientID
		}
	} else {
		l.remote = c.ClientIP()
	}
}

// attrs are the line's fields as slog attributes, in appendText's order.
func (l *accessLine) attrs() []slog.Attr {
	attrs := []slog.Attr{
		slog.String("request_id", l.requestID),
		slog.String("method", l.method),
		slog.String("path", l.path),
		slog.String("route", l.route),
		slog.Int("status", l.status),
		slog.Duration("duration", l.duration),
		slog.Int("bytes", l.bytes),
		slog.String("remote", l.remote),
	}
	if l.authenticated {
		attrs = append(attrs, slog.String("subject", l.subject), slog.String("client_id", l.clientID))
	}
	return attrs
}

// appendText appends the line as slog.TextHandler writes it.
func (l *accessLine) appendText(b []byte, t time.Time) []byte {
	b = append(b, "time="...)
	b = appendRFC3339Millis(b, t)
	b = append(b, " level=INFO msg=request"...)
	b = appendTextField(b, "request_id", l.requestID)
	b = appendTextField(b, "method", l.method)
	b = appendTextField(b, "path", l.path)
	b = appendTextField(b, "route", l.route)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = appendTextField(b, "duration", l.duration.String())
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, int64(l.bytes), 10)
	b = appendTextField(b, "remote", l.remote)
	if l.authenticated {
		b = appendTextField(b, "subject", l.subject)
		b = appendTextField(b, "client_id", l.clientID)
	}
	return append(b, '\n')
}

// appendRFC3339Millis writes t as slog's text and JSON handlers do: RFC
// 3339 with exactly three digits of milliseconds.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}

// appendTextField appends " key=value", the value quoted when slog's text
// handler would quote it.
func appendTextField(b []byte, key, v string) []byte {
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	if needsQuoting(v) {
		return strconv.AppendQuote(b, v)
	}
	return append(b, v...)
}

// needsQuoting is slog.TextHandler's rule: an empty value, or one with a
// space, '=', '"' or an ASCII control character, or a rune that is
// not printable.
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b <= ' ' || b == '=' || b == '"' {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
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
