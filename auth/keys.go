package auth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/passflow/passflow/store"
)

// Signing algorithms passflow can use.
const (
	AlgEdDSA = "EdDSA"
)

// Key is a signing key in usable form.
type Key struct {
	ID        string
	Alg       string
	CreatedAt time.Time
	method    jwt.SigningMethod
	private   crypto.Signer
	public    crypto.PublicKey
}

// GenerateSigningKey makes a new private key for alg.
func GenerateSigningKey(alg string, now time.Time) (store.SigningKey, error) {
	var priv crypto.Signer
	switch alg {
	case AlgEdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return store.SigningKey{}, err
		}
		priv = k
	default:
		return store.SigningKey{}, fmt.Errorf("auth: unsupported signing algorithm %q", alg)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.SigningKey{}, err
	}
	k, err := parseKey(alg, der)
	if err != nil {
		return store.SigningKey{}, err
	}
	return store.SigningKey{ID: k.ID, Algorithm: alg, Private: der, CreatedAt: now.UTC()}, nil
}

// ParseSigningKey turns a stored key into a usable one.
func ParseSigningKey(sk store.SigningKey) (*Key, error) {
	k, err := parseKey(sk.Algorithm, sk.Private)
	if err != nil {
		return nil, err
	}
	if k.ID != sk.ID {
		return nil, fmt.Errorf("auth: signing key %s: stored id does not match its thumbprint", sk.ID)
	}
	k.CreatedAt = sk.CreatedAt
	return k, nil
}

func parseKey(alg string, der []byte) (*Key, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("auth: parse signing key: %w", err)
	}
	k := &Key{Alg: alg}
	switch alg {
	case AlgEdDSA:
		priv, ok := parsed.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("auth: signing key is %T, not Ed25519", parsed)
		}
		k.method, k.private, k.public = jwt.SigningMethodEdDSA, priv, priv.Public()
	default:
		return nil, fmt.Errorf("auth: unsupported signing algorithm %q", alg)
	}
	jwk := k.PublicJWK()
	k.ID = thumbprint(jwk)
	return k, nil
}

// PublicJWK returns the key's public half as an RFC 7517 JWK with kid, alg and use.
func (k *Key) PublicJWK() map[string]string {
	jwk := map[string]string{}
	switch pub := k.public.(type) {
	case ed25519.PublicKey:
		jwk["kty"], jwk["crv"], jwk["x"] = "OKP", "Ed25519", base64.RawURLEncoding.EncodeToString(pub)
	}
	if k.ID != "" {
		jwk["kid"], jwk["alg"], jwk["use"] = k.ID, k.Alg, "sig"
	}
	return jwk
}

// thumbprint is the RFC 7638 JWK thumbprint: SHA-256 over the required
// members in lexicographic order, base64url-encoded.
func thumbprint(jwk map[string]string) string {
	var required []string
	switch jwk["kty"] {
	case "OKP":
		required = []string{"crv", "kty", "x"}
	}
	m := make(map[string]string, len(required))
	for _, name := range required {
		m[name] = jwk[name]
	}
	// encoding/json sorts map keys, which is the order RFC 7638 asks for.
	b, _ := json.Marshal(m)
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// KeySet holds the keys tokens are signed and verified with. It is safe for
// concurrent use; a reload swaps the whole set at once.
type KeySet struct {
	alg   string
	state atomic.Pointer[keyState]
}

type keyState struct {
	signing *Key
	byID    map[string]*Key
	all     []*Key
}

// LoadKeys loads the keys in ks, first creating a key for alg when there is
// none, and returns a set that signs with the newest key of alg.
func LoadKeys(ctx context.Context, ks store.Keys, alg string, now time.Time) (*KeySet, error) {
	stored, err := ks.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	if !hasAlg(stored, alg) {
		fresh, err := GenerateSigningKey(alg, now)
		if err != nil {
			return nil, err
		}
		if stored, err = ks.EnsureSigningKey(ctx, fresh); err != nil {
			return nil, err
		}
	}
	set := &KeySet{alg: alg}
	if err := set.replace(stored); err != nil {
		return nil, err
	}
	return set, nil
}

// Reload reads the keys in ks again, as after another process rotated them.
func (s *KeySet) Reload(ctx context.Context, ks store.Keys) error {
	stored, err := ks.SigningKeys(ctx)
	if err != nil {
		return err
	}
	return s.replace(stored)
}

func hasAlg(keys []store.SigningKey, alg string) bool {
	for _, k := range keys {
		if k.Algorithm == alg {
			return true
		}
	}
	return false
}

func (s *KeySet) replace(stored []store.SigningKey) error {
	st := &keyState{byID: make(map[string]*Key, len(stored))}
	for _, sk := range stored {
		k, err := ParseSigningKey(sk)
		if err != nil {
			return err
		}
		st.byID[k.ID] = k
		st.all = append(st.all, k)
		if k.Alg == s.alg && (st.signing == nil || k.CreatedAt.After(st.signing.CreatedAt)) {
			st.signing = k
		}
	}
	if st.signing == nil {
		return fmt.Errorf("auth: no %s signing key", s.alg)
	}
	s.state.Store(st)
	return nil
}

// Signing returns the key new tokens are signed with.
func (s *KeySet) Signing() *Key { return s.state.Load().signing }

// Lookup returns the verification key with kid, if any.
func (s *KeySet) Lookup(kid string) (*Key, bool) {
	k, ok := s.state.Load().byID[kid]
	return k, ok
}

// Algorithms returns every algorithm of the set's keys.
func (s *KeySet) Algorithms() []string {
	seen := map[string]bool{}
	var algs []string
	for _, k := range s.state.Load().all {
		if !seen[k.Alg] {
			seen[k.Alg] = true
			algs = append(algs, k.Alg)
		}
	}
	return algs
}

// Public returns the public verification keys as RFC 7517 JWKs, newest
// first: what a JWK Set publishes.
func (s *KeySet) Public() []map[string]string {
	keys := []map[string]string{}
	for _, k := range s.state.Load().all {
		keys = append(keys, k.PublicJWK())
	}
	return keys
}
