package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/passflow/passflow/store"
)

// fixed answers UserByID with one user, or fails.
type fixed struct {
	store.Store
	err error
}

func (f fixed) UserByID(ctx context.Context, id string) (store.User, error) {
	if ctx.Value(ctxKey{}) != "set by around" {
		return store.User{}, errors.New("the call did not get the context Around gave it")
	}
	return store.User{ID: id, Username: "alice"}, f.err
}

type ctxKey struct{}

func TestAroundSeesEveryCallByName(t *testing.T) {
	t.Parallel()
	var ops []string
	wrap := func(s store.Store) store.Store {
		return store.Around(s, func(ctx context.Context, op string, call func(context.Context) error) error {
			ops = append(ops, op)
			return call(context.WithValue(ctx, ctxKey{}, "set by around"))
		})
	}
	u, err := wrap(fixed{}).UserByID(context.Background(), "u1")
	if err != nil || u.ID != "u1" || u.Username != "alice" {
		t.Fatalf("UserByID through Around = %+v, %v", u, err)
	}
	boom := errors.New("boom")
	if _, err := wrap(fixed{err: boom}).UserByID(context.Background(), "u1"); !errors.Is(err, boom) {
		t.Fatalf("the store's error became %v", err)
	}
	if len(ops) != 2 || ops[0] != "UserByID" || ops[1] != "UserByID" {
		t.Fatalf("Around saw %v", ops)
	}
}
