package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUserAdd(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "p.db")

	// Flags after NAME, and before it.
	if out, err := runCLI(t, nil, "kim-password\n", "user", "add", "Kim", "--scopes", "data:read", "--db", db); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	} else if !strings.Contains(out, `added user kim with scopes "data:read"`) {
		t.Errorf("output = %q", out)
	}
	if out, err := runCLI(t, nil, "lee-password\r\n", "user", "add", "--db", db, "--scopes", "data:read, data:write", "lee"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	} else if !strings.Contains(out, `"data:read data:write"`) {
		t.Errorf("output = %q", out)
	}
	// The env names the database too.
	if out, err := runCLI(t, map[string]string{"PASSFLOW_DB": db}, "mo-harbour-lamp\n", "user", "add", "mo"); err != nil {
		t.Fatalf("user add with PASSFLOW_DB: %v\n%s", err, out)
	}

	const secret = "short"
	tests := []struct {
		name    string
		stdin   string
		args    []string
		wantErr string
	}{
		{name: "no name", stdin: "some-password\n", args: []string{"user", "add"}, wantErr: "takes one argument, NAME"},
		{name: "two names", stdin: "some-password\n", args: []string{"user", "add", "a", "b"}, wantErr: "takes one argument, NAME"},
		{name: "taken, in another case", stdin: "some-password\n", args: []string{"user", "add", "KIM"}, wantErr: "username is taken"},
		{name: "rejected name", stdin: "some-password\n", args: []string{"user", "add", "a b"}, wantErr: "username is not allowed"},
		{name: "short password", stdin: secret + "\n", args: []string{"user", "add", "nia"}, wantErr: "at least 8 characters"},
		{name: "common password", stdin: "iloveyou1\n", args: []string{"user", "add", "nia"}, wantErr: "too easy to guess (strength 1 of 4, at least 2 needed): it is or contains a common password"},
		{name: "a higher bar", stdin: "iloveyou1\n", args: []string{"user", "add", "nia", "--password-min-score", "3"}, wantErr: "at least 3 needed"},
		{name: "bad policy", stdin: "some-password\n", args: []string{"user", "add", "nia", "--password-min-length", "6"}, wantErr: "--password-min-length must be from 8 to 256"},
		{name: "long password", stdin: strings.Repeat("p", 1100) + "\n", args: []string{"user", "add", "nia"}, wantErr: "at most 1024 bytes"},
		{name: "no password", stdin: "", args: []string{"user", "add", "nia"}, wantErr: "no password on stdin"},
		{name: "unknown scope", stdin: "some-password\n", args: []string{"user", "add", "nia", "--scopes", "root"}, wantErr: "unknown scope"},
		{name: "unknown flag", stdin: "some-password\n", args: []string{"user", "add", "nia", "--admin"}, wantErr: "flag provided but not defined: -admin"},
		{name: "unknown subcommand", args: []string{"user", "frobnicate"}, wantErr: "unknown subcommand"},
		{name: "unknown command", args: []string{"frobnicate"}, wantErr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append(tt.args, "--db", db)
			out, err := runCLI(t, nil, tt.stdin, args...)
			if err == nil {
				t.Fatalf("no error; output %q", out)
			}
			msg := describe(err)
			if !strings.Contains(msg, tt.wantErr) || strings.Contains(msg, "\n") {
				t.Errorf("error = %q, want one line containing %q", msg, tt.wantErr)
			}
			if strings.Contains(msg, secret) || strings.Contains(out, secret) {
				t.Errorf("the password is repeated: %q %q", msg, out)
			}
		})
	}
}

func TestServeSettingErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{name: "bad env duration", env: map[string]string{"PASSFLOW_ACCESS_TOKEN_TTL": "soon"}, wantErr: `PASSFLOW_ACCESS_TOKEN_TTL: "soon" is not a duration such as 15m`},
		{name: "bad flag duration", args: []string{"--access-token-ttl", "soon"}, wantErr: `--access-token-ttl: "soon" is not a duration such as 15m`},
		{name: "bad flag number", args: []string{"--hash-queue", "many"}, wantErr: `--hash-queue: "many" is not a whole number`},
		{name: "bad flag boolean", args: []string{"--public-clients=maybe"}, wantErr: `--public-clients: "maybe" is not true or false`},
		{name: "flag beats env", env: map[string]string{"PASSFLOW_ACCESS_TOKEN_TTL": "1m"}, args: []string{"--access-token-ttl", "0s"}, wantErr: "--access-token-ttl must be at least 1s"},
		{name: "unsupported alg", args: []string{"--signing-alg", "none"}, wantErr: "not supported"},
		{name: "bad issuer", args: []string{"--issuer", "localhost"}, wantErr: "--issuer must be"},
		{name: "stray argument", args: []string{"now"}, wantErr: "serve: takes no arguments"},
		{name: "common admin password", env: map[string]string{"PASSFLOW_ADMIN_PASSWORD": "Password123"}, args: []string{"--addr", "127.0.0.1:0"}, wantErr: "too easy to guess"},
		{name: "short admin password", env: map[string]string{"PASSFLOW_ADMIN_PASSWORD": "short"}, args: []string{"--addr", "127.0.0.1:0"}, wantErr: "at least 8 characters"},
		{name: "unreachable postgres", args: []string{"--db", "postgres://nobody@127.0.0.1:1/x"}, wantErr: "postgres: connect to nobody@127.0.0.1/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"serve", "--db", filepath.Join(t.TempDir(), "p.db")}, tt.args...)
			_, err := runCLI(t, tt.env, "", args...)
			if err == nil || !strings.Contains(describe(err), tt.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	out, err := runCLI(t, nil, "", "serve", "-h")
	if err != nil || !strings.Contains(out, "usage: passflow serve [flags]") || !strings.Contains(out, "--access-token-ttl") ||
		!strings.Contains(out, "$PASSFLOW_ACCESS_TOKEN_TTL") {
		t.Errorf("serve -h = %v, %q", err, out)
	}
	// A group's -h lists its subcommands.
	for group, want := range map[string][]string{
		"user":   {"passflow user add NAME", "passflow user list", "passflow user import FILE"},
		"client": {"passflow client add ID", "passflow client list", "passflow client delete ID"},
		"keys":   {"passflow keys rotate", "passflow keys list"},
	} {
		out, err := runCLI(t, nil, "", group, "-h")
		for _, w := range want {
			if err != nil || !strings.Contains(out, w) {
				t.Errorf("%s -h = %v, %q; want it to list %q", group, err, out, w)
			}
		}
		if strings.Contains(out, "passflow serve") {
			t.Errorf("%s -h lists other commands: %q", group, out)
		}
	}
	// A subcommand's -h shows its own synopsis and flags.
	out, err = runCLI(t, nil, "", "user", "list", "-h")
	if err != nil || !strings.Contains(out, "usage: passflow user list [flags]") || strings.Contains(out, "--scopes") {
		t.Errorf("user list -h = %v, %q", err, out)
	}
	out, err = runCLI(t, nil, "", "user", "add", "-h")
	if err != nil || !strings.Contains(out, "usage: passflow user add NAME [flags]") || !strings.Contains(out, "--scopes") {
		t.Errorf("user add -h = %v, %q", err, out)
	}
	if out, err := runCLI(t, nil, "", "help"); err != nil || !strings.Contains(out, "passflow keys rotate") {
		t.Errorf("help = %v, %q", err, out)
	}
	if _, err := runCLI(t, nil, ""); err == nil {
		t.Error("no command: want an error")
	}
	if _, err := runCLI(t, nil, "", "user"); err == nil || !strings.Contains(err.Error(), "missing subcommand") {
		t.Errorf("user alone: %v", err)
	}
}

// TestAdminBootstrap: with no admin password configured and stderr not a
// terminal, the generated password goes to a 0600 file beside the database,
// never to the log, and works; a restart creates nothing new.
func TestAdminBootstrap(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "p.db")
	ts := startServerOn(t, db, map[string]string{})
	file := db + ".admin-password"
	info, err := os.Stat(file)
	if err != nil {
		t.Fatalf("no admin password file: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("password file mode = %v, want 0600", info.Mode().Perm())
	}
	b, _ := os.ReadFile(file)
	pw := strings.TrimSpace(string(b))
	if len(pw) < 16 {
		t.Fatalf("generated password %d characters long", len(pw))
	}
	if logs := ts.logs.String(); strings.Contains(logs, pw) || !strings.Contains(logs, file) {
		t.Errorf("the log must name the file and not hold the password:\n%s", logs)
	}
	ts.login("admin", pw)
	ts.stop()

	os.Remove(file)
	again := startServerOn(t, db, map[string]string{"PASSFLOW_ADMIN_PASSWORD": "ignored-password"})
	if _, err := os.Stat(file); err == nil {
		t.Error("a restart wrote a new password file")
	}
	again.login("admin", pw)
	if res := again.postForm("/token", "grant_type=password&username=admin&password=ignored-password", nil); res.Status != 400 {
		t.Errorf("PASSFLOW_ADMIN_PASSWORD must be ignored once admin exists; login with it = %d", res.Status)
	}
	if !strings.Contains(again.logs.String(), "the admin password setting is ignored") {
		t.Error("the log does not say the admin password setting was ignored")
	}
}

// TestAdminPasswordFileIsNeverReused: the generated password goes only to
// a new file; an existing one, or a link, stops the server with one line
// naming it, and nothing is created.
func TestAdminPasswordFileIsNeverReused(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"file", "link"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			db := filepath.Join(dir, "p.db")
			file, target := db+".admin-password", filepath.Join(dir, "elsewhere")
			if err := os.WriteFile(target, []byte("untouched\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if kind == "file" {
				os.Rename(target, file)
				target = file
			} else if err := os.Symlink(target, file); err != nil {
				t.Fatal(err)
			}
			_, err := runCLI(t, nil, "", "serve", "--addr", "127.0.0.1:0", "--db", db)
			if msg := describe(err); err == nil || !strings.Contains(msg, file+" exists") || strings.Contains(msg, "\n") {
				t.Errorf("serve beside an existing %s: %v", kind, err)
			}
			if b, _ := os.ReadFile(target); string(b) != "untouched\n" {
				t.Errorf("the %s was written to: %q", kind, b)
			}
			if out, _ := runCLI(t, nil, "", "user", "list", "--db", db); strings.Contains(out, "admin") {
				t.Errorf("admin was created without a password anyone can read:\n%s", out)
			}
		})
	}
}
