package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// silent is a store whose database never answers: every call waits for
// its context to end.
type silent struct{ store.Store }

func (silent) UserByID(ctx context.Context, _ string) (store.User, error) {
	<-ctx.Done()
	return store.User{}, ctx.Err()
}

func TestWithDeadline(t *testing.T) {
	t.Parallel()
	s := store.WithDeadline(silent{}, 50*time.Millisecond)
	start := time.Now()
	_, err := s.UserByID(context.Background(), "u")
	fe := fault.As(err)
	if fe.Code != fault.Unavailable || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a silent database = %v, want unavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the call took %v with a deadline of 50ms", d)
	}
	// A caller that went away keeps its own error: it was not the database.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	if _, err := s.UserByID(ctx, "u"); !errors.Is(err, context.Canceled) || fault.As(err).Code == fault.Unavailable {
		t.Errorf("a cancelled call = %v, want context.Canceled", err)
	}
}
