package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passflow/passflow/store/postgres/pgtest"
)

// mailArgs points a server at m.
func mailArgs(m *mailpit) []string {
	return []string{"--smtp-url", "smtp://" + m.SMTP, "--mail-from", "Passflow <no-reply@passflow.test>", "--app-url", "https://app.example"}
}

func (ts *testServer) postJSON(path, body string, header http.Header) response {
	ts.t.Helper()
	return ts.do(http.MethodPost, path, jsonBody(header), strings.NewReader(body))
}

// TestSignUpVerifyLogin: with registration open and verified emails
// required, a sign-up gets a verification mail through real SMTP; the
// account cannot log in until its link is followed.
func TestSignUpVerifyLogin(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	ts := startServer(t, append(mailArgs(mp), "--registration", "open", "--registration-scopes", "data:read", "--require-verified-email")...)

	res := ts.postJSON("/register", `{"username":"Ann","password":"ann-river-stone","email":"Ann@Example.com"}`, nil)
	if res.Status != http.StatusCreated {
		t.Fatalf("POST /register = %d %s", res.Status, res.Body)
	}
	if u := res.JSON(t); u["username"] != "ann" || u["email"] != "Ann@Example.com" || u["email_verified"] != false ||
		len(u["scopes"].([]any)) != 1 || u["scopes"].([]any)[0] != "data:read" {
		t.Errorf("registered = %v", u)
	}
	for _, tt := range []struct{ body, wantError, wantField string }{
		{`{"username":"ann","password":"ann-river-stone","email":"other@example.com"}`, "conflict", "/username"},
		{`{"username":"bea","password":"bea-river-stone","email":"ANN@example.com"}`, "conflict", "/email"},
		{`{"username":"bea","password":"password1","email":"bea@example.com"}`, "invalid_request", "/password"},
		{`{"username":"bea","password":"bea-river-stone","email":"not an address"}`, "invalid_request", "/email"},
		{`{"username":"bea","password":"bea-river-stone","email":"Bea <bea@example.com>"}`, "invalid_request", "/email"},
		{`{"username":"bea","password":"bea-river-stone","email":"bea@example.com","scopes":["users:admin"]}`, "invalid_request", ""},
	} {
		res := ts.postJSON("/register", tt.body, nil)
		body := res.JSON(t)
		if res.Status/100 != 4 || body["error"] != tt.wantError || (tt.wantField != "" && body["field"] != tt.wantField) {
			t.Errorf("POST /register %s = %d %s; want %s about %q", tt.body, res.Status, res.Body, tt.wantError, tt.wantField)
		}
	}

	login := ts.postForm("/token", "grant_type=password&username=ann&password=ann-river-stone", nil)
	if login.Status != http.StatusBadRequest || login.JSON(t)["error"] != "invalid_grant" ||
		!strings.Contains(login.JSON(t)["error_description"].(string), "not verified") {
		t.Fatalf("login before verifying = %d %s", login.Status, login.Body)
	}

	mail := mp.waitFor("Ann@Example.com", "Confirm your email address", 20*time.Second)
	if !strings.Contains(mail.Text, "https://app.example/verify-email?token=") || !strings.Contains(mail.Text, "Hello ann") ||
		!strings.Contains(mail.Text, "24 hours") {
		t.Errorf("verification mail:\n%s", mail.Text)
	}
	token := mail.linkToken(t)
	if res := ts.postJSON("/email/verify", `{"token":"`+token+`"}`, nil); res.Status != http.StatusNoContent {
		t.Fatalf("POST /email/verify = %d %s", res.Status, res.Body)
	}
	if res := ts.postJSON("/email/verify", `{"token":"`+token+`"}`, nil); res.Status != http.StatusBadRequest || res.JSON(t)["field"] != "/token" {
		t.Errorf("the same link twice = %d %s", res.Status, res.Body)
	}
	access := ts.login("ann", "ann-river-stone")
	me := ts.do(http.MethodGet, "/users/me", bearer(access), nil).JSON(t)
	if me["email_verified"] != true || me["email"] != "Ann@Example.com" {
		t.Errorf("/users/me = %v", me)
	}
	if res := ts.do(http.MethodPost, "/users/me/email/verify-request", bearer(access), nil); res.Status != http.StatusConflict {
		t.Errorf("a verification request when verified = %d %s", res.Status, res.Body)
	}
	if bytes.Contains([]byte(ts.logs.String()), []byte(token)) || strings.Contains(ts.logs.String(), "ann-river-stone") {
		t.Error("the log holds a mailed token or a password")
	}
}

