package auth

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passflow/passflow/store/sqlite"
)

// cheap keeps unit tests fast; the parameters' effect is what is tested.
var cheap = Argon2idParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}

// openStore opens a fresh SQLite store for one test, closed when it ends.
func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var ctx = context.Background()

func TestArgon2idRoundTrip(t *testing.T) {
	t.Parallel()
	h := NewArgon2id(cheap)
	enc, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q is not a PHC argon2id string with the parameters", enc)
	}
	if again, _ := h.Hash(ctx, "correct horse"); again == enc {
		t.Error("two hashes of one password are equal: no salt")
	}
	if ok, rehash, err := h.Verify(ctx, enc, "correct horse"); !ok || rehash || err != nil {
		t.Errorf("Verify(right) = %v, %v, %v", ok, rehash, err)
	}
	if ok, _, err := h.Verify(ctx, enc, "correct horsE"); ok || err != nil {
		t.Errorf("Verify(wrong) = %v, %v", ok, err)
	}
}

func TestArgon2idRehashWhenWeaker(t *testing.T) {
	t.Parallel()
	weak, _ := NewArgon2id(cheap).Hash(ctx, "pw-pw-pw-pw")
	stronger := cheap
	stronger.Iterations = 2
	ok, rehash, err := NewArgon2id(stronger).Verify(ctx, weak, "pw-pw-pw-pw")
	if !ok || !rehash || err != nil {
		t.Errorf("Verify with stronger current parameters = %v, %v, %v; want ok and rehash", ok, rehash, err)
	}
}

func TestArgon2idMalformed(t *testing.T) {
	t.Parallel()
	h := NewArgon2id(cheap)
	for _, enc := range []string{
		"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
	} {
		if ok, _, err := h.Verify(ctx, enc, "x"); ok || err == nil {
			t.Errorf("Verify(%q) = %v, %v; want an error", enc, ok, err)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	for pw, ok := range map[string]bool{
		"1234567":                          false,
		"12345678":                         true,
		"ééééééé":                          false, // 7 characters, 14 bytes
		"éééééééé":                         true,
		strings.Repeat("a", 1024):          true,
		strings.Repeat("a", 1025):          false,
		"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8": false,
	} {
		if err := CheckPassword("/password", pw); (err == nil) != ok {
			t.Errorf("CheckPassword(%d bytes) = %v, want ok %v", len(pw), err, ok)
		}
	}
}

func TestNormalizeUsername(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"Alice": "alice", "ALICE": "alice", "Zoë": "zoë", "a b": "", "": "", strings.Repeat("a", 65): ""} {
		got, err := NormalizeUsername("/username", in)
		if want == "" && err == nil {
			t.Errorf("NormalizeUsername(%q) = %q, want an error", in, got)
		}
		if want != "" && (err != nil || got != want) {
			t.Errorf("NormalizeUsername(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
