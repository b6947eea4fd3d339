// Package mail delivers the mails of the store's outbox over SMTP: it
// claims each mail, has its letter prepared (a fresh token, stored as a
// hash), renders it from templates, sends it, and marks it done — or puts
// it back for a later attempt, with back-off.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/store"
)

// Server is an SMTP server to send through, from --smtp-url:
// smtp://user:pass@host:port (STARTTLS when the server offers it) or
// smtps://… (TLS from the first byte).
type Server struct {
	Host, Port         string
	ImplicitTLS        bool
	Username, Password string
	// RootCAs, when set, are the only authorities whose certificates the
	// server may present (--smtp-ca); the system's otherwise.
	RootCAs *x509.CertPool
}

// LoadCA reads PEM certificates to trust for the SMTP server's TLS.
func LoadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--smtp-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--smtp-ca: %s holds no PEM certificate", path)
	}
	return pool, nil
}

func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: s.Host, RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}
}

// ParseServer reads an SMTP URL. The port defaults to 587 (smtp) or 465
// (smtps).
func ParseServer(raw string) (*Server, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, errors.New("--smtp-url must be smtp://[user:password@]host[:port] or smtps://…")
	}
	s := &Server{Host: u.Hostname(), Port: u.Port(), ImplicitTLS: u.Scheme == "smtps"}
	if s.Port == "" {
		s.Port = map[bool]string{false: "587", true: "465"}[s.ImplicitTLS]
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	return s, nil
}

// refusedError is a recipient the SMTP server refused for good (a 5xx
// answer to RCPT TO, such as 550 "no such mailbox"): trying again cannot
// help.
type refusedError struct{ err error }

func (e *refusedError) Error() string {
	return "the SMTP server refused the recipient: " + e.err.Error()
}
func (e *refusedError) Unwrap() error { return e.err }

// sendTimeout bounds one delivery: connecting, the dialogue and the data.
const sendTimeout = 30 * time.Second

// send delivers msg from from to to.
func (s *Server) send(ctx context.Context, from, to string, msg []byte) error {
	addr := net.JoinHostPort(s.Host, s.Port)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	var err error
	if s.ImplicitTLS {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: s.tlsConfig()}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(sendTimeout))
	// A server shutting down does not wait for a slow SMTP server: the
	// mail stays claimed until its lease ends, and goes out then.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, s.Host)
	if err != nil {
		return err
	}
	defer c.Close()
	hostname, _ := os.Hostname()
	if hostname == "" {
		hostname = "localhost"
	}
	if err := c.Hello(hostname); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok && !s.ImplicitTLS {
		if err := c.StartTLS(s.tlsConfig()); err != nil {
			return err
		}
	}
	if s.Username != "" {
		// PlainAuth refuses to send the password over a connection that is
		// not encrypted, unless the server is this machine.
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, s.Host)); err != nil {
			return err
		}
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		var tp *textproto.Error
		if errors.As(err, &tp) && tp.Code >= 500 {
			return &refusedError{err} // the server will never take it
		}
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

//go:embed templates
var embedded embed.FS

// kinds are the mails there are templates for.
var kinds = []string{store.MailVerifyEmail, store.MailPasswordReset}