// TestRegistrationClosed: by default nobody signs up.
func TestRegistrationClosed(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	res := ts.postJSON("/register", `{"username":"ann","password":"ann-river-stone","email":"ann@example.com"}`, nil)
	if res.Status != http.StatusForbidden || res.JSON(t)["error"] != "registration_closed" {
		t.Fatalf("POST /register on a closed server = %d %s", res.Status, res.Body)
	}
	if out, err := runCLI(t, nil, "", "serve", "--registration", "open", "--registration-scopes", "users:admin",
		"--db", filepath.Join(t.TempDir(), "p.db")); err == nil || !strings.Contains(out+err.Error(), "may not hold users:admin") {
		t.Errorf("serve with users:admin for sign-ups: %v %s", err, out)
	}
}

// TestResetPasswordByMail: a password reset end to end, asked for by
// email address in another case: the mailed link sets a new password once,
// ends the account's tokens, and verifies its address.
func TestResetPasswordByMail(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	ts := startServer(t, mailArgs(mp)...)
	if out, err := ts.cli("cleo-first-pass\n", "user", "add", "cleo", "--scopes", "data:read", "--email", "cleo@example.com"); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	old := ts.passwordGrant("cleo", "cleo-first-pass")

	if res := ts.postJSON("/password/forgot", `{"email":"CLEO@example.com"}`, nil); res.Status != http.StatusAccepted {
		t.Fatalf("POST /password/forgot = %d %s", res.Status, res.Body)
	}
	mail := mp.waitFor("cleo@example.com", "Reset your password", 20*time.Second)
	if !strings.Contains(mail.Text, "https://app.example/reset-password?token=") || !strings.Contains(mail.Text, "1 hour") {
		t.Errorf("reset mail:\n%s", mail.Text)
	}
	token := mail.linkToken(t)
	if res := ts.postJSON("/password/reset", `{"token":"`+token+`","new_password":"password1"}`, nil); res.Status != http.StatusBadRequest ||
		res.JSON(t)["field"] != "/new_password" {
		t.Fatalf("a weak new password = %d %s", res.Status, res.Body)
	}
	if res := ts.postJSON("/password/reset", `{"token":"`+token+`","new_password":"cleo-second-pass"}`, nil); res.Status != http.StatusNoContent {
		t.Fatalf("POST /password/reset = %d %s", res.Status, res.Body)
	}
	if ts.works(old.Access) {
		t.Error("an access token from before the reset still works")
	}
	if _, res := ts.refresh(old.Refresh); res.Status != http.StatusBadRequest {
		t.Errorf("a refresh token from before the reset = %d %s", res.Status, res.Body)
	}
	if res := ts.postForm("/token", "grant_type=password&username=cleo&password=cleo-first-pass", nil); res.Status != http.StatusBadRequest {
		t.Errorf("the old password = %d", res.Status)
	}
	access := ts.login("cleo", "cleo-second-pass")
	if me := ts.do(http.MethodGet, "/users/me", bearer(access), nil).JSON(t); me["email_verified"] != true {
		t.Errorf("after a reset by mail the address is not verified: %v", me)
	}
	if res := ts.postJSON("/password/reset", `{"token":"`+token+`","new_password":"cleo-third-pass"}`, nil); res.Status != http.StatusBadRequest {
		t.Errorf("the same link twice = %d %s", res.Status, res.Body)
	}
}

// TestForgotPasswordRevealsNothing: asking for an unknown username or
// address answers as for a known one, and sends nothing; the known one's
// mail, queued last, is the only one that arrives.
func TestForgotPasswordRevealsNothing(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	ts := startServer(t, mailArgs(mp)...)
	if out, err := ts.cli("dora-first-pass\n", "user", "add", "dora", "--email", "dora@example.com"); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	ts.addUser("noemail", "noemail-first-pass") // an account without an address
	var answers []response
	for _, body := range []string{`{"username":"nobody"}`, `{"email":"nobody@example.com"}`, `{"username":"noemail"}`, `{"username":"dora"}`} {
		answers = append(answers, ts.postJSON("/password/forgot", body, nil))
	}
	for i, res := range answers {
		if res.Status != http.StatusAccepted || len(res.Body) != len(answers[3].Body) || res.Header.Get("Content-Type") != answers[3].Header.Get("Content-Type") {
			t.Errorf("answer %d = %d %q, the known account's %d %q", i, res.Status, res.Body, answers[3].Status, answers[3].Body)
		}
	}
	mp.waitFor("dora@example.com", "Reset your password", 20*time.Second)
	if msgs := mp.messages(); len(msgs) != 1 {
		t.Errorf("mailpit holds %d mails, want only dora's", len(msgs))
	}
	if res := ts.postJSON("/password/forgot", `{"username":"dora","email":"dora@example.com"}`, nil); res.Status != http.StatusBadRequest {
		t.Errorf("both a username and an email = %d %s", res.Status, res.Body)
	}
}

