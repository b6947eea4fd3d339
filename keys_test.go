package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/store/sqlite"
)

// jwks fetches the server's JWK Set.
func (ts *testServer) jwks() []map[string]string {
	ts.t.Helper()
	res := ts.do(http.MethodGet, "/.well-known/jwks.json", nil, nil)
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if res.Status != 200 || json.Unmarshal(res.Body, &set) != nil {
		ts.t.Fatalf("JWKS = %d %s", res.Status, res.Body)
	}
	return set.Keys
}

// publicKey turns a JWK into a Go public key, with only the standard
// library: what any resource server would do.
func publicKey(t *testing.T, k map[string]string) any {
	t.Helper()
	b := func(s string) []byte {
		v, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	switch k["kty"] {
	case "EC":
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, append(b(k["x"]), b(k["y"])...)...))
		if err != nil {
			t.Fatal(err)
		}
		return pub
	case "RSA":
		return &rsa.PublicKey{N: new(big.Int).SetBytes(b(k["n"])), E: int(new(big.Int).SetBytes(b(k["e"])).Int64())}
	}
	t.Fatalf("unexpected kty %q", k["kty"])
	return nil
}

// TestSigningAlgorithms: each algorithm signs tokens the server accepts;
// the asymmetric ones verify with the JWKS alone, and HS256's key is never
// published.
func TestSigningAlgorithms(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"ES256", "RS256", "HS256"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, "--signing-alg", alg)
			ts.addUser("lou", "lou-password", "data:read")
			tok := ts.login("lou", "lou-password")
			header, _ := claims(t, tok)
			if header["alg"] != alg {
				t.Fatalf("alg = %v, want %s", header["alg"], alg)
			}
			if !ts.works(tok) {
				t.Fatal("the server refuses its own token")
			}
			keys := ts.jwks()
			if alg == "HS256" {
				for _, k := range keys {
					if k["kty"] == "oct" || k["alg"] == "HS256" || k["k"] != "" {
						t.Errorf("the JWKS publishes a symmetric key: %v", k)
					}
				}
				return
			}
			var jwk map[string]string
			for _, k := range keys {
				if k["kid"] == header["kid"] {
					jwk = k
				}
			}
			if jwk == nil || jwk["alg"] != alg {
				t.Fatalf("kid %v not in the JWKS %v", header["kid"], keys)
			}
			pub := publicKey(t, jwk)
			if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return pub, nil }, jwt.WithValidMethods([]string{alg})); err != nil {
				t.Errorf("verifying with the JWKS: %v", err)
			}

			// The classic confusion: HS256 "signed" with the public key.
			der, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			_, payload := claims(t, tok)
			forged := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(payload))
			forged.Header["kid"], forged.Header["typ"] = header["kid"], "at+jwt"
			for _, secret := range [][]byte{der, []byte(jwk["n"] + jwk["x"])} {
				s, _ := forged.SignedString(secret)
				if ts.works(s) {
					t.Error("an HS256 token keyed with the public key was accepted")
				}
			}
		})
	}
}

