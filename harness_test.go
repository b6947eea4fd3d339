package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/generated/api"
	"github.com/passflow/passflow/store"
	"github.com/passflow/passflow/store/sqlite"
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

// startServerHashingForReal is startServer with the real argon2id cost,
// for the tests about what hashing costs.
func startServerHashingForReal(t *testing.T, args ...string) *testServer {
	t.Helper()
	db := filepath.Join(t.TempDir(), "passflow.db")
	return startServerOn(t, db, map[string]string{"PASSFLOW_ADMIN_PASSWORD": "admin-password-1",
		"PASSFLOW_ARGON2ID_PARAMS": auth.OWASPArgon2id().String()}, args...)
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
	env = maps.Clone(env)
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["PASSFLOW_ARGON2ID_PARAMS"]; !ok {
		env["PASSFLOW_ARGON2ID_PARAMS"] = cheapParams
	}
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

// cli runs a passflow command against the server's database, with the
// server's hashing cost.
func (ts *testServer) cli(stdin string, args ...string) (string, error) {
	env := map[string]string{"PASSFLOW_DB": ts.DB, "PASSFLOW_ARGON2ID_PARAMS": ts.env["PASSFLOW_ARGON2ID_PARAMS"]}
	return runCLI(ts.t, env, stdin, args...)
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

// TestMain lets the test binary run as passflow itself, for the tests that
// need a child process they can signal or kill.
// afterRun, when set (by the contract test), sees the exit code of the
// tests and may change it.
var afterRun func(code int) int

func TestMain(m *testing.M) {
	if os.Getenv("PASSFLOW_TEST_CHILD") == "1" {
		main()
		os.Exit(0)
	}
	// The usual umask, whatever the machine's: with a stricter one a file
	// created world-readable would pass the file-mode tests unnoticed.
	syscall.Umask(0o022)
	// These tests mostly wait on the servers they start, not on a CPU:
	// run more of them at once than -parallel's default (GOMAXPROCS),
	// unless -parallel says otherwise.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		flag.Set("test.parallel", strconv.Itoa(max(4, 2*runtime.GOMAXPROCS(0))))
	}
	code := m.Run()
	if afterRun != nil {
		code = afterRun(code)
	}
	os.Exit(code)
}

// child is passflow running in a process of its own.
type child struct {
	t    *testing.T
	cmd  *exec.Cmd
	URL  string
	DB   string
	done chan error
	logs *logBuffer
}

func startChild(t *testing.T, db string, args ...string) *child {
	t.Helper()
	c := &child{t: t, DB: db, done: make(chan error, 1), logs: &logBuffer{addrC: make(chan string, 1)}}
	c.cmd = exec.Command(os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db}, args...)...)
	c.cmd.Env = append(os.Environ(), "PASSFLOW_TEST_CHILD=1", "PASSFLOW_ADMIN_PASSWORD=admin-password-1")
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { io.Copy(c.logs, stderr); c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("child log:\n%s", c.logs)
		}
	})
	select {
	case addr := <-c.logs.addrC:
		c.URL = "http://" + addr
	case err := <-c.done:
		t.Fatalf("child exited before serving: %v\n%s", err, c.logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("child did not start\n%s", c.logs)
	}
	return c
}

