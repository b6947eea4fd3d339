package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
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

// Grant types passflow offers.
const (
	GrantPassword     = "password"
	GrantRefreshToken = "refresh_token"
)

// GrantTypes lists every grant type passflow offers.
func GrantTypes() []string { return []string{GrantPassword, GrantRefreshToken} }

// Client is the client a token request comes from.
type Client struct {
	ID string
	// Public clients cannot keep a secret; they name themselves.
	Public bool
	// Registered clients are limited to their grant types and scopes.
	Registered bool
	GrantTypes []string
	Scopes     []string
}

// Allows reports whether the client may use grant.
func (c Client) Allows(grant string) bool {
	return !c.Registered || slices.Contains(c.GrantTypes, grant)
}

// Limit returns the scopes of allowed the client may be granted.
func (c Client) Limit(allowed []string) []string {
	if !c.Registered {
		return allowed
	}
	var out []string
	for _, s := range allowed {
		if slices.Contains(c.Scopes, s) {
			out = append(out, s)
		}
	}
	return out
}

// Clients decides which client a token request comes from (RFC 6749
// §2.3.1): registered clients live in the store; an unregistered client id
// without a secret is a public client naming itself, while those are
// allowed.
type Clients struct {
	cfg      ClientConfig
	st       store.Clients
	hasher   Hasher
	throttle *Throttle
	events   Events
	now      func() time.Time
	// verified remembers secrets that verified lately: the SHA-256 of a
	// client id and secret, to the stored hash they verified against. A
	// service that introspects every request it serves would otherwise
	// cost a password hash per request.
	verified *expirable.LRU[[sha256.Size]byte, string]
}

// Verified client secrets are remembered this long, and this many.
const (
	verifiedSecretTTL  = 5 * time.Minute
	verifiedSecretsMax = 1024
)

// ClientConfig says which clients may call.
type ClientConfig struct {
	// AllowPublic lets unregistered public clients in.
	AllowPublic bool
	// Scopes are the scopes a registered client may be limited to.
	Scopes Scopes
}

// NewClients returns the client authenticator. Secrets are hashed with
// hasher, and attempts at them limited by throttle.
func NewClients(
	cfg ClientConfig,
	st store.Clients,
	hasher Hasher,
	throttle *Throttle,
	events Events,
	now func() time.Time,
) *Clients {
	return &Clients{cfg: cfg, st: st, hasher: hasher, throttle: throttle, events: events, now: now,
		verified: expirable.NewLRU[[sha256.Size]byte, string](verifiedSecretsMax, nil, verifiedSecretTTL)}
}

// AuthMethods lists the token endpoint authentication methods clients may
// use (RFC 8414 token_endpoint_auth_methods_supported).
func (c *Clients) AuthMethods() []string {
	methods := []string{"client_secret_basic", "client_secret_post"}
	if c.cfg.AllowPublic {
		methods = append([]string{"none"}, methods...)
	}
	return methods
}

var errClientAuth = fault.New(fault.InvalidClient, "client authentication failed")

