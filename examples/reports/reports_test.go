package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passflow/passflow/remote"
)

// bin holds the binaries TestMain builds: passflow, and this service.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "reports-test-")
	if err != nil {
		panic(err)
	}
	bin = dir
	build := exec.Command("go", "build", "-o", dir, "github.com/passflow/passflow", "github.com/passflow/passflow/examples/reports")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	code := 1
	if build.Run() == nil {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is one of the binaries, running.
type process struct {
	URL, Issuer string
	logs        *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var servingRe = regexp.MustCompile(`msg=serving addr=(\S+) .*issuer=(\S+)`)

// start runs a binary until the test ends and waits for it to serve.
func start(t *testing.T, env []string, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{logs: &syncBuffer{}}
	serving := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			if m := servingRe.FindStringSubmatch(line); m != nil {
				select {
				case serving <- m:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.logs)
		}
	})
	select {
	case m := <-serving:
		p.URL, p.Issuer = "http://"+m[1], m[2]
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not start:\n%s", name, p.logs)
	}
	return p
}

// passflow is passflow serving a fresh database.
type passflow struct {
	*process
	db string
}

// cheap hashing: these tests are about tokens, not password cost.
var passflowEnv = []string{"PASSFLOW_ADMIN_PASSWORD=admin-password-1", "PASSFLOW_ARGON2ID_PARAMS=m=64,t=1,p=1"}

func startPassflow(t *testing.T) *passflow {
	db := filepath.Join(t.TempDir(), "passflow.db")
	return &passflow{start(t, passflowEnv, "passflow", "serve", "--addr", "127.0.0.1:0", "--db", db), db}
}

