package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/passflow/passflow/store"
)

// tracedKey marks the context of a request whose store calls are recorded.
type tracedKey struct{}

// storeCalls records the store methods called on behalf of traced
// requests; the app's own background work (the change feed) is not
// recorded.
type storeCalls struct {
	mu  sync.Mutex
	ops []string
}

func (s *storeCalls) wrap(st store.Store) store.Store {
	return store.Around(st, func(ctx context.Context, op string, call func(context.Context) error) error {
		if ctx.Value(tracedKey{}) != nil {
			s.mu.Lock()
			s.ops = append(s.ops, op)
			s.mu.Unlock()
		}
		return call(ctx)
	})
}

func (s *storeCalls) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := s.ops
	s.ops = nil
	return ops
}

// TestProtectedReadIsOneStoreCall: once a token and its account have been
// checked, a protected GET /my_data costs one store call, the read of the
// items. The token's signature, revocation and the account's state come
// from what the process already holds.
func TestProtectedReadIsOneStoreCall(t *testing.T) {
	t.Parallel()
	var calls storeCalls
	e := newInproc(t, withStore(calls.wrap))
	e.addUser("reader", "data:read")
	token := e.login("reader")
	read := func() []string {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/my_data", nil)
		req = req.WithContext(context.WithValue(req.Context(), tracedKey{}, true))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /my_data = %d %s", rec.Code, rec.Body)
		}
		return calls.take()
	}
	first := read()
	t.Logf("the first read with this token called %v", first)
	if !slices.Contains(first, "ListItems") {
		t.Fatalf("the first read called %v, without ListItems: the count sees nothing", first)
	}
	for range 3 {
		if got := read(); !slices.Equal(got, []string{"ListItems"}) {
			t.Fatalf("a cached protected read called the store %d times: %v; want only ListItems (first read: %v)", len(got), got, first)
		}
	}
}