// TestKeyRotation: after `passflow keys rotate`, new tokens are signed with
// the new key within a second, old tokens keep verifying until they expire,
// and then the retired key leaves the JWKS.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--access-token-ttl", "3s", "--clock-leeway", "0s")
	ts.addUser("max", "max-password", "data:read")
	old := ts.login("max", "max-password")
	oldHeader, _ := claims(t, old)
	if out, err := ts.cli("", "keys", "rotate"); err != nil || !strings.Contains(out, "added EdDSA signing key") {
		t.Fatalf("keys rotate = %v %q", err, out)
	}
	var fresh string
	deadline := time.Now().Add(time.Second)
	for {
		fresh = ts.login("max", "max-password")
		if h, _ := claims(t, fresh); h["kid"] != oldHeader["kid"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new tokens are not signed with the new key within 1s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !ts.works(old) || !ts.works(fresh) {
		t.Fatal("after rotation, old and new tokens must both verify")
	}
	if n := len(ts.jwks()); n != 2 {
		t.Errorf("JWKS right after rotation has %d keys, want 2", n)
	}
	out, _ := ts.cli("", "keys", "list")
	if strings.Count(out, "EdDSA") != 2 || !strings.Contains(out, "-") {
		t.Errorf("keys list = %q", out)
	}
	// Once every token the old key signed has expired, it is gone.
	time.Sleep(3500 * time.Millisecond)
	keys := ts.jwks()
	if len(keys) != 1 || keys[0]["kid"] == oldHeader["kid"] {
		t.Errorf("JWKS after the old tokens expired = %v, want only the new key", keys)
	}
}

// TestKeysPublishedAhead: with --publish-ahead, the new key is in the JWKS
// at once and signs only when the time is up; the key in use signs on.
func TestKeysPublishedAhead(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("max", "max-password", "data:read")
	before, _ := claims(t, ts.login("max", "max-password"))
	out, err := ts.cli("", "keys", "rotate", "--publish-ahead", "1h")
	if err != nil {
		t.Fatalf("keys rotate --publish-ahead 1h = %v %q", err, out)
	}
	m := regexp.MustCompile(`signs with it from (\S+),`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("keys rotate says %q", out)
	}
	if from, err := time.Parse(time.RFC3339Nano, m[1]); err != nil || time.Until(from) < 59*time.Minute {
		t.Errorf("the new key signs from %s, want an hour from now", m[1])
	}
	if !within(2*time.Second, func() bool { return len(ts.jwks()) == 2 }) {
		t.Fatalf("the JWKS does not publish the new key: %v", ts.jwks())
	}
	if h, _ := claims(t, ts.login("max", "max-password")); h["kid"] != before["kid"] {
		t.Errorf("a key published an hour ahead signs already")
	}
	for _, bad := range []string{"-1s", "25h", "soon"} {
		if out, err := ts.cli("", "keys", "rotate", "--publish-ahead", bad); err == nil || !strings.Contains(describe(err), "--publish-ahead") {
			t.Errorf("--publish-ahead %s: %v %s", bad, err, out)
		}
	}
}

// TestKeyEncryption: with --key-encryption-key the private keys are sealed
// in the database; a server without the key, or with another, refuses to
// start, saying why.
func TestKeyEncryption(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "p.db")
	const kek = "q7Zb3v9pXk2mJ8wR4tYc6nH1sD5fG0aL2eU7iO3pQ9A="
	env := map[string]string{"PASSFLOW_ADMIN_PASSWORD": "admin-password-1", "PASSFLOW_KEY_ENCRYPTION_KEY": kek,
		"PASSFLOW_ISSUER": "http://passflow.test"} // the same after a restart
	ts := startServerOn(t, db, env)
	tok := ts.login("admin", "admin-password-1")
	if out, err := runCLI(t, nil, "", "keys", "list", "--db", db); err != nil || !strings.Contains(out, "true") {
		t.Errorf("keys list = %v %q; want the key encrypted", err, out)
	}
	ts.stop()

	for name, e := range map[string]map[string]string{
		"without the key": {"PASSFLOW_ADMIN_PASSWORD": "admin-password-1"},
		"with another":    {"PASSFLOW_ADMIN_PASSWORD": "admin-password-1", "PASSFLOW_KEY_ENCRYPTION_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
	} {
		_, err := runCLI(t, e, "", "serve", "--db", db, "--addr", "127.0.0.1:0")
		if err == nil || !strings.Contains(describe(err), "key encryption key") {
			t.Errorf("serve %s: %v, want an error about the key encryption key", name, err)
		}
	}
	if _, err := runCLI(t, map[string]string{"PASSFLOW_KEY_ENCRYPTION_KEY": "c2hvcnQ="}, "", "keys", "rotate", "--db", db); err == nil {
		t.Error("a key encryption key of 5 bytes was accepted")
	}
	again := startServerOn(t, db, env)
	if !again.works(tok) {
		t.Error("a restart with the key lost the signing key")
	}
	if out, err := runCLI(t, env, "", "keys", "rotate", "--db", db); err != nil {
		t.Errorf("keys rotate with the key: %v %q", err, out)
	}
	if out, _ := runCLI(t, env, "", "keys", "list", "--db", db); strings.Count(out, "true") != 2 {
		t.Errorf("after rotating, want both keys encrypted: %q", out)
	}
}

// TestKeysRotateKeepsTheAlgorithm: keys rotate without --signing-alg
// rotates the algorithm in use; with another, it says it switches, and the
// old algorithm's key stops signing.
func TestKeysRotateKeepsTheAlgorithm(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--signing-alg", "RS256")
	ts.addUser("ray", "ray-password", "data:read")
	first, _ := claims(t, ts.login("ray", "ray-password"))
	signsWith := func(alg string, not any) bool {
		return within(2*time.Second, func() bool {
			h, _ := claims(t, ts.login("ray", "ray-password"))
			return h["alg"] == alg && h["kid"] != not
		})
	}
	out, err := ts.cli("", "keys", "rotate")
	if err != nil || !strings.Contains(out, "added RS256 signing key") || strings.Contains(out, "switched") {
		t.Fatalf("keys rotate = %v %q", err, out)
	}
	if !signsWith("RS256", first["kid"]) {
		t.Error("after keys rotate the server does not sign with a new RS256 key")
	}
	out, err = ts.cli("", "keys", "rotate", "--signing-alg", "ES256")
	if err != nil || !strings.Contains(out, "switched signing from RS256 to ES256") {
		t.Fatalf("keys rotate --signing-alg ES256 = %v %q", err, out)
	}
	if !signsWith("ES256", nil) {
		t.Error("after switching the server does not sign with ES256")
	}
	// A restart with the old --signing-alg keeps the store's key, and says so.
	ts.stop()
	again := startServerOn(t, ts.DB, map[string]string{}, "--signing-alg", "RS256")
	if h, _ := claims(t, again.login("ray", "ray-password")); h["alg"] != "ES256" {
		t.Errorf("after a restart with --signing-alg RS256 the server signs with %v", h["alg"])
	}
	if !strings.Contains(again.logs.String(), "keys rotate --signing-alg") {
		t.Error("a restart with another --signing-alg did not say how to switch")
	}
}

// TestKeyEncryptionKeyMustMatch: keys rotate refuses to add a key the
// servers could not read, with one line saying why; a server given a key
// encryption key seals the keys it finds unsealed.
func TestKeyEncryptionKeyMustMatch(t *testing.T) {
	t.Parallel()
	const kek = "q7Zb3v9pXk2mJ8wR4tYc6nH1sD5fG0aL2eU7iO3pQ9A="
	const other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	plain := startServer(t, "--issuer", "http://passflow.test") // keeps keys unsealed
	if out, err := runCLI(t, map[string]string{"PASSFLOW_KEY_ENCRYPTION_KEY": kek}, "", "keys", "rotate", "--db", plain.DB); err == nil ||
		!strings.Contains(describe(err), "leave --key-encryption-key unset") || strings.Contains(describe(err), "\n") {
		t.Errorf("keys rotate with a key the servers do not use: %v %q", err, out)
	}
	tok := plain.login("admin", plain.Admin)
	plain.stop()

	// Restarted with a key encryption key, the server seals what it finds.
	env := map[string]string{"PASSFLOW_ADMIN_PASSWORD": "admin-password-1", "PASSFLOW_KEY_ENCRYPTION_KEY": kek,
		"PASSFLOW_ISSUER": "http://passflow.test"}
	sealed := startServerOn(t, plain.DB, env)
	if !strings.Contains(sealed.logs.String(), "sealed a signing key") {
		t.Errorf("no log line about sealing:\n%s", sealed.logs)
	}
	if out, _ := runCLI(t, nil, "", "keys", "list", "--db", plain.DB); strings.Contains(out, "false") || !strings.Contains(out, "true") {
		t.Errorf("keys list after the sealing restart:\n%s", out)
	}
	if !sealed.works(tok) {
		t.Error("a token signed before sealing no longer verifies")
	}
	for name, e := range map[string]map[string]string{
		"without the key": nil,
		"with another":    {"PASSFLOW_KEY_ENCRYPTION_KEY": other},
	} {
		out, err := runCLI(t, e, "", "keys", "rotate", "--db", plain.DB)
		if err == nil || !strings.Contains(describe(err), "key encryption key") {
			t.Errorf("keys rotate %s: %v %q", name, err, out)
		}
	}
	if out, err := runCLI(t, env, "", "keys", "rotate", "--db", plain.DB); err != nil {
		t.Errorf("keys rotate with the servers' key: %v %q", err, out)
	}
	if !within(2*time.Second, func() bool { return sealed.works(sealed.login("admin", "admin-password-1")) }) {
		t.Error("the server does not sign with the rotated key")
	}
}

// TestAChangeThatCannotBeApplied: a signing key no server can read (sealed
// with a key encryption key nobody gave them, as an old command line
// could add) does not stop the change feed: the server says so, reports
// not ready, keeps signing with the key it has, applies every later change,
// and answers admin changes; once the key is rotated away it is ready again.
func TestAChangeThatCannotBeApplied(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.addUser("vic", "vic-password", "data:read")
	vic := ts.login("vic", "vic-password")
	admin := jsonBody(bearer(ts.login("admin", ts.Admin)))
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ts.DB, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rotate := func(kek []byte) {
		t.Helper()
		k, err := auth.GenerateSigningKey(auth.KeyConfig{Alg: auth.AlgEdDSA, KEK: kek}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		k.ActiveFrom = time.Now().Add(auth.KeyPrepublication)
		if err := st.RotateSigningKey(ctx, k, auth.KeyCheck(nil)); err != nil {
			t.Fatal(err)
		}
	}
	rotate(bytes.Repeat([]byte{9}, 32)) // sealed with a key no server has

	ready := func() int { return ts.do(http.MethodGet, "/readyz", nil, nil).Status }
	if !within(time.Second, func() bool { return ready() == 503 }) {
		t.Fatal("/readyz stays 200 after a change the server cannot apply")
	}
	if !strings.Contains(ts.logs.String(), "a change to the signing keys cannot be applied") {
		t.Error("the log does not say a change could not be applied")
	}
	if out, err := ts.cli("", "user", "disable", "vic"); err != nil {
		t.Fatal(err, out)
	}
	if !within(time.Second, func() bool { return !ts.works(vic) }) {
		t.Error("a later change (vic disabled) is not applied")
	}
	if res := ts.do(http.MethodPatch, "/users/vic", admin, strings.NewReader(`{"disabled":false}`)); res.Status != 200 {
		t.Errorf("an admin change = %d %s", res.Status, res.Body)
	}
	if tok := ts.login("vic", "vic-password"); !ts.works(tok) {
		t.Error("the server no longer signs tokens it accepts")
	}
	rotate(nil) // a key every server can read retires the bad one
	if !within(3*time.Second, func() bool { return ready() == 200 }) {
		t.Error("/readyz does not recover once the bad key is rotated away")
	}
}
