package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// ThrottleConfig sets the login limits (RFC 6749 §4.3.2: the token
// endpoint MUST be protected against brute force).
type ThrottleConfig struct {
	// MaxFailures failed logins per (username, client IP) within Window
	// are allowed; each further one waits a back-off doubling from 1s up
	// to MaxBackoff.
	MaxFailures int
	// MaxPerUser failures per username (or client id) across all
	// addresses, and MaxPerIP per address across all usernames and
	// clients, block it until its window ends.
	MaxPerUser int
	MaxPerIP   int
	Window     time.Duration
	MaxBackoff time.Duration
}

// Throttle limits attempts at a credential: a password at the token
// endpoint or the password change, a client secret anywhere. Each attempt
// is counted in the store before its hash starts, against three counters:
// the (subject, client IP) pair, the subject (a username or a client id)
// and the client IP, which every kind of attempt shares. A success gives
// its count back. So the limits hold however many attempts run at once, on
// however many instances; what it has seen blocked it also remembers, to
// refuse without a store round-trip until the block ends.
//
// A nil *Throttle throttles nothing: the command line, where an operator
// types, checks no credential it would need to.
type Throttle struct {
	st  store.LoginAttempts
	cfg ThrottleConfig
	now func() time.Time

	mu      sync.Mutex
	blocked map[string]time.Time // key → end of its block
}

// NewThrottle returns a throttle on st.
func NewThrottle(st store.LoginAttempts, cfg ThrottleConfig, now func() time.Time) *Throttle {
	return &Throttle{st: st, cfg: cfg, now: now, blocked: map[string]time.Time{}}
}

// Secret is what an attempt tries: an account's password or a client's
// secret.
type Secret struct {
	kind, name string
}

// AccountPassword is the password of the account called username.
func AccountPassword(username string) Secret { return Secret{"user", username} }

// ClientSecret is the secret of the client called id.
func ClientSecret(id string) Secret { return Secret{"client", id} }

// throttleKeys are the counters of one attempt: the pair, the subject and
// the address. Hashed, so the table holds no usernames or addresses, and
// every key is short whatever was submitted.
type throttleKeys struct{ pair, subject, ip string }

func keysFor(s Secret, ip string) throttleKeys {
	h := func(kind, v string) string {
		sum := sha256.Sum256([]byte(kind + "\x00" + v))
		return kind + ":" + hex.EncodeToString(sum[:16])
	}
	pair := "pair"
	if s.kind != "user" {
		pair = s.kind + "-pair"
	}
	return throttleKeys{pair: h(pair, s.name+"\x00"+ip), subject: h(s.kind, s.name), ip: h("ip", ip)}
}

func (k throttleKeys) all() []string { return []string{k.pair, k.subject, k.ip} }

// Attempt is an attempt Reserve counted. Its owner reports how the check
// ended: a failure stays counted. A nil *Attempt counts nothing.
type Attempt struct {
	t    *Throttle
	keys throttleKeys
	done bool
}

// Reserve counts an attempt at s from ip, before any hashing, or refuses
// it with a slow_down error whose RetryAfter is the wait.
func (t *Throttle) Reserve(ctx context.Context, s Secret, ip string) (*Attempt, error) {
	if t == nil {
		return &Attempt{}, nil
	}
	keys := keysFor(s, ip)
	now := t.now()
	if wait := t.remembered(keys, now); wait > 0 {
		return nil, slowDown(wait)
	}
	err := t.st.ReserveLoginAttempt(ctx, keys.all(), now, t.cfg.Window, func(counters []store.LoginCounter) error {
		if wait := t.learn(keys, counters, now); wait > 0 {
			return slowDown(wait)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Attempt{t: t, keys: keys}, nil
}

// Succeeded gives the attempt's count back, and clears its pair: the owner
// is back, and their own earlier typos no longer count.
func (a *Attempt) Succeeded(ctx context.Context) error {
	if a == nil || a.t == nil || a.done {
		return nil
	}
	a.done = true
	a.t.mu.Lock()
	delete(a.t.blocked, a.keys.pair)
	a.t.mu.Unlock()
	return a.t.st.ReleaseLoginAttempt(ctx, []string{a.keys.subject, a.keys.ip}, []string{a.keys.pair})
}

// Abandon gives the attempt's count back when no credential was checked
// (the hash queue was full, the store failed): it proved nothing either way.
func (a *Attempt) Abandon(ctx context.Context) {
	if a == nil || a.t == nil || a.done {
		return
	}
	a.done = true
	// Best effort: an abandoned count left behind only ages out.
	_ = a.t.st.ReleaseLoginAttempt(context.WithoutCancel(ctx), a.keys.all(), nil)
}

// Prune forgets counters that no longer matter.
func (t *Throttle) Prune(ctx context.Context) error {
	now := t.now()
	t.mu.Lock()
	for k, until := range t.blocked {
		if !now.Before(until) {
			delete(t.blocked, k)
		}
	}
	t.mu.Unlock()
	return t.st.PruneLoginFailures(ctx, now.Add(-t.cfg.Window-t.cfg.MaxBackoff))
}

func slowDown(wait time.Duration) error {
	return &fault.Error{Code: fault.SlowDown, Description: "too many attempts", RetryAfter: wait, Reason: "throttled"}
}

// remembered is the longest block still running among keys, from memory.
func (t *Throttle) remembered(keys throttleKeys, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, k := range keys.all() {
		if until, ok := t.blocked[k]; ok {
			if d := until.Sub(now); d > wait {
				wait = d
			}
		}
	}
	return wait
}

// learn works out from counters how long an attempt must wait, and
// remembers the blocks it finds.
func (t *Throttle) learn(keys throttleKeys, counters []store.LoginCounter, now time.Time) time.Duration {
	var wait time.Duration
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range counters {
		until := t.blockedUntil(keys, c, now)
		if d := until.Sub(now); d > 0 {
			t.blocked[c.Key] = until
			if d > wait {
				wait = d
			}
		}
	}
	return wait
}

func (t *Throttle) blockedUntil(keys throttleKeys, c store.LoginCounter, now time.Time) time.Time {
	if !now.Before(c.WindowStart.Add(t.cfg.Window)) && !t.inBackoff(keys, c, now) {
		return time.Time{}
	}
	switch c.Key {
	case keys.pair:
		if c.Failures < t.cfg.MaxFailures {
			return time.Time{}
		}
		return c.LastFailure.Add(t.backoff(c.Failures))
	case keys.subject:
		if c.Failures >= t.cfg.MaxPerUser {
			return c.WindowStart.Add(t.cfg.Window)
		}
	case keys.ip:
		if c.Failures >= t.cfg.MaxPerIP {
			return c.WindowStart.Add(t.cfg.Window)
		}
	}
	return time.Time{}
}

// inBackoff: a pair's back-off, once earned, runs to its end even past the
// window it was earned in.
func (t *Throttle) inBackoff(keys throttleKeys, c store.LoginCounter, now time.Time) bool {
	return c.Key == keys.pair && c.Failures >= t.cfg.MaxFailures && now.Before(c.LastFailure.Add(t.backoff(c.Failures)))
}

// backoff is 1s for the first failure past MaxFailures, doubling per
// further failure, capped at MaxBackoff.
func (t *Throttle) backoff(failures int) time.Duration {
	d := time.Second
	for i := t.cfg.MaxFailures; i < failures && d < t.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, t.cfg.MaxBackoff)
}
