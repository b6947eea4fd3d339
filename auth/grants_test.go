package auth

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// recordingHasher wraps a Hasher and records the hash work asked of it:
// one entry per Verify, the encoded hash's parameters.
type recordingHasher struct {
	inner Hasher
	mu    sync.Mutex
	calls []string
}

func (r *recordingHasher) Hash(ctx context.Context, pw string) (string, error) {
	return r.inner.Hash(ctx, pw)
}

func (r *recordingHasher) Verify(ctx context.Context, enc, pw string) (bool, bool, error) {
	p, _, key, err := parseArgon2id(enc)
	r.mu.Lock()
	r.calls = append(r.calls, fmtParams(p, len(key), err))
	r.mu.Unlock()
	return r.inner.Verify(ctx, enc, pw)
}

func fmtParams(p Argon2idParams, keyLen int, err error) string {
	if err != nil {
		return "not argon2id"
	}
	return fmt.Sprintf("m=%d,t=%d,p=%d,keylen=%d", p.MemoryKiB, p.Iterations, p.Parallelism, keyLen)
}

func (r *recordingHasher) Accept(enc string) error { return r.inner.Accept(enc) }

func (r *recordingHasher) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

type loginEnv struct {
	grants *Grants
	hasher *recordingHasher
	events *recordingEvents
}

type recordingEvents struct {
	NoEvents
	mu     sync.Mutex
	logins []LoginEvent
}

func (e *recordingEvents) Login(_ context.Context, l LoginEvent) {
	e.mu.Lock()
	e.logins = append(e.logins, l)
	e.mu.Unlock()
}

