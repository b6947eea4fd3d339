package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/passflow/passflow/auth"
)

// scaleRun is what one store size measured.
type scaleRun struct {
	users                      int
	importTime, startup        time.Duration
	login, firstPage, deepPage time.Duration
	reads                      float64
	rss                        string
}

// scale compares a store of 1,000 users with one of n: the bulk import's
// time, start-up, and then login latency, GET /users paging (the first page
// and one from the middle) and protected reads, each as a ratio of the
// small store's figure.
func scale(o options, bin, dir string, n int) error {
	hash, err := auth.NewArgon2id(auth.OWASPArgon2id()).Hash(context.Background(), "scale-password")
	if err != nil {
		return err
	}
	var runs []scaleRun
	for _, size := range []int{1000, n} {
		r, err := scaleOnce(o, bin, dir, hash, size)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	small, big := runs[0], runs[1]
	fmt.Printf("\nscale: %d users against 1,000 (every user holds the same argon2id hash; medians)\n", n)
	fmt.Printf("  %-34s %12s %12s %8s\n", "", "1,000", fmt.Sprint(n), "ratio")
	row := func(name string, a, b time.Duration) {
		fmt.Printf("  %-34s %12s %12s %7.2f×\n", name, a.Round(10*time.Microsecond), b.Round(10*time.Microsecond), float64(b)/float64(a))
	}
	row("bulk import (user import)", small.importTime, big.importTime)
	row("start-up (serve until it listens)", small.startup, big.startup)
	row("login (POST /token)", small.login, big.login)
	row("GET /users?limit=100", small.firstPage, big.firstPage)
	row("GET /users?limit=100&after=middle", small.deepPage, big.deepPage)
	fmt.Printf("  %-34s %10.0f/s %10.0f/s %7.2f×\n", "protected reads (GET /my_data)", small.reads, big.reads, big.reads/small.reads)
	fmt.Printf("  %-34s %12s %12s\n", "server memory (VmRSS) after", small.rss, big.rss)
	return nil
}

func scaleOnce(o options, bin, dir, hash string, n int) (scaleRun, error) {
	r := scaleRun{users: n}
	file := filepath.Join(dir, fmt.Sprintf("users-%d.jsonl", n))
	f, err := os.Create(file)
	if err != nil {
		return r, err
	}
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, `{"username":"user%07d","hashed_password":%q,"scopes":["data:read","data:write"]}`+"\n", i, hash)
	}
	if err := w.Flush(); err != nil {
		return r, err
	}
	f.Close()
	db := filepath.Join(dir, fmt.Sprintf("scale-%d.db", n))
	start := time.Now()
	if out, err := exec.Command(bin, "user", "import", file, "--db", db).CombinedOutput(); err != nil {
		return r, fmt.Errorf("user import: %v %s", err, out)
	}
	r.importTime = time.Since(start)
	os.Remove(file)

	start = time.Now()
	s, err := launch(serveCmd(bin, db), fmt.Sprintf("the server on %d users", n))
	if err != nil {
		return r, err
	}
	r.startup = time.Since(start)
	defer s.stop()

	middle := fmt.Sprintf("user%07d", n/2)
	form := url.Values{"grant_type": {"password"}, "username": {middle}, "password": {"scale-password"}}
	r.login, err = timed(10, func() error { return want(post(s.url+"/token", form), http.StatusOK, "login") })
	if err != nil {
		return r, err
	}
	admin, err := tokenFor(s.url, "admin", "load-admin-password")
	if err != nil {
		return r, err
	}
	page := func(q string) func() error {
		return func() error {
			body, st := get(s.url+"/users?"+q, admin)
			if st != http.StatusOK || strings.Count(body, `"username"`) != 100 {
				return fmt.Errorf("GET /users?%s = %d", q, st)
			}
			return nil
		}
	}
	if r.firstPage, err = timed(50, page("limit=100")); err != nil {
		return r, err
	}
	if r.deepPage, err = timed(50, page("limit=100&after="+middle)); err != nil {
		return r, err
	}
	user, err := tokenFor(s.url, middle, "scale-password")
	if err != nil {
		return r, err
	}
	for _, k := range []string{"alpha", "beta", "gamma"} {
		if st := do(http.MethodPut, s.url+"/my_data/"+k, user, `{"value":"value of `+k+`"}`); st/100 != 2 {
			return r, fmt.Errorf("PUT /my_data/%s: %d", k, st)
		}
	}
	t := &target{name: "passflow", url: s.url + "/my_data", token: user}
	if _, err := load(t, o.concurrency, time.Second); err != nil {
		return r, err
	}
	if r.reads, err = load(t, o.concurrency, o.roundTime); err != nil {
		return r, err
	}
	r.rss = s.memory()
	return r, nil
}

// timed runs fn n times, one after another, and returns the median time.
func timed(n int, fn func() error) (time.Duration, error) {
	times := make([]time.Duration, n)
	for i := range times {
		start := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		times[i] = time.Since(start)
	}
	slices.Sort(times)
	return times[n/2], nil
}

func want(got, status int, what string) error {
	if got != status {
		return fmt.Errorf("%s: %d, want %d", what, got, status)
	}
	return nil
}
