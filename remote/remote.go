// Package remote lets another service check passflow's access tokens, with
// the same guard passflow uses: Verifier reads passflow's server metadata
// (RFC 8414) and JWK Set (RFC 7517) and verifies tokens with them alone, or,
// when the service must know at once that a token was revoked, asks
// passflow's introspection endpoint (RFC 7662) too.
//
//	v, err := remote.New(ctx, remote.Config{Issuer: "https://login.example.com"})
//	g, err := guard.New(logger, doc, v, 1<<20)
package remote

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/fault"
)

// Config says where passflow is and how its tokens are checked.
type Config struct {
	// Issuer is passflow's issuer URL (its --issuer): every token's iss,
	// and where its metadata is, at Issuer/.well-known/oauth-authorization-server.
	Issuer string
	// Audience is the aud a token must carry; the issuer when empty, as
	// passflow issues them.
	Audience string
	// Leeway is the clock skew tolerated; 5s when zero.
	Leeway time.Duration
	// RefetchEvery bounds how often an unknown kid makes the verifier read
	// the JWK Set again; a minute when zero.
	RefetchEvery time.Duration
	// RefreshEvery is how old the keys may grow before the verifier reads
	// them again in the background, whatever the tokens; five minutes (the
	// JWK Set's max-age) when zero. Rotating passflow's key with a
	// --publish-ahead longer than this means no token of the new key is
	// ever refused, even while the refetches are spent.
	RefreshEvery time.Duration
	// CacheSize is how many verified tokens are remembered, so that a
	// token's signature is checked once; 10000 when zero.
	CacheSize int
	// Introspection, when set, makes every check also ask passflow whether
	// the token is still active: revoked tokens and disabled accounts are
	// refused at once instead of when the token expires.
	Introspection *Introspection
	// HTTPClient fetches the metadata and the keys, and introspects; one
	// with a 10s timeout when nil.
	HTTPClient *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Introspection is the registered confidential client the service
// introspects as.
type Introspection struct {
	ClientID, ClientSecret string
}

// Verifier checks passflow's access tokens. It is a guard.Verifier: its
// errors are the invalid_token errors passflow answers with itself.
type Verifier struct {
	cfg     Config
	client  *http.Client
	jwksURI string
	intro   string // the introspection endpoint, when used
	scopes  []string
	check   *auth.TokenChecker

	keysMu sync.RWMutex
	keys   map[string]publicKey // by kid

	// refetch serialises the refetches unknown kids ask for.
	refetch sync.Mutex
	fetched time.Time // of the last such refetch

	// loaded is when the keys were last read (unix nanoseconds), and
	// refreshing is set while a background read is under way.
	loaded     atomic.Int64
	refreshing atomic.Bool
}

type publicKey struct {
	alg string
	key any
}

// New reads passflow's metadata and keys. It fails when passflow cannot be
// reached or its metadata names another issuer.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Audience == "" {
		cfg.Audience = cfg.Issuer
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 5 * time.Second
	}
	if cfg.RefetchEvery == 0 {
		cfg.RefetchEvery = time.Minute
	}
	if cfg.RefreshEvery == 0 {
		cfg.RefreshEvery = 5 * time.Minute
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 10_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg, client: cfg.HTTPClient}
	if v.client == nil {
		v.client = &http.Client{Timeout: 10 * time.Second}
	}
	var meta struct {
		Issuer                string   `json:"issuer"`
		JwksURI               string   `json:"jwks_uri"`
		IntrospectionEndpoint string   `json:"introspection_endpoint"`
		ScopesSupported       []string `json:"scopes_supported"`
	}
	if err := v.getJSON(ctx, strings.TrimSuffix(cfg.Issuer, "/")+"/.well-known/oauth-authorization-server", &meta); err != nil {
		return nil, fmt.Errorf("remote: passflow's metadata: %w", err)
	}
	// RFC 8414 §3.3: the metadata must name the issuer it was fetched for.
	if meta.Issuer != cfg.Issuer || meta.JwksURI == "" {
		return nil, fmt.Errorf("remote: the metadata at %s names issuer %q and JWK Set %q", cfg.Issuer, meta.Issuer, meta.JwksURI)
	}
	v.jwksURI, v.scopes = meta.JwksURI, meta.ScopesSupported
	if cfg.Introspection != nil {
		if meta.IntrospectionEndpoint == "" {
			return nil, errors.New("remote: passflow's metadata names no introspection endpoint")
		}
		v.intro = meta.IntrospectionEndpoint
	}
	if err := v.fetchKeys(ctx); err != nil {
		return nil, err
	}
	if len(v.keys) == 0 {
		return nil, fmt.Errorf("remote: passflow at %s publishes no public key: it signs with HS256, a secret it cannot share; "+
			"run it with --signing-alg EdDSA, ES256 or RS256", cfg.Issuer)
	}
	var err error
	v.check, err = auth.NewTokenChecker(auth.CheckerConfig{
		Issuer: cfg.Issuer, Audience: cfg.Audience, Leeway: cfg.Leeway, CacheSize: cfg.CacheSize, Now: cfg.Now,
	}, v.find)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Supports fails when passflow does not grant every one of scopes, naming
// those it lacks: a service whose spec requires such a scope could never be
// called. Pass it guard.Scopes of the service's spec at start.
func (v *Verifier) Supports(scopes []string) error {
	var missing []string
	for _, s := range scopes {
		if !slices.Contains(v.scopes, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("remote: passflow at %s does not grant the scopes %s; add them to its openapi.yaml",
			v.cfg.Issuer, strings.Join(missing, ", "))
	}
	return nil
}

func (v *Verifier) getJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	res, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, res.Status)
	}
	return json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(out)
}