// Templates render letters: per kind, KIND.txt (which defines "subject")
// and KIND.html.
type Templates struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// LoadTemplates reads the embedded templates, each replaced by the file of
// the same name in dir when dir is not "" and holds one.
func LoadTemplates(dir string) (*Templates, error) {
	t := &Templates{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	read := func(name string) ([]byte, error) {
		if dir != "" {
			b, err := os.ReadFile(dir + string(os.PathSeparator) + name)
			if err == nil {
				return b, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
		return embedded.ReadFile("templates/" + name)
	}
	for _, k := range kinds {
		b, err := read(k + ".txt")
		if err != nil {
			return nil, err
		}
		tt, err := texttemplate.New(k + ".txt").Option("missingkey=error").Parse(string(b))
		if err != nil {
			return nil, fmt.Errorf("mail template %s.txt: %w", k, err)
		}
		if tt.Lookup("subject") == nil {
			return nil, fmt.Errorf("mail template %s.txt: it must define \"subject\"", k)
		}
		if b, err = read(k + ".html"); err != nil {
			return nil, err
		}
		ht, err := htmltemplate.New(k + ".html").Option("missingkey=error").Parse(string(b))
		if err != nil {
			return nil, fmt.Errorf("mail template %s.html: %w", k, err)
		}
		// Rendered once with sample data, so a template that cannot render
		// fails at start, not at the first mail.
		if _, _, _, err := (&Templates{text: map[string]*texttemplate.Template{k: tt}, html: map[string]*htmltemplate.Template{k: ht}}).
			render(auth.Letter{Kind: k, To: "ann@example.com", Username: "ann", Token: "t", Link: "https://app.example/x?token=t", ExpiresIn: time.Hour}); err != nil {
			return nil, err
		}
		t.text[k], t.html[k] = tt, ht
	}
	return t, nil
}

// letterData is what a template sees.
type letterData struct {
	auth.Letter
	ExpiresIn string
}

func (t *Templates) render(l auth.Letter) (subject string, text, html []byte, err error) {
	tt, ht := t.text[l.Kind], t.html[l.Kind]
	if tt == nil || ht == nil {
		return "", nil, nil, fmt.Errorf("no template for mail kind %q", l.Kind)
	}
	data := letterData{Letter: l, ExpiresIn: humanDuration(l.ExpiresIn)}
	var sb, tb, hb bytes.Buffer
	if err := tt.ExecuteTemplate(&sb, "subject", data); err != nil {
		return "", nil, nil, fmt.Errorf("mail template %s.txt subject: %w", l.Kind, err)
	}
	if err := tt.Execute(&tb, data); err != nil {
		return "", nil, nil, fmt.Errorf("mail template %s.txt: %w", l.Kind, err)
	}
	if err := ht.Execute(&hb, data); err != nil {
		return "", nil, nil, fmt.Errorf("mail template %s.html: %w", l.Kind, err)
	}
	subject = strings.Join(strings.Fields(sb.String()), " ")
	return subject, tb.Bytes(), hb.Bytes(), nil
}

// humanDuration says 24 hours, 1 hour, 30 minutes.
func humanDuration(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return unit(int64(d/time.Minute), "minute")
	}
	return unit(int64(d/time.Second), "second")
}

// compose builds the message: headers, then text and HTML alternatives,
// quoted-printable.
func compose(from, to, subject string, text, html []byte, now time.Time) ([]byte, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct {
		ctype string
		b     []byte
	}{{"text/plain; charset=utf-8", text}, {"text/html; charset=utf-8", html}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {part.ctype}, "Content-Transfer-Encoding": {"quoted-printable"}})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write(part.b); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	domain := "passflow.invalid"
	if a, err := mail.ParseAddress(from); err == nil {
		if at := strings.LastIndexByte(a.Address, '@'); at >= 0 {
			domain = a.Address[at+1:]
		}
	}
	var msg bytes.Buffer
	for _, h := range [][2]string{
		{"From", from},
		{"To", to},
		{"Subject", mime.QEncoding.Encode("utf-8", subject)},
		{"Date", now.Format(time.RFC1123Z)},
		{"Message-ID", "<" + hex.EncodeToString(id) + "@" + domain + ">"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "multipart/alternative; boundary=" + mw.Boundary()},
	} {
		fmt.Fprintf(&msg, "%s: %s\r\n", h[0], h[1])
	}
	msg.WriteString("\r\n")
	msg.Write(body.Bytes())
	return msg.Bytes(), nil
}

// Outcomes a sender reports, for metrics.
const (
	OutcomeSent    = store.MailSent
	OutcomeDropped = store.MailDropped
	OutcomeFailed  = store.MailFailed
	OutcomeRetry   = "retry"
)

// Sender delivers the outbox.
type Sender struct {
	outbox    store.Outbox
	prepare   func(context.Context, store.Mail) (auth.Letter, bool, error)
	server    *Server
	from      string
	templates *Templates
	logger    *slog.Logger
	observe   func(outcome string)
	now       func() time.Time

	wake chan struct{}
}

// Config is how a Sender sends.
type Config struct {
	Server    *Server
	From      string // the From address
	Templates *Templates
	// Observe is told each outcome (sent, dropped, failed, retry).
	Observe func(outcome string)
}

// CheckFrom checks a From address: a bare address, or "Name <address>".
func CheckFrom(from string) error {
	if strings.ContainsAny(from, "\r\n") {
		return errors.New("--mail-from must be one line")
	}
	if _, err := mail.ParseAddress(from); err != nil {
		return fmt.Errorf("--mail-from must be an address such as passflow@example.com or \"App <no-reply@example.com>\": %v", err)
	}
	return nil
}

// NewSender returns a sender of the outbox's mails, whose letters prepare
// makes.
func NewSender(outbox store.Outbox, prepare func(context.Context, store.Mail) (auth.Letter, bool, error), cfg Config, logger *slog.Logger, now func() time.Time) *Sender {
	observe := cfg.Observe
	if observe == nil {
		observe = func(string) {}
	}
	return &Sender{outbox: outbox, prepare: prepare, server: cfg.Server, from: cfg.From, templates: cfg.Templates,
		logger: logger, observe: observe, now: now, wake: make(chan struct{}, 1)}
}

// Wake makes the sender look at the outbox now.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Timing of the sender: how often it looks when nothing wakes it, how long
// a claimed mail is its own, and the back-off between attempts.
const (
	PollEvery   = time.Second
	lease       = 2 * sendTimeout // past it, a mail whose sender died is sent again
	firstRetry  = time.Second
	maxRetry    = 5 * time.Minute
	MaxAttempts = 20 // about 1 hour 20 minutes of attempts
)

// Run sends until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	t := time.NewTicker(PollEvery)
	defer t.Stop()
	for {
		s.drain(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// drain sends every mail due.
func (s *Sender) drain(ctx context.Context) {
	for ctx.Err() == nil {
		now := s.now()
		m, ok, err := s.outbox.ClaimMail(ctx, now, now.Add(lease))
		if err != nil {
			s.logger.Warn("reading the mail outbox failed; will try again", "error", err)
			return
		}
		if !ok {
			return
		}
		s.deliver(ctx, m)
	}
}

func (s *Sender) deliver(ctx context.Context, m store.Mail) {
	letter, send, err := s.prepare(ctx, m)
	if err == nil && !send {
		s.done(ctx, m, store.MailDropped)
		return
	}
	if err == nil {
		err = s.sendLetter(ctx, letter)
	}
	if err == nil {
		s.done(ctx, m, store.MailSent)
		return
	}
	var refused *refusedError
	if m.Attempts >= MaxAttempts || errors.As(err, &refused) {
		s.logger.Error("a mail could not be sent; gave up", "mail_id", m.ID, "kind", m.Kind, "attempts", m.Attempts, "error", err)
		s.done(ctx, m, store.MailFailed)
		return
	}
	next := s.now().Add(backoff(m.Attempts))
	s.logger.Warn("a mail could not be sent; will try again", "mail_id", m.ID, "kind", m.Kind, "attempts", m.Attempts,
		"next_attempt", next.UTC().Format(time.RFC3339), "error", err)
	if rerr := s.outbox.MailRetry(ctx, m.ID, next, err.Error()); rerr != nil {
		s.logger.Warn("recording a failed mail failed; it is retried when its lease ends", "mail_id", m.ID, "error", rerr)
	}
	s.observe(OutcomeRetry)
}

func (s *Sender) done(ctx context.Context, m store.Mail, outcome string) {
	if err := s.outbox.MailDone(ctx, m.ID, outcome, s.now()); err != nil {
		// Sent but not marked: it goes again when its lease ends.
		s.logger.Warn("marking a mail done failed", "mail_id", m.ID, "outcome", outcome, "error", err)
	}
	s.observe(outcome)
	if outcome == store.MailSent {
		s.logger.Info("mail sent", "mail_id", m.ID, "kind", m.Kind)
	}
}

func (s *Sender) sendLetter(ctx context.Context, l auth.Letter) error {
	subject, text, html, err := s.templates.render(l)
	if err != nil {
		return err
	}
	msg, err := compose(s.from, l.To, subject, text, html, s.now())
	if err != nil {
		return err
	}
	from, err := mail.ParseAddress(s.from)
	if err != nil {
		return err
	}
	return s.server.send(ctx, from.Address, l.To, msg)
}

// backoff is the wait after a mail's attempts-th failure: 1s doubling, to
// at most 5 minutes.
func backoff(attempts int) time.Duration {
	d := firstRetry
	for i := 1; i < attempts && d < maxRetry; i++ {
		d *= 2
	}
	return min(d, maxRetry)
}
