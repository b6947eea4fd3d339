package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/passflow/passflow/auth"
)

// Setting groups: each command binds the ones it uses.

func bindStore(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.DB, "db", "passflow.db", "SQLite database file, or a postgres:// URL")
	fs.IntVar(&c.DBMaxConns, "db-max-conns", 10, "most connections this process keeps to its database, SQLite or PostgreSQL (a pool_max_conns in a postgres:// --db URL takes precedence)")
}

func bindPasswords(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.Argon2idParams, "argon2id-params", auth.OWASPArgon2id().String(),
		"argon2id cost of new password and client secret hashes: memory in KiB, passes, lanes (default: OWASP's first recommendation)")
	fs.IntVar(&c.PasswordMinLength, "password-min-length", auth.MinPasswordChars, "fewest characters a new password may have (at least 8)")
	fs.IntVar(&c.PasswordMinScore, "password-min-score", auth.DefaultMinPasswordScore,
		"zxcvbn strength, 0 to 4, a new password must reach: 2 refuses common and breached passwords and what is within a million guesses of one, 3 within 10⁸, 4 within 10¹⁰; 0 judges only the length")
}

func bindKeys(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.SigningAlg, "signing-alg", auth.AlgEdDSA,
		"JWS algorithm of a new store's signing key, or of the key keys rotate adds (default there: the one in use): EdDSA, ES256, RS256, or HS256 (symmetric: never published)")
	fs.StringVar(&c.KeyEncryption, "key-encryption-key", "",
		"base64 of 32 random bytes; when set, private signing keys are encrypted at rest with it (prefer the env)")
}

func bindServe(fs *flag.FlagSet, c *config) {
	bindKeys(fs, c)
	bindPasswords(fs, c)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&c.Issuer, "issuer", "", "issuer URL: the iss and aud of every token, and the base of every URL in the server metadata (default http:// or https:// and the --addr listened on; required when --addr is a wildcard)")
	fs.StringVar(&c.AdminPassword, "admin-password", "", "password for the admin account created when no account holds users:admin (prefer the env)")
	fs.DurationVar(&c.AccessTokenTTL, "access-token-ttl", 15*time.Minute, "access token lifetime")
	fs.DurationVar(&c.RefreshTokenTTL, "refresh-token-ttl", 720*time.Hour, "refresh token lifetime, from each token's own issue (a login's tokens never outlive 90 days)")
	fs.BoolVar(&c.RefreshCookie, "refresh-cookie", false, "also set refresh tokens in an HttpOnly, Secure, SameSite=Strict cookie for /token and /revoke; a request with the X-Passflow-CSRF header gets none in its body and may use the cookie's")
	fs.DurationVar(&c.RefreshReuseInterval, "refresh-reuse-interval", 0, "how long after a rotation the rotated refresh token still works for its client, for a new token in the same login (browser tabs refreshing at once); 0: presenting it again revokes the login at once, as theft (at most 1m)")
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
	fs.IntVar(&c.HashConcurrency, "hash-concurrency", runtime.NumCPU(), "password hashes run at once (each holds its argon2id memory, 19 MiB by default, while it runs)")
	fs.IntVar(&c.HashQueue, "hash-queue", 64, "logins that may wait (at most 2s) for a hashing slot; more get 503")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate file: serve HTTPS (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key file of --tls-cert")
	fs.StringVar(&c.CORSOrigins, "cors-origins", "", "comma-separated origins (https://app.example.com) whose browser apps may call the API (default none)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve /metrics on this address (such as 127.0.0.1:9090) instead of the API's (default: the API's)")
	bindSelfService(fs, c)
	fs.DurationVar(&c.DBTimeout, "db-timeout", 5*time.Second, "longest wait for the database on one call (PostgreSQL: a deadline on every call; SQLite: the longest wait for the write lock); past it the request gets 503")
}

func bindSelfService(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.Registration, "registration", "closed", "open: anyone may sign up at POST /register; closed: only an administrator creates accounts")
	fs.StringVar(&c.RegistrationScopes, "registration-scopes", "", "comma-separated scopes a signed-up account gets (default none; never users:admin)")
	fs.BoolVar(&c.RequireVerifiedEmail, "require-verified-email", false, "refuse logins of accounts whose email is not verified (accounts without one may log in)")
	fs.StringVar(&c.AppURL, "app-url", "", "base URL of the app whose pages take mailed links: APP/verify-email?token=… and APP/reset-password?token=… (default: the issuer)")
	fs.DurationVar(&c.EmailTokenTTL, "email-token-ttl", 24*time.Hour, "how long a mailed email verification link works")
	fs.DurationVar(&c.ResetTokenTTL, "reset-token-ttl", time.Hour, "how long a mailed password reset link works")
	fs.StringVar(&c.SMTPURL, "smtp-url", "", "SMTP server mails are sent through: smtp://user:password@host:port (STARTTLS when offered) or smtps://… (TLS); unset: mails wait in the outbox (prefer the env)")
	fs.StringVar(&c.SMTPCA, "smtp-ca", "", "PEM file of the certificate authorities the SMTP server's certificate must come from (default: the system's)")
	fs.StringVar(&c.MailFrom, "mail-from", "", "From address of mails, such as \"App <no-reply@example.com>\" (required with --smtp-url)")
	fs.StringVar(&c.MailTemplates, "mail-templates", "", "folder whose verify_email.txt, verify_email.html, password_reset.txt, password_reset.html replace the built-in mail templates")
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
			return nil, flagError(fs, err)
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
			if fs.Set(f.Name, v) != nil {
				err = fmt.Errorf("%s: %q is not %s", envName(f.Name), v, expected(f))
			}
		}
	})
	return positional, err
}

// invalidValue is how package flag reports a value it cannot parse.
var invalidValue = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-(\S+): `)

// flagError rewrites package flag's error about a bad value so that it
// names the flag and the form its value takes.
func flagError(fs *flag.FlagSet, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if m := invalidValue.FindStringSubmatch(err.Error()); m != nil {
		if f := fs.Lookup(m[2]); f != nil {
			return fmt.Errorf("--%s: %q is not %s", f.Name, m[1], expected(f))
		}
	}
	return err
}

// expected describes the values a flag takes.
func expected(f *flag.Flag) string {
	switch f.Value.(flag.Getter).Get().(type) {
	case time.Duration:
		return "a duration such as 15m, 1h30m or 500ms"
	case bool:
		return "true or false"
	case int, int64:
		return "a whole number"
	}
	return "valid"
}

// given reports whether a flag was set, on the command line or by its env,
// once parse has run.
func given(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
