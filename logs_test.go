package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe to read while the sink writes.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) state() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.writes
}

// TestLogSink: access lines are written together, in order; any other
// line goes out at once, after them; nothing held is lost at Close.
func TestLogSink(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	s := newLogSink(&out, time.Hour) // only size, other lines and Close flush here
	access := s.Buffered()
	for i := range 100 {
		fmt.Fprintf(access, "access %d\n", i)
	}
	if got, writes := out.state(); got != "" || writes != 0 {
		t.Fatalf("access lines were written one by one: %d writes", writes)
	}
	fmt.Fprintf(s, "audit event\n")
	got, writes := out.state()
	if writes != 2 || !strings.HasPrefix(got, "access 0\n") || !strings.HasSuffix(got, "access 99\naudit event\n") {
		t.Errorf("after an audit line: %d writes of %q", writes, got)
	}
	line := strings.Repeat("x", 999) + "\n"
	for range 100 { // 100 KB: flushed by size
		access.Write([]byte(line))
	}
	if _, writes := out.state(); writes < 4 || writes > 6 {
		t.Errorf("100 KB of access lines took %d writes, want about 100 KB / %d", writes-2, logBufferSize)
	}
	fmt.Fprintf(access, "last access\n")
	s.Close()
	if got, _ := out.state(); !strings.HasSuffix(got, line+"last access\n") || strings.Count(got, line) != 100 {
		t.Errorf("Close lost held lines: %d of 100 long lines, ends %q", strings.Count(got, line), got[len(got)-20:])
	}

	var ticked lockedBuffer
	s2 := newLogSink(&ticked, 10*time.Millisecond)
	defer s2.Close()
	fmt.Fprintf(s2.Buffered(), "soon\n")
	if !within(time.Second, func() bool { got, _ := ticked.state(); return got == "soon\n" }) {
		t.Error("a held line was not written within a second")
	}
}
