package auth

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/passflow/passflow/store"
)

// Signing algorithms passflow can use. HS256 is symmetric: only passflow
// can verify its tokens, and its key is never published.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
	AlgHS256 = "HS256"
)

// Algorithms lists every signing algorithm passflow supports.
func Algorithms() []string { return []string{AlgEdDSA, AlgES256, AlgRS256, AlgHS256} }

var methods = map[string]jwt.SigningMethod{
	AlgEdDSA: jwt.SigningMethodEdDSA,
	AlgES256: jwt.SigningMethodES256,
	AlgRS256: jwt.SigningMethodRS256,
	AlgHS256: jwt.SigningMethodHS256,
}

// Key is a signing key in usable form.
type Key struct {
	ID         string
	Alg        string
	CreatedAt  time.Time
	ActiveFrom time.Time
	RetiredAt  time.Time
	method     jwt.SigningMethod
	sign       any // what the method signs with
	verify     any // what it verifies with
}

// KeyConfig says how keys are made and kept.
type KeyConfig struct {
	// Alg is the algorithm new tokens are signed with.
	Alg string
	// KEK, when set, is a 32-byte key encrypting private keys at rest
	// (AES-256-GCM). Keys stored before it was set are still read.
	KEK []byte
	// Verify is how long a retired key still verifies (and stays in the
	// JWKS): the longest an access token lives, plus clock leeway.
	Verify time.Duration
	// AlgExplicit is set when Alg was asked for, not a default: a store
	// whose key is of another algorithm is then worth a warning.
	AlgExplicit bool
}

// ParseKEK decodes a key encryption key given in base64 (standard or URL
// alphabet, padded or not); it must be 32 bytes.
func ParseKEK(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("the key encryption key is %d bytes; it must be 32 (base64 of 32 random bytes)", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("the key encryption key must be base64 of 32 random bytes")
}

// GenerateSigningKey makes a new private key for cfg.Alg, encrypted with
// cfg.KEK when there is one.
func GenerateSigningKey(cfg KeyConfig, now time.Time) (store.SigningKey, error) {
	var raw []byte
	var kid string
	switch cfg.Alg {
	case AlgEdDSA, AlgES256, AlgRS256:
		var priv crypto.Signer
		var err error
		switch cfg.Alg {
		case AlgEdDSA:
			_, priv, err = ed25519.GenerateKey(rand.Reader)
		case AlgES256:
			priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case AlgRS256:
			priv, err = rsa.GenerateKey(rand.Reader, 2048)
		}
		if err != nil {
			return store.SigningKey{}, err
		}
		if raw, err = x509.MarshalPKCS8PrivateKey(priv); err != nil {
			return store.SigningKey{}, err
		}
		k, err := parseKey(cfg.Alg, raw)
		if err != nil {
			return store.SigningKey{}, err
		}
		kid = k.ID
	case AlgHS256:
		raw = make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return store.SigningKey{}, err
		}
		// A thumbprint of a secret key would be a hash of the secret:
		// give it a random id instead.
		id, err := randomID()
		if err != nil {
			return store.SigningKey{}, err
		}
		kid = id
	default:
		return store.SigningKey{}, fmt.Errorf("auth: unsupported signing algorithm %q", cfg.Alg)
	}
	private, err := seal(cfg.KEK, kid, raw)
	if err != nil {
		return store.SigningKey{}, err
	}
	return store.SigningKey{ID: kid, Algorithm: cfg.Alg, Private: private, CreatedAt: now.UTC()}, nil
}

// sealedPrefix marks a private key encrypted with a key encryption key.
var sealedPrefix = []byte("pfk1")

// seal encrypts raw with kek (AES-256-GCM, the key id as additional data,
// so a sealed key cannot be passed off as another); without a kek it
// returns raw.
func seal(kek []byte, kid string, raw []byte) ([]byte, error) {
	if kek == nil {
		return raw, nil
	}
	gcm, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(slices.Clone(sealedPrefix), nonce...)
	return gcm.Seal(out, nonce, raw, []byte(kid)), nil
}

// Sealed reports whether a stored key is encrypted with a key encryption key.
func Sealed(k store.SigningKey) bool { return bytes.HasPrefix(k.Private, sealedPrefix) }

func open(kek []byte, kid string, stored []byte) ([]byte, error) {
	if !bytes.HasPrefix(stored, sealedPrefix) {
		return stored, nil
	}
	if kek == nil {
		return nil, fmt.Errorf("auth: signing key %s is encrypted: set the key encryption key", kid)
	}
	gcm, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	body := stored[len(sealedPrefix):]
	if len(body) < gcm.NonceSize() {
		return nil, fmt.Errorf("auth: signing key %s: sealed key too short", kid)
	}
	raw, err := gcm.Open(nil, body[:gcm.NonceSize()], body[gcm.NonceSize():], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("auth: signing key %s: cannot decrypt it: wrong key encryption key?", kid)
	}
	return raw, nil
}

