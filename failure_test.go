package main

import (
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	_ "modernc.org/sqlite"

	"github.com/passflow/passflow/generated/api"
)

// TestStoreFailureIs503: when the database fails, calls that need it answer
// 503 with Retry-After and the JSON error body, never a panic or a bare 500;
// /readyz fails.
func TestStoreFailureIs503(t *testing.T) {
	t.Parallel()
	e := newInproc(t)
	e.addUser("wyn", "data:read")
	tok := e.login("wyn")
	if res := e.get("/my_data", bearer(tok)); res.StatusCode != 200 {
		t.Fatalf("before = %d", res.StatusCode)
	}
	e.st.Close() // the database goes away

	get := func(path string, h http.Header) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for name, do := range map[string]func() *http.Response{
		"protected read": func() *http.Response { return get("/my_data", bearer(tok)) },
		"readiness":      func() *http.Response { return get("/readyz", nil) },
		"login": func() *http.Response {
			res, err := http.PostForm(e.url+"/token", map[string][]string{"grant_type": {"password"}, "username": {"wyn"}, "password": {"wyn-password"}})
			if err != nil {
				t.Fatal(err)
			}
			return res
		},
	} {
		res := do()
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"error":"`) ||
			strings.Contains(string(body), "sql") {
			t.Errorf("%s with the database gone: %d Retry-After %q %s", name, res.StatusCode, res.Header.Get("Retry-After"), body)
		}
	}
	if e.get("/healthz", nil).StatusCode != 200 {
		t.Error("/healthz must stay 200: the process is alive")
	}
}

// TestPanicIsRecovered: a panic in a handler is logged with the request id
// and answered 500 internal_error, saying nothing of it.
func TestPanicIsRecovered(t *testing.T) {
	t.Parallel()
	boom := func(f api.StrictHandlerFunc, op string) api.StrictHandlerFunc {
		return func(c *gin.Context, req any) (any, error) {
			if op == "GetMe" {
				panic("boom: a secret detail")
			}
			return f(c, req)
		}
	}
	e := newInproc(t, withMiddleware(boom))
	e.addUser("xan", "data:read")
	req, _ := http.NewRequest(http.MethodGet, e.url+"/users/me", nil)
	req.Header.Set("Authorization", "Bearer "+e.login("xan"))
	req.Header.Set("X-Request-ID", "panic-req-1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 500 || string(body) != `{"error":"internal_error","error_description":"internal error"}` {
		t.Errorf("panic = %d %s", res.StatusCode, body)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "msg=panic request_id=panic-req-1") || !strings.Contains(logs, "boom") {
		t.Errorf("the panic was not logged with the request id:\n%s", logs)
	}
	if res := e.get("/my_data", bearer(e.login("xan"))); res.StatusCode != 200 {
		t.Errorf("after a panic the server answers %d", res.StatusCode)
	}
}

// TestKill9LosesNoAcknowledgedWrite: kill -9 in the middle of a burst of
// writes; every write that was answered 2xx is in the database afterwards,
// and the database is consistent.
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "p.db")
	c := startChild(t, db)
	res, err := http.PostForm(c.URL+"/token", map[string][]string{"grant_type": {"password"}, "username": {"admin"}, "password": {"admin-password-1"}})
	if err != nil {
		t.Fatal(err)
	}
	tok := regexp.MustCompile(`"access_token":"([^"]+)"`).FindStringSubmatch(readAll(res))[1]

	var mu sync.Mutex
	acked := map[string]string{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key, value := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("value-%d-%d", w, i)
				req, _ := http.NewRequest(http.MethodPut, c.URL+"/my_data/"+key, strings.NewReader(`{"value":"`+value+`"}`))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == 201 {
					mu.Lock()
					acked[key] = value
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
	close(stop)
	wg.Wait()
	if len(acked) < 10 {
		t.Fatalf("only %d writes were acknowledged before the kill", len(acked))
	}

	conn, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var check string
	if err := conn.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	rows, err := conn.Query(`SELECT key, value FROM items`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for rows.Next() {
		var k, v string
		rows.Scan(&k, &v)
		stored[k] = v
	}
	rows.Close()
	for k, v := range acked {
		if stored[k] != v {
			t.Errorf("acknowledged write %s=%s lost (stored %q)", k, v, stored[k])
		}
	}
	t.Logf("%d acknowledged writes, %d stored, all present", len(acked), len(stored))
}

// TestSecretsAtRestArePrivate: the database, its -wal and -shm files and
// every backup are readable by their owner only; a server started on a
// database others can read says so, naming the file and the fix.
func TestSecretsAtRestArePrivate(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("ulf", "ulf-password", "data:read")
	ts.login("ulf", "ulf-password")
	for _, name := range []string{ts.DB, ts.DB + "-wal", ts.DB + "-shm"} {
		info, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(name), perm)
		}
	}
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "copy.db")
	if out, err := ts.cli("", "backup", copyPath); err != nil {
		t.Fatalf("backup: %v %s", err, out)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, _ := e.Info()
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("backup file %s has mode %v, want 0600", e.Name(), perm)
		}
	}
	ts.stop()

	if err := os.Chmod(ts.DB, 0o644); err != nil {
		t.Fatal(err)
	}
	again := startServerOn(t, ts.DB, map[string]string{})
	logs := again.logs.String()
	if !strings.Contains(logs, "other users can read it: run chmod 600") || !strings.Contains(logs, ts.DB) {
		t.Errorf("a world-readable database was not reported:\n%s", logs)
	}
}

// TestBackup copies a store while a server writes to it.
func TestBackup(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("yul", "yul-password", "data:read", "data:write")
	tok := ts.login("yul", "yul-password")
	ts.do(http.MethodPut, "/my_data/kept", jsonBody(bearer(tok)), strings.NewReader(`{"value":"in the copy"}`))
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if out, err := ts.cli("", "backup", copyPath); err != nil {
		t.Fatalf("backup: %v %s", err, out)
	}
	if _, err := ts.cli("", "backup", copyPath); err == nil || !strings.Contains(describe(err), "already exists") {
		t.Errorf("a second backup to the same file: %v", err)
	}
	// The copy is a working store.
	copySrv := startServerOn(t, copyPath, map[string]string{})
	res := copySrv.do(http.MethodGet, "/my_data", bearer(copySrv.login("yul", "yul-password")), nil)
	if !strings.Contains(string(res.Body), "in the copy") {
		t.Errorf("the copy lacks the item: %s", res.Body)
	}
}
