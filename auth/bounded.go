package auth

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/passflow/passflow/fault"
)

// Bounded limits a Hasher's concurrency. Each argon2id hash holds its
// memory while it runs, so a flood of logins must queue, not pile up: at
// most concurrency hashes run at once, at most queue more wait, each for at
// most wait; the rest are turned away with a 503-style error at once.
type Bounded struct {
	inner   Hasher
	slots   chan struct{}
	queue   int64
	wait    time.Duration
	waiting atomic.Int64
}

var _ Hasher = (*Bounded)(nil)

// NewBounded wraps inner.
func NewBounded(inner Hasher, concurrency, queue int, wait time.Duration) *Bounded {
	return &Bounded{inner: inner, slots: make(chan struct{}, concurrency), queue: int64(queue), wait: wait}
}

// ErrOverloaded answers a login that found no room to hash.
var ErrOverloaded = &fault.Error{
	Code:        fault.Unavailable,
	Description: "too many logins at once; try again shortly",
	Reason:      "overloaded",
}

// Full reports whether every slot is taken and the queue is full: a hash
// asked for now would be turned away. Callers check it before work a
// refused login would waste (the throttle's store writes), so that a flood
// beyond the queue is refused at once and costs the logins under way
// nothing.
func (b *Bounded) Full() bool {
	return len(b.slots) == cap(b.slots) && b.waiting.Load() >= b.queue
}

// Waiting is how many calls wait for a slot now.
func (b *Bounded) Waiting() int { return int(b.waiting.Load()) }

func (b *Bounded) acquire(ctx context.Context) error {
	select {
	case b.slots <- struct{}{}:
		return nil
	default:
	}
	if b.waiting.Add(1) > b.queue {
		b.waiting.Add(-1)
		return ErrOverloaded
	}
	defer b.waiting.Add(-1)
	t := time.NewTimer(b.wait)
	defer t.Stop()
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrOverloaded
	case <-ctx.Done():
		return fault.Wrap(fault.Unavailable, "the request was cancelled while waiting to hash", ctx.Err())
	}
}

func (b *Bounded) release() { <-b.slots }

// Hash hashes password once a slot is free.
func (b *Bounded) Hash(ctx context.Context, password string) (string, error) {
	if err := b.acquire(ctx); err != nil {
		return "", err
	}
	defer b.release()
	return b.inner.Hash(ctx, password)
}

// Verify checks password once a slot is free.
func (b *Bounded) Verify(ctx context.Context, encoded, password string) (bool, bool, error) {
	if err := b.acquire(ctx); err != nil {
		return false, false, err
	}
	defer b.release()
	return b.inner.Verify(ctx, encoded, password)
}

// Accept asks inner.
func (b *Bounded) Accept(encoded string) error { return b.inner.Accept(encoded) }
