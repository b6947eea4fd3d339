package guard

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/passflow/passflow/auth"
)

// TestAccessLogToWritesSlogsLine serves the same requests through
// AccessLog over slog's TextHandler and through AccessLogTo, and finds the
// same line, the time and the duration aside, for paths slog quotes and
// paths it does not, with and without an authenticated caller.
func TestAccessLogToWritesSlogsLine(t *testing.T) {
	t.Parallel()
	var viaSlog, direct bytes.Buffer
	engine := func(mw gin.HandlerFunc) *gin.Engine {
		e := gin.New()
		e.Use(RequestID(), mw)
		e.GET("/plain/*rest", func(c *gin.Context) { c.String(http.StatusOK, "hello") })
		e.GET("/who", func(c *gin.Context) {
			ctx := auth.WithCaller(c.Request.Context(), &auth.Caller{ClientIP: "192.0.2.7",
				Principal: &auth.Principal{UserID: "u 1", ClientID: "web=app"}})
			c.Request = c.Request.WithContext(ctx)
			c.Status(http.StatusNoContent)
		})
		return e
	}
	a := engine(AccessLog(slog.New(slog.NewTextHandler(&viaSlog, nil))))
	b := engine(AccessLogTo(&direct))
	paths := []string{"/plain/x", "/plain/a%20b", "/plain/q%22uote=", "/plain/%C3%A9t%C3%A9", "/plain/%01ctl", "/plain/back%5Cslash",
		"/plain/%FF", "/plain/nbsp%C2%A0", "/plain/" + strings.Repeat("y", 300), "/who", "/nowhere"}
	for _, p := range paths {
		for _, h := range []http.Handler{a, b} {
			req := httptest.NewRequest(http.MethodGet, p, nil)
			req.Header.Set(RequestIDHeader, "req-1")
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	vary := regexp.MustCompile(`(?m)^time=\S+ |duration=\S+`)
	got := strings.Split(vary.ReplaceAllString(direct.String(), ""), "\n")
	want := strings.Split(vary.ReplaceAllString(viaSlog.String(), ""), "\n")
	if len(got) != len(paths)+1 || len(got) != len(want) {
		t.Fatalf("AccessLogTo wrote %d lines, slog %d, for %d requests", len(got)-1, len(want)-1, len(paths))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n slog:        %s\n AccessLogTo: %s", i, want[i], got[i])
		}
	}
	if !strings.Contains(direct.String(), `subject="u 1" client_id="web=app"`) {
		t.Errorf("the caller is not in the line:\n%s", direct.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(direct.String()), "\n") {
		if !regexp.MustCompile(`^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) level=INFO msg=request .* duration=\d`).MatchString(line) {
			t.Errorf("line is not slog's text format: %s", line)
		}
	}
}

// TestAppendRFC3339Millis formats times as slog does, including those
// whose milliseconds end in zeros.
func TestAppendRFC3339Millis(t *testing.T) {
	t.Parallel()
	zone := time.FixedZone("", -(3*3600 + 30*60))
	for _, at := range []time.Time{
		time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 2, 9, 0, 0, 100_000_000, time.UTC),
		time.Date(2026, 12, 2, 9, 0, 0, 999_999_999, zone),
		time.Date(1999, 1, 31, 23, 59, 59, 5_000_000, zone),
	} {
		var buf bytes.Buffer
		r := slog.NewRecord(at, slog.LevelInfo, "m", 0)
		if err := slog.NewTextHandler(&buf, nil).Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimPrefix(strings.Fields(buf.String())[0], "time=")
		if got := string(appendRFC3339Millis(nil, at)); got != want {
			t.Errorf("%v: got %s, slog writes %s", at, got, want)
		}
	}
}
