package main

import (
	"bufio"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

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

	// Stopped, the server has written every line it held.
	ts.stop()
	logs := ts.logs.String()
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
	for _, secret := range []string{"rex-password", "Wrong-Secret-1", "My-Secret-In-The-Name-Box", "Query-Secret-1", "Query-Secret-2", tok} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q", secret)
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
	if err != nil || !strings.Contains(out, `event=user.created target=tom detail="scopes=" actor="command line"`) {
		t.Errorf("user add's audit line: %v %q", err, out)
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
	ts.stop() // writes every access line it held
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