// newTokenCore returns the signing keys, change feed and token service of
// a test store.
func newTokenCore(t testing.TB, st store.Store, ev Events) (*KeySet, *Feed, *Tokens) {
	t.Helper()
	ctx := context.Background()
	keys, err := LoadKeys(ctx, st, KeyConfig{Alg: AlgEdDSA, Verify: time.Minute}, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	feed, err := NewFeed(ctx, slog.New(slog.DiscardHandler), st, keys, 10, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := NewTokens(TokenConfig{Issuer: "https://p.test", TTL: time.Minute, CacheSize: 10}, keys, feed, ev, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return keys, feed, tokens
}

func newLoginEnv(t testing.TB, params Argon2idParams, tc ThrottleConfig) *loginEnv {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	rec := &recordingHasher{inner: NewPasswords(params)}
	ev := &recordingEvents{}
	_, feed, tokens := newTokenCore(t, st, ev)
	throttle := NewThrottle(st, tc, time.Now)
	accounts := NewAccounts(AccountConfig{Scopes: testScopes}, st, rec, throttle, feed, ev, time.Now)
	if _, err := accounts.Create(ctx, NewAccount{Username: "known", Password: "the-right-password", Scopes: []string{"data:read"}}); err != nil {
		t.Fatal(err)
	}
	grants, err := NewGrants(GrantConfig{RefreshTTL: time.Hour, PasswordGrant: true, Scopes: testScopes}, slog.New(slog.DiscardHandler), st, rec, tokens,
		NewClients(ClientConfig{AllowPublic: true, Scopes: testScopes}, st, rec, throttle, ev, time.Now), feed, throttle, ev, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	rec.take()
	return &loginEnv{grants: grants, hasher: rec, events: ev}
}

// testScopes are the scopes of passflow's own spec.
var testScopes, _ = NewScopes([]string{"data:read", "data:write", "users:admin"})

var looseThrottle = ThrottleConfig{MaxFailures: 1000, MaxPerUser: 1000, MaxPerIP: 1000, Window: time.Minute, MaxBackoff: time.Minute}

// TestUnknownUserCostsTheSameHashWork: a login for an unknown username
// performs the same hash work, with the same parameters, in one call, as a
// wrong password for a known one; and both give the same error.
func TestUnknownUserCostsTheSameHashWork(t *testing.T) {
	t.Parallel()
	env := newLoginEnv(t, cheap, looseThrottle)
	ctx := context.Background()
	login := func(username string) ([]string, error) {
		_, err := env.grants.Password(ctx, PasswordRequest{Username: username, Password: "a-wrong-password", ClientIP: "192.0.2.1"})
		return env.hasher.take(), err
	}
	known, errKnown := login("known")
	unknown, errUnknown := login("nobody")
	if len(known) != 1 || len(unknown) != 1 {
		t.Fatalf("hash calls: wrong password %d, unknown user %d; want 1 each", len(known), len(unknown))
	}
	if known[0] != unknown[0] || known[0] == "not argon2id" {
		t.Errorf("hash parameters differ: wrong password %q, unknown user %q", known[0], unknown[0])
	}
	if errKnown.Error() != errUnknown.Error() {
		t.Errorf("errors differ: %v / %v", errKnown, errUnknown)
	}
	// And under overload, the two fail alike too.
	full := NewBounded(NewArgon2id(cheap), 1, 0, time.Millisecond)
	full.slots <- struct{}{} // every slot busy
	env.grants.hasher = full
	_, e1 := env.grants.Password(ctx, PasswordRequest{Username: "known", Password: "x-x-x-x-x", ClientIP: "192.0.2.1"})
	_, e2 := env.grants.Password(ctx, PasswordRequest{Username: "nobody", Password: "x-x-x-x-x", ClientIP: "192.0.2.1"})
	if fault.As(e1).Code != fault.Unavailable || fault.As(e2).Code != fault.Unavailable {
		t.Errorf("overloaded: %v / %v, want unavailable for both", e1, e2)
	}
}

// TestThrottleBeforeHashing: once throttled, an attempt is refused with
// slow_down and no hash work at all, even with the right password.
func TestThrottleBeforeHashing(t *testing.T) {
	t.Parallel()
	env := newLoginEnv(t, cheap, ThrottleConfig{MaxFailures: 3, MaxPerUser: 100, MaxPerIP: 100, Window: time.Minute, MaxBackoff: time.Minute})
	ctx := context.Background()
	try := func(pw string) error {
		_, err := env.grants.Password(ctx, PasswordRequest{Username: "Known", Password: pw, ClientIP: "192.0.2.7"})
		return err
	}
	for i := range 3 {
		if err := try("wrong-password"); fault.As(err).Code != fault.InvalidGrant {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	env.hasher.take()
	err := try("the-right-password")
	fe := fault.As(err)
	if fe.Code != fault.SlowDown || fe.Description != "too many attempts" || fe.RetryAfter <= 0 || fe.RetryAfter > time.Second {
		t.Fatalf("throttled attempt: %+v, want slow_down with a wait of up to 1s", fe)
	}
	if calls := env.hasher.take(); len(calls) != 0 {
		t.Errorf("a throttled attempt hashed %d times", len(calls))
	}
	// The owner of the account from another address is not locked out.
	if _, err := env.grants.Password(ctx, PasswordRequest{Username: "known", Password: "the-right-password", ClientIP: "198.51.100.9"}); err != nil {
		t.Errorf("the right password from another address: %v", err)
	}
	var outcomes []string
	for _, l := range env.events.logins {
		outcomes = append(outcomes, l.Outcome)
	}
	want := "[bad_credentials bad_credentials bad_credentials throttled success]"
	if got := fmt.Sprint(outcomes); got != want {
		t.Errorf("login events %s, want %s", got, want)
	}
	for _, l := range env.events.logins {
		// A throttled attempt is refused before the account is looked up.
		if l.Outcome != "throttled" && (l.Username != "known" || l.UserID == "") {
			t.Errorf("login event %+v should name the existing account", l)
		}
	}
}

// TestThrottleBackoff checks the back-off arithmetic and the wider limits
// with a fake clock.
func TestThrottleBackoff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	th := NewThrottle(st, ThrottleConfig{MaxFailures: 5, MaxPerUser: 9, MaxPerIP: 100, Window: 15 * time.Minute, MaxBackoff: 15 * time.Minute}, clock)
	// wait asks for an attempt, gives it back, and returns how long it
	// would have had to wait.
	wait := func(user, ip string) time.Duration {
		t.Helper()
		a, err := th.Reserve(ctx, AccountPassword(user), ip)
		if err == nil {
			a.Abandon(ctx)
			return 0
		}
		if fe := fault.As(err); fe.Code == fault.SlowDown {
			return fe.RetryAfter
		}
		t.Fatal(err)
		return 0
	}
	fail := func(user, ip string) {
		t.Helper()
		if _, err := th.Reserve(ctx, AccountPassword(user), ip); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		fail("u", "a")
	}
	if w := wait("u", "a"); w != 0 {
		t.Fatalf("after 4 failures: wait %v, want none", w)
	}
	// A success from one address clears its pair only.
	fail("u", "b")
	a, err := th.Reserve(ctx, AccountPassword("u"), "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Succeeded(ctx); err != nil {
		t.Fatal(err)
	}
	// The 5th failure earns 1s; each further one doubles it.
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		fail("u", "a")
		if w := wait("u", "a"); w != want {
			t.Fatalf("after failure %d: wait %v, want %v", 5+i, w, want)
		}
		now = now.Add(want)
	}
	// 8 failures for u so far (7 from a, 1 from b); one more from b
	// reaches the per-user limit of 9: u is blocked everywhere until the
	// window ends.
	fail("u", "b")
	if w := wait("u", "c"); w <= 0 || w > 15*time.Minute {
		t.Errorf("per-user limit: wait %v from a new address", w)
	}
	if w := wait("v", "a"); w != 0 {
		t.Errorf("another user from the same address waits %v", w)
	}
	// A client's secret is counted apart from a user of the same name,
	// but from the same address.
	if w := wait("u", "d"); w == 0 {
		t.Error("u is not blocked from a new address")
	}
	if a, err := th.Reserve(ctx, ClientSecret("u"), "d"); err != nil {
		t.Errorf("client u is blocked with user u: %v", err)
	} else {
		a.Abandon(ctx)
	}
	// The cap.
	if d := th.backoff(1000); d != 15*time.Minute {
		t.Errorf("backoff(1000) = %v, want the 15m cap", d)
	}
	// After the window, everything is forgotten.
	now = now.Add(16 * time.Minute)
	if w := wait("u", "c"); w != 0 {
		t.Errorf("after the window: wait %v", w)
	}
}

// TestConcurrentGuessesStayWithinLimits fires bursts of simultaneous wrong
// passwords and shows that no more hashes are evaluated than the limit
// allows: per (user, address), per user and per address. The right
// password, tried after the burst, is refused too.
func TestConcurrentGuessesStayWithinLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	burst := func(t *testing.T, env *loginEnv, attempt func(i int) PasswordRequest) (hashes int, statuses map[fault.Code]int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		statuses = map[fault.Code]int{}
		start := make(chan struct{})
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := env.grants.Password(ctx, attempt(i))
				mu.Lock()
				statuses[fault.As(err).Code]++
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		return len(env.hasher.take()), statuses
	}
	loose := 1000
	for _, tt := range []struct {
		name    string
		tc      ThrottleConfig
		attempt func(i int) PasswordRequest
	}{
		{"one user from one address", ThrottleConfig{MaxFailures: 5, MaxPerUser: loose, MaxPerIP: loose}, func(i int) PasswordRequest {
			return PasswordRequest{Username: "known", Password: "a-wrong-password", ClientIP: "192.0.2.1"}
		}},
		{"one user from many addresses", ThrottleConfig{MaxFailures: loose, MaxPerUser: 5, MaxPerIP: loose}, func(i int) PasswordRequest {
			return PasswordRequest{Username: "known", Password: "a-wrong-password", ClientIP: fmt.Sprintf("192.0.2.%d", i)}
		}},
		{"many users from one address", ThrottleConfig{MaxFailures: loose, MaxPerUser: loose, MaxPerIP: 5}, func(i int) PasswordRequest {
			return PasswordRequest{Username: fmt.Sprintf("user%d", i), Password: "a-wrong-password", ClientIP: "192.0.2.1"}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.tc.Window, tt.tc.MaxBackoff = time.Minute, time.Minute
			env := newLoginEnv(t, cheap, tt.tc)
			hashes, statuses := burst(t, env, tt.attempt)
			t.Logf("20 simultaneous guesses: %d hashes evaluated, answers %v", hashes, statuses)
			if hashes > 5 {
				t.Errorf("%d hashes evaluated; the limit is 5", hashes)
			}
			if statuses[fault.SlowDown] != 20-hashes || statuses[fault.InvalidGrant] != hashes {
				t.Errorf("answers %v: want %d invalid_grant and the rest slow_down", statuses, hashes)
			}
			right := tt.attempt(0)
			right.Username, right.Password = "known", "the-right-password"
			if _, err := env.grants.Password(ctx, right); fault.As(err).Code != fault.SlowDown {
				t.Errorf("the right password after the burst: %v, want slow_down", err)
			}
		})
	}
}

func TestBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := NewBounded(NewArgon2id(cheap), 1, 1, 200*time.Millisecond)
	enc, _ := b.Hash(ctx, "pw-pw-pw-pw")
	b.slots <- struct{}{} // the one slot is busy
	done := make(chan error, 1)
	go func() { _, _, err := b.Verify(ctx, enc, "pw-pw-pw-pw"); done <- err }()
	for b.Waiting() != 1 {
		time.Sleep(time.Millisecond)
	}
	// The queue (1) is full: the next is turned away at once.
	if _, err := b.Hash(ctx, "x"); err != ErrOverloaded {
		t.Errorf("with the queue full: %v, want ErrOverloaded", err)
	}
	<-b.slots // free the slot: the waiter runs
	if err := <-done; err != nil {
		t.Errorf("the waiter: %v", err)
	}
	// A waiter that outlasts the wait gives up.
	b.slots <- struct{}{}
	start := time.Now()
	if _, err := b.Hash(ctx, "x"); err != ErrOverloaded || time.Since(start) < 200*time.Millisecond {
		t.Errorf("after waiting %v: %v, want ErrOverloaded after the wait", time.Since(start), err)
	}
	if b.Waiting() != 0 {
		t.Errorf("waiting = %d after everyone left", b.Waiting())
	}
}

// BenchmarkLogin measures the latency of a failed login for an unknown
// username and for a wrong password, with the real OWASP parameters, and
// reports percentiles: the two distributions should match.
func BenchmarkLogin(b *testing.B) {
	for _, who := range []string{"known", "unknown"} {
		b.Run(who, func(b *testing.B) {
			env := newLoginEnv(b, OWASPArgon2id(), looseThrottle)
			name := map[string]string{"known": "known", "unknown": "nobody"}[who]
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				_, err := env.grants.Password(ctx, PasswordRequest{Username: name, Password: "a-wrong-password", ClientIP: "192.0.2.1"})
				lat = append(lat, time.Since(start))
				if fault.As(err).Code != fault.InvalidGrant {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.90), "p90-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}

// TestFullHashQueueRefusesFirst: with every hashing slot busy and the queue
// full, a login is refused before the throttle counts it (a store write),
// for a known and an unknown account alike; once a slot is free the same
// login goes through the throttle and succeeds.
func TestFullHashQueueRefusesFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var mu sync.Mutex
	var ops []string
	st := store.Around(openStore(t), func(ctx context.Context, op string, call func(context.Context) error) error {
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
		return call(ctx)
	})
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := ops
		ops = nil
		return out
	}
	b := NewBounded(NewArgon2id(cheap), 1, 0, time.Second)
	_, feed, tokens := newTokenCore(t, st, NoEvents{})
	throttle := NewThrottle(st, looseThrottle, time.Now)
	if _, err := NewAccounts(AccountConfig{Scopes: testScopes}, st, b, throttle, feed, NoEvents{}, time.Now).
		Create(ctx, NewAccount{Username: "known", Password: "the-right-password"}); err != nil {
		t.Fatal(err)
	}
	grants, err := NewGrants(GrantConfig{RefreshTTL: time.Hour, PasswordGrant: true, Scopes: testScopes}, slog.New(slog.DiscardHandler), st, b, tokens,
		NewClients(ClientConfig{AllowPublic: true, Scopes: testScopes}, st, b, throttle, NoEvents{}, time.Now), feed, throttle, NoEvents{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	taken()

	b.slots <- struct{}{} // the one slot is busy, and the queue holds none
	if !b.Full() {
		t.Fatal("Full() = false with the slot taken and no queue")
	}
	for _, name := range []string{"known", "nobody"} {
		_, err := grants.Password(ctx, PasswordRequest{Username: name, Password: "the-right-password", ClientIP: "192.0.2.1"})
		if err != ErrOverloaded {
			t.Fatalf("%s with the queue full: %v, want ErrOverloaded", name, err)
		}
		if got := taken(); slices.Contains(got, "ReserveLoginAttempt") {
			t.Errorf("%s: a refused login counted its attempt in the store: %v", name, got)
		}
	}
	<-b.slots
	if _, err := grants.Password(ctx, PasswordRequest{Username: "known", Password: "the-right-password", ClientIP: "192.0.2.1"}); err != nil {
		t.Fatalf("with the slot free: %v", err)
	}
	if got := taken(); !slices.Contains(got, "ReserveLoginAttempt") {
		t.Errorf("an accepted login was not counted by the throttle: %v", got)
	}
}
