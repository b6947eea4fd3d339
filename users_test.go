package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestUsersAdminAPI drives POST, GET, PATCH and DELETE /users as an admin.
func TestUsersAdminAPI(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	admin := bearer(ts.login("admin", ts.Admin))
	post := func(body string) response {
		return ts.do(http.MethodPost, "/users", jsonBody(admin.Clone()), strings.NewReader(body))
	}
	patch := func(name, body string) response {
		return ts.do(http.MethodPatch, "/users/"+name, jsonBody(admin.Clone()), strings.NewReader(body))
	}

	res := post(`{"username":"Nora","password":"nora-password","scopes":["data:read","data:write"]}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", res.Status, res.Body)
	}
	if u := res.JSON(t); u["username"] != "nora" || u["disabled"] != false || u["created_at"] == nil {
		t.Errorf("created = %v", u)
	}
	if strings.Contains(string(res.Body), "nora-password") || strings.Contains(string(res.Body), "argon2") {
		t.Errorf("the response holds the password or its hash: %s", res.Body)
	}
	for _, tt := range []struct {
		body, wantError, wantField string
		wantStatus                 int
	}{
		{`{"username":"NORA","password":"other-password"}`, "conflict", "/username", 409},
		{`{"username":"oli","password":"short"}`, "invalid_request", "/password", 400},
		{`{"username":"oli","password":"password1"}`, "invalid_request", "/password", 400},
		{`{"username":"oliver","password":"oliver2026"}`, "invalid_request", "/password", 400},
		{`{"username":"oli","password":"oli-password","scopes":["root"]}`, "invalid_request", "/scopes", 400},
		{`{"username":"a b","password":"oli-password"}`, "invalid_request", "/username", 400},
		{`{"username":"oli","password":"oli-password","admin":true}`, "invalid_request", "", 400},
		{`{"username":"oli"}`, "invalid_request", "", 400},
	} {
		res := post(tt.body)
		body := res.JSON(t)
		if res.Status != tt.wantStatus || body["error"] != tt.wantError || (tt.wantField != "" && body["field"] != tt.wantField) {
			t.Errorf("POST %s = %d %s; want %d %s field %q", tt.body, res.Status, res.Body, tt.wantStatus, tt.wantError, tt.wantField)
		}
	}

	for _, n := range []string{"pia", "quinn", "rae"} {
		if res := post(`{"username":"` + n + `","password":"` + n + `-password"}`); res.Status != 201 {
			t.Fatalf("create %s = %d %s", n, res.Status, res.Body)
		}
	}
	var seen []string
	after := ""
	for page := 0; page < 10; page++ {
		res := ts.do(http.MethodGet, "/users?limit=2&after="+after, admin, nil)
		if res.Status != 200 {
			t.Fatalf("list = %d %s", res.Status, res.Body)
		}
		body := res.JSON(t)
		for _, u := range body["users"].([]any) {
			seen = append(seen, u.(map[string]any)["username"].(string))
		}
		next, _ := body["next_after"].(string)
		if next == "" {
			break
		}
		after = next
	}
	if strings.Join(seen, " ") != "admin nora pia quinn rae" {
		t.Errorf("listed %v", seen)
	}
	if res := ts.do(http.MethodGet, "/users?limit=0", admin, nil); res.Status != 400 {
		t.Errorf("limit=0 = %d, want 400", res.Status)
	}

	if res := patch("PIA", `{"scopes":["data:read"],"disabled":true}`); res.Status != 200 || res.JSON(t)["disabled"] != true {
		t.Errorf("patch = %d %s", res.Status, res.Body)
	}
	if res := patch("ghost", `{"disabled":true}`); res.Status != 404 || res.JSON(t)["error"] != "not_found" {
		t.Errorf("patch ghost = %d %s", res.Status, res.Body)
	}
	if res := patch("pia", `{}`); res.Status != 400 {
		t.Errorf("empty patch = %d %s, want 400", res.Status, res.Body)
	}
	if res := ts.do(http.MethodDelete, "/users/quinn", admin, nil); res.Status != 204 {
		t.Errorf("delete = %d %s", res.Status, res.Body)
	}
	if res := ts.do(http.MethodDelete, "/users/quinn", admin, nil); res.Status != 404 {
		t.Errorf("delete again = %d %s, want 404", res.Status, res.Body)
	}
}

// TestLastAdmin: the last enabled account holding users:admin cannot be
// disabled, lose the scope or be deleted, by API or CLI.
func TestLastAdmin(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	admin := jsonBody(bearer(ts.login("admin", ts.Admin)))
	for _, body := range []string{`{"disabled":true}`, `{"scopes":["data:read"]}`, `{"scopes":[]}`} {
		res := ts.do(http.MethodPatch, "/users/admin", admin, strings.NewReader(body))
		if res.Status != 409 || res.JSON(t)["error"] != "conflict" {
			t.Errorf("PATCH admin %s = %d %s, want 409 conflict", body, res.Status, res.Body)
		}
	}
	if res := ts.do(http.MethodDelete, "/users/admin", admin, nil); res.Status != 409 {
		t.Errorf("DELETE admin = %d %s, want 409", res.Status, res.Body)
	}
	for _, sub := range []string{"disable", "delete"} {
		if out, err := ts.cli("", "user", sub, "admin"); err == nil || !strings.Contains(describe(err), "last enabled account holding users:admin") {
			t.Errorf("user %s admin = %v %q, want the last-admin error", sub, err, out)
		}
	}
	// With a second admin, the first may go.
	ts.addUser("sam", "sam-password", "users:admin")
	if res := ts.do(http.MethodDelete, "/users/admin", admin, nil); res.Status != 204 {
		t.Errorf("DELETE admin beside sam = %d %s", res.Status, res.Body)
	}
}

// TestChangesEndTokens: disabling, deleting, changing the password of or
// taking a scope from a user ends their tokens before the API call
// answers, and a change made by the CLI (another process) within a second.
func TestChangesEndTokens(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	admin := jsonBody(bearer(ts.login("admin", ts.Admin)))
	for _, n := range []string{"tia", "uma", "val", "wes", "xia"} {
		ts.addUser(n, n+"-password", "data:read", "data:write")
	}
	tokens := map[string]string{}
	for _, n := range []string{"tia", "uma", "val", "wes", "xia"} {
		tokens[n] = ts.login(n, n+"-password")
	}
	dead := func(name string) bool {
		res := ts.do(http.MethodGet, "/my_data", bearer(tokens[name]), nil)
		return res.Status == 401 && strings.Contains(res.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
	}
	for n := range tokens {
		if dead(n) {
			t.Fatalf("%s's fresh token is refused", n)
		}
	}

	changes := map[string]func() response{
		"tia": func() response {
			return ts.do(http.MethodPatch, "/users/tia", admin, strings.NewReader(`{"disabled":true}`))
		},
		"uma": func() response {
			return ts.do(http.MethodPatch, "/users/uma", admin, strings.NewReader(`{"password":"uma-new-password"}`))
		},
		"val": func() response {
			return ts.do(http.MethodPatch, "/users/val", admin, strings.NewReader(`{"scopes":["data:read"]}`))
		},
		"wes": func() response { return ts.do(http.MethodDelete, "/users/wes", admin, nil) },
	}
	for n, change := range changes {
		if res := change(); res.Status >= 300 {
			t.Fatalf("change %s = %d %s", n, res.Status, res.Body)
		}
		if !dead(n) {
			t.Errorf("%s's token still works right after the change", n)
		}
	}
	if res := ts.postForm("/token", "grant_type=password&username=tia&password=tia-password", nil); res.Status != 400 || res.JSON(t)["error"] != "invalid_grant" {
		t.Errorf("disabled tia logging in = %d %s", res.Status, res.Body)
	}
	if res := ts.postForm("/token", "grant_type=password&username=uma&password=uma-password", nil); res.Status != 400 {
		t.Errorf("uma's old password = %d, want 400", res.Status)
	}
	ts.login("uma", "uma-new-password")

	// A change made from the command line reaches the server within 1s.
	if out, err := ts.cli("", "user", "disable", "xia"); err != nil {
		t.Fatalf("user disable: %v %s", err, out)
	}
	deadline := time.Now().Add(time.Second)
	for !dead("xia") {
		if time.Now().After(deadline) {
			t.Fatal("a disable made by the CLI was not in force within 1s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("yan", "yan-password", "data:read")
	if out, err := ts.cli("", "user", "list"); err != nil || !strings.Contains(out, "yan") || !strings.Contains(out, "admin") {
		t.Errorf("user list = %v %q", err, out)
	}
	if out, err := ts.cli("yan-new-password\n", "user", "passwd", "YAN"); err != nil {
		t.Fatalf("user passwd = %v %q", err, out)
	}
	ts.login("yan", "yan-new-password")
	if _, err := ts.cli("", "user", "disable", "yan"); err != nil {
		t.Fatal(err)
	}
	if out, _ := ts.cli("", "user", "list"); !strings.Contains(out, "true") {
		t.Errorf("user list after disable = %q", out)
	}
	if _, err := ts.cli("", "user", "enable", "yan"); err != nil {
		t.Fatal(err)
	}
	ts.login("yan", "yan-new-password")
	if _, err := ts.cli("", "user", "delete", "yan"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.cli("", "user", "delete", "yan"); err == nil || !strings.Contains(describe(err), "no such user") {
		t.Errorf("deleting twice = %v", err)
	}
	if _, err := ts.cli("", "user", "list", "extra"); err == nil {
		t.Error("user list with an argument succeeded")
	}
}

// TestReservedUsernames: no account may be called what a fixed path
// segment is where a username stands (me: /users/me beside
// /users/{username}), through the API, the command line or an import.
func TestReservedUsernames(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	admin := jsonBody(bearer(ts.login("admin", ts.Admin)))
	res := ts.do(http.MethodPost, "/users", admin, strings.NewReader(`{"username":"ME","password":"me-password"}`))
	if res.Status != 400 || res.JSON(t)["field"] != "/username" || !strings.Contains(string(res.Body), "username me is reserved") {
		t.Errorf("POST /users for me = %d %s", res.Status, res.Body)
	}
	if _, err := ts.cli("me-password\n", "user", "add", "me"); err == nil || !strings.Contains(describe(err), "reserved") {
		t.Errorf("user add me: %v", err)
	}
	file := writeFile(t, "u.jsonl", `{"username": "me", "hashed_password": "`+johndoeHash+`"}`)
	if _, err := ts.cli("", "user", "import", file); err == nil || !strings.Contains(describe(err), "line 1: username me is reserved") {
		t.Errorf("importing me: %v", err)
	}
}
