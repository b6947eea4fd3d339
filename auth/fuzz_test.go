package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/passflow/passflow/fault"
)

// FuzzVerify throws arbitrary strings at the token verifier: no panic, and
// every refusal is an invalid_token error with a reason.
func FuzzVerify(f *testing.F) {
	c := &clock{time.Now()}
	tokens, _ := newTokens(f, c)
	at, err := tokens.Issue(Subject{UserID: "u1", Username: "ann", ClientID: "app", Scopes: []string{"data:read"}})
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(at.Token, ".")
	for _, seed := range []string{
		at.Token, at.Token + "x", parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2],
		"", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", strings.Repeat("A", MaxTokenBytes+1),
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.x", "\x00\xff",
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := tokens.Verify(ctx, raw)
		if err == nil {
			if p == nil || p.UserID == "" {
				t.Fatalf("accepted %q without a principal", raw)
			}
			return
		}
		if fe := fault.As(err); fe.Code != fault.InvalidToken || fe.Reason == "" {
			t.Fatalf("Verify(%q) = %v, want invalid_token with a reason", raw, err)
		}
	})
}
