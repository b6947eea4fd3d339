package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passflow/passflow/store/sqlite"
)

// FastAPI's own sample users (docs_src/security/tutorial005.py): johndoe's
// password is "secret", alice's "secretalice"; passlib bcrypt hashes.
const (
	johndoeHash = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW"
	aliceHash   = "$2b$12$gSvqqUPvlXP2tfVFaWK1Be7DlH.PKZbv5H8KnzzVgXXbVxpva.pFm"
)

const fastapiUsersJSONL = `{"username": "johndoe", "full_name": "John Doe", "email": "johndoe@example.com", "hashed_password": "` + johndoeHash + `", "disabled": false, "scopes": ["data:read"]}
{"username": "alice", "full_name": "Alice Chains", "email": "alicechains@example.com", "hashed_password": "` + aliceHash + `", "disabled": true}
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func storedHash(t *testing.T, db, username string) string {
	t.Helper()
	st, err := sqlite.Open(context.Background(), db, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.UserByUsername(context.Background(), username)
	if err != nil {
		t.Fatal(err)
	}
	return u.PasswordHash
}

// TestImportFromFastAPI imports FastAPI's sample users with their passlib
// bcrypt hashes: they log in with their old passwords, and the first
// login re-hashes to argon2id.
func TestImportFromFastAPI(t *testing.T) {
	t.Parallel()
	ts := startServerHashingForReal(t)
	out, err := ts.cli("", "user", "import", writeFile(t, "users.jsonl", fastapiUsersJSONL))
	if err != nil || !strings.Contains(out, "imported 2 users") {
		t.Fatalf("user import = %v %q", err, out)
	}
	if got := storedHash(t, ts.DB, "johndoe"); got != johndoeHash {
		t.Fatalf("stored hash = %q, want the imported bcrypt hash", got)
	}
	tok := ts.login("johndoe", "secret")
	if _, p := claims(t, tok); p["scope"] != "data:read" {
		t.Errorf("scope = %v", p["scope"])
	}
	if got := storedHash(t, ts.DB, "johndoe"); !strings.HasPrefix(got, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("after login the hash is %q, want argon2id with the current parameters", got)
	}
	ts.login("johndoe", "secret") // the new hash verifies too
	if res := ts.postForm("/token", "grant_type=password&username=johndoe&password=wrong", nil); res.Status != 400 {
		t.Errorf("wrong password = %d", res.Status)
	}
	// A disabled account answers as a wrong password does.
	if res := ts.postForm("/token", "grant_type=password&username=alice&password=secretalice", nil); res.Status != 400 ||
		string(res.Body) != `{"error":"invalid_grant","error_description":"wrong username or password"}` {
		t.Errorf("disabled alice = %d %s", res.Status, res.Body)
	}
}

func TestImportCSV(t *testing.T) {
	t.Parallel()
	ts := startServerHashingForReal(t)
	csv := "username,hashed_password,scopes,disabled\n" +
		"JohnDoe," + johndoeHash + ",data:read data:write,false\n" +
		"\"carla\"," + aliceHash + ",,\n"
	if out, err := ts.cli("", "user", "import", writeFile(t, "users.csv", csv)); err != nil {
		t.Fatalf("import csv = %v %q", err, out)
	}
	tok := ts.login("johndoe", "secret")
	if _, p := claims(t, tok); p["scope"] != "data:read data:write" {
		t.Errorf("scope = %v", p["scope"])
	}
	ts.login("carla", "secretalice")
}

// TestImportIsAllOrNothing: any bad row names its line and nothing is
// imported.
func TestImportIsAllOrNothing(t *testing.T) {
	t.Parallel()
	ts := startServerHashingForReal(t)
	good := `{"username": "ok1", "hashed_password": "` + johndoeHash + `"}` + "\n"
	tests := map[string]struct{ file, content, want string }{
		"bad hash":        {"u.jsonl", good + `{"username": "ok2", "hashed_password": "5f4dcc3b5aa765d61d8327deb882cf99"}`, "line 2: hashed_password: not an argon2id or bcrypt hash"},
		"bcrypt too slow": {"u.jsonl", good + `{"username": "ok2", "hashed_password": "$2b$13$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW"}`, "line 2: hashed_password: bcrypt cost 13 is above 12"},
		// 4 × 19 MiB is the limit; 80 MiB would make every login on it dear.
		"argon2id memory":  {"u.jsonl", good + `{"username": "ok2", "hashed_password": "$argon2id$v=19$m=81920,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"}`, "line 2: hashed_password: argon2id memory (KiB) 81920 is above this server's limit of 77824"},
		"argon2id time":    {"u.jsonl", good + `{"username": "ok2", "hashed_password": "$argon2id$v=19$m=19456,t=9,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"}`, "line 2: hashed_password: argon2id passes 9 is above this server's limit of 8"},
		"argon2id both":    {"u.jsonl", good + `{"username": "ok2", "hashed_password": "$argon2id$v=19$m=65536,t=4,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"}`, "line 2: hashed_password: argon2id memory × passes 262144 is above this server's limit of 155648"},
		"unknown scope":    {"u.jsonl", good + `{"username": "ok2", "hashed_password": "` + johndoeHash + `", "scopes": ["me"]}`, "line 2: unknown scope"},
		"duplicate name":   {"u.jsonl", good + `{"username": "OK1", "hashed_password": "` + johndoeHash + `"}`, "line 2: username ok1 is also on line 1"},
		"taken name":       {"u.jsonl", good + `{"username": "admin", "hashed_password": "` + johndoeHash + `"}`, "line 2: username admin is taken"},
		"bad name":         {"u.jsonl", good + `{"username": "a b", "hashed_password": "` + johndoeHash + `"}`, "line 2: username is not allowed"},
		"missing field":    {"u.jsonl", good + `{"username": "ok2"}`, "line 2: username and hashed_password are required"},
		"not JSON":         {"u.jsonl", good + `username=ok2`, "line 2: not a JSON object"},
		"csv bad disabled": {"u.csv", "username,hashed_password,disabled\nok1," + johndoeHash + ",maybe\n", "line 2: disabled must be true or false"},
		"csv no header":    {"u.csv", "ok1," + johndoeHash + "\n", "the header has no username column"},
		"other extension":  {"u.txt", good, "must end in .jsonl or .csv"},
	}
	for name, tt := range tests {
		_, err := ts.cli("", "user", "import", writeFile(t, tt.file, tt.content))
		if err == nil || !strings.Contains(describe(err), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tt.want)
			continue
		}
		if !strings.Contains(describe(err), "nothing was imported") {
			t.Errorf("%s: %v does not say nothing was imported", name, err)
		}
	}
	if out, _ := ts.cli("", "user", "list"); strings.Contains(out, "ok1") {
		t.Errorf("a failed import left users behind:\n%s", out)
	}
}
