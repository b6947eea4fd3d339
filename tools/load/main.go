// Command load drives passflow with a login flood and then a mixed load of
// protected calls, and prints throughput, latency, answers by status and
// each instance's peak memory.
//
// It builds passflow, starts the instances itself on one database (a new
// SQLite file unless --db says otherwise) and stops them at the end:
//
//	go run ./tools/load                                  # one instance, SQLite
//	go run ./tools/load --instances 2 --db postgres://…  # two instances, one database
//	go run ./tools/load --compare                        # protected reads beside a bare gin peer and FastAPI
//	go run ./tools/load --logins                         # logins against the hash-bound limit
//	go run ./tools/load --scale 1000000                  # 1,000,000 users against 1,000
//	go run ./tools/load --enumeration                    # known and unknown accounts, side by side
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "serve-bare" {
		if err := serveBare(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "bare peer:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type options struct {
	instances   int
	db          string
	flood       int
	floodTime   time.Duration
	concurrency int
	mixedTime   time.Duration
	hostile     int
	keep        bool

	compare        bool
	logins         bool
	scale          int
	enumeration    bool
	rounds         int
	roundTime      time.Duration
	fastapiWorkers int
}

func run() error {
	var o options
	flag.IntVar(&o.instances, "instances", 1, "passflow instances to start on the one database")
	flag.StringVar(&o.db, "db", "", "database for every instance (default: a new SQLite file)")
	flag.IntVar(&o.flood, "flood", 200, "concurrent logins in the login flood")
	flag.DurationVar(&o.floodTime, "flood-time", 10*time.Second, "how long the login flood lasts")
	flag.IntVar(&o.concurrency, "concurrency", 32, "concurrent clients in the mixed load")
	flag.DurationVar(&o.mixedTime, "mixed-time", 15*time.Second, "how long the mixed load lasts")
	flag.IntVar(&o.hostile, "hostile", 0, "first send this many requests with random 60 KB methods and paths, and report what they cost (memory, metrics, log)")
	flag.BoolVar(&o.compare, "compare", false, "instead of the flood and the mixed load, measure GET /my_data beside a bare gin peer doing the same read and FastAPI's OAuth2 recipe, and print the ratios")
	flag.BoolVar(&o.logins, "logins", false, "instead of the flood and the mixed load, measure login throughput against the hash-bound limit, an overload, and a login's work besides hashing")
	flag.BoolVar(&o.enumeration, "enumeration", false, "instead of the flood and the mixed load, compare the answers for known and unknown accounts at /token and /password/forgot")
	flag.IntVar(&o.scale, "scale", 0, "instead of the flood and the mixed load, import this many users (and 1,000) into new stores and compare import, start-up, login, paging and protected reads")
	flag.IntVar(&o.rounds, "rounds", 3, "with --compare: rounds per target (the median is reported)")
	flag.DurationVar(&o.roundTime, "round-time", 5*time.Second, "with --compare and --logins: how long each round lasts")
	flag.IntVar(&o.fastapiWorkers, "fastapi-workers", 1, "with --compare: uvicorn workers of the FastAPI peer (1, as FastAPI's tutorial runs it)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "passflow-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.db == "" {
		o.db = filepath.Join(dir, "load.db")
	}
	bin := filepath.Join(dir, "passflow")
	fmt.Printf("building passflow…\n")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}

	var servers []*server
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	for i := range o.instances {
		s, err := start(bin, o.db, i)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	fmt.Printf("%d instance(s) on %s: %s\n", len(servers), redact(o.db), strings.Join(urls(servers), " "))

	cli := exec.Command(bin, "user", "add", "loaduser", "--scopes", "data:read,data:write", "--db", o.db)
	cli.Stdin = strings.NewReader("load-password-1\n")
	if out, err := cli.CombinedOutput(); err != nil && !strings.Contains(string(out), "taken") {
		return fmt.Errorf("user add: %v %s", err, out)
	}

	if o.compare {
		return compare(o, servers[0], dir)
	}
	if o.logins {
		return loginRates(o, bin, dir, servers[0])
	}
	if o.enumeration {
		return enumeration(o, bin, servers[0])
	}
	if o.scale > 0 {
		return scale(o, bin, dir, o.scale)
	}
	if o.hostile > 0 {
		if err := hostile(servers[0], o.hostile); err != nil {
			return err
		}
	}

	// Phase 1: a login flood.
	flood := newTally()
	runFor(o.floodTime, o.flood, func(i int) {
		s := servers[i%len(servers)]
		start := time.Now()
		status := post(s.url+"/token", url.Values{"grant_type": {"password"}, "username": {"loaduser"}, "password": {"load-password-1"}})
		flood.add(status, time.Since(start))
	})
	flood.print("login flood", o.flood, o.floodTime)

	// Phase 2: mixed protected calls with a pool of logged-in clients.
	tokens := make([]string, o.concurrency)
	for i := range tokens {
		s := servers[i%len(servers)]
		tok, err := login(s.url)
		if err != nil {
			return err
		}
		tokens[i] = tok
	}
	mixed := newTally()
	runFor(o.mixedTime, o.concurrency, func(i int) {
		s := servers[rand.IntN(len(servers))]
		tok := tokens[i%len(tokens)]
		start := time.Now()
		var status int
		switch r := rand.IntN(100); {
		case r < 80:
			status = do(http.MethodGet, s.url+"/my_data", tok, "")
		case r < 95:
			status = do(http.MethodPut, s.url+"/my_data/key-"+strconv.Itoa(i%50), tok, `{"value":"v`+strconv.Itoa(rand.IntN(1000))+`"}`)
		default:
			status = do(http.MethodGet, s.url+"/users/me", tok, "")
		}
		mixed.add(status, time.Since(start))
	})
	mixed.print("mixed protected calls (80% GET /my_data, 15% PUT /my_data/{key}, 5% GET /users/me)", o.concurrency, o.mixedTime)

	for _, s := range servers {
		fmt.Printf("instance %s: peak memory (VmHWM) %s\n", s.url, s.peakMemory())
	}
	return nil
}

func redact(db string) string {
	if u, err := url.Parse(db); err == nil && u.User != nil {
		u.User = url.User(u.User.Username())
		return u.String()
	}
	return db
}

type server struct {
	cmd      *exec.Cmd
	url      string
	logBytes atomic.Int64
}

var servingRe = regexp.MustCompile(`msg=serving addr=(\S+)`)

func start(bin, db string, i int) (*server, error) {
	return launch(serveCmd(bin, db), fmt.Sprintf("instance %d", i))
}

// serveCmd is passflow serving db on a free port, its login limits out of
// the load's way, with the admin password load-admin-password.
func serveCmd(bin, db string, flags ...string) *exec.Cmd {
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db,
		"--login-max-failures", "1000000", "--login-max-failures-per-user", "1000000", "--login-max-failures-per-ip", "1000000"}, flags...)...)
	cmd.Env = append(os.Environ(), "PASSFLOW_ADMIN_PASSWORD=load-admin-password")
	return cmd
}

