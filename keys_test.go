package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
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

// TestKeyEncryption: with --key-encryption-key the private keys are sealed
// in the database; a server without the key, or with another, refuses to
// start, saying why.
func TestKeyEncryption(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "p.db")
	const kek = "q7Zb3v9pXk2mJ8wR4tYc6nH1sD5fG0aL2eU7iO3pQ9A="
	env := map[string]string{"PASSFLOW_ADMIN_PASSWORD": "admin-password-1", "PASSFLOW_KEY_ENCRYPTION_KEY": kek}
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
	if _, err := runCLI(t, map[string]string{"PASSFLOW_KEY_ENCRYPTION_KEY": "c2hvcnQ="}, "", "keys", "list", "--db", db); err == nil {
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
