package main

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// post sends a form from a goroutine: unlike ts.do it never stops the
// test, so many may run at once.
func (ts *testServer) post(path, form string, header http.Header) response {
	req, err := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(form))
	if err != nil {
		ts.t.Error(err)
		return response{}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Error(err)
		return response{}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// burst sends n requests at once and counts the answers by status.
func burst(n int, send func(i int) response) map[int]int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res := send(i)
			mu.Lock()
			statuses[res.Status]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return statuses
}

// TestConcurrentGuessesAtTheTokenEndpoint: twenty wrong passwords sent at
// once for one account from one address are each counted before they are
// hashed, so no more than --login-max-failures of them are checked; the
// right password after them is refused too.
func TestConcurrentGuessesAtTheTokenEndpoint(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--login-max-failures", "5")
	ts.addUser("gus", "gus-password", "data:read")
	statuses := burst(20, func(int) response {
		return ts.post("/token", "grant_type=password&username=gus&password=wrong-guess", nil)
	})
	t.Logf("20 simultaneous guesses: %v", statuses)
	if statuses[400] > 5 || statuses[400]+statuses[429] != 20 {
		t.Errorf("answers %v: want at most 5 checked (400) and the rest 429", statuses)
	}
	if res := ts.postForm("/token", "grant_type=password&username=gus&password=gus-password", nil); res.Status != 429 {
		t.Errorf("the right password after the burst = %d, want 429", res.Status)
	}
}

// TestPasswordChangeIsThrottled: POST /users/me/password checks the
// current password under the same counters and limits as /token, audits
// each failure, and checks the new password's rules first.
func TestPasswordChangeIsThrottled(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--login-max-failures", "3")
	ts.addUser("hal", "hal-password", "data:read")
	tok := ts.login("hal", "hal-password")
	change := func(current, next string) response {
		body := `{"current_password":"` + current + `","new_password":"` + next + `"}`
		return ts.do(http.MethodPost, "/users/me/password", jsonBody(bearer(tok)), strings.NewReader(body))
	}
	// A new password that breaks the rules is refused before the current
	// one is looked at: the answer says nothing of it, and counts nothing.
	for range 5 {
		res := change("wrong-guess-1", "short")
		if res.Status != 400 || res.JSON(t)["field"] != "/new_password" {
			t.Fatalf("a short new password = %d %s, want 400 about /new_password", res.Status, res.Body)
		}
	}
	for i := range 3 {
		if res := change("wrong-guess-2", "hal-password-2"); res.Status != 400 || res.JSON(t)["field"] != "/current_password" {
			t.Fatalf("wrong guess %d = %d %s", i+1, res.Status, res.Body)
		}
	}
	res := change("hal-password", "hal-password-2")
	if res.Status != 429 || res.JSON(t)["error"] != "slow_down" || res.Header.Get("Retry-After") == "" {
		t.Fatalf("after 3 wrong guesses = %d %v %s, want 429 slow_down with Retry-After", res.Status, res.Header, res.Body)
	}
	// The same counters as a login's.
	if res := ts.postForm("/token", "grant_type=password&username=hal&password=hal-password", nil); res.Status != 429 {
		t.Errorf("a login after the guesses = %d, want 429", res.Status)
	}
	if n := strings.Count(ts.logs.String(), "event=password_change outcome=bad_credentials username=hal"); n != 3 {
		t.Errorf("%d audit lines for the failed checks, want 3", n)
	}
}

