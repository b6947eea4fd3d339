//go:build firsthour

package main

// The first hour's tests (build tag firsthour; .ci/run always runs them):
// README's walk-through runs as written, and a team adds an operation with a
// scope of its own, changing nothing but the spec and one handler. Each
// works in a copy of the module and builds it: too long for every go test
// ./....

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAddAnEndpoint follows README's "Make it yours", taking its edits from
// the README's marked blocks, in a copy of the module.
func TestAddAnEndpoint(t *testing.T) {
	started := time.Now()
	step := func(name string) { t.Logf("%6.1fs  %s", time.Since(started).Seconds(), name) }
	dir := t.TempDir()
	copyModule(t, ".", dir)
	blocks := readmeBlocks(t)
	step("copied the module")

	// 1 and 2: the scope and the operation, into openapi.yaml.
	specPath := filepath.Join(dir, "openapi.yaml")
	spec, _ := os.ReadFile(specPath)
	flow := "          tokenUrl: /token\n          scopes:\n"
	paths := "\npaths:\n"
	if !strings.Contains(string(spec), flow) || !strings.Contains(string(spec), paths) {
		t.Fatal("openapi.yaml has no password flow's scopes or paths where README says")
	}
	edited := strings.Replace(string(spec), flow, flow+blocks["scope"], 1)
	edited = strings.Replace(edited, paths, paths+blocks["operation"], 1)
	if err := os.WriteFile(specPath, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	// 3: regenerate.
	inDir(t, dir, nil, "go", "generate", "./...")
	step("go generate ./...")
	// 4: the handler.
	if err := os.WriteFile(filepath.Join(dir, "impl", "invoices.go"), []byte(blocks["handler"]), 0o644); err != nil {
		t.Fatal(err)
	}
	// 5: build, start, grant the scope.
	inDir(t, dir, nil, "go", "build", "-o", "passflow", ".")
	step("go build")
	bin := filepath.Join(dir, "passflow")
	db := filepath.Join(dir, "p.db")
	env := []string{"PASSFLOW_DB=" + db, "PASSFLOW_ADMIN_PASSWORD=admin-password-1"}
	base := startBinary(t, bin, env)
	for _, u := range []struct{ name, scopes string }{{"ivan", "invoices:read"}, {"norm", ""}} {
		inDir(t, dir, strings.NewReader(u.name+"-password\n"), bin, "user", "add", u.name, "--scopes", u.scopes, "--db", db)
	}
	step("started the server, added ivan with invoices:read")

	login := func(name, password string) string {
		res, err := http.PostForm(base+"/token", map[string][]string{"grant_type": {"password"}, "username": {name}, "password": {password}})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body struct {
			AccessToken string `json:"access_token"`
			Scope       string `json:"scope"`
		}
		if json.NewDecoder(res.Body).Decode(&body); res.StatusCode != 200 {
			t.Fatalf("login %s = %d", name, res.StatusCode)
		}
		if name == "admin" && !strings.Contains(body.Scope, "invoices:read") {
			t.Errorf("admin's scopes %q lack the new scope", body.Scope)
		}
		return body.AccessToken
	}
	invoices := func(token string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodGet, base+"/invoices", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("WWW-Authenticate"), strings.TrimSpace(string(b))
	}
	if status, _, body := invoices(login("ivan", "ivan-password")); status != 200 || body != `["INV-1","INV-2"]` {
		t.Errorf("GET /invoices with invoices:read = %d %s", status, body)
	}
	if status, challenge, _ := invoices(login("norm", "norm-password")); status != 403 ||
		!strings.Contains(challenge, `error="insufficient_scope"`) || !strings.Contains(challenge, `scope="invoices:read"`) {
		t.Errorf("GET /invoices without the scope = %d %q", status, challenge)
	}
	if status, challenge, _ := invoices(""); status != 401 || challenge != `Bearer realm="passflow"` {
		t.Errorf("GET /invoices without a token = %d %q", status, challenge)
	}
	login("admin", "admin-password-1")
	res, err := http.Get(base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	if meta := readAll(res); !strings.Contains(meta, `"invoices:read"`) {
		t.Errorf("scopes_supported lacks the new scope: %s", meta)
	}
	step("called GET /invoices: 200 with the scope, 403 without, 401 without a token")

	// The spec-walking security test covers the new operation.
	out := inDir(t, dir, nil, "go", "test", "-count=1", "-run", "^TestEverySecuredOperation$", "-v", ".")
	if !strings.Contains(out, "--- PASS: TestEverySecuredOperation/GET_/invoices") {
		t.Errorf("TestEverySecuredOperation did not cover GET /invoices:\n%s", out)
	}
	step("TestEverySecuredOperation covers GET /invoices")
}

// readmeBlocks returns README's code blocks marked <!-- extension: NAME -->,
// by name, without the indentation of the list they stand in.
func readmeBlocks(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	marked := regexp.MustCompile("(?s)<!-- extension: (\\w+) -->\n( *)```\\w*\n(.*?)\n *```")
	blocks := map[string]string{}
	for _, m := range marked.FindAllStringSubmatch(string(readme), -1) {
		var lines []string
		for _, line := range strings.Split(m[3], "\n") {
			lines = append(lines, strings.TrimPrefix(line, m[2]))
		}
		blocks[m[1]] = strings.Join(lines, "\n") + "\n"
	}
	for _, name := range []string{"scope", "operation", "handler"} {
		if blocks[name] == "" {
			t.Fatalf("README has no block marked <!-- extension: %s -->", name)
		}
	}
	return blocks
}

// copyModule copies the module's files, without its git history, npm
// packages, databases or binaries.
func copyModule(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if !d.Type().IsRegular() || strings.Contains(d.Name(), ".db") || rel == "passflow" || strings.HasSuffix(d.Name(), ".test") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// inDir runs a command in dir and returns its output, failing the test if
// it fails.
func inDir(t *testing.T, dir string, stdin io.Reader, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdin = dir, stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startBinary starts a built passflow serving on 127.0.0.1:0 and returns
// its URL; the test's end stops it.
func startBinary(t *testing.T, bin string, env []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), env...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := servingRe.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("the built passflow did not start")
		return ""
	}
}
