// Package guard is passflow's request gate. Before any handler runs it finds
// the request's OpenAPI operation through a table built once from the spec,
// then has kin-openapi's openapi3filter check the operation's security
// (bearer token and scopes), parameters and body, in that order. Every
// failure, the guard's own and the handlers', is written by the one error
// writer here.
package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/gin-gonic/gin"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/fault"
)

// Realm is the realm of every bearer challenge.
const Realm = "passflow"

// OAuth2EndpointExtension marks an operation as an RFC 6749 endpoint: form
// parameters from the body only, empty ones dropped, repeated ones refused,
// RFC 6749 §5.2 error bodies and no-store caching.
const OAuth2EndpointExtension = "x-oauth2-endpoint"

// OAuth2ErrorExtension on a schema names the RFC 6749 error code for a
// value that fails it, such as unsupported_grant_type for grant_type.
const OAuth2ErrorExtension = "x-oauth2-error"

func init() {
	// kin-openapi's JSON decoder stops after the first value, so
	// {"value":"a"}{"value":"b"} and {"value":"a"} junk would pass as the
	// first object. A body is one JSON value and nothing else.
	openapi3filter.RegisterBodyDecoder("application/json", decodeOneJSONValue)
}

func decodeOneJSONValue(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	dec := json.NewDecoder(body)
	dec.UseNumber() // as kin's own decoder: numbers keep their precision
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Cause: err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Cause: errors.New("data after the JSON value")}
	}
	return v, nil
}

// Verifier checks a bearer access token.
type Verifier interface {
	// Verify returns the token's principal, or an invalid_token error.
	Verify(ctx context.Context, raw string) (*auth.Principal, error)
}

// Guard is the request gate.
type Guard struct {
	logger   *slog.Logger
	verifier Verifier
	maxBody  int64
	routes   map[routeKey]*operation
	checks   sync.Pool
	// cookie, when set, carries refresh tokens in a cookie for the paths
	// cookiePaths (see UseRefreshCookie).
	cookie      *RefreshCookie
	cookiePaths []string
}

type routeKey struct{ method, path string }

type operation struct {
	route      *routers.Route
	oauth      bool
	pathParams bool
	// cookieParam is the form parameter the refresh cookie stands in for.
	cookieParam string
}

// New builds the guard's route table from doc, which must be valid. Request
// bodies larger than maxBody bytes are refused with 413.
func New(
	logger *slog.Logger,
	doc *openapi3.T,
	verifier Verifier,
	maxBody int64,
) (*Guard, error) {
	g := &Guard{
		logger:   logger,
		verifier: verifier,
		maxBody:  maxBody,
		routes:   map[routeKey]*operation{},
	}
	g.checks.New = g.newCheck
	for specPath, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			oauth, _ := op.Extensions[OAuth2EndpointExtension].(bool)
			cookieParam, _ := op.Extensions[RefreshCookieExtension].(string)
			if cookieParam != "" {
				if !oauth {
					return nil, fmt.Errorf("guard: %s %s: %s is for %s operations only", method, specPath, RefreshCookieExtension, OAuth2EndpointExtension)
				}
				g.cookiePaths = append(g.cookiePaths, specPath)
			}
			g.routes[routeKey{method, ginPath(specPath)}] = &operation{
				route: &routers.Route{
					Spec: doc, Path: specPath, PathItem: item, Method: method, Operation: op,
				},
				oauth:       oauth,
				pathParams:  strings.Contains(specPath, "{"),
				cookieParam: cookieParam,
			}
		}
	}
	return g, nil
}

// ginPath turns an OpenAPI path template into gin's: /a/{b} → /a/:b.
func ginPath(specPath string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(specPath, '{')
		if i < 0 {
			b.WriteString(specPath)
			return b.String()
		}
		j := strings.IndexByte(specPath[i:], '}')
		if j < 0 {
			b.WriteString(specPath)
			return b.String()
		}
		b.WriteString(specPath[:i])
		b.WriteByte(':')
		b.WriteString(specPath[i+1 : i+j])
		specPath = specPath[i+j+1:]
	}
}