// fetchKeys reads the JWK Set and replaces the keys it knows.
func (v *Verifier) fetchKeys(ctx context.Context) error {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := v.getJSON(ctx, v.jwksURI, &set); err != nil {
		return fmt.Errorf("remote: passflow's JWK Set: %w", err)
	}
	keys := map[string]publicKey{}
	for _, members := range set.Keys {
		// The members a key is made of are strings; others (key_ops)
		// say nothing it needs.
		jwk := map[string]string{}
		for name, value := range members {
			if s, ok := value.(string); ok {
				jwk[name] = s
			}
		}
		if k, err := parseJWK(jwk); err == nil && jwk["kid"] != "" {
			keys[jwk["kid"]] = k
		}
	}
	v.keysMu.Lock()
	v.keys = keys
	v.keysMu.Unlock()
	v.loaded.Store(v.cfg.Now().UnixNano())
	return nil
}

// refreshIfOld reads the keys again in the background when they are older
// than RefreshEvery; requests go on with the keys at hand meanwhile. A
// failed read keeps them, and is tried again RefreshEvery later.
func (v *Verifier) refreshIfOld() {
	now := v.cfg.Now().UnixNano()
	if now-v.loaded.Load() < int64(v.cfg.RefreshEvery) || !v.refreshing.CompareAndSwap(false, true) {
		return
	}
	v.loaded.Store(now)
	go func() {
		defer v.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		v.fetchKeys(ctx)
	}()
}

func (v *Verifier) key(kid string) (publicKey, bool) {
	v.keysMu.RLock()
	defer v.keysMu.RUnlock()
	k, ok := v.keys[kid]
	return k, ok
}

// find returns the key with kid, reading the JWK Set again when it is
// unknown, at most once per RefetchEvery: passflow publishes a new key
// before it signs with it, so a rotation costs one read.
func (v *Verifier) find(ctx context.Context, kid string) (string, any, bool) {
	k, ok := v.key(kid)
	if !ok {
		k, ok = v.refetchFor(ctx, kid)
	}
	return k.alg, k.key, ok
}

func (v *Verifier) refetchFor(ctx context.Context, kid string) (publicKey, bool) {
	v.refetch.Lock()
	defer v.refetch.Unlock()
	if k, ok := v.key(kid); ok {
		return k, true
	}
	now := v.cfg.Now()
	if !v.fetched.IsZero() && now.Sub(v.fetched) < v.cfg.RefetchEvery {
		return publicKey{}, false
	}
	v.fetched = now
	// The read serves every request to come: a caller hanging up must not
	// cut it short.
	if err := v.fetchKeys(context.WithoutCancel(ctx)); err != nil {
		return publicKey{}, false
	}
	return v.key(kid)
}

// Verify checks an access token exactly as passflow does — its signature
// with passflow's keys, typ at+jwt, iss, aud, exp and iat — with the same
// invalid_token errors; and, with Introspection, that passflow still
// holds it active.
func (v *Verifier) Verify(ctx context.Context, raw string) (*auth.Principal, error) {
	v.refreshIfOld()
	p, err := v.check.Check(ctx, raw)
	if err != nil {
		return nil, err
	}
	if v.intro != "" {
		if err := v.introspect(ctx, raw); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// introspect asks passflow whether the token is still active (RFC 7662).
func (v *Verifier) introspect(ctx context.Context, raw string) error {
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.intro, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(v.cfg.Introspection.ClientID), url.QueryEscape(v.cfg.Introspection.ClientSecret))
	res, err := v.client.Do(req)
	if err != nil {
		return fault.Wrap(fault.Unavailable, "the token could not be checked with its issuer", err)
	}
	defer res.Body.Close()
	var body struct {
		Active bool `json:"active"`
	}
	if res.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&body) != nil {
		return fault.Wrap(fault.Unavailable, "the token could not be checked with its issuer", fmt.Errorf("introspection: %s", res.Status))
	}
	if !body.Active {
		return &fault.Error{Code: fault.InvalidToken, Description: "token is no longer active", Reason: "inactive"}
	}
	return nil
}

// parseJWK turns a public JWK of passflow's JWK Set into a key, the
// algorithm it verifies and nothing else.
func parseJWK(jwk map[string]string) (publicKey, error) {
	b := func(name string) []byte {
		v, err := base64.RawURLEncoding.DecodeString(jwk[name])
		if err != nil {
			return nil
		}
		return v
	}
	switch {
	case jwk["kty"] == "OKP" && jwk["crv"] == "Ed25519" && jwk["alg"] == "EdDSA":
		if x := b("x"); len(x) == ed25519.PublicKeySize {
			return publicKey{alg: "EdDSA", key: ed25519.PublicKey(x)}, nil
		}
	case jwk["kty"] == "EC" && jwk["crv"] == "P-256" && jwk["alg"] == "ES256":
		x, y := b("x"), b("y")
		if len(x) == 32 && len(y) == 32 {
			k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, append(x, y...)...))
			if err == nil {
				return publicKey{alg: "ES256", key: k}, nil
			}
		}
	case jwk["kty"] == "RSA" && jwk["alg"] == "RS256":
		n, e := b("n"), b("e")
		if len(n) >= 256 && len(e) > 0 && len(e) <= 4 {
			return publicKey{alg: "RS256", key: &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}}, nil
		}
	}
	return publicKey{}, fmt.Errorf("remote: a JWK passflow would not publish (kty %q, alg %q)", jwk["kty"], jwk["alg"])
}
