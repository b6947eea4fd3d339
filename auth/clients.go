package auth

import (
	"context"
	"encoding/base64"
	"net/url"
	"strings"

	"github.com/passflow/passflow/fault"
)

// DefaultClientID is the client_id of tokens requested without one.
const DefaultClientID = "passflow"

// ClientCredentials are what a token request says about its client.
type ClientCredentials struct {
	ID     string
	Secret string
	// Basic is set when they came in an HTTP Basic Authorization header.
	Basic bool
}

// ParseBasic reads RFC 6749 §2.3.1 client credentials from the value of an
// Authorization header: "Basic " and base64 of the form-urlencoded client
// id, a colon, and the form-urlencoded secret. present is false when the
// header is not a Basic one at all. "Basic Og==" (an empty id and secret,
// what Swagger UI sends by default) is present but empty: no client
// authentication.
func ParseBasic(header string) (creds ClientCredentials, present bool, err error) {
	scheme, rest, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return ClientCredentials{}, false, nil
	}
	malformed := fault.New(fault.InvalidClient, "malformed Basic client credentials")
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return ClientCredentials{}, true, malformed
	}
	id, secret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return ClientCredentials{}, true, malformed
	}
	if id, err = url.QueryUnescape(id); err != nil {
		return ClientCredentials{}, true, malformed
	}
	if secret, err = url.QueryUnescape(secret); err != nil {
		return ClientCredentials{}, true, malformed
	}
	return ClientCredentials{ID: id, Secret: secret, Basic: true}, true, nil
}

// MergeClientCredentials combines Basic credentials (from the header, zero
// when absent) with those in the request body. RFC 6749 §2.3 allows one
// method per request, so credentials in both places are invalid_request.
// A Basic header with an empty id counts as absent.
func MergeClientCredentials(basic ClientCredentials, bodyID, bodySecret string) (ClientCredentials, error) {
	if basic.ID == "" && basic.Secret == "" {
		return ClientCredentials{ID: bodyID, Secret: bodySecret}, nil
	}
	if bodyID != "" || bodySecret != "" {
		return ClientCredentials{}, fault.New(fault.InvalidRequest,
			"client credentials were sent both in the Authorization header and in the body; use one")
	}
	if basic.ID == "" {
		return ClientCredentials{}, fault.New(fault.InvalidClient, "Basic client credentials have a secret but no client id")
	}
	return basic, nil
}

// Client is the client a token is issued to.
type Client struct {
	ID string
	// Public clients cannot keep a secret; they name themselves.
	Public bool
}

// Clients decides which client a token request comes from.
type Clients struct {
	allowPublic bool
}

// NewClients returns a client authenticator. With allowPublic, a client_id
// sent without a secret names a public client.
func NewClients(allowPublic bool) *Clients {
	return &Clients{allowPublic: allowPublic}
}

// AuthMethods lists the token endpoint authentication methods clients may
// use (RFC 8414 token_endpoint_auth_methods_supported).
func (c *Clients) AuthMethods() []string {
	return []string{"none"}
}

// Authenticate returns the client that creds identify. Without any client
// id the client is DefaultClientID. An unregistered client id without a
// secret is a public client naming itself; with a secret it is
// invalid_client, since no registered client has that id.
func (c *Clients) Authenticate(ctx context.Context, creds ClientCredentials) (Client, error) {
	if creds.ID == "" && creds.Secret == "" {
		if !c.allowPublic {
			return Client{}, fault.New(fault.InvalidClient, "client authentication is required")
		}
		return Client{ID: DefaultClientID, Public: true}, nil
	}
	if creds.ID == "" {
		return Client{}, fault.New(fault.InvalidClient, "client secret sent without a client id")
	}
	if !validClientID(creds.ID) {
		return Client{}, fault.New(fault.InvalidClient, "client id must be 1 to 255 printable ASCII characters")
	}
	if creds.Secret != "" {
		return Client{}, fault.New(fault.InvalidClient, "client authentication failed")
	}
	if !c.allowPublic {
		return Client{}, fault.New(fault.InvalidClient, "client authentication is required")
	}
	return Client{ID: creds.ID, Public: true}, nil
}

// validClientID reports whether id is RFC 6749 VSCHARs (%x20-7E), at most
// 255 of them.
func validClientID(id string) bool {
	if len(id) > 255 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

type clientCredentialsKey struct{}

// WithClientCredentials returns a context carrying the client credentials
// of the request's Authorization header.
func WithClientCredentials(ctx context.Context, c ClientCredentials) context.Context {
	return context.WithValue(ctx, clientCredentialsKey{}, c)
}

// ClientCredentialsFrom returns the credentials WithClientCredentials put
// on ctx, or zero ones.
func ClientCredentialsFrom(ctx context.Context) ClientCredentials {
	c, _ := ctx.Value(clientCredentialsKey{}).(ClientCredentials)
	return c
}
