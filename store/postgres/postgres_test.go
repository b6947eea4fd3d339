package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/postgres"
	"github.com/passflow/passflow/store/postgres/pgtest"
	"github.com/passflow/passflow/store/storetest"
)

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, pgtest.Database(t))
	})
}

// TestInstancesMigrateTogether: instances starting at once on a new
// database migrate under the advisory lock without racing.
func TestInstancesMigrateTogether(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// t.Error, not t.Fatal: this is not the test's goroutine.
			s, err := postgres.Open(context.Background(), url, 0)
			if err != nil {
				t.Errorf("open: %v", err)
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
}

// TestPoolSize: the pool holds at most the connections asked for, unless
// the URL says otherwise.
func TestPoolSize(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	for _, tt := range []struct {
		url      string
		maxConns int
		want     int
	}{
		{url, 3, 3},
		{url + "&pool_max_conns=2", 7, 2},
	} {
		s, err := postgres.Open(context.Background(), tt.url, tt.maxConns)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.MaxConns(); got != tt.want {
			t.Errorf("Open(%d) with %s: MaxConns = %d, want %d", tt.maxConns, tt.url, got, tt.want)
		}
		s.Close()
	}
}