// Covers reports whether the gin route method+path maps to a spec operation.
func (g *Guard) Covers(method, path string) bool {
	_, ok := g.routes[routeKey{method, path}]
	return ok
}

func (g *Guard) lookup(c *gin.Context) *operation {
	return g.routes[routeKey{c.Request.Method, c.FullPath()}]
}

// Middleware returns the gate, to attach to the router group the generated
// routes are registered on.
func (g *Guard) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		op := g.lookup(c)
		if op == nil {
			g.WriteError(c, fmt.Errorf("guard: route %s %s is not in the spec", c.Request.Method, c.FullPath()))
			return
		}
		r := c.Request
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(c.Writer, r.Body, g.maxBody)
		}
		var held *cookieWriter
		if op.oauth {
			c.Header("Cache-Control", "no-store")
			c.Header("Pragma", "no-cache")
			var err error
			var form url.Values
			if r, form, err = g.prepareOAuth(r); err != nil {
				g.WriteError(c, err)
				return
			}
			if g.cookie != nil && op.cookieParam != "" {
				if err = g.cookieIn(r, form, op); err != nil {
					g.WriteError(c, err)
					return
				}
				held = &cookieWriter{ResponseWriter: c.Writer}
				c.Writer = held
				defer func() {
					c.Writer = held.ResponseWriter
					if v := recover(); v != nil {
						panic(v) // Recover answers on the real writer
					}
					g.cookieOut(held, op, r.Header.Get(CSRFHeader) != "")
				}()
			}
			c.Request = r
		}

		v := g.checks.Get().(*check)
		v.input.Request, v.input.Route = r, op.route
		if op.pathParams {
			v.input.PathParams = make(map[string]string, len(c.Params))
			for _, p := range c.Params {
				v.input.PathParams[p.Key] = p.Value
			}
		}
		err := openapi3filter.ValidateRequest(r.Context(), &v.input)
		p := v.principal
		v.reset()
		g.checks.Put(v)
		if err != nil {
			g.WriteError(c, g.classify(op, r, err))
			return
		}
		// What handlers may know of the sender, as plain values: they
		// never look at HTTP.
		c.Request = r.WithContext(auth.WithCaller(r.Context(), &auth.Caller{ClientIP: c.ClientIP(), Principal: p}))
		c.Next()
	}
}

// check is the state of one request's validation. Checks are pooled: each
// carries options whose AuthenticationFunc is bound to it, so the principal
// found by authenticate reaches the middleware without an allocation.
type check struct {
	g         *Guard
	input     openapi3filter.RequestValidationInput
	options   openapi3filter.Options
	principal *auth.Principal
}

func (g *Guard) newCheck() any {
	v := &check{g: g}
	v.options = openapi3filter.Options{
		AuthenticationFunc: v.authenticate,
		// The generated wrappers bind the value kin validated, member names
		// matched exactly, instead of decoding the body a second time.
		KeepValidatedValue: true,
		// Schema errors must never carry the submitted value (a password).
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()},
	}
	v.input.Options = &v.options
	return v
}

func (v *check) reset() {
	v.input.Request, v.input.Route, v.input.PathParams, v.input.QueryParams = nil, nil, nil, nil
	v.principal = nil
}

// authenticate is kin's AuthenticationFunc: it checks the bearer token of
// one security requirement and the scopes it names. Its failures are
// challenges: the error writer answers them per RFC 6750 §3.
func (v *check) authenticate(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecurityScheme.Type != "oauth2" {
		return fmt.Errorf("guard: security scheme %q of type %q is not supported", in.SecuritySchemeName, in.SecurityScheme.Type)
	}
	raw, err := bearerToken(in.RequestValidationInput.Request.Header)
	if err != nil {
		return challenge(err)
	}
	p, err := v.g.verifier.Verify(ctx, raw)
	if err != nil {
		return challenge(err)
	}
	if !p.HasScopes(in.Scopes) {
		return challenge(&fault.Error{
			Code:        fault.InsufficientScope,
			Description: "the token lacks a scope this operation requires",
			Scope:       strings.Join(in.Scopes, " "),
		})
	}
	v.principal = p
	return nil
}

