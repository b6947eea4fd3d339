package store

import (
	"context"
	"errors"
	"time"

	"github.com/passflow/passflow/fault"
)

// WithDeadline returns s with a deadline on every call: a database that
// stops answering, its connection open but silent, fails each call after d
// with fault.ErrUnavailable (a 503) instead of holding the request for as
// long as the outage lasts. A call that ends because its
// caller went away keeps its own error.
func WithDeadline(s Store, d time.Duration) Store {
	return Around(s, func(ctx context.Context, _ string, call func(context.Context) error) error {
		dctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		err := call(dctx)
		if err != nil && ctx.Err() == nil && errors.Is(dctx.Err(), context.DeadlineExceeded) {
			err = &fault.Error{
				Code:        fault.Unavailable,
				Description: "the database did not answer in time; try again shortly",
				Err:         err,
			}
		}
		return err
	})
}
