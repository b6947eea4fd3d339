package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/postgres"
	"github.com/passflow/passflow/store/postgres/pgtest"
	"github.com/passflow/passflow/store/sqlstore"
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

// TestAdminLookupUsesItsIndex: PostgreSQL's planner can answer the admin
// lookup from the partial index of admins (it may still prefer a scan of a
// table this small, so scans are switched off to ask).
func TestAdminLookupUsesItsIndex(t *testing.T) {
	t.Parallel()
	s, err := postgres.Open(context.Background(), pgtest.Database(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tx, err := s.DB().Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("SET LOCAL enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query("EXPLAIN " + sqlstore.AdminExists)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, strings.TrimSpace(line))
	}
	if got := strings.Join(plan, "; "); !strings.Contains(got, "users_admins") {
		t.Errorf("the admin lookup's plan is %q, want the users_admins index", got)
	}
}
