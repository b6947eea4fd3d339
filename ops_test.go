package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	runtimemetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

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
	// Not parallel: it measures this process's memory.
	ts := startServer(t, "--hash-concurrency", "2", "--hash-queue", "8",
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

var metricLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)`)

// TestOperability covers /healthz, /readyz, /metrics, the access log and
// the audit log.
func TestOperability(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("rex", "rex-password", "data:read")
	tok := ts.login("rex", "rex-password")
	ts.postForm("/token", "grant_type=password&username=rex&password=Wrong-Secret-1", nil)
	ts.postForm("/token", "grant_type=password&username=My-Secret-In-The-Name-Box&password=x", nil)
	ts.do(http.MethodGet, "/my_data?access_token=Query-Secret-1", bearer("not-a-jwt"), nil)
	ts.do(http.MethodGet, "/my_data?q=Query-Secret-2", http.Header{"Authorization": {"Bearer " + tok}, "X-Request-ID": {"trace-abc.123"}}, nil)

	for path, want := range map[string]string{"/healthz": `"ok"`, "/readyz": `"ready"`} {
		if res := ts.do(http.MethodGet, path, nil, nil); res.Status != 200 || !strings.Contains(string(res.Body), want) {
			t.Errorf("%s = %d %s", path, res.Status, res.Body)
		}
	}

	res := ts.do(http.MethodGet, "/metrics", nil, nil)
	body := string(res.Body)
	for _, want := range []string{
		`passflow_http_requests_total{method="POST",route="/token",status="200"}`,
		`passflow_http_requests_total{method="GET",route="/my_data",status="401"}`,
		`passflow_http_request_duration_seconds_bucket{method="GET",route="/my_data",status="200"`,
		`passflow_logins_total{outcome="success"} 1`,
		`passflow_logins_total{outcome="bad_credentials"} 2`,
		`passflow_token_verification_failures_total{reason="malformed"} 1`,
		`passflow_hash_queue_depth 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if name := metricLine.FindString(line); !strings.HasPrefix(name, "passflow_") {
			t.Errorf("metric %s is not prefixed passflow_", name)
		}
	}

	echo := ts.do(http.MethodGet, "/healthz", http.Header{"X-Request-ID": {"trace-abc.123"}}, nil)
	if echo.Header.Get("X-Request-ID") != "trace-abc.123" {
		t.Errorf("a sane X-Request-ID was not echoed: %q", echo.Header.Get("X-Request-ID"))
	}
	mad := ts.do(http.MethodGet, "/healthz", http.Header{"X-Request-ID": {"bad id\" with junk"}}, nil)
	if id := mad.Header.Get("X-Request-ID"); id == "" || strings.Contains(id, "junk") {
		t.Errorf("an insane X-Request-ID came back as %q", id)
	}

	logs := ts.logs.String()
	for _, secret := range []string{"rex-password", "Wrong-Secret-1", "My-Secret-In-The-Name-Box", "Query-Secret-1", "Query-Secret-2", tok} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	for _, want := range []string{
		`msg=audit event=login outcome=success username=rex`,
		`msg=audit event=login outcome=bad_credentials username=rex`,
		`msg=audit event=login outcome=bad_credentials username="" subject=""`,
		`request_id=trace-abc.123 method=GET path=/my_data route=/my_data status=200`,
		"subject=",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}