// cli runs a passflow command on its database.
func (pf *passflow) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "passflow"), append(args, "--db", pf.db)...)
	cmd.Env = append(os.Environ(), passflowEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("passflow %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// login returns an access token for username.
func (pf *passflow) login(t *testing.T, username, password string) string {
	t.Helper()
	res, err := http.PostForm(pf.URL+"/token", url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("login %s: %d %v", username, res.StatusCode, err)
	}
	return body.AccessToken
}

type answer struct {
	status    int
	challenge string
	body      map[string]any
}

func call(t *testing.T, method, u, token, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	a := answer{status: res.StatusCode, challenge: res.Header.Get("WWW-Authenticate")}
	raw, _ := io.ReadAll(res.Body)
	json.Unmarshal(raw, &a.body)
	return a
}

// rawCall returns the body of a GET, trimmed.
func rawCall(t *testing.T, u, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return strings.TrimSpace(string(b))
}

func kid(t *testing.T, token string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var header struct {
		Kid string `json:"kid"`
	}
	json.Unmarshal(h, &header)
	return header.Kid
}

// TestWithPassflow runs passflow and this service as two processes, as a
// team would, and holds the service to what passflow's tokens say.
func TestWithPassflow(t *testing.T) {
	pf := startPassflow(t)
	pf.cli(t, "rita-password\n", "user", "add", "rita", "--scopes", "reports:read")
	pf.cli(t, "walt-password\n", "user", "add", "walt", "--scopes", "reports:read,reports:write")
	pf.cli(t, "dana-password\n", "user", "add", "dana", "--scopes", "data:read")
	svc := start(t, nil, "reports", "--addr", "127.0.0.1:0", "--issuer", pf.Issuer)
	rita, walt := pf.login(t, "rita", "rita-password"), pf.login(t, "walt", "walt-password")

	t.Run("the right scope", func(t *testing.T) {
		if a := rawCall(t, svc.URL+"/reports", rita); a != "[]" {
			t.Errorf("no reports yet: %s, want []", a)
		}
		if a := call(t, "POST", svc.URL+"/reports", walt, `{"title":"Q3","body":"up"}`); a.status != 201 || a.body["author"] != "walt" {
			t.Fatalf("walt files a report: %+v", a)
		}
		if a := call(t, "GET", svc.URL+"/reports/1", rita, ""); a.status != 200 || a.body["title"] != "Q3" {
			t.Errorf("rita reads it: %+v", a)
		}
		if a := call(t, "GET", svc.URL+"/reports/2", rita, ""); a.status != 404 || a.body["error"] != "not_found" {
			t.Errorf("a report that is not there: %+v", a)
		}
	})

	t.Run("the wrong scope", func(t *testing.T) {
		a := call(t, "POST", svc.URL+"/reports", rita, `{"title":"mine","body":"x"}`)
		if a.status != 403 || a.body["error"] != "insufficient_scope" || !strings.Contains(a.challenge, `scope="reports:write"`) {
			t.Errorf("rita files a report: %+v", a)
		}
		if a := call(t, "GET", svc.URL+"/reports", pf.login(t, "dana", "dana-password"), ""); a.status != 403 {
			t.Errorf("a passflow token without reports scopes: %+v", a)
		}
	})

	t.Run("not passflow's token", func(t *testing.T) {
		other := startPassflow(t)
		// rita's token, given reports:write, its signature kept.
		parts := strings.Split(rita, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"scope":"reports:read"`, `"scope":"reports:read reports:write"`, 1)))
		if parts[1] == strings.Split(rita, ".")[1] {
			t.Fatalf("rita's token has no scope claim to change: %s", payload)
		}
		late, err := newService(context.Background(), slog.New(slog.DiscardHandler),
			remote.Config{Issuer: pf.Issuer, Now: func() time.Time { return time.Now().Add(time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		anHourLater := httptest.NewServer(late)
		defer anHourLater.Close()
		for name, c := range map[string]struct{ base, token, description string }{
			"no token":               {svc.URL, "", ""},
			"another issuer's token": {svc.URL, other.login(t, "admin", "admin-password-1"), "token has the wrong issuer"},
			"a tampered token":       {svc.URL, strings.Join(parts, "."), "token signature is invalid"},
			"an expired token":       {anHourLater.URL, rita, "token has expired"},
		} {
			a := call(t, "GET", c.base+"/reports", c.token, "")
			if a.status != 401 || !strings.HasPrefix(a.challenge, `Bearer realm="passflow"`) {
				t.Errorf("%s: %+v", name, a)
			}
			if c.description != "" && (a.body["error"] != "invalid_token" || a.body["error_description"] != c.description) {
				t.Errorf("%s: %+v, want invalid_token %q", name, a, c.description)
			}
		}
	})

	t.Run("passflow rotates its key", func(t *testing.T) {
		before := kid(t, rita)
		pf.cli(t, "", "keys", "rotate")
		deadline := time.Now().Add(10 * time.Second)
		fresh := pf.login(t, "rita", "rita-password")
		for kid(t, fresh) == before && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			fresh = pf.login(t, "rita", "rita-password")
		}
		if kid(t, fresh) == before {
			t.Fatal("passflow still signs with the old key 10s after a rotation")
		}
		if a := call(t, "GET", svc.URL+"/reports", fresh, ""); a.status != 200 {
			t.Errorf("a token of the new key: %+v", a)
		}
		if a := call(t, "GET", svc.URL+"/reports", rita, ""); a.status != 200 {
			t.Errorf("a token of the old key, still valid: %+v", a)
		}
	})

	t.Run("a disabled account", func(t *testing.T) {
		// A service checking signatures alone cannot know; one that
		// introspects knows at once.
		secret := regexp.MustCompile(`client secret \(shown only now\): (\S+)`).FindStringSubmatch(
			pf.cli(t, "", "client", "add", "reports-service", "--grant-types", "none"))[1]
		strict := start(t, []string{"REPORTS_CLIENT_SECRET=" + secret}, "reports",
			"--addr", "127.0.0.1:0", "--issuer", pf.Issuer, "--introspect-as", "reports-service")
		token := pf.login(t, "walt", "walt-password")
		if a := call(t, "GET", strict.URL+"/reports", token, ""); a.status != 200 {
			t.Fatalf("before: %+v", a)
		}
		pf.cli(t, "", "user", "disable", "walt")
		// passflow learns of the command line's change within a second.
		deadline := time.Now().Add(5 * time.Second)
		for call(t, "GET", pf.URL+"/users/me", token, "").status != 401 {
			if time.Now().After(deadline) {
				t.Fatal("passflow itself still takes walt's token 5s after he was disabled")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if a := call(t, "GET", strict.URL+"/reports", token, ""); a.status != 401 || a.body["error_description"] != "token is no longer active" {
			t.Errorf("introspecting: %+v", a)
		}
		if a := call(t, "GET", svc.URL+"/reports", token, ""); a.status != 200 {
			t.Errorf("signatures alone: %+v, want 200 until the token expires", a)
		}
	})
}
