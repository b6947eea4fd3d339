package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/passflow/passflow/auth"
)

// config holds every setting. Each has a flag --kebab-name and an env
// PASSFLOW_UPPER_SNAKE; a flag beats the env, which beats the default.
type config struct {
	Addr            string
	DB              string
	Issuer          string
	AdminPassword   string
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	SigningAlg      string
	ClockLeeway     time.Duration
	MaxBodyBytes    int64
	TokenCacheSize  int
	PublicClients   bool
	PasswordGrant   bool
	KeyEncryption   string

	LoginMaxFailures        int
	LoginMaxFailuresPerUser int
	LoginMaxFailuresPerIP   int
	LoginWindow             time.Duration
	TrustedProxies          string
	HashConcurrency         int
	HashQueue               int
	TLSCert                 string
	TLSKey                  string
	CORSOrigins             string
	MetricsAddr             string
	DBTimeout               time.Duration
	DBMaxConns              int

	// signingAlgSet records whether the signing algorithm was set
	// explicitly.
	signingAlgSet bool
}

// Setting groups: each command binds the ones it uses.
func bindStore(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.DB, "db", "passflow.db", "SQLite database file, or a postgres:// URL")
	fs.IntVar(&c.DBMaxConns, "db-max-conns", 10, "most connections this process opens to PostgreSQL (a pool_max_conns in the --db URL takes precedence)")
}

func bindKeys(fs *flag.FlagSet, c *config) {
	bindStore(fs, c)
	fs.StringVar(&c.SigningAlg, "signing-alg", auth.AlgEdDSA,
		"JWS algorithm of a new store's signing key, or of the key keys rotate adds (default there: the one in use): EdDSA, ES256, RS256, or HS256 (symmetric: never published)")
	fs.StringVar(&c.KeyEncryption, "key-encryption-key", "",
		"base64 of 32 random bytes; when set, private signing keys are encrypted at rest with it (prefer the env)")
}

// keyConfig turns the key settings into an auth.KeyConfig.
func (c *config) keyConfig() (auth.KeyConfig, error) {
	if !slices.Contains(auth.Algorithms, c.SigningAlg) {
		return auth.KeyConfig{}, fmt.Errorf("--signing-alg %q is not supported; use one of %s", c.SigningAlg, strings.Join(auth.Algorithms, ", "))
	}
	kc := auth.KeyConfig{Alg: c.SigningAlg, Verify: c.AccessTokenTTL + c.ClockLeeway, AlgExplicit: c.signingAlgSet}
	if c.KeyEncryption != "" {
		kek, err := auth.ParseKEK(c.KeyEncryption)
		if err != nil {
			return kc, fmt.Errorf("--key-encryption-key: %w", err)
		}
		kc.KEK = kek
	}
	return kc, nil
}

func bindServe(fs *flag.FlagSet, c *config) {
	bindKeys(fs, c)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&c.Issuer, "issuer", "", "issuer URL: the iss and aud of every token, and the base of every URL in the server metadata (default http:// or https:// and the --addr listened on; required when --addr is a wildcard)")
	fs.StringVar(&c.AdminPassword, "admin-password", "", "password for the admin account created when no account holds users:admin (prefer the env)")
	fs.DurationVar(&c.AccessTokenTTL, "access-token-ttl", 15*time.Minute, "access token lifetime")
	fs.DurationVar(&c.RefreshTokenTTL, "refresh-token-ttl", 720*time.Hour, "refresh token lifetime, from each token's own issue (a login's tokens never outlive 90 days)")
	fs.DurationVar(&c.ClockLeeway, "clock-leeway", 5*time.Second, "clock skew tolerated when checking token times")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 1<<20, "largest request body accepted; larger ones get 413")
	fs.IntVar(&c.TokenCacheSize, "token-cache-size", 100_000, "verified access tokens remembered, so their signatures are checked once")
	fs.BoolVar(&c.PublicClients, "public-clients", true, "let clients that are not registered name themselves with a client_id (or none)")
	fs.BoolVar(&c.PasswordGrant, "password-grant", true, "offer the password grant; when false, /token only refreshes")
	fs.IntVar(&c.LoginMaxFailures, "login-max-failures", 5, "failed logins per (username, client IP) within --login-window before back-off (1s, doubling up to 15m)")
	fs.IntVar(&c.LoginMaxFailuresPerUser, "login-max-failures-per-user", 50, "failed logins per username, across addresses, within --login-window before it is blocked")
	fs.IntVar(&c.LoginMaxFailuresPerIP, "login-max-failures-per-ip", 100, "failed logins per client IP, across usernames, within --login-window before it is blocked")
	fs.DurationVar(&c.LoginWindow, "login-window", 15*time.Minute, "the window failed logins are counted in")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client IP (default none)")
	fs.IntVar(&c.HashConcurrency, "hash-concurrency", runtime.NumCPU(), "password hashes run at once (each holds 19 MiB while it runs)")
	fs.IntVar(&c.HashQueue, "hash-queue", 64, "logins that may wait (at most 2s) for a hashing slot; more get 503")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate file: serve HTTPS (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key file of --tls-cert")
	fs.StringVar(&c.CORSOrigins, "cors-origins", "", "comma-separated origins (https://app.example.com) whose browser apps may call the API (default none)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve /metrics on this address (such as 127.0.0.1:9090) instead of the API's (default: the API's)")
	fs.DurationVar(&c.DBTimeout, "db-timeout", 5*time.Second, "longest wait for the database on one call; past it the request gets 503")
}

