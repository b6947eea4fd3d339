package guard

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/passflow/passflow/fault"
)

// statusOf is the one table from error code to HTTP status.
var statusOf = map[fault.Code]int{
	fault.InvalidRequest:       http.StatusBadRequest,
	fault.InvalidGrant:         http.StatusBadRequest,
	fault.InvalidScope:         http.StatusBadRequest,
	fault.UnauthorizedClient:   http.StatusBadRequest,
	fault.UnsupportedGrantType: http.StatusBadRequest,
	fault.InvalidClient:        http.StatusUnauthorized,
	fault.Unauthorized:         http.StatusUnauthorized,
	fault.InvalidToken:         http.StatusUnauthorized,
	fault.InsufficientScope:    http.StatusForbidden,
	fault.RegistrationClosed:   http.StatusForbidden,
	fault.NotFound:             http.StatusNotFound,
	fault.MethodNotAllowed:     http.StatusMethodNotAllowed,
	fault.Conflict:             http.StatusConflict,
	fault.PayloadTooLarge:      http.StatusRequestEntityTooLarge,
	fault.SlowDown:             http.StatusTooManyRequests,
	fault.Unavailable:          http.StatusServiceUnavailable,
	fault.Internal:             http.StatusInternalServerError,
}

// defaultDescription is used when an error carries none.
var defaultDescription = map[fault.Code]string{
	fault.NotFound:         "not found",
	fault.MethodNotAllowed: "method not allowed",
	fault.Conflict:         "conflict",
	fault.Unavailable:      "the service is unavailable; try again later",
	fault.Internal:         "internal error",
}

// retryAfter is how long a client should wait before trying again: the
// wait an error names (a throttle's back-off), else a second for a
// failure that is the server's and passes (the database, the hash queue).
func retryAfter(fe *fault.Error) time.Duration {
	switch {
	case fe.RetryAfter > 0:
		return fe.RetryAfter
	case fe.Code == fault.Unavailable, fe.Code == fault.SlowDown:
		return time.Second
	}
	return 0
}

// oauthCode renames codes RFC 6749 §5.2 has no name for.
var oauthCode = map[fault.Code]fault.Code{
	fault.PayloadTooLarge: fault.InvalidRequest,
	fault.NotFound:        fault.InvalidRequest,
	fault.Internal:        "server_error",
	fault.Unavailable:     "temporarily_unavailable",
}

// StatusClientClosed is the status logged and counted for a request whose
// client went away before it was answered (nginx's 499); no client ever
// receives it.
const StatusClientClosed = 499

// RequestIDHeader carries the request id, in and out.
const RequestIDHeader = "X-Request-ID"

// WriteError is the one error writer: it answers err with the status its
// code maps to and the body the operation's kind calls for, an RFC 6749
// §5.2 body on OAuth2 endpoints and the shared error body elsewhere, plus
// RFC 6750 challenges. Internal errors are logged with their cause and
// answered without it.
func (g *Guard) WriteError(c *gin.Context, err error) {
	fe := fault.As(err)
	status, ok := statusOf[fe.Code]
	if !ok {
		status = http.StatusBadRequest
	}
	if c.Request.Context().Err() != nil {
		// The client hung up: whatever failed, nobody hears the answer,
		// and the server is not to blame. Logged and counted as such.
		status = StatusClientClosed
	}
	desc := fe.Description
	if status >= 500 {
		g.logger.LogAttrs(c.Request.Context(), levelFor(status), "request failed",
			slog.String("request_id", c.Writer.Header().Get(RequestIDHeader)),
			slog.String("method", Method(c.Request.Method)),
			slog.String("route", c.FullPath()),
			slog.Int("status", status),
			slog.String("error", Clip(errString(fe), maxLoggedError)))
		if fe.Code == fault.Internal {
			desc = ""
		}
	}
	if desc == "" {
		desc = defaultDescription[fe.Code]
	}
	if wait := retryAfter(fe); wait > 0 {
		c.Header("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
	}

	op := g.lookup(c)
	if op != nil && op.oauth {
		code := fe.Code
		if renamed, ok := oauthCode[code]; ok {
			code = renamed
		}
		c.Header("Cache-Control", "no-store")
		c.Header("Pragma", "no-cache")
		if fe.Code == fault.InvalidClient && strings.HasPrefix(strings.ToLower(c.GetHeader("Authorization")), "basic ") {
			c.Header("WWW-Authenticate", `Basic realm="`+Realm+`", charset="UTF-8"`)
		}
		c.AbortWithStatusJSON(status, oauthBody{Error: string(code), ErrorDescription: desc})
		return
	}

	var ch challenged
	if errors.As(err, &ch) {
		challenge := `Bearer realm="` + Realm + `"`
		// No credentials at all: a challenge without an error code.
		if ch.fe.Code != fault.Unauthorized {
			challenge += `, error="` + string(ch.fe.Code) + `", error_description="` + quotable(desc) + `"`
			if ch.fe.Scope != "" {
				challenge += `, scope="` + quotable(ch.fe.Scope) + `"`
			}
		}
		c.Header("WWW-Authenticate", challenge)
	}
	c.AbortWithStatusJSON(status, errorBody{Error: string(fe.Code), ErrorDescription: desc, Field: fe.Field})
}

// maxLoggedError bounds the cause an error log line records.
const maxLoggedError = 2048

func levelFor(status int) slog.Level {
	if status == http.StatusServiceUnavailable {
		return slog.LevelWarn
	}
	return slog.LevelError
}

type oauthBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	Field            string `json:"field,omitempty"`
}

// quotable keeps only the characters RFC 6750 allows inside a challenge's
// quoted strings: %x20-21 / %x23-5B / %x5D-7E.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

func errString(fe *fault.Error) string {
	if fe.Err != nil {
		return fe.Err.Error()
	}
	return fe.Error()
}
