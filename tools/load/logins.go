package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
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
	hashTime, err := oneHash(params)
	if err != nil {
		return err
	}
	slots := runtime.NumCPU() // serve's default --hash-concurrency
	limit := float64(slots) / hashTime.Seconds()
	fmt.Printf("\nlogins: argon2id %s, one hash %s (median of 15, measured here), %d hashing slots: limit %.1f logins/s\n",
		params, hashTime.Round(100*time.Microsecond), slots, limit)

	form := url.Values{"grant_type": {"password"}, "username": {"loaduser"}, "password": {"load-password-1"}}
	if st := post(s.url+"/token", form); st != http.StatusOK { // warm-up
		return fmt.Errorf("login: %d", st)
	}
	for _, conns := range []int{1, slots, 2 * slots, 4 * slots} {
		t := newTally()
		runFor(o.roundTime, conns, func(int) {
			start := time.Now()
			t.add(post(s.url+"/token", form), time.Since(start))
		})
		ok := float64(t.statuses[http.StatusOK]) / o.roundTime.Seconds()
		fmt.Printf("  %3d clients  %6.1f logins/s  %4.0f%% of the limit  p50 %s  %s\n",
			conns, ok, 100*ok/limit, t.pct(.5).Round(time.Millisecond), t.others(http.StatusOK))
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
	cheapHash, err := oneHash(mustParams(cheap))
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
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--db", db, "--argon2id-params", cheap,
		"--login-max-failures", "1000000", "--login-max-failures-per-user", "1000000", "--login-max-failures-per-ip", "1000000")
	cmd.Env = append(os.Environ(), "PASSFLOW_ADMIN_PASSWORD=load-admin-password")
	c, err := launch(cmd, "cheap-hash instance")
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

// oneHash is the median time of one argon2id verification with params.
func oneHash(params auth.Argon2idParams) (time.Duration, error) {
	h := auth.NewArgon2id(params)
	ctx := context.Background()
	encoded, err := h.Hash(ctx, "load-password-1")
	if err != nil {
		return 0, err
	}
	times := make([]time.Duration, 15)
	for i := range times {
		start := time.Now()
		if ok, _, err := h.Verify(ctx, encoded, "load-password-1"); err != nil || !ok {
			return 0, fmt.Errorf("verify: %v %v", ok, err)
		}
		times[i] = time.Since(start)
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
