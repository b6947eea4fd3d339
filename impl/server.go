// Package impl holds passflow's hand-written handlers: typed requests in,
// typed responses out, business rules only. The guard has already checked
// each request against the spec, bearer token and scopes included, so no
// handler looks at credentials other than the token endpoint's own.
package impl

import (
	"context"
	"errors"
	"strings"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/generated/api"
	"github.com/passflow/passflow/store"
)

var _ api.StrictServerInterface = (*Server)(nil)

// Server implements the generated strict server interface.
type Server struct {
	accounts *auth.Accounts
	items    store.Items
	grants   *auth.Grants
	clients  *auth.Clients
	keys     *auth.KeySet
	scopes   auth.Scopes
	// issuer is the iss of every token, and the base of every URL the
	// metadata names: never the request's Host.
	issuer string
}

// NewServer returns the handlers.
func NewServer(
	accounts *auth.Accounts,
	items store.Items,
	grants *auth.Grants,
	clients *auth.Clients,
	keys *auth.KeySet,
	scopes auth.Scopes,
	issuer string,
) *Server {
	return &Server{accounts: accounts, items: items, grants: grants, clients: clients, keys: keys, scopes: scopes, issuer: issuer}
}

// Caching headers of the answers (RFC 6749 §5.1 for the token endpoint).
const (
	noStore = "no-store"
	noCache = "no-cache"
	// metadataMaxAge lets clients cache the metadata: it changes only
	// when the server restarts with other settings.
	metadataMaxAge = "public, max-age=3600"
	jwksMaxAge     = "public, max-age=300"
)

// IssueToken is POST /token.
func (s *Server) IssueToken(ctx context.Context, req api.IssueTokenRequestObject) (api.IssueTokenResponseObject, error) {
	b := req.Body
	client, ip, err := clientOf(ctx, b.ClientId, b.ClientSecret)
	if err != nil {
		return nil, err
	}
	var g auth.Grant
	switch b.GrantType {
	case api.TokenRequestGrantTypePassword:
		g, err = s.grants.Password(ctx, auth.PasswordRequest{
			Username: deref(b.Username),
			Password: deref(b.Password),
			Scope:    deref(b.Scope),
			Client:   client,
			ClientIP: ip,
		})
	case api.TokenRequestGrantTypeRefreshToken:
		g, err = s.grants.Refresh(ctx, auth.RefreshRequest{
			RefreshToken: deref(b.RefreshToken),
			Scope:        deref(b.Scope),
			Client:       client,
			ClientIP:     ip,
		})
	default:
		// The guard refuses grant types the spec does not list.
		err = fault.New(fault.UnsupportedGrantType, "unsupported grant_type")
	}
	if err != nil {
		return nil, err
	}
	return api.IssueToken200JSONResponse{
		Body: api.TokenResponse{
			AccessToken:  g.AccessToken,
			TokenType:    api.TokenResponseTokenTypeBearer,
			ExpiresIn:    int64(g.ExpiresIn.Seconds()),
			Scope:        strings.Join(g.Scopes, " "),
			RefreshToken: optional(g.RefreshToken),
		},
		Headers: api.IssueToken200ResponseHeaders{CacheControl: ptr(noStore), Pragma: ptr(noCache)},
	}, nil
}

// RevokeToken is POST /revoke (RFC 7009).
func (s *Server) RevokeToken(ctx context.Context, req api.RevokeTokenRequestObject) (api.RevokeTokenResponseObject, error) {
	b := req.Body
	client, ip, err := clientOf(ctx, b.ClientId, b.ClientSecret)
	if err != nil {
		return nil, err
	}
	if err := s.grants.Revoke(ctx, auth.RevokeRequest{Token: deref(b.Token), Hint: deref(b.TokenTypeHint), Client: client, ClientIP: ip}); err != nil {
		return nil, err
	}
	return api.RevokeToken200Response{Headers: api.RevokeToken200ResponseHeaders{CacheControl: ptr(noStore), Pragma: ptr(noCache)}}, nil
}

