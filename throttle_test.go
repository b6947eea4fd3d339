package main

import (
	"net/http"
	"net/url"
	runtimemetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

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

// TestLoginThrottling: past the limits, logins get 429 slow_down with
// Retry-After, counted per (username, IP), per username and per IP; the
// client IP comes from X-Forwarded-For only behind a trusted proxy.
func TestLoginThrottling(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--login-max-failures", "3", "--login-max-failures-per-user", "6",
		"--login-max-failures-per-ip", "9", "--trusted-proxies", "127.0.0.1")
	ts.addUser("ned", "ned-password", "data:read")
	ts.addUser("ora", "ora-password", "data:read")
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
	attempt := func(user, pw, ip string) response {
		return ts.postForm("/token", "grant_type=password&username="+user+"&password="+pw, from(ip))
	}
	for range 3 {
		if res := attempt("ned", "wrong", "192.0.2.1"); res.Status != 400 {
			t.Fatalf("failure = %d %s", res.Status, res.Body)
		}
	}
	res := attempt("ned", "ned-password", "192.0.2.1")
	if res.Status != http.StatusTooManyRequests || string(res.Body) != `{"error":"slow_down","error_description":"too many attempts"}` {
		t.Fatalf("throttled = %d %s", res.Status, res.Body)
	}
	if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Errorf("Retry-After = %q, want 1", res.Header.Get("Retry-After"))
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Error("a 429 from /token without Cache-Control: no-store")
	}
	// Another address is not held back by this pair's back-off.
	if res := attempt("ned", "ned-password", "192.0.2.2"); res.Status != 200 {
		t.Errorf("ned from another address = %d %s", res.Status, res.Body)
	}
	// After the back-off, the right password works and clears the pair.
	time.Sleep(1100 * time.Millisecond)
	if res := attempt("ned", "ned-password", "192.0.2.1"); res.Status != 200 {
		t.Fatalf("after the back-off = %d %s", res.Status, res.Body)
	}

	// Per username across addresses: 3 more failures reach 6 for ned.
	for i := range 3 {
		attempt("ned", "wrong", "198.51.100."+strconv.Itoa(i+1))
	}
	if res := attempt("ned", "ned-password", "203.0.113.50"); res.Status != 429 {
		t.Errorf("ned after the per-user limit, from a fresh address = %d", res.Status)
	}
	// Per address across usernames: 9 failures from one address.
	for i := range 9 {
		attempt("user"+strconv.Itoa(i), "wrong", "203.0.113.9")
	}
	if res := attempt("ora", "ora-password", "203.0.113.9"); res.Status != 429 {
		t.Errorf("ora from a guessing address = %d", res.Status)
	}
	if res := attempt("ora", "ora-password", "203.0.113.10"); res.Status != 200 {
		t.Errorf("ora from elsewhere = %d", res.Status)
	}
}

// TestForwardedForIgnoredWithoutTrustedProxy: by default the connection's
// address counts, whatever X-Forwarded-For claims.
func TestForwardedForIgnoredWithoutTrustedProxy(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--login-max-failures", "2")
	ts.addUser("pam", "pam-password")
	for i := range 2 {
		ts.postForm("/token", "grant_type=password&username=pam&password=wrong",
			http.Header{"X-Forwarded-For": {"192.0.2." + strconv.Itoa(i+1)}})
	}
	res := ts.postForm("/token", "grant_type=password&username=pam&password=pam-password",
		http.Header{"X-Forwarded-For": {"192.0.2.99"}})
	if res.Status != 429 {
		t.Errorf("a forged X-Forwarded-For escaped the throttle: %d", res.Status)
	}
}

// TestLoginFlood: 200 concurrent logins against 2 hashing slots and a
// queue of 8. Memory stays bounded, the overflow gets 503 with
// Retry-After, and protected reads keep being served throughout.
func TestLoginFlood(t *testing.T) {
	// Not parallel: it measures this process's memory, of real hashes.
	ts := startServerHashingForReal(t, "--hash-concurrency", "2", "--hash-queue", "8",
		"--login-max-failures", "100000", "--login-max-failures-per-user", "100000", "--login-max-failures-per-ip", "100000")
	ts.addUser("quinn", "quinn-password", "data:read")
	reader := ts.login("quinn", "quinn-password")

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		sample := []runtimemetrics.Sample{{Name: "/memory/classes/total:bytes"}}
		for {
			runtimemetrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	retryAfter := true
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := ts.postForm("/token", "grant_type=password&username=quinn&password=wrong-password", nil)
			mu.Lock()
			defer mu.Unlock()
			statuses[res.Status]++
			if res.Status == 503 && (res.Header.Get("Retry-After") == "" || !strings.Contains(string(res.Body), "temporarily_unavailable")) {
				retryAfter = false
			}
		}()
	}
	var reads, readsOK atomic.Int64
	readersDone := make(chan struct{})
	go func() {
		defer close(readersDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			reads.Add(1)
			if ts.do(http.MethodGet, "/my_data", bearer(reader), nil).Status == 200 {
				readsOK.Add(1)
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-sampled
	<-readersDone

	t.Logf("statuses %v; %d of %d protected reads served during the flood; peak memory %d MiB", statuses, readsOK.Load(), reads.Load(), peak.Load()>>20)
	if statuses[400]+statuses[503] != 200 || statuses[503] == 0 {
		t.Errorf("statuses %v: want only 400 (bad credentials) and some 503", statuses)
	}
	if !retryAfter {
		t.Error("a 503 lacked Retry-After or temporarily_unavailable")
	}
	if reads.Load() < 10 || readsOK.Load() != reads.Load() {
		t.Errorf("protected reads during the flood: %d of %d served", readsOK.Load(), reads.Load())
	}
	// Unbounded, 200 argon2id hashes would hold 200 × 19 MiB at once.
	if peak.Load() > 600<<20 {
		t.Errorf("peak memory %d MiB: hashing is not bounded", peak.Load()>>20)
	}
}
