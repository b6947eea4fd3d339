package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passflow/passflow/guard"
	"github.com/passflow/passflow/store/postgres/pgtest"
)

// TestTwoInstances runs two servers through run on one PostgreSQL database
// and proves every guarantee holds across them.
func TestTwoInstances(t *testing.T) {
	t.Parallel()
	db := pgtest.Database(t)
	// Instances behind one load balancer share one issuer.
	args := []string{"--login-max-failures", "4", "--issuer", "http://passflow.test"}
	a := startServerOn(t, db, adminEnv, args...)
	b := startServerOn(t, db, adminEnv, args...)
	a.addUser("zoe", "zoe-password", "data:read", "data:write")
	a.addUser("yves", "yves-password", "data:read")

	t.Run("a token from A works on B", func(t *testing.T) {
		tok := a.login("zoe", "zoe-password")
		if !b.works(tok) {
			t.Fatal("B refuses A's token")
		}
		res := b.do(http.MethodPut, "/my_data/shared", jsonBody(bearer(tok)), strings.NewReader(`{"value":"from B"}`))
		if res.Status != 201 || !strings.Contains(string(a.do(http.MethodGet, "/my_data", bearer(tok), nil).Body), "from B") {
			t.Errorf("a write on B is not read on A: %d", res.Status)
		}
	})

	t.Run("a revoke on A is refused by B within 1s", func(t *testing.T) {
		tok := a.login("zoe", "zoe-password")
		if !b.works(tok) {
			t.Fatal("B refuses a fresh token")
		}
		if res := a.postForm("/revoke", "token="+tok, nil); res.Status != 200 {
			t.Fatalf("revoke = %d", res.Status)
		}
		if !within(time.Second, func() bool { return !b.works(tok) }) {
			t.Error("B still accepts the token 1s after A revoked it")
		}
	})

	t.Run("a refresh race between A and B", func(t *testing.T) {
		login := a.passwordGrant("zoe", "zoe-password")
		var wg sync.WaitGroup
		results := make([]tokenPair, 2)
		statuses := make([]int, 2)
		for i, srv := range []*testServer{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := srv.postForm("/token", "grant_type=refresh_token&refresh_token="+url.QueryEscape(login.Refresh), nil)
				statuses[i] = res.Status
				if res.Status == 200 {
					results[i].Access = res.JSON(t)["access_token"].(string)
				}
			}()
		}
		wg.Wait()
		won := 0
		var winner string
		for i, s := range statuses {
			if s == 200 {
				won++
				winner = results[i].Access
			} else if s != 400 {
				t.Errorf("racing refresh got %d", s)
			}
		}
		if won != 1 {
			t.Fatalf("statuses %v: want exactly one 200", statuses)
		}
		// The loser counts as reuse: the whole family is revoked, everywhere.
		if !within(time.Second, func() bool { return !a.works(winner) && !b.works(winner) && !b.works(login.Access) }) {
			t.Error("the raced family's access tokens still work")
		}
	})

	t.Run("a key rotation never refuses a valid token", func(t *testing.T) {
		// Tokens minted on one instance (refreshes: no hashing, so many)
		// are checked at once on the other while the key rotates.
		stop := make(chan struct{})
		type tally struct{ checked, refused int }
		results := make(chan tally, 2)
		for _, pair := range [][2]*testServer{{a, b}, {b, a}} {
			signer, verifier := pair[0], pair[1]
			login := signer.passwordGrant("zoe", "zoe-password")
			go func() {
				var n tally
				refresh := login.Refresh
				for {
					select {
					case <-stop:
						results <- n
						return
					default:
					}
					res := signer.post("/token", "grant_type=refresh_token&refresh_token="+url.QueryEscape(refresh), nil)
					var body struct {
						Access  string `json:"access_token"`
						Refresh string `json:"refresh_token"`
					}
					if res.Status != 200 || json.Unmarshal(res.Body, &body) != nil {
						t.Errorf("refresh = %d %s", res.Status, res.Body)
						results <- n
						return
					}
					refresh = body.Refresh
					n.checked++
					req, _ := http.NewRequest(http.MethodGet, verifier.URL+"/users/me", nil)
					req.Header.Set("Authorization", "Bearer "+body.Access)
					if r, err := http.DefaultClient.Do(req); err == nil {
						io.Copy(io.Discard, r.Body)
						r.Body.Close()
						if r.StatusCode != 200 {
							n.refused++
						}
					}
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		if out, err := a.cli("", "keys", "rotate"); err != nil {
			t.Fatal(err, out)
		}
		time.Sleep(1500 * time.Millisecond)
		close(stop)
		for range 2 {
			n := <-results
			t.Logf("%d tokens checked on the other instance across the rotation, %d refused", n.checked, n.refused)
			if n.refused > 0 {
				t.Errorf("%d of %d valid tokens refused across a key rotation", n.refused, n.checked)
			}
		}
	})

	t.Run("deleting a client ends its tokens on both", func(t *testing.T) {
		secret := a.addClient("pg-backend")
		login, _ := a.grant(url.Values{"grant_type": {"password"}, "username": {"zoe"}, "password": {"zoe-password"},
			"client_id": {"pg-backend"}, "client_secret": {secret}})
		if !b.works(login.Access) {
			t.Fatal("B refuses the client's token")
		}
		if out, err := b.cli("", "client", "delete", "pg-backend"); err != nil {
			t.Fatal(err, out)
		}
		if !within(time.Second, func() bool { return !a.works(login.Access) && !b.works(login.Access) }) {
			t.Error("a deleted client's token still works after 1s")
		}
	})

	t.Run("a disabled user is locked out of both", func(t *testing.T) {
		tok := b.login("yves", "yves-password")
		admin := jsonBody(bearer(a.login("admin", "admin-password-1")))
		if res := a.do(http.MethodPatch, "/users/yves", admin, strings.NewReader(`{"disabled":true}`)); res.Status != 200 {
			t.Fatalf("disable = %d %s", res.Status, res.Body)
		}
		if a.works(tok) {
			t.Error("A, which disabled yves, still accepts his token")
		}
		if !within(time.Second, func() bool { return !b.works(tok) }) {
			t.Error("B accepts a disabled user's token after 1s")
		}
		for _, s := range []*testServer{a, b} {
			if res := s.postForm("/token", "grant_type=password&username=yves&password=yves-password", nil); res.Status != 400 {
				t.Errorf("disabled yves logs in: %d", res.Status)
			}
		}
	})

	t.Run("throttling counts attempts made on both", func(t *testing.T) {
		for i, s := range []*testServer{a, b, a, b} {
			if res := s.postForm("/token", "grant_type=password&username=zoe&password=wrong", nil); res.Status != 400 {
				t.Fatalf("failure %d = %d", i+1, res.Status)
			}
		}
		for name, s := range map[string]*testServer{"A": a, "B": b} {
			if res := s.postForm("/token", "grant_type=password&username=zoe&password=zoe-password", nil); res.Status != 429 {
				t.Errorf("after 2 failures on A and 2 on B, %s answers %d, want 429", name, res.Status)
			}
		}
	})

	t.Run("a key rotation reaches both", func(t *testing.T) {
		old, _ := claims(t, a.login("admin", "admin-password-1"))
		if out, err := a.cli("", "keys", "rotate"); err != nil {
			t.Fatal(err, out)
		}
		for name, s := range map[string]*testServer{"A": a, "B": b} {
			if !within(time.Second, func() bool {
				h, _ := claims(t, s.login("admin", "admin-password-1"))
				return h["kid"] != old["kid"]
			}) {
				t.Errorf("%s does not sign with the new key within 1s", name)
			}
		}
	})
}

// TestInstancesBootstrapOnce: instances starting together on a new
// database create admin once between them, quietly, as the server at
// start-up; a restart of all of them changes nothing.
func TestInstancesBootstrapOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.Database(t)
	start := func() []*testServer {
		servers := make([]*testServer, 3)
		var wg sync.WaitGroup
		for i := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ts, err := launch(t, db, adminEnv)
				if err != nil {
					t.Error(err)
					return
				}
				servers[i] = ts
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		return servers
	}
	count := func(servers []*testServer, s string) int {
		n := 0
		for _, ts := range servers {
			n += strings.Count(ts.logs.String(), s)
		}
		return n
	}
	first := start()
	if n := count(first, "created account admin"); n != 1 {
		t.Errorf("%d instances say they created admin, want 1", n)
	}
	doc, err := loadSpec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := count(first, `event=user.created target=admin detail="scopes=`+strings.Join(guard.Scopes(doc), ",")+`" actor=startup`); n != 1 {
		t.Errorf("%d audit lines for creating admin, want 1 with actor=startup", n)
	}
	for _, bad := range []string{"level=WARN msg=\"no enabled", "restored", `actor="command line"`} {
		if n := count(first, bad); n != 0 {
			t.Errorf("%d lines with %q in the instances' logs", n, bad)
		}
	}
	for _, ts := range first {
		ts.stop()
	}
	again := start()
	if n := count(again, "msg=audit"); n != 0 {
		t.Errorf("a restart wrote %d audit lines", n)
	}
	again[0].login("admin", "admin-password-1")
}

// proxy is a TCP proxy a test can cut and restore, or stall: connections
// stay open but no byte gets through, as when a network silently drops
// packets.
type proxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	cut     bool
	stalled bool
	resume  *sync.Cond
	conns   []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.resume = sync.NewCond(&p.mu)
	t.Cleanup(func() { ln.Close(); p.setStalled(false); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { p.pump(up, c); up.Close() }()
			go func() { p.pump(c, up); c.Close() }()
		}
	}()
	return p
}