// IntrospectToken is POST /introspect (RFC 7662).
func (s *Server) IntrospectToken(ctx context.Context, req api.IntrospectTokenRequestObject) (api.IntrospectTokenResponseObject, error) {
	b := req.Body
	client, ip, err := clientOf(ctx, b.ClientId, b.ClientSecret)
	if err != nil {
		return nil, err
	}
	p, err := s.grants.Introspect(ctx, auth.IntrospectRequest{Token: b.Token, Client: client, ClientIP: ip})
	if err != nil {
		return nil, err
	}
	out := api.IntrospectionResponse{Active: p != nil}
	if p != nil {
		out.Scope = ptr(strings.Join(p.Scopes, " "))
		out.ClientId = ptr(p.ClientID)
		out.Username = optional(p.Username)
		out.TokenType = ptr(api.IntrospectionResponseTokenTypeBearer)
		out.Exp = ptr(p.ExpiresAt.Unix())
		out.Iat = ptr(p.IssuedAt.Unix())
		out.Sub = ptr(p.UserID)
		out.Aud = ptr(s.issuer)
		out.Iss = ptr(s.issuer)
		out.Jti = ptr(p.TokenID)
	}
	return api.IntrospectToken200JSONResponse{
		Body:    out,
		Headers: api.IntrospectToken200ResponseHeaders{CacheControl: ptr(noStore), Pragma: ptr(noCache)},
	}, nil
}

// GetServerMetadata is GET /.well-known/oauth-authorization-server (RFC 8414).
func (s *Server) GetServerMetadata(_ context.Context, _ api.GetServerMetadataRequestObject) (api.GetServerMetadataResponseObject, error) {
	base := strings.TrimSuffix(s.issuer, "/")
	return api.GetServerMetadata200JSONResponse{
		Body: api.ServerMetadata{
			Issuer:                                 s.issuer,
			TokenEndpoint:                          base + "/token",
			RevocationEndpoint:                     base + "/revoke",
			IntrospectionEndpoint:                  base + "/introspect",
			JwksUri:                                base + "/.well-known/jwks.json",
			GrantTypesSupported:                    s.grants.GrantTypes(),
			TokenEndpointAuthMethodsSupported:      s.clients.AuthMethods(),
			RevocationEndpointAuthMethodsSupported: s.clients.AuthMethods(),
			// Only registered confidential clients may introspect.
			IntrospectionEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post"},
			ScopesSupported: s.scopes.All(),
			// No authorization endpoint: none of its response types.
			ResponseTypesSupported: []string{"none"},
		},
		Headers: api.GetServerMetadata200ResponseHeaders{CacheControl: ptr(metadataMaxAge)},
	}, nil
}

// clientOf is the client an OAuth2 endpoint's request names — in its
// Authorization header or its body, never both — and the address it came
// from.
func clientOf(ctx context.Context, id, secret *string) (auth.ClientCredentials, string, error) {
	client, err := auth.MergeClientCredentials(auth.ClientCredentialsFrom(ctx), deref(id), deref(secret))
	if err != nil {
		return auth.ClientCredentials{}, "", err
	}
	ip, err := clientIP(ctx)
	return client, ip, err
}

// clientIP is the address the request came from, as the request gate
// found it. A request that reached a handler without one is a bug, never
// an empty address: per-address limits would count every client as one.
func clientIP(ctx context.Context) (string, error) {
	c, ok := auth.CallerFrom(ctx)
	if !ok || c.ClientIP == "" {
		return "", errors.New("impl: no client address on the request")
	}
	return c.ClientIP, nil
}

// GetJWKS is GET /.well-known/jwks.json (RFC 7517).
func (s *Server) GetJWKS(_ context.Context, _ api.GetJWKSRequestObject) (api.GetJWKSResponseObject, error) {
	keys := s.keys.Public()
	out := api.JWKS{Keys: make([]api.JWK, len(keys))}
	for i, k := range keys {
		out.Keys[i] = api.JWK{
			Kty: k["kty"], Kid: k["kid"], Alg: k["alg"], Use: k["use"],
			Crv: optional(k["crv"]), X: optional(k["x"]), Y: optional(k["y"]), N: optional(k["n"]), E: optional(k["e"]),
		}
	}
	return api.GetJWKS200JSONResponse{Body: out, Headers: api.GetJWKS200ResponseHeaders{CacheControl: ptr(jwksMaxAge)}}, nil
}

