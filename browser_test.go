package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Chromium for t. Without one, the test fails in
// CI (CI=true) and skips elsewhere, saying why.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath
	if p := os.Getenv("PASSFLOW_TEST_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is required in CI (apt-get install -y chromium): %v", err)
		}
		t.Skipf("no Chromium at %s (apt-get install -y chromium, or set PASSFLOW_TEST_CHROMIUM)", path)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 2000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// screenshotOnFailure saves what the page of the browser context ctx shows
// when t has failed.
func screenshotOnFailure(t *testing.T, ctx context.Context, name string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir := os.Getenv("PASSFLOW_TEST_ARTIFACTS")
		if dir == "" {
			dir = os.TempDir()
		}
		path := filepath.Join(dir, name+".png")
		if err := saveScreenshot(ctx, path); err != nil {
			t.Logf("no screenshot: %v", err)
			return
		}
		t.Logf("screenshot of the failure: %s", path)
	})
}

// saveScreenshot writes a PNG of the whole page to path.
func saveScreenshot(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		return err
	}
	return os.WriteFile(path, shot, 0o644)
}

// TestScreenshotOnFailure checks the path a failing browser test takes to
// leave a screenshot behind.
func TestScreenshotOnFailure(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/docs"), chromedp.WaitVisible(chromedp.CSS(`.btn.authorize`))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shot.png")
	if err := saveScreenshot(ctx, path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
		t.Errorf("the screenshot is not a PNG: %d bytes, %v", len(b), err)
	}
	if dir := os.Getenv("PASSFLOW_TEST_ARTIFACTS"); dir != "" {
		os.WriteFile(filepath.Join(dir, "docs.png"), b, 0o644)
	}
}