// launch starts cmd and waits for it to log the address it serves on.
func launch(cmd *exec.Cmd, name string) (*server, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	s := &server{cmd: cmd}
	go func() {
		// Lines are read until the one naming the address; the rest of the
		// log is only counted, so that reading it costs the machine next to
		// nothing while the server is measured.
		r := bufio.NewReaderSize(stderr, 64<<10)
		for {
			line, err := r.ReadString('\n')
			s.logBytes.Add(int64(len(line)))
			if m := servingRe.FindStringSubmatch(line); m != nil {
				addr <- m[1]
				break
			}
			if err != nil {
				return
			}
		}
		io.Copy(counter{&s.logBytes}, r)
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
		return s, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not start", name)
	}
}

// counter counts the bytes written to it.
type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
	}
}

// peakMemory reads the instance's peak resident set size from /proc.
func (s *server) peakMemory() string { return s.status("VmHWM:") }

// memory reads the instance's resident set size from /proc.
func (s *server) memory() string { return s.status("VmRSS:") }

func (s *server) status(field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			return strings.TrimSpace(strings.TrimPrefix(line, field))
		}
	}
	return "unknown"
}

// hostile sends n requests whose methods and paths are random and 60 KB
// long, 16 at a time over raw connections, and reports what they cost the
// server: its memory, the size of one metrics scrape, its log.
func hostile(s *server, n int) error {
	before, logBefore := s.memory(), s.logBytes.Load()
	addr := strings.TrimPrefix(s.url, "http://")
	junk := func(size int) string {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte('A' + rand.IntN(26))
		}
		return string(b)
	}
	var failed atomic.Int64
	runN(n, 16, func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			failed.Add(1)
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "%s /%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", junk(60000), junk(rand.IntN(2000)))
		if res, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		} else {
			failed.Add(1)
		}
	})
	res, err := client.Get(s.url + "/metrics")
	if err != nil {
		return err
	}
	scrape, _ := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	time.Sleep(200 * time.Millisecond) // let the log drain
	logged := s.logBytes.Load() - logBefore
	fmt.Printf("\nhostile requests: %d with random 60 KB methods and paths (%d failed)\n", n, failed.Load())
	fmt.Printf("  memory     RSS %s before, %s after\n", before, s.memory())
	fmt.Printf("  metrics    one /metrics scrape after: %d bytes\n", scrape)
	fmt.Printf("  log        %d bytes for them (%d per request)\n", logged, logged/int64(n))
	return nil
}

