// Package client is passflow's Go SDK: it logs in with the password grant
// (through golang.org/x/oauth2), keeps the access token fresh with the
// refresh token on its own, and exposes the API through the client
// generated from openapi.yaml (generated/client).
//
//	c, err := client.Login(ctx, client.Config{BaseURL: "https://login.example.com"}, "alice", password)
//	if err != nil { ... }
//	res, err := c.ListMyDataWithResponse(ctx)
//	for _, item := range *res.JSON200 { fmt.Println(item.Key, item.Value) }
package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	gen "github.com/passflow/passflow/generated/client"
)

// Config says where passflow is and which client logs in.
type Config struct {
	// BaseURL is the server's URL, such as https://login.example.com.
	BaseURL string
	// ClientID and ClientSecret identify the client; both may be empty (a
	// public first-party client).
	ClientID     string
	ClientSecret string
	// Scopes to ask for; none means every scope the account holds.
	Scopes []string
	// HTTPClient carries the requests; http.DefaultClient when nil.
	HTTPClient *http.Client
}

// Client is an API client whose requests carry a bearer token that it
// refreshes on its own.
type Client struct {
	*gen.ClientWithResponses
	// HTTP is the authenticated *http.Client, for calls of your own.
	HTTP   *http.Client
	source oauth2.TokenSource
	cfg    Config
	base   string
	plain  *http.Client // without the bearer token: for revocation
}

// Error is an OAuth2 error from the token endpoint, such as invalid_grant
// for a wrong username or password.
type Error struct {
	Code        string
	Description string
	Status      int
}

func (e *Error) Error() string {
	return fmt.Sprintf("passflow: %s: %s (HTTP %d)", e.Code, e.Description, e.Status)
}

// Login logs in with the password grant and returns a client for the API.
// ctx bounds the login only: the client refreshes its token later on its
// own, whatever becomes of ctx.
func Login(ctx context.Context, cfg Config, username, password string) (*Client, error) {
	base := strings.TrimSuffix(cfg.BaseURL, "/")
	if u, err := url.Parse(base); err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("passflow: BaseURL %q is not a URL such as https://login.example.com", cfg.BaseURL)
	}
	plain := cfg.HTTPClient
	if plain == nil {
		plain = http.DefaultClient
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, plain)
	conf := &oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		Scopes:       cfg.Scopes,
		Endpoint:     oauth2.Endpoint{TokenURL: base + "/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
	tok, err := conf.PasswordCredentialsToken(ctx, username, password)
	if err != nil {
		return nil, oauthError(err)
	}
	// x/oauth2 refreshes with the context it is given: one that outlives
	// the login's, keeping its values (the HTTP client) but not its end.
	refreshCtx := context.WithoutCancel(ctx)
	source := conf.TokenSource(refreshCtx, tok)
	httpClient := oauth2.NewClient(refreshCtx, source)
	api, err := gen.NewClientWithResponses(base, gen.WithHTTPClient(httpClient))
	if err != nil {
		return nil, err
	}
	return &Client{ClientWithResponses: api, HTTP: httpClient, source: source, cfg: cfg, base: base, plain: plain}, nil
}

// Token returns the current token, refreshing it first when it is about
// to expire.
func (c *Client) Token() (*oauth2.Token, error) {
	tok, err := c.source.Token()
	if err != nil {
		return nil, oauthError(err)
	}
	return tok, nil
}

// Logout revokes the client's refresh token, and with it every token of
// this login (RFC 7009).
func (c *Client) Logout(ctx context.Context) error {
	tok, err := c.source.Token()
	if err != nil {
		return oauthError(err)
	}
	body := gen.RevokeTokenFormdataRequestBody{Token: &tok.RefreshToken}
	hint := "refresh_token"
	body.TokenTypeHint = &hint
	// Revocation authenticates the client, not the user: no bearer token.
	plain, err := gen.NewClientWithResponses(c.base,
		gen.WithHTTPClient(c.plain),
		gen.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			if c.cfg.ClientID != "" {
				req.SetBasicAuth(url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret))
			}
			return nil
		}))
	if err != nil {
		return err
	}
	res, err := plain.RevokeTokenWithFormdataBodyWithResponse(ctx, nil, body)
	if err != nil {
		return err
	}
	if res.StatusCode() != http.StatusOK {
		return fmt.Errorf("passflow: revoke: HTTP %d: %s", res.StatusCode(), res.Body)
	}
	return nil
}

func oauthError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return &Error{Code: re.ErrorCode, Description: re.ErrorDescription, Status: status}
	}
	return err
}