// TestMailWaitsForSMTP: with the SMTP server down, a mail waits in the
// outbox (failed attempts counted) and goes out once it is back.
func TestMailWaitsForSMTP(t *testing.T) {
	t.Parallel()
	mp := newMailpit(t) // not started: its SMTP port refuses connections
	ts := startServer(t, mailArgs(mp)...)
	if out, err := ts.cli("eve-first-pass\n", "user", "add", "eve", "--email", "eve@example.com"); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	if res := ts.postJSON("/password/forgot", `{"username":"eve"}`, nil); res.Status != http.StatusAccepted {
		t.Fatalf("forgot = %d %s", res.Status, res.Body)
	}
	if !within(10*time.Second, func() bool {
		return strings.Contains(string(ts.do(http.MethodGet, "/metrics", nil, nil).Body), `passflow_mail_total{event="retry"}`)
	}) {
		t.Fatal("no failed attempt was counted with the SMTP server down")
	}
	mp.start()
	mp.waitFor("eve@example.com", "Reset your password", 30*time.Second)
	if !within(5*time.Second, func() bool {
		return strings.Contains(string(ts.do(http.MethodGet, "/metrics", nil, nil).Body), `passflow_mail_total{event="sent"} 1`)
	}) {
		t.Error("the sent mail was not counted")
	}
}

// TestMailSurvivesKill: a server killed (SIGKILL) after committing a
// mail, before it sent it, loses nothing: the next server on the store
// sends it. (The first has no SMTP server, so the kill cannot land inside
// an attempt; a mail whose sender dies mid-attempt goes out once the
// attempt's lease ends, see the store's Outbox test.)
func TestMailSurvivesKill(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	db := filepath.Join(t.TempDir(), "p.db")
	args := append(mailArgs(mp), "--argon2id-params", cheapParams)
	first := startChild(t, db, "--argon2id-params", cheapParams)
	if out, err := runCLI(t, nil, "finn-first-pass\n", "user", "add", "finn", "--email", "finn@example.com", "--db", db, "--argon2id-params", cheapParams); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	res, err := http.Post(first.URL+"/password/forgot", "application/json", strings.NewReader(`{"username":"finn"}`))
	if err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("forgot = %v %v", res, err)
	}
	res.Body.Close()
	if err := first.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	<-first.done
	startChild(t, db, args...)
	mp.waitFor("finn@example.com", "Reset your password", 30*time.Second)
}

// TestMailRefusedRecipientGivesUp: a recipient the SMTP server refuses for
// good (550) is given up at once, logged and counted, not retried for an
// hour; other mails still go out.
func TestMailRefusedRecipientGivesUp(t *testing.T) {
	t.Parallel()
	mp := newMailpit(t)
	mp.args = []string{"--smtp-auth-allow-insecure", "--smtp-allowed-recipients", `@allowed\.example$`}
	mp.start()
	ts := startServer(t, mailArgs(mp)...)
	for name, email := range map[string]string{"gil": "gil@refused.example", "hal": "hal@allowed.example"} {
		if out, err := ts.cli(name+"-river-stone\n", "user", "add", name, "--email", email); err != nil {
			t.Fatalf("user add: %v %s", err, out)
		}
	}
	for _, name := range []string{"gil", "hal"} {
		if res := ts.postJSON("/password/forgot", `{"username":"`+name+`"}`, nil); res.Status != http.StatusAccepted {
			t.Fatalf("forgot %s = %d %s", name, res.Status, res.Body)
		}
	}
	mp.waitFor("hal@allowed.example", "Reset your password", 20*time.Second)
	if !within(10*time.Second, func() bool {
		return strings.Contains(string(ts.do(http.MethodGet, "/metrics", nil, nil).Body), `passflow_mail_total{event="failed"} 1`)
	}) {
		t.Fatal("the refused mail was not given up")
	}
	if strings.Contains(string(ts.do(http.MethodGet, "/metrics", nil, nil).Body), `passflow_mail_total{event="retry"}`) {
		t.Error("a refused recipient was retried")
	}
	if !strings.Contains(ts.logs.String(), "the SMTP server refused the recipient") {
		t.Errorf("the log does not say why the mail was given up:\n%s", ts.logs)
	}
}

