package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/passflow/passflow/fault"
)

// Password length limits: at least MinPasswordChars characters, at most
// MaxPasswordBytes bytes (the bound keeps hashing cost independent of input).
const (
	MinPasswordChars = 8
	MaxPasswordBytes = 1024
)

// CheckPassword returns an invalid_request error about field when password
// is too short or too long. It never repeats the password.
func CheckPassword(field, password string) error {
	if len(password) > MaxPasswordBytes {
		return fault.Invalid(field, fmt.Sprintf("password must be at most %d bytes", MaxPasswordBytes))
	}
	if !utf8.ValidString(password) {
		return fault.Invalid(field, "password must be valid UTF-8")
	}
	if utf8.RuneCountInString(password) < MinPasswordChars {
		return fault.Invalid(field, fmt.Sprintf("password must be at least %d characters", MinPasswordChars))
	}
	return nil
}

// Hasher turns passwords into stored hashes and checks them. Both are
// deliberately slow; ctx bounds any wait for a turn to run.
type Hasher interface {
	// Hash returns the encoded hash of password.
	Hash(ctx context.Context, password string) (string, error)
	// Verify reports whether password matches encoded, and whether encoded
	// should be replaced by a fresh Hash because its parameters are weaker
	// than the current ones. A malformed encoded hash is an error.
	Verify(ctx context.Context, encoded, password string) (ok, rehash bool, err error)
	// Accept reports why encoded, a hash from elsewhere, cannot be kept:
	// a format Verify cannot check, or a cost above the bound derived from
	// the hasher's own, which would make every login on its account slow
	// and memory-hungry.
	Accept(encoded string) error
}

// Argon2idParams are argon2id cost parameters.
type Argon2idParams struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
	SaltLen     uint32
	KeyLen      uint32
}

// OWASPArgon2id is the OWASP Password Storage Cheat Sheet's first
// recommended configuration: 19 MiB, two passes, one lane.
func OWASPArgon2id() Argon2idParams {
	return Argon2idParams{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}
}

// String is the parameters as ParseArgon2idParams reads them.
func (p Argon2idParams) String() string {
	return fmt.Sprintf("m=%d,t=%d,p=%d", p.MemoryKiB, p.Iterations, p.Parallelism)
}

// ParseArgon2idParams reads "m=KiB,t=passes,p=lanes", as a PHC string
// writes them; salts are 16 bytes and keys 32.
func ParseArgon2idParams(s string) (Argon2idParams, error) {
	p := Argon2idParams{SaltLen: 16, KeyLen: 32}
	var par uint32
	// Read, then written back: anything else in s (a suffix, a leading
	// zero) makes the two differ.
	if _, err := fmt.Sscanf(s, "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &par); err != nil ||
		fmt.Sprintf("m=%d,t=%d,p=%d", p.MemoryKiB, p.Iterations, par) != s {
		return p, fmt.Errorf("%q is not argon2id parameters such as m=19456,t=2,p=1", s)
	}
	switch {
	case par < 1 || par > 255:
		return p, errors.New("argon2id lanes (p) must be 1 to 255")
	case p.Iterations < 1 || p.Iterations > maxArgonTime:
		return p, fmt.Errorf("argon2id passes (t) must be 1 to %d", maxArgonTime)
	case p.MemoryKiB < 8*par || p.MemoryKiB > maxArgonMemoryKiB:
		return p, fmt.Errorf("argon2id memory (m) must be 8 KiB per lane to %d KiB", maxArgonMemoryKiB)
	}
	p.Parallelism = uint8(par)
	return p, nil
}

// BelowOWASP reports whether p is cheaper than every configuration the
// OWASP Password Storage Cheat Sheet recommends: fit for tests, not for
// passwords anyone uses.
func (p Argon2idParams) BelowOWASP() bool {
	for _, min := range []struct{ m, t uint32 }{{47104, 1}, {19456, 2}, {12288, 3}, {9216, 4}, {7168, 5}} {
		if p.MemoryKiB >= min.m && p.Iterations >= min.t {
			return false
		}
	}
	return true
}

// Argon2id hashes with argon2id and encodes hashes as PHC strings:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>, base64 without padding.
type Argon2id struct {
	params Argon2idParams
}

var _ Hasher = (*Argon2id)(nil)

// NewArgon2id returns a hasher with the given parameters.
func NewArgon2id(params Argon2idParams) *Argon2id {
	return &Argon2id{params: params}
}

var b64 = base64.RawStdEncoding

// Hash returns the PHC string of password with a fresh random salt.
func (h *Argon2id) Hash(_ context.Context, password string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	p := h.params
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify checks password against a PHC argon2id string in constant time.
func (h *Argon2id) Verify(_ context.Context, encoded, password string) (bool, bool, error) {
	p, salt, want, err := parseArgon2id(encoded)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, uint32(len(want)))
	ok := subtle.ConstantTimeCompare(got, want) == 1
	cur := h.params
	// Weaker in any dimension means rehash; more lanes are not weaker.
	rehash := p.MemoryKiB < cur.MemoryKiB || p.Iterations < cur.Iterations ||
		len(want) < int(cur.KeyLen) || len(salt) < int(cur.SaltLen)
	return ok, rehash, nil
}

// Accept reports why encoded cannot be kept: not argon2id, or dearer than
// MaxCostFactor times these parameters, in memory, in passes, or in both
// together.
func (h *Argon2id) Accept(encoded string) error {
	p, salt, key, err := parseArgon2id(encoded)
	if err != nil {
		return errors.New("not an argon2id or bcrypt hash")
	}
	cur := h.params
	for _, l := range []struct {
		what     string
		got, max uint64
	}{
		{"memory (KiB)", uint64(p.MemoryKiB), MaxCostFactor * uint64(cur.MemoryKiB)},
		{"passes", uint64(p.Iterations), MaxCostFactor * uint64(cur.Iterations)},
		{"memory × passes", uint64(p.MemoryKiB) * uint64(p.Iterations), MaxCostFactor * uint64(cur.MemoryKiB) * uint64(cur.Iterations)},
		{"lanes", uint64(p.Parallelism), max(MaxCostFactor*uint64(cur.Parallelism), 4)},
		{"salt length", uint64(len(salt)), 64},
		{"key length", uint64(len(key)), 64},
	} {
		if l.got > l.max {
			return fmt.Errorf("argon2id %s %d is above this server's limit of %d", l.what, l.got, l.max)
		}
	}
	return nil
}

// MaxCostFactor bounds an imported hash's cost: at most this many times
// the server's own, so that no account makes each login attempt on it
// cost seconds and hundreds of megabytes.
const MaxCostFactor = 4

var errMalformedHash = errors.New("auth: malformed argon2id hash")

// Upper bounds on stored parameters, so a tampered row cannot make one
// verification allocate gigabytes or run for minutes.
const (
	maxArgonMemoryKiB = 1 << 20 // 1 GiB
	maxArgonTime      = 64
)

func parseArgon2id(encoded string) (Argon2idParams, []byte, []byte, error) {
	var p Argon2idParams
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errMalformedHash
	}
	var par uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &par); err != nil {
		return p, nil, nil, errMalformedHash
	}
	if p.MemoryKiB == 0 || p.MemoryKiB > maxArgonMemoryKiB || p.Iterations == 0 || p.Iterations > maxArgonTime || par == 0 || par > 255 {
		return p, nil, nil, errMalformedHash
	}
	p.Parallelism = uint8(par)
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errMalformedHash
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return p, nil, nil, errMalformedHash
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}

