package auth

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/passflow/passflow/fault"
)

func TestPasswordPolicy(t *testing.T) {
	t.Parallel()
	def := PasswordPolicy{MinScore: DefaultMinPasswordScore}
	long := randomPassword(1024)
	tests := []struct {
		name     string
		policy   PasswordPolicy
		password string
		related  []string
		want     string // in the description; "" accepts
	}{
		{"strong passphrase", def, "correct horse battery staple", nil, ""},
		{"random", def, "x7#kq9!mZp", nil, ""},
		{"the longest", def, long, nil, ""},
		{"too short", def, "tR0^b", nil, "at least 8 characters"},
		{"too long", def, long + "x", nil, "at most 1024 bytes"},
		{"not UTF-8", def, "abc\xffdefgh", nil, "valid UTF-8"},
		{"common", def, "password1", nil, "common password"},
		{"digits", def, "12345678", nil, "too easy to guess"},
		{"keyboard", def, "qwertyuiop", nil, "too easy to guess"},
		{"repeated", def, "passwordpassword", nil, "too easy to guess"},
		{"the username", def, "marguerite1", []string{"Marguerite"}, "account's name"},
		{"the same without a username", def, "marguerite1", nil, "too easy to guess"},
		{"a weak start of a long one", def, strings.Repeat("password", 9) + "Zq8!Zq8!", nil, "too easy to guess"},
		{"no score asked", PasswordPolicy{}, "password", nil, ""},
		{"a longer minimum", PasswordPolicy{MinChars: 12}, "x7#kq9!mZpA", nil, "at least 12 characters"},
		{"a minimum below 8", PasswordPolicy{MinChars: 4}, "x7#kq9!", nil, "at least 8 characters"},
		{"a strict score", PasswordPolicy{MinScore: 4}, "alice-password", nil, "strength 3 of 4, at least 4 needed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.policy.Check("/password", tt.password, tt.related...)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			fe := fault.As(err)
			if fe == nil || fe.Code != fault.InvalidRequest || fe.Field != "/password" {
				t.Fatalf("got %#v, want invalid_request about /password", err)
			}
			if !strings.Contains(fe.Description, tt.want) {
				t.Errorf("description %q does not say %q", fe.Description, tt.want)
			}
			if strings.Contains(fe.Description, tt.password) {
				t.Errorf("description %q quotes the password", fe.Description)
			}
		})
	}
}

// randomPassword is n printable ASCII characters, the same every run.
func randomPassword(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('!' + r.IntN('~'-'!'+1))
	}
	return string(b)
}

// BenchmarkPasswordPolicy is the cost of judging a password: a common
// length, and the longest (of which the first 32 characters are read),
// random and full of l33t substitutions.
func BenchmarkPasswordPolicy(b *testing.B) {
	p := PasswordPolicy{MinScore: DefaultMinPasswordScore}
	for _, pw := range []string{"correct horse battery staple", randomPassword(1024), "4@8(3|=6#!1|<1M0|>9$+|_|\\/\\/><`/2" + randomPassword(980)} {
		b.Run(strings.ReplaceAll(pw[:min(len(pw), 12)], " ", "_")+"…", func(b *testing.B) {
			for b.Loop() {
				if err := p.Check("/password", pw, "alice"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