// TestMailOverTLS: STARTTLS, which the server requires here, and TLS from
// the first byte (smtps://), each with a password, against a certificate
// of an authority named by --smtp-ca; without it the certificate is
// refused and nothing is sent.
func TestMailOverTLS(t *testing.T) {
	t.Parallel()
	cert, key, _ := selfSigned(t)
	for _, tt := range []struct {
		name, scheme, mailpitFlag string
	}{
		{"STARTTLS", "smtp", "--smtp-require-starttls"},
		{"implicit TLS", "smtps", "--smtp-require-tls"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mp := newMailpit(t)
			mp.args = []string{"--smtp-tls-cert", cert, "--smtp-tls-key", key, tt.mailpitFlag}
			mp.start()
			url := tt.scheme + "://relay-user:relay-secret@" + mp.SMTP
			trusting := startServer(t, "--smtp-url", url, "--smtp-ca", cert, "--mail-from", "no-reply@passflow.test")
			if out, err := trusting.cli("ivy-river-stone\n", "user", "add", "ivy", "--email", "ivy@example.com"); err != nil {
				t.Fatalf("user add: %v %s", err, out)
			}
			if res := trusting.postJSON("/password/forgot", `{"username":"ivy"}`, nil); res.Status != http.StatusAccepted {
				t.Fatalf("forgot = %d %s", res.Status, res.Body)
			}
			mp.waitFor("ivy@example.com", "Reset your password", 20*time.Second)

			// The system's authorities do not know this certificate.
			doubting := startServer(t, "--smtp-url", url, "--mail-from", "no-reply@passflow.test")
			if out, err := doubting.cli("jon-river-stone\n", "user", "add", "jon", "--email", "jon@example.com"); err != nil {
				t.Fatalf("user add: %v %s", err, out)
			}
			if res := doubting.postJSON("/password/forgot", `{"username":"jon"}`, nil); res.Status != http.StatusAccepted {
				t.Fatalf("forgot = %d %s", res.Status, res.Body)
			}
			if !within(10*time.Second, func() bool { return strings.Contains(doubting.logs.String(), "certificate") }) {
				t.Fatalf("no certificate error logged:\n%s", doubting.logs)
			}
			for _, m := range mp.messages() {
				if m.To[0].Address == "jon@example.com" {
					t.Error("a mail went out over TLS to a server whose certificate was not trusted")
				}
			}
			if strings.Contains(trusting.logs.String()+doubting.logs.String(), "relay-secret") {
				t.Error("the SMTP password is in a log")
			}
		})
	}
}

// TestTwoInstancesSendEachMailOnce: two servers on one PostgreSQL database,
// both with a sender, share the outbox: twelve accounts asking for a reset
// on either one get one mail each.
func TestTwoInstancesSendEachMailOnce(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	db := pgtest.Database(t)
	args := append(mailArgs(mp), "--issuer", "http://passflow.test")
	a := startServerOn(t, db, adminEnv, args...)
	b := startServerOn(t, db, adminEnv, args...)
	const n = 12
	for i := range n {
		name := fmt.Sprintf("kit%02d", i)
		if out, err := a.cli(name+"-river-stone\n", "user", "add", name, "--email", name+"@example.com"); err != nil {
			t.Fatalf("user add: %v %s", err, out)
		}
	}
	for i := range n {
		ts := a
		if i%2 == 1 {
			ts = b
		}
		if res := ts.postJSON("/password/forgot", fmt.Sprintf(`{"username":"kit%02d"}`, i), nil); res.Status != http.StatusAccepted {
			t.Fatalf("forgot = %d %s", res.Status, res.Body)
		}
	}
	var msgs []message
	if !within(30*time.Second, func() bool { msgs = mp.messages(); return len(msgs) >= n }) {
		t.Fatalf("%d of %d mails arrived", len(msgs), n)
	}
	time.Sleep(2 * time.Second) // a duplicate would arrive about now
	seen := map[string]int{}
	for _, m := range mp.messages() {
		seen[m.To[0].Address]++
	}
	for i := range n {
		if to := fmt.Sprintf("kit%02d@example.com", i); seen[to] != 1 {
			t.Errorf("%s got %d mails, want 1", to, seen[to])
		}
	}
}