// wildcard reports whether a listen address names no one host: ":8080",
// "0.0.0.0:8080", "[::]:8080".
func wildcard(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false // net.Listen will say what is wrong with it
	}
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// issuerFor is the issuer that follows from listening on ln as asked
// with addr: its host as written, its port as bound (addr may ask for 0).
func issuerFor(addr string, ln net.Addr, tls bool) string {
	host, _, _ := net.SplitHostPort(addr)
	_, port, _ := net.SplitHostPort(ln.String())
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// corsOrigins parses --cors-origins.
func (c *config) corsOrigins() ([]string, error) {
	var origins []string
	for _, o := range strings.Split(c.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("--cors-origins: %q is not an origin such as https://app.example.com", o)
		}
		origins = append(origins, u.Scheme+"://"+u.Host)
	}
	return origins, nil
}

// trustedProxies parses --trusted-proxies.
func (c *config) trustedProxies() ([]string, error) {
	var cidrs []string
	for _, s := range strings.Split(c.TrustedProxies, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			if ip := net.ParseIP(s); ip != nil && ip.To4() != nil {
				s += "/32"
			} else {
				s += "/128"
			}
		}
		if _, _, err := net.ParseCIDR(s); err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %q is not a CIDR or an IP address", s)
		}
		cidrs = append(cidrs, s)
	}
	return cidrs, nil
}

// validate checks settings that flag parsing cannot.
func (c *config) validate() error {
	switch {
	case c.AccessTokenTTL < time.Second:
		return errors.New("--access-token-ttl must be at least 1s")
	case c.RefreshTokenTTL < time.Minute:
		return errors.New("--refresh-token-ttl must be at least 1m")
	case c.ClockLeeway < 0 || c.ClockLeeway > 5*time.Minute:
		return errors.New("--clock-leeway must be between 0s and 5m")
	case c.MaxBodyBytes < 1024:
		return errors.New("--max-body-bytes must be at least 1024")
	case c.TokenCacheSize < 1:
		return errors.New("--token-cache-size must be at least 1")
	case c.Issuer != "" && !strings.HasPrefix(c.Issuer, "https://") && !strings.HasPrefix(c.Issuer, "http://"):
		return errors.New("--issuer must be an http:// or https:// URL")
	case c.Issuer == "" && wildcard(c.Addr):
		return fmt.Errorf("--addr %s listens on every interface, so no issuer follows from it: set --issuer to the URL clients reach passflow at (such as https://login.example.com)", c.Addr)
	case c.LoginMaxFailures < 1 || c.LoginMaxFailuresPerUser < 1 || c.LoginMaxFailuresPerIP < 1:
		return errors.New("the --login-max-failures settings must be at least 1")
	case c.LoginWindow < time.Second:
		return errors.New("--login-window must be at least 1s")
	case c.HashConcurrency < 1 || c.HashQueue < 0:
		return errors.New("--hash-concurrency must be at least 1 and --hash-queue at least 0")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case c.DBTimeout < 100*time.Millisecond:
		return errors.New("--db-timeout must be at least 100ms")
	case c.DBMaxConns < 1:
		return errors.New("--db-max-conns must be at least 1")
	}
	if _, err := c.trustedProxies(); err != nil {
		return err
	}
	if _, err := c.corsOrigins(); err != nil {
		return err
	}
	_, err := c.keyConfig()
	return err
}

// envName is the environment variable of a flag: db → PASSFLOW_DB.
func envName(flagName string) string {
	return "PASSFLOW_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse parses args with fs, flags allowed before and after positional
// arguments (stdlib flag stops at the first non-flag), then fills every flag
// not given from its env. It returns the positional arguments.
func parse(fs *flag.FlagSet, args []string, getenv func(string) string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: invalid value: %v", envName(f.Name), e)
			}
		}
	})
	return positional, err
}

// given reports whether a flag was set, on the command line or by its env,
// once parse has run.
func given(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// usage writes a command's synopsis and its flags with their envs.
func usage(w io.Writer, synopsis string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n", synopsis)
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s  %s%s [$%s]\n", f.Name, f.Usage, def, envName(f.Name))
	})
}
