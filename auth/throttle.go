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
	// MaxPerUser failures per username across all addresses, and
	// MaxPerIP per address across all usernames, block it until its
	// window ends.
	MaxPerUser int
	MaxPerIP   int
	Window     time.Duration
	MaxBackoff time.Duration
}

// Throttle limits login attempts. Its counters live in the store, so every
// instance counts the same attempts; what it has seen blocked it also
// remembers, to refuse without a store round-trip until the block ends.
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

// throttleKeys are the counters of one attempt: the pair, the username and
// the address. Hashed, so the table holds no usernames or addresses, and
// every key is short whatever was submitted.
type throttleKeys struct{ pair, user, ip string }

func keysFor(username, ip string) throttleKeys {
	h := func(kind, v string) string {
		sum := sha256.Sum256([]byte(kind + "\x00" + v))
		return kind + ":" + hex.EncodeToString(sum[:16])
	}
	return throttleKeys{pair: h("pair", username+"\x00"+ip), user: h("user", username), ip: h("ip", ip)}
}

func (k throttleKeys) all() []string { return []string{k.pair, k.user, k.ip} }

// Check refuses an attempt that must wait, before any hashing: a
// slow_down error with the wait as RetryAfter.
func (t *Throttle) Check(ctx context.Context, username, ip string) error {
	keys := keysFor(username, ip)
	now := t.now()
	if wait := t.remembered(keys, now); wait > 0 {
		return slowDown(wait)
	}
	counters, err := t.st.LoginCounters(ctx, keys.all())
	if err != nil {
		return err
	}
	if wait := t.learn(keys, counters, now); wait > 0 {
		return slowDown(wait)
	}
	return nil
}

// Failure counts a failed attempt.
func (t *Throttle) Failure(ctx context.Context, username, ip string) error {
	keys := keysFor(username, ip)
	now := t.now()
	counters, err := t.st.AddLoginFailure(ctx, keys.all(), now, t.cfg.Window)
	if err != nil {
		return err
	}
	t.learn(keys, counters, now)
	return nil
}

// Success clears the (username, address) counter: the account's owner is
// back, and their own earlier typos no longer count.
func (t *Throttle) Success(ctx context.Context, username, ip string) error {
	keys := keysFor(username, ip)
	t.mu.Lock()
	delete(t.blocked, keys.pair)
	t.mu.Unlock()
	return t.st.ClearLoginFailures(ctx, keys.pair)
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
	case keys.user:
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