// step runs browser actions and fails the test, naming the step, if they fail.
func step(t *testing.T, ctx context.Context, name string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestSwaggerUILogin logs in through Swagger UI's Authorize dialog in a
// real browser, with the dialog's default client settings, then runs
// GET /my_data from the page; the login survives a reload; a wrong
// password shows the RFC 6749 error in the dialog.
func TestSwaggerUILogin(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("wendy", "wendy-password", "data:read", "data:write")
	tok := ts.login("wendy", "wendy-password")
	ts.do(http.MethodPut, "/my_data/colour", jsonBody(bearer(tok)), strings.NewReader(`{"value":"teal-from-the-browser"}`))

	browserCtx := browser(t)
	screenshotOnFailure(t, browserCtx, "swagger-ui-login")
	ctx, cancel := context.WithTimeout(browserCtx, 60*time.Second)
	defer cancel()

	const (
		authorizeButton = `.scheme-container .btn.authorize`
		username        = `.auth-container input#oauth_username`
		password        = `.auth-container input#oauth_password`
		modalAuthorize  = `.auth-container .auth-btn-wrapper .btn.modal-btn.auth.authorize`
		modalLogout     = `.auth-container .auth-btn-wrapper .btn.modal-btn.auth:not(.authorize)`
		modalClose      = `.auth-container .auth-btn-wrapper .btn-done`
		operation       = `#operations-data-listMyData`
	)
	login := func(pw string) {
		t.Helper()
		step(t, ctx, "open the Authorize dialog",
			chromedp.Click(chromedp.CSS(authorizeButton)),
			chromedp.WaitVisible(chromedp.CSS(username)),
			chromedp.SendKeys(chromedp.CSS(username), "wendy"),
			chromedp.SendKeys(chromedp.CSS(password), pw),
			chromedp.Click(chromedp.CSS(modalAuthorize)),
		)
	}

	step(t, ctx, "open /docs", chromedp.Navigate(ts.URL+"/docs"), chromedp.WaitVisible(chromedp.CSS(authorizeButton)))

	// A wrong password: the dialog shows the RFC 6749 error.
	login("not-her-password")
	step(t, ctx, "see the error", chromedp.WaitVisible(chromedp.CSS(`.auth-container .errors`)))
	errText, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`.auth-container .errors`)))
	if err != nil || !strings.Contains(errText, "invalid_grant") {
		t.Fatalf("the dialog shows %q (%v), want invalid_grant", errText, err)
	}
	step(t, ctx, "close the dialog", chromedp.Click(chromedp.CSS(modalClose)), chromedp.WaitNotPresent(chromedp.CSS(username)))

	// The right password.
	login("wendy-password")
	step(t, ctx, "logged in", chromedp.WaitVisible(chromedp.CSS(modalLogout)), chromedp.Click(chromedp.CSS(modalClose)))

	call := func() string {
		t.Helper()
		// Deep links keep an operation open across a reload.
		open, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('`+operation+` .opblock-body') !== null`))
		if err != nil {
			t.Fatal(err)
		}
		if !open {
			step(t, ctx, "expand GET /my_data", chromedp.Click(chromedp.CSS(operation+` .opblock-summary`)))
		}
		step(t, ctx, "see Try it out", chromedp.WaitVisible(chromedp.CSS(operation+` .try-out__btn`)))
		// The same for Try it out, while the operation is still unfolding.
		// A second click on it would cancel, so it is clicked again only
		// while it still says "Try it out".
		for attempt := 1; ; attempt++ {
			label, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(operation+` .try-out__btn`)))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(label, "Try it out") {
				step(t, ctx, "try GET /my_data", chromedp.Click(chromedp.CSS(operation+` .try-out__btn`)))
			}
			waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = chromedp.Do(waitCtx, chromedp.WaitVisible(chromedp.CSS(operation+` .btn.execute`)))
			cancel()
			if err == nil {
				break
			}
			if attempt == 4 || ctx.Err() != nil {
				t.Fatalf("no Execute button after %d clicks on Try it out: %v", attempt, err)
			}
		}
		// On a busy machine the page may still be laying itself out when
		// Execute is clicked, and the click lands beside it: click again
		// until the answer shows (GET is safe to repeat).
		for attempt := 1; ; attempt++ {
			step(t, ctx, "execute GET /my_data", chromedp.Click(chromedp.CSS(operation+` .btn.execute`)))
			waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := chromedp.Do(waitCtx, chromedp.WaitVisible(chromedp.CSS(operation+` .live-responses-table tbody tr.response .response-col_status`)))
			cancel()
			if err == nil {
				break
			}
			if attempt == 4 || ctx.Err() != nil {
				t.Fatalf("no answer shown after %d clicks on Execute: %v", attempt, err)
			}
		}
		status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(operation+` .live-responses-table tbody tr.response .response-col_status`)))
		if err != nil {
			t.Fatal(err)
		}
		body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(operation+` .live-responses-table tbody tr.response .response-col_description`)))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(status) + " " + body
	}
	if got := call(); !strings.HasPrefix(got, "200") || !strings.Contains(got, "teal-from-the-browser") {
		t.Fatalf("GET /my_data from the page: %q, want 200 with wendy's item", got)
	}

	// The login survives a reload.
	step(t, ctx, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(authorizeButton)))
	locked, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(authorizeButton), "class"))
	if err != nil || !strings.Contains(locked.Value, "locked") || strings.Contains(locked.Value, "unlocked") {
		t.Errorf("after a reload the Authorize button is %q, want locked", locked.Value)
	}
	if got := call(); !strings.HasPrefix(got, "200") || !strings.Contains(got, "teal-from-the-browser") {
		t.Errorf("GET /my_data after a reload: %q, want 200 with wendy's item", got)
	}
}

// TestBrowserTabsShareTheRefreshCookie: a page logs in in cookie mode, its
// script never sees the refresh token (HttpOnly), two tabs refresh at
// once from the shared cookie and both stay logged in
// (--refresh-reuse-interval), and logging out in one clears the cookie
// for both.
func TestBrowserTabsShareTheRefreshCookie(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--refresh-cookie", "--refresh-reuse-interval", "10s")
	ts.addUser("tabby", "tabby-river-stone", "data:read")

	browserCtx := browser(t)
	screenshotOnFailure(t, browserCtx, "refresh-cookie-tabs")
	ctx, cancel := context.WithTimeout(browserCtx, 60*time.Second)
	defer cancel()
	post := func(path, body string) string {
		return `fetch("` + path + `", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded", "X-Passflow-CSRF": "1"}, body: "` + body + `"})
			.then(async r => r.status + " " + await r.text())`
	}
	eval := func(ctx context.Context, what, js string) string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return out
	}

	step(t, ctx, "open a page of passflow's", chromedp.Navigate(ts.URL+"/docs"))
	login := eval(ctx, "log in", post("/token", "grant_type=password&username=tabby&password=tabby-river-stone"))
	if !strings.HasPrefix(login, "200 ") || strings.Contains(login, "refresh_token") || !strings.Contains(login, "access_token") {
		t.Fatalf("login = %s", login)
	}
	if cookies := eval(ctx, "read document.cookie", `document.cookie`); strings.Contains(cookies, "passflow_refresh") {
		t.Fatalf("the page's script can read the refresh cookie: %q", cookies)
	}

	tab2, cancel2 := chromedp.NewContext(ctx)
	defer cancel2()
	step(t, tab2, "open a second tab", chromedp.Navigate(ts.URL+"/docs"))
	answers := make(chan string, 2)
	for _, tab := range []context.Context{ctx, tab2} {
		go func() {
			out, err := chromedp.Run(tab, chromedp.Evaluate[string](post("/token", "grant_type=refresh_token"), chromedp.EvalAwaitPromise))
			if err != nil {
				out = err.Error()
			}
			answers <- out
		}()
	}
	for range 2 {
		if got := <-answers; !strings.HasPrefix(got, "200 ") || !strings.Contains(got, "access_token") {
			t.Errorf("a tab's refresh, both at once = %s", got)
		}
	}
	if again := eval(tab2, "refresh again in tab 2", post("/token", "grant_type=refresh_token")); !strings.HasPrefix(again, "200 ") {
		t.Errorf("tab 2 refreshing after the race = %s", again)
	}

	if out := eval(ctx, "log out", post("/revoke", "")); !strings.HasPrefix(out, "200 ") {
		t.Fatalf("logout = %s", out)
	}
	if out := eval(tab2, "refresh after logout", post("/token", "grant_type=refresh_token")); !strings.HasPrefix(out, "400 ") {
		t.Errorf("tab 2 after logout = %s, want 400", out)
	}
}
