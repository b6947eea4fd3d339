package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

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

// TestSIGTERMDrains: SIGTERM stops accepting, lets in-flight requests
// finish, and exits 0.
func TestSIGTERMDrains(t *testing.T) {
	t.Parallel()
	// Logins still being checked count against the limits: let 8 through.
	c := startChild(t, filepath.Join(t.TempDir(), "p.db"), "--login-max-failures", "20")
	const n = 8
	results := make(chan int, n)
	var started sync.WaitGroup
	for range n {
		started.Add(1)
		go func() {
			started.Done()
			// A login takes tens of milliseconds of hashing: in flight
			// when the signal comes.
			res, err := http.PostForm(c.URL+"/token", map[string][]string{"grant_type": {"password"}, "username": {"admin"}, "password": {"admin-password-1"}})
			if err != nil {
				results <- -1
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			results <- res.StatusCode
		}()
	}
	started.Wait()
	time.Sleep(20 * time.Millisecond)
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15s of SIGTERM")
	}
	completed := 0
	for range n {
		switch s := <-results; s {
		case 200:
			completed++
		case -1:
			// Sent after the listener closed: refused, never cut off.
		default:
			t.Errorf("a request in flight got %d", s)
		}
	}
	if completed == 0 {
		t.Error("no request in flight completed")
	}
	if !strings.Contains(c.logs.String(), "msg=stopped") {
		t.Errorf("no clean stop in the log:\n%s", c.logs)
	}
}