// TestClientSecretsAreThrottled: wrong client secrets are counted before
// they are hashed, per (client, address), per client and per address
// (shared with logins), and answered 429 past a limit; a flood of them
// from one address does not keep other addresses from logging in.
func TestClientSecretsAreThrottled(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--trusted-proxies", "127.0.0.1", "--login-max-failures", "5",
		"--login-max-failures-per-ip", "12", "--hash-concurrency", "1", "--hash-queue", "16")
	ts.addUser("ida", "ida-password", "data:read")
	out, err := ts.cli("backend-secret-0123456789\n", "client", "add", "backend", "--secret-stdin")
	if err != nil {
		t.Fatal(err, out)
	}
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
	good := "grant_type=password&username=ida&password=ida-password&client_id=backend&client_secret=backend-secret-0123456789"
	bad := "grant_type=password&username=ida&password=ida-password&client_id=backend&client_secret=wrong-secret-0123456789"

	var legit map[int]int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		legit = burst(4, func(i int) response {
			return ts.post("/token", good, from("198.51.100."+string(rune('1'+i))))
		})
	}()
	// More than the hash queue holds: unthrottled, they would crowd out
	// every other login.
	flood := burst(60, func(int) response { return ts.post("/token", bad, from("203.0.113.7")) })
	wg.Wait()
	t.Logf("flood of wrong secrets: %v; logins from elsewhere meanwhile: %v", flood, legit)
	if flood[401] > 5 || flood[401]+flood[429] != 60 {
		t.Errorf("flood answers %v: want at most 5 checked (401) and the rest 429", flood)
	}
	if legit[200] != 4 {
		t.Errorf("logins from other addresses during the flood: %v, want 4 × 200", legit)
	}
	// Wrong secrets one at a time until the pair's limit of 5 failures.
	for failures := flood[401]; failures < 5; failures++ {
		if res := ts.postForm("/token", bad, from("203.0.113.7")); res.Status != 401 {
			t.Fatalf("wrong secret %d = %d %s", failures+1, res.Status, res.Body)
		}
	}
	res := ts.postForm("/token", bad, from("203.0.113.7"))
	if res.Status != 429 || res.JSON(t)["error"] != "slow_down" || res.Header.Get("Retry-After") == "" || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("a wrong secret past the limit = %d %v %s", res.Status, res.Header, res.Body)
	}
	// The address's counter is the one logins use: 5 failures so far from
	// 203.0.113.7; 7 more, for clients that do not exist, reach its limit
	// of 12, and then a user's login from there is refused too.
	for i := range 7 {
		form := url.Values{"grant_type": {"password"}, "username": {"ida"}, "password": {"ida-password"},
			"client_id": {"nobody-" + string(rune('a'+i))}, "client_secret": {"some-secret-0123456789"}}
		if res := ts.postForm("/token", form.Encode(), from("203.0.113.7")); res.Status != 401 {
			t.Fatalf("unknown client %d = %d %s", i, res.Status, res.Body)
		}
	}
	if res := ts.postForm("/token", "grant_type=password&username=ida&password=ida-password", from("203.0.113.7")); res.Status != 429 {
		t.Errorf("a login from the address that guessed secrets = %d, want 429", res.Status)
	}
	if res := ts.postForm("/token", good, from("198.51.100.9")); res.Status != 200 {
		t.Errorf("the client from elsewhere = %d %s", res.Status, res.Body)
	}
}

// TestDisabledAccountLooksLikeAWrongPassword: a disabled account answers
// exactly as a wrong password does, with the right password or without,
// and its right password clears no failure.
func TestDisabledAccountLooksLikeAWrongPassword(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--login-max-failures", "3")
	ts.addUser("jan", "jan-password", "data:read")
	wrong := ts.postForm("/token", "grant_type=password&username=jan&password=wrong-guess", nil)
	if out, err := ts.cli("", "user", "disable", "jan"); err != nil {
		t.Fatal(err, out)
	}
	right := ts.postForm("/token", "grant_type=password&username=jan&password=jan-password", nil)
	if right.Status != wrong.Status || string(right.Body) != string(wrong.Body) {
		t.Errorf("disabled, right password = %d %s; wrong password = %d %s", right.Status, right.Body, wrong.Status, wrong.Body)
	}
	ts.postForm("/token", "grant_type=password&username=jan&password=jan-password", nil)
	if out, err := ts.cli("", "user", "enable", "jan"); err != nil {
		t.Fatal(err, out)
	}
	// One wrong guess and two right passwords on the disabled account:
	// three failures, so the pair is backing off.
	if res := ts.postForm("/token", "grant_type=password&username=jan&password=jan-password", nil); res.Status != 429 {
		t.Errorf("after a wrong guess and two logins while disabled = %d, want 429", res.Status)
	}
}