// pump copies src to dst, holding what it reads while the proxy is stalled.
func (p *proxy) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.stalled {
			p.resume.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// setStalled holds every byte in flight, new connections' too, or lets
// them through again.
func (p *proxy) setStalled(stalled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = stalled
	p.resume.Broadcast()
}

// setCut drops every connection and refuses new ones, or lets them in again.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestDatabaseOutage cuts the connection to PostgreSQL under a running
// server: calls that need the database answer 503 with Retry-After and
// /readyz fails; once it is back, the server recovers on its own and no
// row was lost.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	db := pgtest.Database(t)
	u, _ := url.Parse(db)
	p := newProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	ts := startServerOn(t, u.String(), adminEnv)
	ts.addUser("xena", "xena-password", "data:read", "data:write")
	tok := ts.login("xena", "xena-password")
	if res := ts.do(http.MethodPut, "/my_data/before", jsonBody(bearer(tok)), strings.NewReader(`{"value":"kept"}`)); res.Status != 201 {
		t.Fatalf("write before the outage = %d", res.Status)
	}

	p.setCut(true)
	for name, do := range map[string]func() response{
		"read": func() response { return ts.do(http.MethodGet, "/my_data", bearer(tok), nil) },
		"write": func() response {
			return ts.do(http.MethodPut, "/my_data/during", jsonBody(bearer(tok)), strings.NewReader(`{"value":"x"}`))
		},
		"login": func() response {
			return ts.postForm("/token", "grant_type=password&username=xena&password=xena-password", nil)
		},
		"readyz": func() response { return ts.do(http.MethodGet, "/readyz", nil, nil) },
	} {
		res := do()
		if res.Status != 503 || res.Header.Get("Retry-After") == "" {
			t.Errorf("%s during the outage = %d (Retry-After %q) %s", name, res.Status, res.Header.Get("Retry-After"), res.Body)
		}
	}
	if res := ts.do(http.MethodGet, "/healthz", nil, nil); res.Status != 200 {
		t.Errorf("/healthz during the outage = %d; the process is alive", res.Status)
	}

	p.setCut(false)
	if !within(10*time.Second, func() bool { return ts.do(http.MethodGet, "/readyz", nil, nil).Status == 200 }) {
		t.Fatal("/readyz did not recover within 10s of the database coming back")
	}
	res := ts.do(http.MethodGet, "/my_data", bearer(tok), nil)
	if res.Status != 200 || !strings.Contains(string(res.Body), "kept") {
		t.Errorf("after the outage: %d %s", res.Status, res.Body)
	}
	if res := ts.do(http.MethodPut, "/my_data/after", jsonBody(bearer(tok)), strings.NewReader(`{"value":"v"}`)); res.Status != 201 {
		t.Errorf("a write after the outage = %d", res.Status)
	}
	ts.login("xena", "xena-password")
}