// Authenticate returns the client that creds, sent from ip, identify.
// Without any client id the client is DefaultClientID, a public one. A
// registered confidential client must present its secret; a registered
// public client must not present one; an unregistered client id with a
// secret fails. Every secret presented is an attempt the throttle counts
// before it is hashed, as a password is: against the client id, the
// address, and the pair.
func (c *Clients) Authenticate(ctx context.Context, creds ClientCredentials, ip string) (Client, error) {
	if creds.ID == "" && creds.Secret == "" {
		if !c.cfg.AllowPublic {
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
	var digest [sha256.Size]byte
	if creds.Secret != "" {
		digest = sha256.Sum256([]byte(creds.ID + "\x00" + creds.Secret))
		if client, ok := c.recall(ctx, creds.ID, digest); ok {
			return client, nil
		}
	}
	var attempt *Attempt // nil without a secret: nothing to guess
	if creds.Secret != "" {
		var err error
		if attempt, err = c.throttle.Reserve(ctx, ClientSecret(creds.ID), ip); err != nil {
			return Client{}, err
		}
	}
	reg, err := c.st.ClientByID(ctx, creds.ID)
	if errors.Is(err, fault.ErrNotFound) {
		switch {
		case creds.Secret != "":
			c.failed(ctx, creds.ID, ip)
			return Client{}, errClientAuth
		case !c.cfg.AllowPublic:
			return Client{}, fault.New(fault.InvalidClient, "unknown client; only registered clients may call")
		}
		return Client{ID: creds.ID, Public: true}, nil
	}
	if err != nil {
		attempt.Abandon(ctx)
		return Client{}, err
	}
	if !reg.DeletedAt.IsZero() {
		// Its id stays taken: not even a public client may name itself so.
		if creds.Secret != "" {
			c.failed(ctx, creds.ID, ip)
		}
		return Client{}, fault.New(fault.InvalidClient, "this client has been deleted")
	}
	client := Client{ID: reg.ID, Public: reg.SecretHash == "", Registered: true, GrantTypes: reg.GrantTypes, Scopes: reg.Scopes}
	switch {
	case client.Public && creds.Secret != "":
		attempt.Abandon(ctx)
		return Client{}, fault.New(fault.InvalidClient, "this client is public and has no secret")
	case client.Public:
		return client, nil
	case creds.Secret == "":
		return Client{}, errClientAuth
	}
	ok, _, err := c.hasher.Verify(ctx, reg.SecretHash, creds.Secret)
	if err != nil {
		attempt.Abandon(ctx)
		return Client{}, fmt.Errorf("auth: verify secret of client %s: %w", reg.ID, err)
	}
	if !ok {
		c.failed(ctx, reg.ID, ip)
		return Client{}, errClientAuth
	}
	if err := attempt.Succeeded(ctx); err != nil {
		return Client{}, err
	}
	c.verified.Add(digest, reg.SecretHash)
	return client, nil
}

// recall returns the client whose secret verified lately, if it still
// exists with the same secret hash. Anything else takes the long way.
func (c *Clients) recall(ctx context.Context, id string, digest [sha256.Size]byte) (Client, bool) {
	hash, ok := c.verified.Get(digest)
	if !ok {
		return Client{}, false
	}
	reg, err := c.st.ClientByID(ctx, id)
	if err != nil || !reg.DeletedAt.IsZero() || reg.SecretHash == "" ||
		subtle.ConstantTimeCompare([]byte(reg.SecretHash), []byte(hash)) != 1 {
		c.verified.Remove(digest)
		return Client{}, false
	}
	return Client{ID: reg.ID, Registered: true, GrantTypes: reg.GrantTypes, Scopes: reg.Scopes}, true
}

// failed reports a wrong client secret to the audit log.
func (c *Clients) failed(ctx context.Context, id, ip string) {
	c.events.Login(ctx, LoginEvent{Check: CheckClientSecret, Outcome: "bad_credentials", ClientID: id, ClientIP: ip})
}

// Confidential reports whether id names a registered confidential client,
// whose tokens only it may revoke. A deleted client's tokens are dead
// anyway: revoking them again is no one's privilege.
func (c *Clients) Confidential(ctx context.Context, id string) (bool, error) {
	reg, err := c.st.ClientByID(ctx, id)
	if errors.Is(err, fault.ErrNotFound) {
		return false, nil
	}
	return err == nil && reg.SecretHash != "" && reg.DeletedAt.IsZero(), err
}

// NewClient describes a client to register.
type NewClient struct {
	ID string
	// Secret is empty for a public client.
	Secret     string
	GrantTypes []string
	Scopes     []string
}

// NoGrants, as a client's only grant type, registers a client that may use
// no grant at all: a resource server that only introspects tokens.
const NoGrants = "none"

// MinClientSecretBytes is the shortest client secret accepted.
const MinClientSecretBytes = 16

// Register adds a client. Omitted grant types or scopes mean all of them.
func (c *Clients) Register(ctx context.Context, n NewClient) (store.Client, error) {
	if !validClientID(n.ID) || strings.TrimSpace(n.ID) != n.ID {
		return store.Client{}, fault.Invalid("/client_id", "client id must be 1 to 255 printable ASCII characters, without leading or trailing spaces")
	}
	if n.ID == DefaultClientID {
		return store.Client{}, fault.Invalid("/client_id", DefaultClientID+" is reserved for requests that name no client")
	}
	if n.Secret != "" && len(n.Secret) < MinClientSecretBytes {
		return store.Client{}, fault.Invalid("/client_secret", fmt.Sprintf("client secret must be at least %d bytes", MinClientSecretBytes))
	}
	grants := n.GrantTypes
	switch {
	case len(grants) == 0:
		grants = GrantTypes()
	case slices.Equal(grants, []string{NoGrants}):
		if n.Secret == "" {
			return store.Client{}, fault.Invalid("/grant_types", "a client without grants only introspects, which takes a secret")
		}
		grants = []string{}
	}
	for _, g := range grants {
		if !slices.Contains(GrantTypes(), g) {
			return store.Client{}, fault.Invalid("/grant_types", "unknown grant type; the grant types are "+strings.Join(GrantTypes(), ", ")+", or "+NoGrants+" alone")
		}
	}
	scopes := n.Scopes
	if len(scopes) == 0 {
		scopes = c.cfg.Scopes.All()
	}
	scopes, err := c.cfg.Scopes.Check(scopes, fault.InvalidRequest)
	if err != nil {
		return store.Client{}, err
	}
	cl := store.Client{ID: n.ID, GrantTypes: slices.Compact(slices.Sorted(slices.Values(grants))), Scopes: scopes, CreatedAt: c.now().UTC()}
	if n.Secret != "" {
		if cl.SecretHash, err = c.hasher.Hash(ctx, n.Secret); err != nil {
			return store.Client{}, err
		}
	}
	if err := c.st.CreateClient(ctx, cl); err != nil {
		if errors.Is(err, fault.ErrConflict) {
			return store.Client{}, fault.Wrap(fault.Conflict, "a client with that id exists, or existed: a deleted client's id is never used again", err)
		}
		return store.Client{}, err
	}
	c.events.Change(ctx, ChangeEvent{Action: "client.created", Target: cl.ID,
		Detail: fmt.Sprintf("confidential=%v grant_types=%s scopes=%s", cl.SecretHash != "", strings.Join(cl.GrantTypes, ","), strings.Join(cl.Scopes, ","))})
	return cl, nil
}

// List returns every registered client not deleted.
func (c *Clients) List(ctx context.Context) ([]store.Client, error) {
	all, err := c.st.ListClients(ctx)
	return slices.DeleteFunc(all, func(c store.Client) bool { return !c.DeletedAt.IsZero() }), err
}

// Delete removes a registered client and ends everything it was issued:
// its refresh tokens at once, its access tokens in every process within
// SyncInterval (through the change feed). Its id is never used again.
func (c *Clients) Delete(ctx context.Context, id string) error {
	if err := c.st.DeleteClient(ctx, id, c.now()); err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return fault.Wrap(fault.NotFound, "no such client", err)
		}
		return err
	}
	c.events.Change(ctx, ChangeEvent{Action: "client.deleted", Target: id})
	return nil
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
