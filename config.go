package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/mail"
	"github.com/passflow/passflow/store"
)

// config holds every setting. Each has a flag --kebab-name and an env
// PASSFLOW_UPPER_SNAKE (flags.go binds them); a flag beats the env, which
// beats the default.
type config struct {
	// The store: every command.
	DB         string
	DBMaxConns int

	// Keys: serve and keys.
	SigningAlg    string
	KeyEncryption string

	// Serving.
	Addr                    string
	Issuer                  string
	AdminPassword           string
	AccessTokenTTL          time.Duration
	RefreshTokenTTL         time.Duration
	ClockLeeway             time.Duration
	PublishAhead            time.Duration
	MaxBodyBytes            int64
	TokenCacheSize          int
	PublicClients           bool
	PasswordGrant           bool
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

	// How passwords and client secrets are hashed: serve, user, client.
	Argon2idParams string
	// user add.
	Email         string
	EmailVerified bool
	// How long a rotated refresh token still works for its client, and
	// whether refresh tokens also travel in a cookie.
	RefreshReuseInterval time.Duration
	RefreshCookie        bool
	// Self-service accounts and mail.
	Registration         string
	RegistrationScopes   string
	RequireVerifiedEmail bool
	AppURL               string
	EmailTokenTTL        time.Duration
	ResetTokenTTL        time.Duration
	SMTPURL              string
	SMTPCA               string
	MailFrom             string
	MailTemplates        string
	// PasswordMinLength and PasswordMinScore are the password policy.
	PasswordMinLength int
	PasswordMinScore  int

	// What user add and client add grant.
	Scopes      string
	GrantTypes  string
	SecretStdin bool
	Public      bool

	// signingAlgSet records whether the signing algorithm was asked for,
	// not the default.
	signingAlgSet bool
}

// keyConfig turns the key settings into an auth.KeyConfig.
func (c *config) keyConfig() (auth.KeyConfig, error) {
	if !slices.Contains(auth.Algorithms(), c.SigningAlg) {
		return auth.KeyConfig{}, fmt.Errorf("--signing-alg %q is not supported; use one of %s", c.SigningAlg, strings.Join(auth.Algorithms(), ", "))
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

// hasher is the password hasher --argon2id-params describes.
// checkSelfService checks the sign-up and mail settings.
func (c *config) checkSelfService() error {
	switch {
	case c.Registration != "open" && c.Registration != "closed":
		return fmt.Errorf("--registration must be open or closed, not %q", c.Registration)
	case c.AppURL != "" && !strings.HasPrefix(c.AppURL, "https://") && !strings.HasPrefix(c.AppURL, "http://"):
		return errors.New("--app-url must be an http:// or https:// URL")
	case c.EmailTokenTTL < time.Minute || c.ResetTokenTTL < time.Minute:
		return errors.New("--email-token-ttl and --reset-token-ttl must be at least 1m")
	case c.SMTPURL != "" && c.MailFrom == "":
		return errors.New("--smtp-url needs --mail-from, the address mails come from")
	}
	for _, s := range splitList(c.RegistrationScopes) {
		if s == store.ScopeUsersAdmin {
			return fmt.Errorf("--registration-scopes may not hold %s: a stranger signing up would manage every account", store.ScopeUsersAdmin)
		}
	}
	if c.SMTPURL != "" {
		if _, err := mail.ParseServer(c.SMTPURL); err != nil {
			return err
		}
	}
	if c.SMTPCA != "" {
		if _, err := mail.LoadCA(c.SMTPCA); err != nil {
			return err
		}
	}
	if c.MailFrom != "" {
		if err := mail.CheckFrom(c.MailFrom); err != nil {
			return err
		}
	}
	return nil
}

// selfService is how accounts may serve themselves, the scopes checked
// against the spec's.
func (c *config) selfService(scopes auth.Scopes) (auth.SelfService, error) {
	regScopes, err := scopes.Check(splitList(c.RegistrationScopes), fault.InvalidRequest)
	if err != nil {
		return auth.SelfService{}, fmt.Errorf("--registration-scopes: %w", err)
	}
	appURL := c.AppURL
	if appURL == "" {
		appURL = c.Issuer
	}
	return auth.SelfService{
		Open: c.Registration == "open", Scopes: regScopes, RequireVerifiedEmail: c.RequireVerifiedEmail,
		AppURL: appURL, VerifyTTL: c.EmailTokenTTL, ResetTTL: c.ResetTokenTTL,
	}, nil
}

// passwordPolicy is what a new password must be.
func (c *config) passwordPolicy() auth.PasswordPolicy {
	return auth.PasswordPolicy{MinChars: c.PasswordMinLength, MinScore: c.PasswordMinScore}
}

func (c *config) checkPasswordPolicy() error {
	switch {
	case c.PasswordMinLength < auth.MinPasswordChars || c.PasswordMinLength > 256:
		return fmt.Errorf("--password-min-length must be from %d to 256", auth.MinPasswordChars)
	case c.PasswordMinScore < 0 || c.PasswordMinScore > 4:
		return errors.New("--password-min-score must be from 0 to 4")
	}
	return nil
}

func (c *config) hasher() (*auth.Passwords, error) {
	p, err := auth.ParseArgon2idParams(c.Argon2idParams)
	if err != nil {
		return nil, fmt.Errorf("--argon2id-params: %w", err)
	}
	return auth.NewPasswords(p), nil
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

// validate checks the serving settings that flag parsing cannot.
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
	case c.RefreshReuseInterval < 0 || c.RefreshReuseInterval > time.Minute:
		return errors.New("--refresh-reuse-interval must be from 0 to 1m")
	case c.DBTimeout < 100*time.Millisecond:
		return errors.New("--db-timeout must be at least 100ms")
	}
	if _, err := c.hasher(); err != nil {
		return err
	}
	if err := c.checkPasswordPolicy(); err != nil {
		return err
	}
	if err := c.checkSelfService(); err != nil {
		return err
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

// throttleConfig is the login limits.
func (c *config) throttleConfig() auth.ThrottleConfig {
	return auth.ThrottleConfig{
		MaxFailures: c.LoginMaxFailures, MaxPerUser: c.LoginMaxFailuresPerUser, MaxPerIP: c.LoginMaxFailuresPerIP,
		Window: c.LoginWindow, MaxBackoff: 15 * time.Minute,
	}
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

// splitList splits a comma- (or space-) separated setting.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
