package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestFastAPIConformance ports the cases of FastAPI's own security tests
// (tests/test_security_oauth2.py and tests/test_tutorial/test_security/
// test_tutorial005.py) as one table. Each row says what FastAPI answers and
// what passflow answers; where they differ, on purpose, the row cites the
// RFC that passflow follows.
func TestFastAPIConformance(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	out, err := ts.cli("", "user", "import", writeFile(t, "users.jsonl",
		`{"username": "johndoe", "hashed_password": "`+johndoeHash+`", "scopes": ["data:read"]}`+"\n"+
			`{"username": "alice", "hashed_password": "`+aliceHash+`", "scopes": ["data:read"]}`+"\n"))
	if err != nil {
		t.Fatal(err, out)
	}
	johndoe := ts.login("johndoe", "secret")
	alice := ts.login("alice", "secretalice")
	if out, err := ts.cli("", "user", "disable", "alice"); err != nil {
		t.Fatal(err, out)
	}

	form := func(body string) func() response {
		return func() response { return ts.postForm("/token", body, nil) }
	}
	get := func(path, authorization string) func() response {
		return func() response {
			h := http.Header{}
			if authorization != "" {
				h.Set("Authorization", authorization)
			}
			return ts.do(http.MethodGet, path, h, nil)
		}
	}
	const fastapiHS256 = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VybmFtZTpib2IifQ.HcfCW67Uda-0gz54ZWTqmtgJnZeNem0Q757eTa9EZuw"
	const fastapiNoSub = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJkYXRhIjoiZm9vIn0.9ynBhuYb4e6aW3oJr_K_TBgwcMTDpRToQIE25L57rOE"

	rows := []struct {
		fastapiTest string
		request     func() response
		fastapi     string // what FastAPI answers
		status      int    // what passflow answers
		errorCode   string // the body's error
		challenge   string // the start of WWW-Authenticate, if any
		why         string // where passflow differs on purpose
	}{
		{"test_security_oauth2_password_bearer_no_header, test_no_token", get("/users/me", ""),
			`401 {"detail":"Not authenticated"}, WWW-Authenticate: Bearer`,
			401, "unauthorized", `Bearer realm="passflow"`, "same; RFC 6750 §3.1: no error code without credentials"},
		{"test_security_oauth2_password_other_header, test_incorrect_token_type", get("/users/me", "Other footokenbar"),
			`401 {"detail":"Not authenticated"}`,
			401, "unauthorized", `Bearer realm="passflow"`, "same"},
		{"test_incorrect_token", get("/users/me", "Bearer nonexistent"),
			`401 {"detail":"Could not validate credentials"}`,
			401, "invalid_token", `Bearer realm="passflow", error="invalid_token"`, "RFC 6750 §3.1 names the error in the challenge"},
		{"test_token_inexistent_user (an HS256 token of FastAPI's demo secret)", get("/users/me", "Bearer "+fastapiHS256),
			`401 {"detail":"Could not validate credentials"}`,
			401, "invalid_token", `Bearer realm="passflow", error="invalid_token"`, "RFC 6750 §3.1"},
		{"test_token_no_sub", get("/users/me", "Bearer "+fastapiNoSub),
			`401 {"detail":"Could not validate credentials"}`,
			401, "invalid_token", `Bearer realm="passflow", error="invalid_token"`, "RFC 6750 §3.1"},
		{"test_strict_login_no_data", form(""),
			`422 {"detail":[…grant_type, username, password missing…]}`,
			400, "invalid_request", "", "RFC 6749 §5.2: a malformed token request is 400 invalid_request, not 422"},
		{"test_strict_login_no_grant_type", form("username=johndoe&password=secret"),
			`422 {"detail":[…grant_type missing…]}`,
			400, "invalid_request", "", "RFC 6749 §5.2"},
		{"test_login (FastAPI's lax form needs no grant_type)", form("username=johndoe&password=secret"),
			`200 {"access_token":…}`,
			400, "invalid_request", "", "RFC 6749 §4.3.2: grant_type is REQUIRED"},
		{"test_strict_login_incorrect_grant_type[incorrect]", form("grant_type=incorrect&username=johndoe&password=secret"),
			`422 string_pattern_mismatch`,
			400, "unsupported_grant_type", "", "RFC 6749 §5.2"},
		{"test_strict_login_incorrect_grant_type[passwordblah]", form("grant_type=passwordblah&username=johndoe&password=secret"),
			`422 string_pattern_mismatch`,
			400, "unsupported_grant_type", "", "RFC 6749 §5.2"},
		{"test_strict_login_incorrect_grant_type[blahpassword]", form("grant_type=blahpassword&username=johndoe&password=secret"),
			`422 string_pattern_mismatch`,
			400, "unsupported_grant_type", "", "RFC 6749 §5.2"},
		{"test_strict_login_correct_grant_type", form("grant_type=password&username=johndoe&password=secret"),
			`200`,
			200, "", "", "same"},
		{"test_login_incorrect_password", form("grant_type=password&username=johndoe&password=incorrect"),
			`400 {"detail":"Incorrect username or password"}`,
			400, "invalid_grant", "", "RFC 6749 §5.2 names the error"},
		{"test_login_incorrect_username", form("grant_type=password&username=foo&password=secret"),
			`400 {"detail":"Incorrect username or password"}`,
			400, "invalid_grant", "", "RFC 6749 §5.2; the same body as a wrong password"},
		{"test_token_no_scope", func() response {
			return ts.do(http.MethodPut, "/my_data/k", jsonBody(bearer(johndoe)), strings.NewReader(`{"value":"v"}`))
		}, `401 {"detail":"Not enough permissions"}`,
			403, "insufficient_scope", `Bearer realm="passflow", error="insufficient_scope"`, "RFC 6750 §3.1: a valid token without the scope is 403"},
		{"test_token_inactive_user (logging in)", form("grant_type=password&username=alice&password=secretalice"),
			`200, then 400 {"detail":"Inactive user"} on every call`,
			400, "invalid_grant", "", "RFC 6749 §5.2: a disabled account gets no token at all"},
		{"test_token_inactive_user (a token from before the disable)", get("/users/me", "Bearer "+alice),
			`400 {"detail":"Inactive user"}`,
			401, "invalid_token", `Bearer realm="passflow", error="invalid_token"`, "RFC 6750 §3.1: the token no longer works"},
		{"test_token", get("/users/me", "Bearer "+johndoe),
			`200 {"username":"johndoe",…}`,
			200, "", "", "same"},
	}
	for _, r := range rows {
		res := r.request()
		if res.Status != r.status {
			t.Errorf("%s: status %d, want %d (FastAPI: %s): %s", r.fastapiTest, res.Status, r.status, r.fastapi, res.Body)
			continue
		}
		if r.errorCode != "" && res.JSON(t)["error"] != r.errorCode {
			t.Errorf("%s: error %v, want %s", r.fastapiTest, res.JSON(t)["error"], r.errorCode)
		}
		if got := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, r.challenge) || (r.challenge == "" && got != "") {
			t.Errorf("%s: WWW-Authenticate %q, want %q", r.fastapiTest, got, r.challenge)
		}
		if r.why == "" {
			t.Errorf("%s: the row does not say why passflow answers as it does", r.fastapiTest)
		}
	}
}
