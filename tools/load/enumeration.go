package main

import (
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"time"
)

// enumeration measures the answers an attacker could compare to learn
// whether an account exists: the same request for a known and an unknown
// account, alternating, with the server's real argon2id cost. It prints
// each pair's medians and their ratio, with the statuses.
func enumeration(o options, bin string, s *server) error {
	add := exec.Command(bin, "user", "add", "known", "--email", "known@example.com", "--db", o.db)
	add.Stdin = strings.NewReader("known-river-stone\n")
	if out, err := add.CombinedOutput(); err != nil {
		return fmt.Errorf("user add: %v %s", err, out)
	}
	form := func(v url.Values) func() (int, time.Duration) {
		return func() (int, time.Duration) {
			start := time.Now()
			st := post(s.url+"/token", v)
			return st, time.Since(start)
		}
	}
	jsonPost := func(path, body string) func() (int, time.Duration) {
		return func() (int, time.Duration) {
			start := time.Now()
			res, err := client.Post(s.url+path, "application/json", strings.NewReader(body))
			d := time.Since(start)
			if err != nil {
				return -1, d
			}
			res.Body.Close()
			return res.StatusCode, d
		}
	}
	const n = 30
	fmt.Printf("\nenumeration: the same request for a known and an unknown account, %d of each, alternating (medians)\n", n)
	for _, pair := range []struct {
		name           string
		known, unknown func() (int, time.Duration)
	}{
		{"POST /token, a wrong password",
			form(url.Values{"grant_type": {"password"}, "username": {"known"}, "password": {"wrong-river-stone"}}),
			form(url.Values{"grant_type": {"password"}, "username": {"unknown"}, "password": {"wrong-river-stone"}})},
		{"POST /password/forgot, a username",
			jsonPost("/password/forgot", `{"username":"known"}`), jsonPost("/password/forgot", `{"username":"unknown"}`)},
		{"POST /password/forgot, an email",
			jsonPost("/password/forgot", `{"email":"known@example.com"}`), jsonPost("/password/forgot", `{"email":"unknown@example.com"}`)},
	} {
		var known, unknown []time.Duration
		statuses := map[string]map[int]int{"known": {}, "unknown": {}}
		for range n {
			st, d := pair.known()
			known = append(known, d)
			statuses["known"][st]++
			st, d = pair.unknown()
			unknown = append(unknown, d)
			statuses["unknown"][st]++
		}
		k, u := medianDuration(known), medianDuration(unknown)
		fmt.Printf("  %-36s known %8s  unknown %8s  ratio %.2f   statuses known %v, unknown %v\n",
			pair.name, k.Round(10*time.Microsecond), u.Round(10*time.Microsecond), float64(k)/float64(u), statuses["known"], statuses["unknown"])
	}
	return nil
}

func medianDuration(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs))
}