func newGCM(kek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// ParseSigningKey turns a stored key into a usable one, decrypting it with
// kek if it was sealed.
func ParseSigningKey(sk store.SigningKey, kek []byte) (*Key, error) {
	raw, err := open(kek, sk.ID, sk.Private)
	if err != nil {
		return nil, err
	}
	var k *Key
	if sk.Algorithm == AlgHS256 {
		if len(raw) < 32 {
			return nil, fmt.Errorf("auth: signing key %s: HMAC key shorter than 256 bits", sk.ID)
		}
		k = &Key{ID: sk.ID, Alg: AlgHS256, method: jwt.SigningMethodHS256, sign: raw, verify: raw}
	} else {
		if k, err = parseKey(sk.Algorithm, raw); err != nil {
			return nil, err
		}
		if k.ID != sk.ID {
			return nil, fmt.Errorf("auth: signing key %s: stored id does not match its thumbprint", sk.ID)
		}
	}
	k.CreatedAt, k.ActiveFrom, k.RetiredAt = sk.CreatedAt, sk.Active(), sk.RetiredAt
	return k, nil
}

func parseKey(alg string, der []byte) (*Key, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("auth: parse signing key: %w", err)
	}
	k := &Key{Alg: alg, method: methods[alg], sign: parsed}
	switch priv := parsed.(type) {
	case ed25519.PrivateKey:
		k.verify = priv.Public()
	case *ecdsa.PrivateKey:
		k.verify = &priv.PublicKey
	case *rsa.PrivateKey:
		k.verify = &priv.PublicKey
	}
	wantType := map[string]string{AlgEdDSA: "ed25519.PrivateKey", AlgES256: "*ecdsa.PrivateKey", AlgRS256: "*rsa.PrivateKey"}[alg]
	if got := fmt.Sprintf("%T", parsed); got != wantType || k.method == nil {
		return nil, fmt.Errorf("auth: a %s key is %s", alg, got)
	}
	if alg == AlgES256 && parsed.(*ecdsa.PrivateKey).Curve != elliptic.P256() {
		return nil, errors.New("auth: an ES256 key must be on P-256")
	}
	k.ID = thumbprint(k.PublicJWK())
	return k, nil
}

// PublicJWK returns the key's public half as an RFC 7517 JWK with kid, alg
// and use; nil for a symmetric key, which is never published.
func (k *Key) PublicJWK() map[string]string {
	jwk := map[string]string{}
	b64 := base64.RawURLEncoding.EncodeToString
	switch pub := k.verify.(type) {
	case ed25519.PublicKey:
		jwk["kty"], jwk["crv"], jwk["x"] = "OKP", "Ed25519", b64(pub)
	case *ecdsa.PublicKey:
		point, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			return nil
		}
		jwk["kty"], jwk["crv"], jwk["x"], jwk["y"] = "EC", "P-256", b64(point[1:33]), b64(point[33:])
	case *rsa.PublicKey:
		jwk["kty"], jwk["n"], jwk["e"] = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
	default:
		return nil
	}
	if k.ID != "" {
		jwk["kid"], jwk["alg"], jwk["use"] = k.ID, k.Alg, "sig"
	}
	return jwk
}

