package auth

import (
	"context"

	"github.com/passflow/passflow/fault"
)

// IntrospectRequest is an RFC 7662 §2.1 introspection request.
type IntrospectRequest struct {
	Token  string
	Client ClientCredentials
	// ClientIP is the address the request came from, for throttling.
	ClientIP string
}

// Introspect tells a resource server whether token is an active access
// token, and whom it speaks for (RFC 7662). Only a registered confidential
// client may ask: the answer is worth a guess at a token otherwise. Any
// token that does not verify now — revoked, expired, of a disabled account,
// a refresh token, or none of passflow's — is inactive, a nil principal
// with no error; an error is the caller's (401) or the server's.
func (g *Grants) Introspect(ctx context.Context, req IntrospectRequest) (*Principal, error) {
	if req.Token == "" {
		return nil, fault.New(fault.InvalidRequest, "missing parameter: token")
	}
	client, err := g.clients.Authenticate(ctx, req.Client, req.ClientIP)
	if err != nil {
		return nil, err
	}
	if !client.Registered || client.Public {
		return nil, fault.New(fault.InvalidClient, "only a registered confidential client may introspect tokens")
	}
	p, err := g.tokens.Verify(ctx, req.Token)
	if err != nil && fault.As(err).Code == fault.InvalidToken {
		return nil, nil
	}
	return p, err
}