// TestAuditOfAdminChanges: every admin change, by API or command line, is
// an audit line naming who did what.
func TestAuditOfAdminChanges(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	admin := jsonBody(bearer(ts.login("admin", ts.Admin)))
	ts.do(http.MethodPost, "/users", admin, strings.NewReader(`{"username":"sue","password":"sue-password-1"}`))
	ts.do(http.MethodPatch, "/users/sue", admin, strings.NewReader(`{"password":"sue-password-2","disabled":true}`))
	ts.do(http.MethodDelete, "/users/sue", admin, nil)
	logs := ts.logs.String()
	for _, want := range []string{
		`event=user.created target=sue detail="scopes=" actor=admin`,
		`event=user.updated target=sue detail="disabled=true password" actor=admin`,
		"event=user.deleted target=sue detail=\"\" actor=admin",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if strings.Contains(logs, "sue-password") {
		t.Error("the audit log holds a password")
	}
	out, err := ts.cli("tom-password\n", "user", "add", "tom")
	if err != nil || !strings.Contains(out, `event=user.created target=tom detail="scopes=data:read,data:write" actor="command line"`) {
		t.Errorf("user add's audit line: %v %q", err, out)
	}
}

// TestTLS serves HTTPS with --tls-cert and --tls-key.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, der := selfSigned(t)
	ts := startServer(t, "--tls-cert", certFile, "--tls-key", keyFile)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := client.Get(strings.Replace(ts.URL, "http://", "https://", 1) + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.TLS == nil {
		t.Errorf("GET https /healthz = %d, TLS %v", res.StatusCode, res.TLS != nil)
	}
	if _, err := runCLI(t, nil, "", "serve", "--tls-cert", certFile, "--db", filepath.Join(dir, "x.db")); err == nil {
		t.Error("--tls-cert without --tls-key was accepted")
	}
}

// TestCORS: preflights are answered for the listed origins only.
func TestCORS(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--cors-origins", "https://app.example.test, http://localhost:5173")
	preflight := func(origin string) response {
		return ts.do(http.MethodOptions, "/my_data", http.Header{
			"Origin":                         {origin},
			"Access-Control-Request-Method":  {"GET"},
			"Access-Control-Request-Headers": {"authorization"},
		}, nil)
	}
	res := preflight("https://app.example.test")
	if res.Status/100 != 2 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example.test" ||
		!strings.Contains(strings.ToLower(res.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("preflight from a listed origin = %d %v", res.Status, res.Header)
	}
	if res := preflight("https://evil.example.test"); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin got Access-Control-Allow-Origin %q", res.Header.Get("Access-Control-Allow-Origin"))
	}
	get := ts.do(http.MethodGet, "/my_data", http.Header{"Origin": {"http://localhost:5173"}}, nil)
	if get.Header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" || !strings.Contains(get.Header.Get("Access-Control-Expose-Headers"), "Www-Authenticate") {
		t.Errorf("a cross-origin GET: %v", get.Header)
	}
	plain := startServer(t)
	if res := plain.do(http.MethodOptions, "/my_data", http.Header{"Origin": {"https://app.example.test"}, "Access-Control-Request-Method": {"GET"}}, nil); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("without --cors-origins a preflight was answered")
	}
	if _, err := runCLI(t, nil, "", "serve", "--cors-origins", "app.example.test/path", "--db", filepath.Join(t.TempDir(), "x.db")); err == nil {
		t.Error("a bad origin was accepted")
	}
}

// TestHostileRequestsStayBounded floods the server with odd methods, long
// paths and junk header values and request ids, and shows that neither the
// metrics nor the log grow with what a client sends: every metric label
// comes from a fixed set and every logged field is bounded.
func TestHostileRequestsStayBounded(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	series := func() int {
		n := 0
		for _, line := range strings.Split(string(ts.do(http.MethodGet, "/metrics", nil, nil).Body), "\n") {
			if strings.HasPrefix(line, "passflow_http_requests_total{") {
				n++
			}
		}
		return n
	}
	// Warm up the series an ordinary client makes, so only the flood's count.
	ts.do(http.MethodGet, "/nowhere", nil, nil)
	ts.do(http.MethodPut, "/token", nil, nil)
	before, logBefore := series(), len(ts.logs.String())

	junk := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[mrand.IntN(26)]
		}
		return string(b)
	}
	const requests = 150
	addr := strings.TrimPrefix(ts.URL, "http://")
	for i := range requests {
		method, path := junk(1000+mrand.IntN(20000)), "/"+junk(1+mrand.IntN(8000))
		if i%3 == 0 {
			path = "/my_data" // a route that exists, with an unknown method
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nX-Request-ID: %s\r\nX-Forwarded-For: %s\r\nUser-Agent: %s\r\nConnection: close\r\n\r\n",
			method, path, junk(2000), junk(2000), junk(2000))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		c.Close()
		if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("odd request %d = %d", i, res.StatusCode)
		}
	}
	after := series()
	logs := ts.logs.String()[logBefore:]
	perRequest := len(logs) / requests
	t.Logf("request series %d → %d; %d log bytes per request", before, after, perRequest)
	// "other" with 404 and 405, and the metrics scrapes themselves.
	if after-before > 3 {
		t.Errorf("the flood added %d metric series; labels must come from fixed sets", after-before)
	}
	if perRequest > 512 {
		t.Errorf("%d log bytes per request; logged fields must be bounded", perRequest)
	}
	for _, line := range strings.Split(logs, "\n") {
		if len(line) > 1024 {
			t.Fatalf("a log line of %d bytes: %.200s…", len(line), line)
		}
	}
}

// TestMetricsApart: with --metrics-addr, /metrics is served there and not
// on the API's listener.
func TestMetricsApart(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--metrics-addr", "127.0.0.1:0")
	m := regexp.MustCompile(`msg="serving metrics" addr=(\S+)`).FindStringSubmatch(ts.logs.String())
	if m == nil {
		t.Fatalf("no log line names the metrics address:\n%s", ts.logs)
	}
	ts.do(http.MethodGet, "/healthz", nil, nil)
	res, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(res); res.StatusCode != 200 || !strings.Contains(body, "passflow_http_requests_total") {
		t.Errorf("/metrics on the metrics address = %d %.200s", res.StatusCode, body)
	}
	if res := ts.do(http.MethodGet, "/metrics", nil, nil); res.Status != 404 {
		t.Errorf("/metrics on the API's address = %d, want 404", res.Status)
	}
}