// MaxBcryptCost bounds imported bcrypt hashes: passlib's default. Each step
// doubles the work; 12 takes about four times an OWASP argon2id hash, 14
// about a second.
const MaxBcryptCost = 12

// Passwords is passflow's Hasher: new hashes are argon2id; bcrypt hashes
// imported from elsewhere (passlib, FastAPI's recipe) still verify, and
// always ask to be rehashed.
type Passwords struct {
	argon *Argon2id
}

var _ Hasher = (*Passwords)(nil)

// NewPasswords returns the hasher, hashing with params.
func NewPasswords(params Argon2idParams) *Passwords {
	return &Passwords{argon: NewArgon2id(params)}
}

// Hash returns the argon2id PHC string of password.
func (p *Passwords) Hash(ctx context.Context, password string) (string, error) {
	return p.argon.Hash(ctx, password)
}

// Accept reports why encoded cannot be kept: see CheckHashFormat for
// bcrypt, Argon2id.Accept for argon2id.
func (p *Passwords) Accept(encoded string) error {
	if isBcrypt(encoded) {
		return CheckHashFormat(encoded)
	}
	return p.argon.Accept(encoded)
}

// Verify checks password against an argon2id or bcrypt hash.
func (p *Passwords) Verify(ctx context.Context, encoded, password string) (bool, bool, error) {
	if !isBcrypt(encoded) {
		return p.argon.Verify(ctx, encoded, password)
	}
	if err := CheckHashFormat(encoded); err != nil {
		return false, false, err
	}
	err := bcrypt.CompareHashAndPassword([]byte(encoded), []byte(password))
	if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) || errors.Is(err, bcrypt.ErrPasswordTooLong) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, true, nil
}

func isBcrypt(encoded string) bool {
	return strings.HasPrefix(encoded, "$2a$") || strings.HasPrefix(encoded, "$2b$") || strings.HasPrefix(encoded, "$2y$")
}

// CheckHashFormat reports whether Passwords can verify encoded: an argon2id
// PHC string, or bcrypt ($2a$, $2b$ or $2y$) of cost at most
// MaxBcryptCost.
func CheckHashFormat(encoded string) error {
	if isBcrypt(encoded) {
		cost, err := bcrypt.Cost([]byte(encoded))
		if err != nil || len(encoded) != 60 {
			return errors.New("malformed bcrypt hash")
		}
		if cost > MaxBcryptCost {
			return fmt.Errorf("bcrypt cost %d is above %d", cost, MaxBcryptCost)
		}
		return nil
	}
	if _, _, _, err := parseArgon2id(encoded); err != nil {
		return errors.New("not an argon2id or bcrypt hash")
	}
	return nil
}