func readAll(res *http.Response) string {
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// inproc is the whole program in this process on an httptest server, with
// a strict middleware counting the requests that reach a handler.
type inproc struct {
	t       testing.TB
	url     string       // behind an httptest server
	handler http.Handler // or called directly
	st      *sqlite.Store
	app     *app
	reached atomic.Int64
	logs    *logBuffer
}

// inprocOption changes what newInproc builds.
type inprocOption func(*inprocSetup)

type inprocSetup struct {
	cfg         config
	doc         *openapi3.T
	middlewares []api.StrictMiddlewareFunc
	store       func(store.Store) store.Store
}

// withSettings changes the settings, serve's defaults otherwise.
func withSettings(f func(*config)) inprocOption { return func(s *inprocSetup) { f(&s.cfg) } }

// withSpec serves doc instead of openapi.yaml.
func withSpec(doc *openapi3.T) inprocOption { return func(s *inprocSetup) { s.doc = doc } }

// withStore gives the app wrap(the store) instead of the store.
func withStore(wrap func(store.Store) store.Store) inprocOption {
	return func(s *inprocSetup) { s.store = wrap }
}

// withMiddleware wraps every handler in m, after the counting one.
func withMiddleware(m api.StrictMiddlewareFunc) inprocOption {
	return func(s *inprocSetup) { s.middlewares = append(s.middlewares, m) }
}

// cheapParams keeps tests that are not about hashing cost fast: still
// argon2id, still real, at 64 KiB and one pass. Servers started through
// run get them as PASSFLOW_ARGON2ID_PARAMS unless a test sets its own.
const cheapParams = "m=64,t=1,p=1"

func newInproc(t testing.TB, opts ...inprocOption) *inproc {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	setup := inprocSetup{cfg: defaultConfig()}
	setup.cfg.Argon2idParams = cheapParams
	for _, o := range opts {
		o(&setup)
	}
	if setup.doc == nil {
		if setup.doc, err = loadSpec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	hasher, err := setup.cfg.hasher()
	if err != nil {
		t.Fatal(err)
	}
	e := &inproc{t: t, st: st, logs: &logBuffer{addrC: make(chan string, 1)}}
	count := func(f api.StrictHandlerFunc, _ string) api.StrictHandlerFunc {
		return func(c *gin.Context, req any) (any, error) {
			e.reached.Add(1)
			return f(c, req)
		}
	}
	var logs io.Writer = e.logs
	switch t.(type) {
	case *testing.F, *testing.B:
		logs = io.Discard // millions of requests: keep no log
	}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	var appStore store.Store = st
	if setup.store != nil {
		appStore = setup.store(st)
	}
	e.app, err = newApp(ctx, logger, logs, setup.cfg, appStore, hasher, setup.doc,
		newMetrics(func() int { return 0 }), append([]api.StrictMiddlewareFunc{count}, setup.middlewares...))
	if err != nil {
		t.Fatal(err)
	}
	e.handler = e.app.handler
	srv := httptest.NewServer(e.handler)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *inproc) addUser(name string, scopes ...string) {
	e.t.Helper()
	if _, err := e.app.accounts.Create(context.Background(), auth.NewAccount{Username: name, Password: name + "-password", Scopes: scopes}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *inproc) get(path string, header http.Header) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func (e *inproc) login(name string) string {
	e.t.Helper()
	res, err := http.PostForm(e.url+"/token", url.Values{"grant_type": {"password"}, "username": {name}, "password": {name + "-password"}})
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&body) != nil {
		e.t.Fatalf("login %s: %d", name, res.StatusCode)
	}
	return body.AccessToken
}

// signingKey reads the server's Ed25519 key straight from the database.
func (e *inproc) signingKey() (string, ed25519.PrivateKey) {
	e.t.Helper()
	keys, err := e.st.SigningKeys(context.Background())
	if err != nil || len(keys) == 0 {
		e.t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(keys[0].Private)
	if err != nil {
		e.t.Fatal(err)
	}
	return keys[0].ID, priv.(ed25519.PrivateKey)
}

// runCLI runs passflow with args, stdin and env, and returns its output.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &out)
	return out.String(), err
}

var adminEnv = map[string]string{"PASSFLOW_ADMIN_PASSWORD": "admin-password-1"}

// within polls cond until it holds or d has passed.
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// tokenPair is a successful token response.
type tokenPair struct {
	Access, Refresh, Scope string
}

func (ts *testServer) grant(form url.Values) (tokenPair, response) {
	ts.t.Helper()
	res := ts.postForm("/token", form.Encode(), nil)
	if res.Status != http.StatusOK {
		return tokenPair{}, res
	}
	body := res.JSON(ts.t)
	p := tokenPair{}
	p.Access, _ = body["access_token"].(string)
	p.Refresh, _ = body["refresh_token"].(string)
	p.Scope, _ = body["scope"].(string)
	if p.Access == "" || p.Refresh == "" {
		ts.t.Fatalf("token response without both tokens: %s", res.Body)
	}
	return p, res
}

func (ts *testServer) passwordGrant(username, password string, extra ...string) tokenPair {
	ts.t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	p, res := ts.grant(form)
	if p.Access == "" {
		ts.t.Fatalf("login %s: %d %s", username, res.Status, res.Body)
	}
	return p
}

func (ts *testServer) refresh(rt string, extra ...string) (tokenPair, response) {
	ts.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return ts.grant(form)
}

// works reports whether an access token is accepted by a protected call.
func (ts *testServer) works(access string) bool {
	ts.t.Helper()
	res := ts.do(http.MethodGet, "/users/me", bearer(access), nil)
	switch res.Status {
	case http.StatusOK:
		return true
	case http.StatusUnauthorized:
		return false
	}
	ts.t.Fatalf("GET /users/me = %d %s", res.Status, res.Body)
	return false
}

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

// defaultConfig is serve's defaults, as parsing no flags gives them, with
// an issuer of its own (no listener to follow).
func defaultConfig() config {
	var cfg config
	fs := flag.NewFlagSet("defaults", flag.ContinueOnError)
	bindStore(fs, &cfg)
	bindServe(fs, &cfg)
	if _, err := parse(fs, nil, func(string) string { return "" }); err != nil {
		panic(err)
	}
	cfg.Issuer = "http://passflow.test"
	return cfg
}
