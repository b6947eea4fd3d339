package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// mailpit is a real SMTP server with an HTTP API (github.com/axllent/mailpit,
// built from tools/mailpit's pinned module), started for one test. Tests
// read the mails it received through its API.
type mailpit struct {
	t    *testing.T
	SMTP string // host:port
	API  string // http://host:port
	db   string
	cmd  *exec.Cmd
	// args are more flags for mailpit, in place of the default
	// --smtp-auth-allow-insecure (any SMTP password, even without TLS).
	args []string
}

// mailpitClient talks to mailpit's API; not http.DefaultClient, whose
// exchanges the contract test checks against passflow's spec.
var mailpitClient = &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}

// mailpitBinary builds mailpit once per test run.
var mailpitBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "passflow-mailpit-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mailpit")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/axllent/mailpit")
	cmd.Dir = "tools/mailpit"
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build github.com/axllent/mailpit in tools/mailpit: %v\n%s", err, out)
	}
	return bin, nil
})

// freePort is a TCP port nothing listens on, for now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newMailpit returns a mailpit that is not started yet, with its ports
// chosen: a server can be pointed at it before it runs.
func newMailpit(t *testing.T) *mailpit {
	t.Helper()
	return &mailpit{t: t, SMTP: freePort(t), API: "http://" + freePort(t), db: filepath.Join(t.TempDir(), "mailpit.db")}
}

// startMailpit starts a mailpit.
func startMailpit(t *testing.T) *mailpit {
	t.Helper()
	m := newMailpit(t)
	m.start()
	return m
}

func (m *mailpit) start() {
	t := m.t
	t.Helper()
	bin, err := mailpitBinary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mailpit is required in CI: %v", err)
		}
		t.Skipf("mailpit cannot be built here: %v", err)
	}
	args := m.args
	if args == nil {
		args = []string{"--smtp-auth-allow-insecure"}
	}
	m.cmd = exec.Command(bin, append([]string{"--smtp", m.SMTP, "--listen", strings.TrimPrefix(m.API, "http://"), "--database", m.db,
		"--disable-version-check", "--quiet", "--smtp-auth-accept-any"}, args...)...)
	var stderr bytes.Buffer // it logs to stdout
	m.cmd.Stdout, m.cmd.Stderr = &stderr, &stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := m.cmd
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !within(15*time.Second, func() bool {
		res, err := mailpitClient.Get(m.API + "/api/v1/messages")
		if err == nil {
			res.Body.Close()
		}
		return err == nil && res.StatusCode == 200
	}) {
		t.Fatalf("mailpit did not start within 15s:\n%s", stderr.String())
	}
}

// stop stops mailpit: its SMTP port refuses connections until start.
func (m *mailpit) stop() {
	m.cmd.Process.Kill()
	m.cmd.Wait()
}

// message is a mail mailpit received.
type message struct {
	ID      string
	To      []struct{ Address string }
	Subject string
	Text    string
	HTML    string
}

// messages lists what mailpit received, newest first, with their bodies.
func (m *mailpit) messages() []message {
	m.t.Helper()
	var list struct{ Messages []message }
	m.get("/api/v1/messages", &list)
	for i := range list.Messages {
		m.get("/api/v1/message/"+list.Messages[i].ID, &list.Messages[i])
	}
	return list.Messages
}

func (m *mailpit) get(path string, v any) {
	m.t.Helper()
	res, err := mailpitClient.Get(m.API + path)
	if err != nil {
		m.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		m.t.Fatalf("mailpit GET %s: %d", path, res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		m.t.Fatal(err)
	}
}

// waitFor returns the first mail to address whose subject holds subject,
// waiting up to d for it.
func (m *mailpit) waitFor(address, subject string, d time.Duration) message {
	m.t.Helper()
	var found message
	if !within(d, func() bool {
		for _, msg := range m.messages() {
			if len(msg.To) == 1 && strings.EqualFold(msg.To[0].Address, address) && strings.Contains(msg.Subject, subject) {
				found = msg
				return true
			}
		}
		return false
	}) {
		m.t.Fatalf("no mail %q to %s within %v; mailpit has %d", subject, address, d, len(m.messages()))
	}
	return found
}

var tokenInLink = regexp.MustCompile(`[?&]token=([A-Za-z0-9_-]+)`)

// linkToken is the token of the link in a mail's text, checked to be the
// same in its HTML.
func (msg message) linkToken(t *testing.T) string {
	t.Helper()
	m := tokenInLink.FindStringSubmatch(msg.Text)
	if m == nil {
		t.Fatalf("no link with a token in the mail:\n%s", msg.Text)
	}
	if !strings.Contains(msg.HTML, "token="+m[1]) {
		t.Errorf("the HTML part does not carry the text part's link:\n%s", msg.HTML)
	}
	return m[1]
}