// challenged is a failure of a bearer token check: the error writer
// answers it with an RFC 6750 §3 WWW-Authenticate challenge.
type challenged struct{ fe *fault.Error }

func (c challenged) Error() string { return c.fe.Error() }
func (c challenged) Unwrap() error { return c.fe }

// challenge marks a credentials failure (no token, a bad one, too few
// scopes, a malformed request) as one to answer with a challenge; any other
// failure (the store is down) is left as it is.
func challenge(err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fault.Unauthorized, fault.InvalidToken, fault.InsufficientScope, fault.InvalidRequest:
			return challenged{fe}
		}
	}
	return err
}

var (
	errNoCredentials = fault.New(fault.Unauthorized, "a bearer token is required")
	// errManyAuthorizations is a malformed request (RFC 6750 §3.1
	// invalid_request).
	errManyAuthorizations = fault.New(fault.InvalidRequest, "more than one Authorization header")
)

// bearerToken reads an RFC 6750 §2.1 bearer token from the Authorization
// header. A token anywhere else (the URL query, a form body) is never read.
func bearerToken(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", errNoCredentials
	case len(vals) > 1:
		return "", errManyAuthorizations
	}
	scheme, token, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", errNoCredentials
	}
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return "", errNoCredentials
	}
	// The verifier judges the token itself, its length and syntax too.
	return token, nil
}

const formType = "application/x-www-form-urlencoded"

// prepareOAuth applies RFC 6749's transport rules before validation: no
// query string, client credentials from a Basic header onto the context, a
// parameter sent empty counts as omitted, a repeated one is refused. It
// returns the form it put back as the body, nil when the body is not a
// form (validation refuses it).
func (g *Guard) prepareOAuth(r *http.Request) (*http.Request, url.Values, error) {
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		return r, nil, fault.New(fault.InvalidRequest, "parameters belong in the form body, not the URL query")
	}
	if auths := r.Header.Values("Authorization"); len(auths) > 1 {
		return r, nil, errManyAuthorizations
	} else if len(auths) == 1 {
		creds, present, err := auth.ParseBasic(auths[0])
		if err != nil {
			return r, nil, err
		}
		if present {
			r = r.WithContext(auth.WithClientCredentials(r.Context(), creds))
		}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != formType || r.Body == nil {
		return r, nil, nil // validation refuses the content type
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return r, nil, bodyReadError(err)
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return r, nil, fault.New(fault.InvalidRequest, "the form body is malformed")
	}
	for name, values := range form {
		values = slices.DeleteFunc(values, func(v string) bool { return v == "" })
		switch len(values) {
		case 0:
			delete(form, name)
		case 1:
			form[name] = values
		default:
			return r, nil, fault.New(fault.InvalidRequest, "a parameter is repeated: "+safeName(name))
		}
	}
	setForm(r, form)
	return r, form, nil
}

// setForm makes form r's body.
func setForm(r *http.Request, form url.Values) {
	body := form.Encode()
	r.Body = io.NopCloser(strings.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = nil
}

// safeName returns a parameter name fit to repeat in a description: short,
// printable ASCII, or a placeholder.
func safeName(name string) string {
	if len(name) == 0 || len(name) > 32 {
		return "(unnamed)"
	}
	for i := 0; i < len(name); i++ {
		if ch := name[i]; ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' {
			return "(unnamed)"
		}
	}
	return name
}

func bodyReadError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fault.Wrap(fault.PayloadTooLarge, fmt.Sprintf("the request body exceeds %d bytes", tooBig.Limit), err)
	}
	return fault.Wrap(fault.InvalidRequest, "the request body could not be read", err)
}