// TestDatabaseGoesSilent: when the database's connection stays open but
// nothing comes back, calls that need it answer 503 with Retry-After after
// --db-timeout instead of hanging, the log says 503, and a client that
// gives up first is logged as having gone (499), not as a 503.
func TestDatabaseGoesSilent(t *testing.T) {
	t.Parallel()
	db := pgtest.Database(t)
	u, _ := url.Parse(db)
	p := newProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	ts := startServerOn(t, u.String(), adminEnv, "--db-timeout", "1s")
	ts.addUser("yan", "yan-password", "data:read", "data:write")
	tok := ts.login("yan", "yan-password")

	p.setStalled(true)
	for name, do := range map[string]func() response{
		"login": func() response {
			return ts.post("/token", "grant_type=password&username=yan&password=yan-password", nil)
		},
		"read": func() response {
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/my_data", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return response{}
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return response{Status: res.StatusCode, Header: res.Header}
		},
	} {
		start := time.Now()
		res := do()
		took := time.Since(start)
		if res.Status != 503 || res.Header.Get("Retry-After") == "" || took > 4*time.Second {
			t.Errorf("%s with the database silent = %d (Retry-After %q) after %v, want 503 after about 1s", name, res.Status, res.Header.Get("Retry-After"), took)
		}
	}
	// A client that gives up before the deadline.
	client := &http.Client{Timeout: 300 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/my_data", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Request-ID", "gave-up-1")
	if _, err := client.Do(req); err == nil {
		t.Fatal("the impatient client got an answer from a silent database")
	}
	if !within(3*time.Second, func() bool { return strings.Contains(ts.logs.String(), "request_id=gave-up-1 ") }) {
		t.Fatal("the abandoned request was never logged")
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, "path=/my_data route=/my_data status=503") {
		t.Error("the access log does not say 503 for the timed-out calls")
	}
	if !regexp.MustCompile(`request_id=gave-up-1 method=GET path=/my_data route=/my_data status=499 `).MatchString(logs) {
		t.Errorf("the abandoned request is not logged as 499:\n%s", logs)
	}

	p.setStalled(false)
	if !within(10*time.Second, func() bool { return ts.do(http.MethodGet, "/readyz", nil, nil).Status == 200 }) {
		t.Fatal("/readyz did not recover within 10s of the database answering again")
	}
	if res := ts.do(http.MethodGet, "/my_data", bearer(tok), nil); res.Status != 200 {
		t.Errorf("after the silence: %d %s", res.Status, res.Body)
	}
}
