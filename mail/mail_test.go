package mail

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/store"
)

func TestParseServer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		url  string
		want Server
	}{
		{"smtp://mail.example.com", Server{Host: "mail.example.com", Port: "587"}},
		{"smtps://mail.example.com", Server{Host: "mail.example.com", Port: "465", ImplicitTLS: true}},
		{"smtp://user%40example.com:p%3Ass@127.0.0.1:2525", Server{Host: "127.0.0.1", Port: "2525", Username: "user@example.com", Password: "p:ss"}},
	} {
		got, err := ParseServer(tt.url)
		if err != nil || *got != tt.want {
			t.Errorf("ParseServer(%s) = %+v, %v; want %+v", tt.url, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "mail.example.com", "http://mail.example.com", "smtp://", "smtp://h/path", "smtp://h?x=1"} {
		if _, err := ParseServer(bad); err == nil {
			t.Errorf("ParseServer(%q) accepted", bad)
		}
	}
}

func TestCheckFrom(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"no-reply@example.com", "App <no-reply@example.com>"} {
		if err := CheckFrom(ok); err != nil {
			t.Errorf("CheckFrom(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "nobody", "a@example.com\r\nBcc: x@example.com"} {
		if err := CheckFrom(bad); err == nil {
			t.Errorf("CheckFrom(%q) accepted", bad)
		}
	}
}

// TestComposedMail: the message parses as a mail with the right headers,
// an encoded subject, and text and HTML alternatives carrying the link.
func TestComposedMail(t *testing.T) {
	t.Parallel()
	tpl, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	l := auth.Letter{Kind: store.MailPasswordReset, To: "zoë@example.com", Username: "zoë",
		Link: "https://app.example/reset-password?token=abc_DEF-123", Token: "abc_DEF-123", ExpiresIn: time.Hour}
	subject, text, html, err := tpl.render(l)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := compose("App <no-reply@example.com>", l.To, subject, text, html, time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("not a mail: %v\n%s", err, msg)
	}
	if got, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); got != "Reset your password" {
		t.Errorf("Subject = %q", got)
	}
	if m.Header.Get("To") != l.To || !strings.HasSuffix(m.Header.Get("Message-ID"), "@example.com>") || m.Header.Get("Date") == "" {
		t.Errorf("headers = %v", m.Header)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []string
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, p.Header.Get("Content-Type")+"\n"+string(b))
	}
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "text/plain") || !strings.HasPrefix(parts[1], "text/html") {
		t.Fatalf("parts = %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(p, l.Link) || !strings.Contains(p, "zoë") || !strings.Contains(p, "1 hour") {
			t.Errorf("part lacks the link, the name or the lifetime:\n%s", p)
		}
	}
}

// TestTemplatesOverride: a file in --mail-templates replaces the built-in
// one of its name; the others stay; a broken one fails at load.
func TestTemplatesOverride(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "verify_email.txt"), []byte(`{{define "subject"}}Welcome to Acme{{end}}Acme: {{.Link}}`), 0o600)
	tpl, err := LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	subject, text, html, err := tpl.render(auth.Letter{Kind: store.MailVerifyEmail, Username: "ann", Link: "https://acme.example/v?token=t", ExpiresIn: 24 * time.Hour})
	if err != nil || subject != "Welcome to Acme" || string(text) != "Acme: https://acme.example/v?token=t" || !strings.Contains(string(html), "24 hours") {
		t.Errorf("render = %q %q %q %v", subject, text, html, err)
	}
	// The HTML template escapes what it prints.
	_, _, html, _ = tpl.render(auth.Letter{Kind: store.MailVerifyEmail, Username: "<b>ann</b>", Link: "https://a.example/?token=t", ExpiresIn: time.Hour})
	if strings.Contains(string(html), "<b>ann</b>") {
		t.Errorf("the HTML template did not escape the username:\n%s", html)
	}
	for name, body := range map[string]string{
		"password_reset.txt":  `no subject here {{.Link}}`,
		"password_reset.html": `{{.Nope}}`,
	} {
		bad := t.TempDir()
		os.WriteFile(filepath.Join(bad, name), []byte(body), 0o600)
		if _, err := LoadTemplates(bad); err == nil {
			t.Errorf("a broken %s was accepted", name)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := backoff(MaxAttempts); got != maxRetry {
		t.Errorf("backoff(%d) = %v, want the cap %v", MaxAttempts, got, maxRetry)
	}
}

// TestSendEndsWithItsContext: a server shutting down does not wait out a
// silent SMTP server's 30 s deadline: the conversation ends with the
// context.
func TestSendEndsWithItsContext(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, and never a word
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err = (&Server{Host: host, Port: port}).send(ctx, "a@example.com", "b@example.com", []byte("x"))
	if err == nil {
		t.Fatal("a send to a silent server succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the send took %v after its context ended at 100ms", d)
	}
}