// ChangeMyPassword is POST /users/me/password.
func (s *Server) ChangeMyPassword(ctx context.Context, req api.ChangeMyPasswordRequestObject) (api.ChangeMyPasswordResponseObject, error) {
	ip, err := clientIP(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.accounts.ChangePassword(ctx, principal(ctx), deref(req.Body.CurrentPassword), deref(req.Body.NewPassword), ip); err != nil {
		return nil, err
	}
	return api.ChangeMyPassword204Response{}, nil
}

// LogoutEverywhere is POST /users/me/logout-all.
func (s *Server) LogoutEverywhere(ctx context.Context, _ api.LogoutEverywhereRequestObject) (api.LogoutEverywhereResponseObject, error) {
	if err := s.accounts.LogoutEverywhere(ctx, principal(ctx)); err != nil {
		return nil, err
	}
	return api.LogoutEverywhere204Response{}, nil
}

// GetMe is GET /users/me.
func (s *Server) GetMe(ctx context.Context, _ api.GetMeRequestObject) (api.GetMeResponseObject, error) {
	u, err := s.accounts.ByID(ctx, principal(ctx).UserID)
	if errors.Is(err, fault.ErrNotFound) {
		// The token outlived its account.
		return nil, fault.Wrap(fault.InvalidToken, "the token's account no longer exists", err)
	}
	if err != nil {
		return nil, err
	}
	return api.GetMe200JSONResponse(userJSON(u)), nil
}

// ListUsers is GET /users.
func (s *Server) ListUsers(ctx context.Context, req api.ListUsersRequestObject) (api.ListUsersResponseObject, error) {
	limit := 50
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	users, next, err := s.accounts.List(ctx, deref(req.Params.After), limit)
	if err != nil {
		return nil, err
	}
	page := api.ListUsers200JSONResponse{Users: make([]api.User, len(users))}
	for i, u := range users {
		page.Users[i] = userJSON(u)
	}
	if next != "" {
		page.NextAfter = &next
	}
	return page, nil
}

// CreateUser is POST /users.
func (s *Server) CreateUser(ctx context.Context, req api.CreateUserRequestObject) (api.CreateUserResponseObject, error) {
	u, err := s.accounts.Create(ctx, auth.NewAccount{
		Username:      req.Body.Username,
		Password:      deref(req.Body.Password),
		Scopes:        scopes(req.Body.Scopes),
		Email:         deref(req.Body.Email),
		EmailVerified: req.Body.EmailVerified != nil && *req.Body.EmailVerified,
	})
	if err != nil {
		return nil, err
	}
	return api.CreateUser201JSONResponse(userJSON(u)), nil
}

// UpdateUser is PATCH /users/{username}.
func (s *Server) UpdateUser(ctx context.Context, req api.UpdateUserRequestObject) (api.UpdateUserResponseObject, error) {
	u, err := s.accounts.Update(ctx, req.Username, auth.Change{
		Disabled:      req.Body.Disabled,
		Scopes:        scopes(req.Body.Scopes),
		Password:      req.Body.Password,
		Email:         req.Body.Email,
		EmailVerified: req.Body.EmailVerified,
	})
	if err != nil {
		return nil, err
	}
	return api.UpdateUser200JSONResponse(userJSON(u)), nil
}

// DeleteUser is DELETE /users/{username}.
func (s *Server) DeleteUser(ctx context.Context, req api.DeleteUserRequestObject) (api.DeleteUserResponseObject, error) {
	if err := s.accounts.Delete(ctx, req.Username); err != nil {
		return nil, err
	}
	return api.DeleteUser204Response{}, nil
}

// scopes turns an optional list of spec scopes into strings: nil stays nil
// (absent), empty stays empty (none).
func scopes(in *[]api.Scope) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(*in))
	for i, s := range *in {
		out[i] = string(s)
	}
	return out
}

func userJSON(u store.User) api.User {
	scopes := u.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return api.User{Username: u.Username, Scopes: scopes, Disabled: u.Disabled, CreatedAt: u.CreatedAt,
		Email: optional(u.Email), EmailVerified: u.EmailVerified}
}

// principal returns the request's principal. The guard only lets requests
// for protected operations through with one, so its absence is a bug.
func principal(ctx context.Context) *auth.Principal {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		panic("impl: protected operation reached without a principal")
	}
	return p
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ptr returns a pointer to a copy of v, for the generated types' optional
// fields.
func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