// classify turns a validation error into a fault.Error whose description
// names the problem and never the submitted value.
func (g *Guard) classify(op *operation, r *http.Request, err error) error {
	// kin reads the whole body before it checks security, so an oversized
	// body surfaces first, even wrapped in a security error.
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return bodyReadError(tooBig)
	}
	var sec *openapi3filter.SecurityRequirementsError
	if errors.As(err, &sec) {
		return securityError(sec)
	}
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe
	}
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		return err
	}
	switch {
	case re.Parameter != nil:
		return fault.Wrap(fault.InvalidRequest,
			fmt.Sprintf("%s parameter %q: %s", re.Parameter.In, re.Parameter.Name, reason(re.Err)), err)
	case re.RequestBody != nil:
		if re.Err == nil && len(re.RequestBody.Content) > 0 && re.RequestBody.Content.Get(r.Header.Get("Content-Type")) == nil {
			types := make([]string, 0, len(re.RequestBody.Content))
			for t := range re.RequestBody.Content {
				types = append(types, t)
			}
			slices.Sort(types)
			return fault.Wrap(fault.InvalidRequest, "Content-Type must be "+strings.Join(types, " or "), err)
		}
		if errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
			return fault.Wrap(fault.InvalidRequest, "a request body is required", err)
		}
		var se *openapi3.SchemaError
		if errors.As(re.Err, &se) {
			return bodySchemaError(op, se, err)
		}
		var pe *openapi3filter.ParseError
		if errors.As(re.Err, &pe) {
			return fault.Wrap(fault.InvalidRequest, "the request body is malformed", err)
		}
	}
	return fault.Wrap(fault.InvalidRequest, "the request does not match the API description", err)
}

func bodySchemaError(op *operation, se *openapi3.SchemaError, err error) error {
	ptr := jsonPointer(se.JSONPointer())
	desc := se.Reason
	if desc == "" {
		desc = "does not match the schema"
	}
	if se.SchemaField == "required" || ptr == "" {
		desc = "request body: " + desc
	} else {
		desc = ptr + ": " + desc
	}
	code := fault.InvalidRequest
	if op.oauth && se.Schema != nil && se.SchemaField != "required" {
		if c, ok := se.Schema.Extensions[OAuth2ErrorExtension].(string); ok {
			code = fault.Code(c)
		}
	}
	if op.oauth {
		// Form parameters are names, not JSON members.
		desc = strings.TrimPrefix(desc, "/")
	}
	return &fault.Error{Code: code, Description: desc, Field: ptr, Err: err}
}

func reason(err error) string {
	var se *openapi3.SchemaError
	if errors.As(err, &se) && se.Reason != "" {
		return se.Reason
	}
	switch {
	case errors.Is(err, openapi3filter.ErrInvalidRequired):
		return "is required"
	case errors.Is(err, openapi3filter.ErrInvalidEmptyValue):
		return "must not be empty"
	}
	return "is invalid"
}

func jsonPointer(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(p))
	}
	return b.String()
}

// securityError picks the most telling of the failed requirements' errors:
// a valid token lacking scope (403) beats an invalid token (401), which
// beats no token at all (401 without an error code).
func securityError(sec *openapi3filter.SecurityRequirementsError) error {
	var best *challenged
	rank := func(c challenged) int {
		switch c.fe.Code {
		case fault.InsufficientScope:
			return 3
		case fault.InvalidToken, fault.InvalidRequest:
			return 2
		case fault.Unauthorized:
			return 1
		}
		return 0
	}
	for _, err := range sec.Errors {
		var c challenged
		if !errors.As(err, &c) {
			// Not a credentials problem: the store, or a misconfigured scheme.
			return err
		}
		if best == nil || rank(c) > rank(*best) {
			best = &c
		}
	}
	if best == nil {
		return challenged{errNoCredentials}
	}
	return *best
}