// runN calls fn n times on workers goroutines.
func runN(n, workers int, fn func()) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				fn()
			}
		}()
	}
	wg.Wait()
}

func urls(ss []*server) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.url)
	}
	return out
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}, Timeout: 30 * time.Second}

func post(u string, form url.Values) int {
	res, err := client.PostForm(u, form)
	if err != nil {
		return -1
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// postBody posts form to u and returns the answer's body and status.
func postBody(u string, form url.Values) (string, int) {
	res, err := client.PostForm(u, form)
	if err != nil {
		return err.Error(), -1
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b), res.StatusCode
}

func do(method, u, token, body string) int {
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		return -1
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// login logs the load user in and returns its access token.
func login(base string) (string, error) { return tokenFor(base, "loaduser", "load-password-1") }

var accessTokenRe = regexp.MustCompile(`"access_token":"([^"]+)"`)

// tokenFor logs name in and returns its access token, trying again while
// the server is overloaded (503).
func tokenFor(base, name, password string) (string, error) {
	for range 50 {
		body, st := postBody(base+"/token", url.Values{"grant_type": {"password"}, "username": {name}, "password": {password}})
		if m := accessTokenRe.FindStringSubmatch(body); st == http.StatusOK && m != nil {
			return m[1], nil
		}
		if st != http.StatusServiceUnavailable {
			return "", fmt.Errorf("login as %s: %d", name, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("login as %s: overloaded", name)
}

// runFor runs n workers calling fn until d has passed.
func runFor(d time.Duration, n int, fn func(worker int)) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

type tally struct {
	mu       sync.Mutex
	statuses map[int]int
	lat      []time.Duration
	status   []int // of each latency
	n        atomic.Int64
}

func newTally() *tally { return &tally{statuses: map[int]int{}} }

func (t *tally) add(status int, d time.Duration) {
	t.n.Add(1)
	t.mu.Lock()
	t.statuses[status]++
	t.lat = append(t.lat, d)
	t.status = append(t.status, status)
	t.mu.Unlock()
}

// pct is the p-th latency percentile.
func (t *tally) pct(p float64) time.Duration {
	slices.Sort(t.lat)
	if len(t.lat) == 0 {
		return 0
	}
	return t.lat[int(p*float64(len(t.lat)-1))]
}

// pctOf is the p-th latency percentile of the answers with one status.
func (t *tally) pctOf(status int, p float64) time.Duration {
	var lat []time.Duration
	for i, st := range t.status {
		if st == status {
			lat = append(lat, t.lat[i])
		}
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return 0
	}
	return lat[int(p*float64(len(lat)-1))]
}

// others names the answers other than status, if any.
func (t *tally) others(status int) string {
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(t.statuses)) {
		if s != status {
			parts = append(parts, fmt.Sprintf("%d: %d", s, t.statuses[s]))
		}
	}
	return strings.Join(parts, ", ")
}

func (t *tally) print(name string, clients int, d time.Duration) {
	pct := t.pct
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(t.statuses)) {
		label := strconv.Itoa(s)
		if s == -1 {
			label = "transport error"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", label, t.statuses[s]))
	}
	fmt.Printf("\n%s, %d clients for %s\n", name, clients, d)
	fmt.Printf("  requests   %d (%.0f/s)\n", t.n.Load(), float64(t.n.Load())/d.Seconds())
	fmt.Printf("  by status  %s\n", strings.Join(parts, ", "))
	fmt.Printf("  latency    p50 %s  p90 %s  p99 %s  max %s\n",
		pct(.5).Round(time.Microsecond), pct(.9).Round(time.Microsecond), pct(.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
}
