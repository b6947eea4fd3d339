package guard

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/passflow/passflow/fault"
)

// The refresh token's transport for browser apps: a cookie a script cannot
// read, sent only to the operations that take a refresh token.

// RefreshCookieExtension on an RFC 6749 endpoint names the form parameter
// the refresh cookie stands in for: refresh_token at /token (for
// grant_type=refresh_token), token at /revoke. Each such operation's path
// is a path the cookie is set for.
const RefreshCookieExtension = "x-refresh-cookie"

// CSRFHeader is the request header that asks for cookie mode, and without
// which the cookie is never used: a cross-site form cannot send a custom
// header, and a cross-origin script cannot without passing CORS.
const CSRFHeader = "X-Passflow-CSRF"

// RefreshCookie is how the cookie is set.
type RefreshCookie struct {
	// Name is the cookie's name.
	Name string
	// MaxAge is its lifetime: the refresh token's.
	MaxAge time.Duration
}

// UseRefreshCookie turns the cookie transport on: every successful token
// response sets the refresh token in an HttpOnly, Secure, SameSite=Strict
// cookie for each path of an operation marked with RefreshCookieExtension;
// a request carrying CSRFHeader gets no refresh_token in the JSON body, and
// may leave the refresh token out of its form to have the cookie's used.
func (g *Guard) UseRefreshCookie(c RefreshCookie) { g.cookie = &c }

// cookieIn puts the cookie's refresh token into r's form (as prepareOAuth
// returned it; nil when the body is no form), when the form leaves it out
// and may use the cookie.
func (g *Guard) cookieIn(r *http.Request, form url.Values, op *operation) error {
	if form == nil || form.Has(op.cookieParam) || op.cookieParam == "refresh_token" && form.Get("grant_type") != "refresh_token" {
		return nil
	}
	c, err := r.Cookie(g.cookie.Name)
	if err != nil || c.Value == "" {
		return nil
	}
	if r.Header.Get(CSRFHeader) == "" {
		return fault.New(fault.InvalidRequest, "a refresh token from the cookie needs the "+CSRFHeader+" header")
	}
	form.Set(op.cookieParam, c.Value)
	setForm(r, form)
	return nil
}

// cookieWriter holds a response until the cookie transport has seen it.
type cookieWriter struct {
	gin.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *cookieWriter) WriteHeader(code int)              { w.status = code }
func (w *cookieWriter) WriteHeaderNow()                   {}
func (w *cookieWriter) Write(b []byte) (int, error)       { return w.body.Write(b) }
func (w *cookieWriter) WriteString(s string) (int, error) { return w.body.WriteString(s) }
func (w *cookieWriter) Status() int                       { return w.status }
func (w *cookieWriter) Written() bool                     { return w.status != 0 || w.body.Len() > 0 }
func (w *cookieWriter) Size() int                         { return w.body.Len() }

// cookieOut sets or clears the cookie on a held response, takes the
// refresh token out of the body in cookie mode, and writes it.
func (g *Guard) cookieOut(w *cookieWriter, op *operation, cookieMode bool) {
	out, status, body := w.ResponseWriter, w.status, w.body.Bytes()
	if status == 0 {
		status = http.StatusOK
	}
	if status == http.StatusOK {
		switch op.cookieParam {
		case "refresh_token":
			var fields map[string]json.RawMessage
			var token string
			if json.Unmarshal(body, &fields) == nil && json.Unmarshal(fields["refresh_token"], &token) == nil && token != "" {
				g.setCookies(out.Header(), token, int(g.cookie.MaxAge/time.Second))
				if cookieMode {
					delete(fields, "refresh_token")
					if b, err := json.Marshal(fields); err == nil {
						body = append(b, '\n')
					}
				}
			}
		case "token":
			if cookieMode {
				g.setCookies(out.Header(), "", -1) // logged out: forget it
			}
		}
	}
	out.WriteHeader(status)
	_, _ = out.Write(body)
}

func (g *Guard) setCookies(h http.Header, value string, maxAge int) {
	for _, path := range g.cookiePaths {
		c := http.Cookie{Name: g.cookie.Name, Value: value, Path: path, MaxAge: maxAge,
			HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode}
		h.Add("Set-Cookie", c.String())
	}
}
