package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/sqlite"
	"github.com/passflow/passflow/store/storetest"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
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
			s, err := sqlite.Open(context.Background(), path)
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
	if _, err := sqlite.Open(context.Background(), "x.db?mode=ro"); err == nil {
		t.Error("a path with ? was accepted")
	}
}
