package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/passflow/passflow/auth"
)

// loginRates measures password logins against their hash-bound limit:
// (hashing slots) / (one argon2id hash's time), both measured here in the
// same run. Then an overload: far more clients than slots and queue, to
// show the extra logins refused fast while the accepted ones keep the
// rate. Then a login's work besides hashing (client check, throttle,
// store reads and writes, signing), measured on a second server whose
// hashes cost next to nothing.
func loginRates(o options, bin, dir string, s *server) error {
	params := auth.OWASPArgon2id()
	slots := runtime.NumCPU() // serve's default --hash-concurrency
	alone, err := oneHash(params, 1)
	if err != nil {
		return err
	}
	hashTime, err := oneHash(params, slots)
	if err != nil {
		return err
	}
	limit := float64(slots) / hashTime.Seconds()
	fmt.Printf("\nlogins: argon2id %s, %d hashing slots; one hash takes %s alone and %s while %d run at once (medians, measured here)\n",
		params, slots, alone.Round(100*time.Microsecond), hashTime.Round(100*time.Microsecond), slots)
	fmt.Printf("  hash-bound limit: %d / %s = %.1f logins/s\n", slots, hashTime.Round(100*time.Microsecond), limit)

	form := url.Values{"grant_type": {"password"}, "username": {"loaduser"}, "password": {"load-password-1"}}
	if st := post(s.url+"/token", form); st != http.StatusOK { // warm-up
		return fmt.Errorf("login: %d", st)
	}
	gen := "built-in Go client"
	if _, err := exec.LookPath("wrk"); err == nil {
		gen = "wrk -t1"
	}
	fmt.Printf("  logins with %s, %s per row:\n", gen, o.roundTime)
	for _, conns := range []int{1, slots, 2 * slots, 4 * slots} {
		ok, p50, others, err := loginLoad(dir, s.url, form, conns, o.roundTime)
		if err != nil {
			return err
		}
		fmt.Printf("  %3d clients  %6.1f logins/s  %4.0f%% of the limit  p50 %s  %s\n",
			conns, ok, 100*ok/limit, p50.Round(time.Millisecond), others)
	}

	// Overload: more clients than slots and queue together.
	t := newTally()
	runFor(o.roundTime, o.flood, func(int) {
		start := time.Now()
		t.add(post(s.url+"/token", form), time.Since(start))
	})
	ok := float64(t.statuses[http.StatusOK]) / o.roundTime.Seconds()
	fmt.Printf("  overload, %d clients: %.1f logins/s accepted (%.0f%% of the limit); refused with 503: %d, in p50 %s\n",
		o.flood, ok, 100*ok/limit, t.statuses[http.StatusServiceUnavailable], t.pctOf(http.StatusServiceUnavailable, .5).Round(time.Millisecond))

	// The rest of a login: a server on its own database whose hashes are
	// argon2id at 64 KiB and one pass.
	const cheap = "m=64,t=1,p=1"
	cheapHash, err := oneHash(mustParams(cheap), 1)
	if err != nil {
		return err
	}
	db := filepath.Join(dir, "cheap-hash.db")
	add := exec.Command(bin, "user", "add", "loaduser", "--scopes", "data:read", "--db", db)
	add.Env = append(os.Environ(), "PASSFLOW_ARGON2ID_PARAMS="+cheap)
	add.Stdin = strings.NewReader("load-password-1\n")
	if out, err := add.CombinedOutput(); err != nil {
		return fmt.Errorf("user add: %v %s", err, out)
	}
	c, err := launch(serveCmd(bin, db, "--argon2id-params", cheap), "cheap-hash instance")
	if err != nil {
		return err
	}
	defer c.stop()
	for _, conns := range []int{1, slots} {
		t := newTally()
		runFor(o.roundTime, conns, func(int) {
			start := time.Now()
			t.add(post(c.url+"/token", form), time.Since(start))
		})
		fmt.Printf("  work besides the hash, %d client(s): p50 %s per login (its %s hash: %s), %.0f logins/s\n",
			conns, (t.pct(.5) - cheapHash).Round(10*time.Microsecond), cheap, cheapHash.Round(time.Microsecond),
			float64(t.statuses[http.StatusOK])/o.roundTime.Seconds())
	}
	return nil
}

// loginLoad logs in with conns clients for d, with wrk when it is
// installed (it costs the machine less than a Go client), and returns the
// rate of successful logins, the median latency, and the other answers.
func loginLoad(dir, base string, form url.Values, conns int, d time.Duration) (float64, time.Duration, string, error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		t := newTally()
		runFor(d, conns, func(int) {
			start := time.Now()
			t.add(post(base+"/token", form), time.Since(start))
		})
		return float64(t.statuses[http.StatusOK]) / d.Seconds(), t.pct(.5), t.others(http.StatusOK), nil
	}
	script := filepath.Join(dir, "login.lua")
	lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n", form.Encode())
	if err := os.WriteFile(script, []byte(lua), 0o600); err != nil {
		return 0, 0, "", err
	}
	out, err := exec.Command("wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s",
		"--latency", "-s", script, base+"/token").CombinedOutput()
	if err != nil {
		return 0, 0, "", fmt.Errorf("wrk: %v\n%s", err, out)
	}
	var others string
	if m := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindSubmatch(out); m != nil {
		others = "non-2xx: " + string(m[1])
	}
	m := regexp.MustCompile(`Requests/sec:\s+([\d.]+)`).FindSubmatch(out)
	if m == nil {
		return 0, 0, "", fmt.Errorf("wrk printed no rate:\n%s", out)
	}
	rate, _ := strconv.ParseFloat(string(m[1]), 64)
	if others != "" {
		return 0, 0, "", fmt.Errorf("logins failed under load (%s):\n%s", others, out)
	}
	var p50 time.Duration
	if m := regexp.MustCompile(`50%\s+([\d.]+)(us|ms|s)`).FindSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		p50 = time.Duration(v * float64(map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(m[2])]))
	}
	return rate, p50, "", nil
}

// oneHash is the median time of one argon2id verification with params
// while parallel of them run at once, as they do when every hashing slot
// is busy: they share the memory bandwidth, so each takes longer than one
// alone.
func oneHash(params auth.Argon2idParams, parallel int) (time.Duration, error) {
	h := auth.NewArgon2id(params)
	ctx := context.Background()
	encoded, err := h.Hash(ctx, "load-password-1")
	if err != nil {
		return 0, err
	}
	const each = 9
	times := make([]time.Duration, parallel*each)
	errs := make(chan error, parallel)
	for w := range parallel {
		go func() {
			for i := range each {
				start := time.Now()
				if ok, _, err := h.Verify(ctx, encoded, "load-password-1"); err != nil || !ok {
					errs <- fmt.Errorf("verify: %v %v", ok, err)
					return
				}
				times[w*each+i] = time.Since(start)
			}
			errs <- nil
		}()
	}
	for range parallel {
		if err := <-errs; err != nil {
			return 0, err
		}
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

func mustParams(s string) auth.Argon2idParams {
	p, err := auth.ParseArgon2idParams(s)
	if err != nil {
		panic(err)
	}
	return p
}
