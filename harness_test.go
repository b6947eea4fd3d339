package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is the whole program, started through run on 127.0.0.1:0.
type testServer struct {
	t        *testing.T
	URL      string
	DB       string
	Admin    string // the admin password
	env      map[string]string
	logs     *logBuffer
	stopped  chan error
	cancel   context.CancelFunc
	stopOnce sync.Once
}

// logBuffer collects a program's stderr and reports the address it serves on.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	addrC   chan string
	sent    bool
	scanned int
}

var servingRe = regexp.MustCompile(`msg=serving addr=(\S+)`)

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if !b.sent {
		// Look at the lines completed since the last look, once each.
		all := b.buf.Bytes()
		if end := bytes.LastIndexByte(all, '\n') + 1; end > b.scanned {
			if m := servingRe.FindSubmatch(all[b.scanned:end]); m != nil {
				b.sent = true
				b.addrC <- string(m[1])
			}
			b.scanned = end
		}
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer runs `passflow serve` on a fresh database with the admin
// password set through the env, plus any extra args, and stops it when the
// test ends, checking that it stopped cleanly.
func startServer(t *testing.T, args ...string) *testServer {
	t.Helper()
	db := filepath.Join(t.TempDir(), "passflow.db")
	return startServerOn(t, db, map[string]string{"PASSFLOW_ADMIN_PASSWORD": "admin-password-1"}, args...)
}

func startServerOn(t *testing.T, db string, env map[string]string, args ...string) *testServer {
	t.Helper()
	ts, err := launch(t, db, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// launch is startServerOn for any goroutine: it reports a failure to
// start instead of ending the test.
func launch(t *testing.T, db string, env map[string]string, args ...string) (*testServer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{
		t: t, DB: db, Admin: env["PASSFLOW_ADMIN_PASSWORD"], env: env,
		logs:    &logBuffer{addrC: make(chan string, 1)},
		stopped: make(chan error, 1),
	}
	all := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db}, args...)
	go func() { ts.stopped <- run(ctx, all, ts.getenv, nil, io.Discard, ts.logs) }()
	select {
	case addr := <-ts.logs.addrC:
		ts.URL = "http://" + addr
	case err := <-ts.stopped:
		cancel()
		return nil, fmt.Errorf("serve exited before serving: %v\n%s", err, ts.logs)
	case <-time.After(20 * time.Second):
		cancel()
		return nil, fmt.Errorf("serve did not start within 20s\n%s", ts.logs)
	}
	ts.cancel = cancel
	t.Cleanup(func() {
		ts.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs)
		}
	})
	return ts, nil
}

// stop stops the server as SIGTERM would and checks it exits cleanly.
func (ts *testServer) stop() {
	ts.stopOnce.Do(func() {
		ts.cancel()
		select {
		case err := <-ts.stopped:
			if err != nil {
				ts.t.Errorf("serve returned %v", err)
			}
		case <-time.After(15 * time.Second):
			ts.t.Errorf("serve did not stop within 15s")
		}
	})
}

func (ts *testServer) getenv(k string) string { return ts.env[k] }

// cli runs a passflow command against the server's database.
func (ts *testServer) cli(stdin string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	args = append(args, "--db", ts.DB)
	err := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(stdin), &out, &errOut)
	return out.String() + errOut.String(), err
}

// addUser adds a user through the CLI, as an operator would.
func (ts *testServer) addUser(name, password string, scopes ...string) {
	ts.t.Helper()
	if out, err := ts.cli(password+"\n", "user", "add", name, "--scopes", strings.Join(scopes, ",")); err != nil {
		ts.t.Fatalf("user add %s: %v\n%s", name, err, out)
	}
}

// response is a finished HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.Body, err)
	}
	return m
}

func (ts *testServer) do(method, path string, header http.Header, body io.Reader) response {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// postForm posts a raw form body to path.
func (ts *testServer) postForm(path, form string, header http.Header) response {
	ts.t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for k, v := range header {
		h[k] = v
	}
	return ts.do(http.MethodPost, path, h, strings.NewReader(form))
}

// login runs the password grant and returns the access token.
func (ts *testServer) login(username, password string, extra ...string) string {
	ts.t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	res := ts.postForm("/token", form.Encode(), nil)
	if res.Status != http.StatusOK {
		ts.t.Fatalf("login %s: status %d: %s", username, res.Status, res.Body)
	}
	tok, _ := res.JSON(ts.t)["access_token"].(string)
	if tok == "" {
		ts.t.Fatalf("login %s: no access_token in %s", username, res.Body)
	}
	return tok
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

func jsonBody(h http.Header) http.Header {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	return h
}

// claims decodes a JWT's header and payload without verifying it.
func claims(t *testing.T, token string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	dec := func(s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	return dec(parts[0]), dec(parts[1])
}

// selfSigned writes a certificate for 127.0.0.1 and its key to PEM files,
// and returns their paths and the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, der []byte) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return certFile, keyFile, der
}

// debianPython is the Python whose packages (python3-authlib and the
// like, from Debian) the interoperability tests use.
const debianPython = "/usr/bin/python3"

// python runs a Python script with args and returns its output. Without
// the modules it imports it fails the test in CI (CI=true), where .ci/run
// installs them, and skips it elsewhere, saying so.
func python(t *testing.T, script string, modules []string, args ...string) string {
	t.Helper()
	if out, err := exec.Command(debianPython, "-c", "import "+strings.Join(modules, ", ")).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("%s with %s is needed (apt-get install -y python3-authlib python3-requests): %v %s",
			debianPython, strings.Join(modules, ", "), err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(debianPython, append([]string{"-c", script}, args...)...)
	cmd.Env = append(os.Environ(), "NO_PROXY=*")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return string(out)
}
