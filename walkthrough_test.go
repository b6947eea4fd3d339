//go:build firsthour

package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestWalkthrough runs README's walk-through: every shell block of its
// section, in order, as one script (set -euo pipefail), in a fresh copy of
// the module. The README cannot drift from what works.
func TestWalkthrough(t *testing.T) {
	runSection(t, "## Walk-through")
}

// TestMailWalkthrough runs README's section on sign-up and password reset
// by mail the same way: it starts its own mail catcher (mailpit, from
// tools/mailpit) and reads the mails through its API.
func TestMailWalkthrough(t *testing.T) {
	runSection(t, "## Sign-up and password reset by mail")
}

// runSection runs the shell blocks of one README section as one script.
func runSection(t *testing.T, heading string) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the walk-through needs %s (apt-get install -y %s)", tool, tool)
		}
	}
	// The walk-through serves on passflow's default address, as a reader
	// would.
	ln, err := net.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		t.Fatalf("127.0.0.1:8080, where the walk-through serves, is taken: %v", err)
	}
	ln.Close()

	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	script := walkthrough(t, string(readme), heading)
	dir := t.TempDir()
	copyModule(t, ".", dir)
	out, err := os.Create(filepath.Join(dir, "walkthrough.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", "set -euo pipefail\ntrap 'echo \"walk-through failed at line $LINENO: $BASH_COMMAND\" >&2' ERR\n"+script)
	cmd.Dir = dir
	// A file, not a pipe: the server the script starts in the background
	// keeps its output open after the script ends.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	runErr := cmd.Run()
	// Stop the server, and anything else the script left running.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	output, _ := os.ReadFile(out.Name())
	if runErr != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "passflow.log"))
		t.Fatalf("the walk-through failed: %v\n--- script ---\n%s\n--- output ---\n%s\n--- server log ---\n%s", runErr, script, output, log)
	}
	t.Logf("the walk-through ran, %d lines of shell:\n%s", strings.Count(script, "\n"), output)
}

// walkthrough returns the shell blocks of README's section under heading.
func walkthrough(t *testing.T, readme, heading string) string {
	t.Helper()
	start := strings.Index(readme, "\n"+heading)
	if start < 0 {
		t.Fatalf("README has no section %q", heading)
	}
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var script strings.Builder
	for _, block := range strings.Split(section, "```sh\n")[1:] {
		code, _, ok := strings.Cut(block, "\n```")
		if !ok {
			t.Fatal("an unclosed shell block in README's walk-through")
		}
		script.WriteString(code + "\n")
	}
	if script.Len() == 0 {
		t.Fatal("README's walk-through has no shell block")
	}
	return script.String()
}
