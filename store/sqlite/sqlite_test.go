package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/sqlite"
	"github.com/passflow/passflow/store/sqlstore"
	"github.com/passflow/passflow/store/storetest"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "p.db"))
	})
}

// TestPoolKeepsItsConnections: under concurrent reads the pool keeps every
// connection it opened for the next request, up to its size, instead of
// closing all but two and opening them again (each opening re-runs the
// pragmas and prepares the statements anew).
func TestPoolKeepsItsConnections(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	burst := func() {
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					if _, err := s.ListItems(context.Background(), "someone"); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	burst()
	burst()
	st := s.PoolStats()
	if st.MaxOpenConnections != 4 || st.OpenConnections > 4 {
		t.Errorf("pool of 4: %+v", st)
	}
	if st.MaxIdleClosed != 0 {
		t.Errorf("%d connections were closed for want of idle room and opened again", st.MaxIdleClosed)
	}
	if d, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "d.db"), 0); err != nil {
		t.Fatal(err)
	} else {
		if got := d.PoolStats().MaxOpenConnections; got != sqlite.DefaultMaxConns {
			t.Errorf("default pool size = %d, want %d", got, sqlite.DefaultMaxConns)
		}
		d.Close()
	}
}

// TestTwoProcessesOneFile: two stores on one file (a server and a CLI)
// migrate and write side by side without "database is locked".
func TestTwoProcessesOneFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "p.db")
	var wg sync.WaitGroup
	stores := make([]*sqlite.Store, 2)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// t.Error, not t.Fatal: this is not the test's goroutine.
			s, err := sqlite.Open(context.Background(), path, 0)
			if err != nil {
				t.Errorf("open %d: %v", i, err)
				return
			}
			t.Cleanup(func() { s.Close() })
			stores[i] = s
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	ctx := context.Background()
	if err := stores[0].CreateUser(ctx, store.User{ID: "u", Username: "u", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := stores[i%2].PutItem(ctx, "u", "k", "v")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("PutItem: %v", err)
		}
	}
}

func TestOpenRejectsURIPaths(t *testing.T) {
	t.Parallel()
	if _, err := sqlite.Open(context.Background(), "x.db?mode=ro", 0); err == nil {
		t.Error("a path with ? was accepted")
	}
}

// TestAdminLookupUsesItsIndex: whether an admin remains is asked at every
// start and every account change; it reads the partial index of admins,
// never every user.
func TestAdminLookupUsesItsIndex(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "p.db"))
	rows, err := s.DB().Query("EXPLAIN QUERY PLAN " + sqlstore.AdminExists)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if got := strings.Join(plan, "; "); !strings.Contains(got, "INDEX users_admins") {
		t.Errorf("the admin lookup's plan is %q, want the users_admins index", got)
	}
}

// TestBusyTimeoutBoundsAWrite: a write waiting for another process's write
// lock gives up after the busy timeout (serve's --db-timeout) as
// unavailable, instead of waiting as long as the lock is held; reads go on
// beside the held lock.
func TestBusyTimeoutBoundsAWrite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := sqlite.OpenWith(context.Background(), path, sqlite.Options{BusyTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateUser(ctx, store.User{ID: "u", Username: "u", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	other := open(t, path) // another process's store
	conn, err := other.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, "ROLLBACK")

	if _, err := s.ListItems(ctx, "u"); err != nil {
		t.Fatalf("a read beside the held write lock: %v", err)
	}
	start := time.Now()
	_, err = s.PutItem(ctx, "u", "k", "v")
	if fault.As(err).Code != fault.Unavailable {
		t.Fatalf("a write while another holds the lock = %v, want unavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the write gave up after %v with a busy timeout of 200ms", d)
	}
}
