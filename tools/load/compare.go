package main

// --compare: passflow's protected read beside peers doing the same work —
// a bare gin route reading the same SQLite file with the same driver and
// pool, and FastAPI's OAuth2 JWT recipe — measured in one run, alternating,
// and printed as ratios.

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
	_ "modernc.org/sqlite"
)

//go:embed fastapi_peer.py
var fastapiPeer []byte

// peerPoolSize is the bare peer's pool: passflow's --db-max-conns default.
const peerPoolSize = 10

// target is one server the comparison loads.
type target struct {
	name, url, token string
	rates            []float64
}

func compare(o options, passflow *server, dir string) error {
	token, err := login(passflow.url)
	if err != nil {
		return err
	}
	for _, k := range []string{"alpha", "beta", "gamma"} {
		if st := do(http.MethodPut, passflow.url+"/my_data/"+k, token, `{"value":"value of `+k+`"}`); st/100 != 2 {
			return fmt.Errorf("PUT /my_data/%s: %d", k, st)
		}
	}
	targets := []*target{{name: "passflow", url: passflow.url + "/my_data", token: token}}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	bare, err := launch(exec.Command(self, "serve-bare", o.db), "bare gin peer")
	if err != nil {
		return err
	}
	defer bare.stop()
	targets = append(targets, &target{name: "bare gin", url: bare.url + "/my_data"})

	workers := o.fastapiWorkers
	fastapi, ftoken, err := startFastAPI(dir, o.db, workers)
	switch {
	case errors.Is(err, errNoFastAPI):
		fmt.Println("FastAPI peer skipped: it needs Debian's python3-fastapi, uvicorn, python3-jose and python3-multipart")
	case err != nil:
		return err
	default:
		defer fastapi.stop()
		targets = append(targets, &target{name: fmt.Sprintf("FastAPI (uvicorn ×%d)", workers), url: fastapi.url + "/my_data", token: ftoken})
	}

	// Every target must answer the same three items before it is measured.
	for _, t := range targets {
		body, status := get(t.url, t.token)
		if status != 200 || strings.Count(body, `"key"`) != 3 {
			return fmt.Errorf("%s: GET /my_data = %d %s", t.name, status, body)
		}
	}

	gen := "built-in Go client"
	if _, err := exec.LookPath("wrk"); err == nil {
		gen = "wrk -t1"
	}
	fmt.Printf("\nprotected reads: GET /my_data (3 items), %d connections, %s, %d rounds of %s per target, alternating\n",
		o.concurrency, gen, o.rounds, o.roundTime)
	for _, t := range targets {
		if _, err := load(t, o.concurrency, time.Second); err != nil { // warm-up
			return err
		}
	}
	for range o.rounds {
		for _, t := range targets {
			rate, err := load(t, o.concurrency, o.roundTime)
			if err != nil {
				return err
			}
			t.rates = append(t.rates, rate)
		}
	}
	base := median(targets[1].rates)
	for _, t := range targets {
		var each []string
		for _, r := range t.rates {
			each = append(each, fmt.Sprintf("%7.0f", r))
		}
		fmt.Printf("  %-28s %s   median %7.0f/s   %.2f× bare gin\n", t.name, strings.Join(each, " "), median(t.rates), median(t.rates)/base)
	}
	if len(targets) > 2 {
		fmt.Printf("  passflow serves %.1f× FastAPI's rate\n", median(targets[0].rates)/median(targets[2].rates))
	}
	return nil
}

// load runs one round against t and returns its rate of 200s per second.
func load(t *target, conns int, d time.Duration) (float64, error) {
	if _, err := exec.LookPath("wrk"); err == nil {
		args := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", t.url}
		if t.token != "" {
			args = append(args, "-H", "Authorization: Bearer "+t.token)
		}
		out, err := exec.Command("wrk", args...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("wrk: %v\n%s", err, out)
		}
		if m := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindSubmatch(out); m != nil {
			return 0, fmt.Errorf("%s answered %s requests with an error status:\n%s", t.name, m[1], out)
		}
		m := regexp.MustCompile(`Requests/sec:\s+([\d.]+)`).FindSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("wrk printed no rate:\n%s", out)
		}
		return strconv.ParseFloat(string(m[1]), 64)
	}
	var ok, bad atomic.Int64
	runFor(d, conns, func(int) {
		if _, status := get(t.url, t.token); status == 200 {
			ok.Add(1)
		} else {
			bad.Add(1)
		}
	})
	if bad.Load() > 0 {
		return 0, fmt.Errorf("%s answered %d requests with an error", t.name, bad.Load())
	}
	return float64(ok.Load()) / d.Seconds(), nil
}

func get(u, token string) (string, int) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		return err.Error(), -1
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b), res.StatusCode
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// serveBare is the bare peer: gin with no middleware, one route doing
// passflow's read of GET /my_data for the load user — the same statement,
// driver, pragmas and pool size — and nothing else.
func serveBare(dbPath string) error {
	gin.SetMode(gin.ReleaseMode)
	db, err := sql.Open("sqlite", dbPath+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"+
		"&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(peerPoolSize)
	db.SetMaxIdleConns(peerPoolSize)
	var userID string
	if err := db.QueryRow(`SELECT id FROM users WHERE username = 'loaduser'`).Scan(&userID); err != nil {
		return fmt.Errorf("the load user: %w", err)
	}
	list, err := db.Prepare(`SELECT key, value, updated_at FROM items WHERE user_id = ? ORDER BY key`)
	if err != nil {
		return err
	}
	type item struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	r := gin.New()
	r.GET("/my_data", func(c *gin.Context) {
		rows, err := list.QueryContext(c, userID)
		if err != nil {
			c.AbortWithStatus(http.StatusServiceUnavailable)
			return
		}
		defer rows.Close()
		out := []item{}
		for rows.Next() {
			var it item
			var updated any
			if err := rows.Scan(&it.Key, &it.Value, &updated); err != nil {
				c.AbortWithStatus(http.StatusInternalServerError)
				return
			}
			out = append(out, it)
		}
		c.JSON(http.StatusOK, out)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "msg=serving addr=%s\n", ln.Addr())
	return http.Serve(ln, r)
}

var errNoFastAPI = errors.New("no FastAPI")

// startFastAPI runs the FastAPI peer under uvicorn and returns it with a
// token it accepts.
func startFastAPI(dir, db string, workers int) (*server, string, error) {
	const python = "/usr/bin/python3"
	if exec.Command(python, "-c", "import fastapi, uvicorn, jose, multipart").Run() != nil {
		return nil, "", errNoFastAPI
	}
	if err := os.WriteFile(filepath.Join(dir, "fastapi_peer.py"), fastapiPeer, 0o644); err != nil {
		return nil, "", err
	}
	secret := strconv.FormatInt(time.Now().UnixNano(), 36) + "-load-secret"
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "loaduser", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(python, "-m", "uvicorn", "fastapi_peer:app", "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--workers", strconv.Itoa(workers), "--log-level", "warning", "--no-access-log")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PEER_DB="+db, "PEER_SECRET="+secret)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	s := &server{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if _, status := get(s.url+"/my_data", token); status == 200 {
			return s, token, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.stop()
	return nil, "", errors.New("the FastAPI peer did not start within 30s")
}