// thumbprint is the RFC 7638 JWK thumbprint: SHA-256 over the required
// members in lexicographic order, base64url-encoded.
func thumbprint(jwk map[string]string) string {
	required := map[string][]string{"OKP": {"crv", "kty", "x"}, "EC": {"crv", "kty", "x", "y"}, "RSA": {"e", "kty", "n"}}[jwk["kty"]]
	m := make(map[string]string, len(required))
	for _, name := range required {
		m[name] = jwk[name]
	}
	// encoding/json sorts map keys, which is the order RFC 7638 asks for.
	b, _ := json.Marshal(m)
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// KeyPrepublication is how long a rotated-in key is published before it
// signs: longer than SyncInterval, so every instance following the change
// feed knows the key before any instance signs with it.
const KeyPrepublication = 2 * SyncInterval

// KeyCheck is the check value of a key encryption key that the store keeps
// (store.SettingKeyCheck), so that no process adds a key the others cannot
// read: "none" without one, else an HMAC of a fixed text under kek, which
// tells nothing of kek itself.
func KeyCheck(kek []byte) string {
	if kek == nil {
		return "none"
	}
	mac := hmac.New(sha256.New, kek)
	mac.Write([]byte("passflow key encryption key check v1"))
	return "hmac-sha256:" + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// keyCheckError explains why a process with key encryption key check
// mine may not use a store whose keys are kept as stored says.
func keyCheckError(mine, stored string) error {
	switch {
	case mine == "none":
		return errors.New("this store's signing keys are sealed with a key encryption key: set --key-encryption-key (PASSFLOW_KEY_ENCRYPTION_KEY) to it")
	case stored == "none":
		return errors.New("the servers on this store keep signing keys without a key encryption key: leave --key-encryption-key unset, or restart them with it first")
	}
	return errors.New("--key-encryption-key is not the key encryption key this store's signing keys are sealed with")
}

// KeySet holds the keys tokens are signed and verified with: every key of
// the store whose tokens may still be alive. The newest key that has
// become active signs. It is safe for concurrent use; a reload swaps the
// whole set at once.
type KeySet struct {
	st     store.Keys
	cfg    KeyConfig
	logger *slog.Logger
	now    func() time.Time
	state  atomic.Pointer[keyState]

	// reload serialises reloads, so an older read never replaces a newer.
	reload     sync.Mutex
	lastReload time.Time
}

type keyState struct {
	// signers are the keys that sign now or will, newest first.
	signers []*Key
	byID    map[string]*Key
	all     []*Key
}

// LoadKeys loads the keys in ks. It first checks that cfg.KEK is the key
// encryption key the store's keys are kept with (store.SettingKeyCheck,
// set here when unset), creates a key for cfg.Alg when the store has no
// unretired key, and seals with cfg.KEK any key kept unsealed.
func LoadKeys(ctx context.Context, ks store.Keys, cfg KeyConfig, logger *slog.Logger, now func() time.Time) (*KeySet, error) {
	stored, err := ks.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	check := KeyCheck(cfg.KEK)
	for _, k := range stored {
		if cfg.KEK == nil && Sealed(k) {
			return nil, keyCheckError(check, "")
		}
	}
	have, err := ks.ClaimSetting(ctx, store.SettingKeyCheck, check)
	if err != nil {
		return nil, err
	}
	switch {
	case have == check:
	case cfg.KEK != nil && have == "none":
		if err := ks.SetSetting(ctx, store.SettingKeyCheck, check); err != nil {
			return nil, err
		}
		logger.Warn("this store's signing keys were kept without a key encryption key; from now on they are sealed with --key-encryption-key, and every process on the store needs it")
	default:
		return nil, keyCheckError(check, have)
	}
	if !hasSigner(stored) {
		fresh, err := GenerateSigningKey(cfg, now())
		if err != nil {
			return nil, err
		}
		if stored, err = ks.EnsureSigningKey(ctx, fresh); err != nil {
			return nil, err
		}
	}
	if cfg.KEK != nil {
		for i, k := range stored {
			if Sealed(k) {
				continue
			}
			sealed, err := seal(cfg.KEK, k.ID, k.Private)
			if err != nil {
				return nil, err
			}
			if err := ks.SealSigningKey(ctx, k.ID, k.Private, sealed); err != nil {
				return nil, err
			}
			stored[i].Private = sealed
			logger.Info("sealed a signing key kept unsealed with the key encryption key", "kid", k.ID)
		}
	}
	set := &KeySet{st: ks, cfg: cfg, logger: logger, now: now}
	if err := set.replace(stored); err != nil {
		return nil, err
	}
	if k := set.Signing(); k.Alg != cfg.Alg && cfg.AlgExplicit {
		logger.Warn("the store's signing key is of another algorithm than --signing-alg asks; it keeps signing until `passflow keys rotate --signing-alg` switches",
			"alg", k.Alg, "signing_alg", cfg.Alg)
	}
	return set, nil
}

// Reload reads the keys in the store again, as after another process
// rotated them. When a key that signs now or will cannot be read (sealed
// with another key encryption key), the set stays as it was and the error
// is returned; a retired key that cannot be read is left out.
func (s *KeySet) Reload(ctx context.Context) error {
	s.reload.Lock()
	defer s.reload.Unlock()
	return s.reloadLocked(ctx)
}

func (s *KeySet) reloadLocked(ctx context.Context) error {
	s.lastReload = s.now()
	stored, err := s.st.SigningKeys(ctx)
	if err != nil {
		return err
	}
	return s.replace(stored)
}

// Find returns the key with kid. A kid it does not know makes it read the
// store's keys again first, at most once per SyncInterval whatever the
// kids asked for: a key another instance just added is then found even
// before the change feed brings it.
func (s *KeySet) Find(ctx context.Context, kid string) (*Key, bool) {
	if k, ok := s.Lookup(kid); ok {
		return k, true
	}
	s.reload.Lock()
	defer s.reload.Unlock()
	if k, ok := s.Lookup(kid); ok {
		return k, true
	}
	if s.now().Sub(s.lastReload) < SyncInterval {
		return nil, false
	}
	if err := s.reloadLocked(ctx); err != nil {
		s.logger.Warn("reading the signing keys for an unknown kid failed", "error", err)
		return nil, false
	}
	return s.Lookup(kid)
}

func hasSigner(keys []store.SigningKey) bool {
	for _, k := range keys {
		if k.RetiredAt.IsZero() {
			return true
		}
	}
	return false
}

func (s *KeySet) replace(stored []store.SigningKey) error {
	now := s.now()
	st := &keyState{byID: make(map[string]*Key, len(stored))}
	for _, sk := range stored {
		retired := !sk.RetiredAt.IsZero() && !now.Before(sk.RetiredAt)
		if retired && now.After(sk.RetiredAt.Add(s.cfg.Verify)) {
			continue // every token it signed has expired
		}
		k, err := ParseSigningKey(sk, s.cfg.KEK)
		if err != nil {
			if !retired {
				return err
			}
			s.logger.Warn("left out a retired signing key that cannot be read", "kid", sk.ID, "error", err)
			continue
		}
		st.byID[k.ID] = k
		st.all = append(st.all, k)
		if !retired {
			st.signers = append(st.signers, k)
		}
	}
	if len(st.signers) == 0 {
		return errors.New("auth: the store has no signing key")
	}
	slices.SortFunc(st.signers, func(a, b *Key) int { return b.ActiveFrom.Compare(a.ActiveFrom) })
	s.state.Store(st)
	return nil
}

// Signing returns the key new tokens are signed with: the newest key that
// has become active.
func (s *KeySet) Signing() *Key {
	st, now := s.state.Load(), s.now()
	for _, k := range st.signers {
		if !now.Before(k.ActiveFrom) {
			return k
		}
	}
	return st.signers[len(st.signers)-1]
}

// Lookup returns the verification key with kid: a key that signs or will,
// or a retired one whose tokens may still be alive.
func (s *KeySet) Lookup(kid string) (*Key, bool) {
	k, ok := s.state.Load().byID[kid]
	if !ok || s.expired(k) {
		return nil, false
	}
	return k, true
}

func (s *KeySet) expired(k *Key) bool {
	return !k.RetiredAt.IsZero() && s.now().After(k.RetiredAt.Add(s.cfg.Verify))
}

// Public returns the public verification keys as RFC 7517 JWKs, newest
// first: what a JWK Set publishes, a key about to sign included. Symmetric
// keys are never in it.
func (s *KeySet) Public() []map[string]string {
	keys := []map[string]string{}
	for _, k := range s.state.Load().all {
		if jwk := k.PublicJWK(); jwk != nil && !s.expired(k) {
			keys = append(keys, jwk)
		}
	}
	return keys
}

// ActiveAlgorithm is the algorithm of the key that signs now among keys,
// or "" when none does.
func ActiveAlgorithm(keys []store.SigningKey, now time.Time) string {
	var best *store.SigningKey
	for i, k := range keys {
		signs := !now.Before(k.Active()) && (k.RetiredAt.IsZero() || now.Before(k.RetiredAt))
		if signs && (best == nil || k.Active().After(best.Active())) {
			best = &keys[i]
		}
	}
	if best == nil {
		return ""
	}
	return best.Algorithm
}

// RotateKeys adds a new signing key of alg to ks, or of the algorithm
// that signs now when alg is empty. It is published at once and signs
// after ahead, or KeyPrepublication if that is longer; every key signing
// before then stops. Services that read the JWK Set on a schedule need
// ahead to cover it, so they know the key before any token of it. The key
// is sealed with cfg.KEK, which must be the key encryption key the
// store's keys are kept with. It returns the new key and the algorithm it
// replaces.
func RotateKeys(ctx context.Context, ks store.Keys, cfg KeyConfig, alg string, ahead time.Duration, now time.Time) (store.SigningKey, string, error) {
	stored, err := ks.SigningKeys(ctx)
	if err != nil {
		return store.SigningKey{}, "", err
	}
	previous := ActiveAlgorithm(stored, now)
	if alg == "" {
		alg = cmp.Or(previous, cfg.Alg)
	}
	kc := cfg
	kc.Alg = alg
	k, err := GenerateSigningKey(kc, now)
	if err != nil {
		return store.SigningKey{}, "", err
	}
	k.ActiveFrom = now.Add(max(ahead, KeyPrepublication)).UTC()
	check := KeyCheck(cfg.KEK)
	err = ks.RotateSigningKey(ctx, k, check)
	if errors.Is(err, store.ErrKeyCheck) {
		have, cerr := ks.ClaimSetting(ctx, store.SettingKeyCheck, check)
		if cerr != nil {
			return store.SigningKey{}, "", cerr
		}
		return store.SigningKey{}, "", keyCheckError(check, have)
	}
	return k, previous, err
}
