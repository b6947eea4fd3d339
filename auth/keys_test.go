package auth

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestKeysOfEveryAlgorithm(t *testing.T) {
	t.Parallel()
	kek := bytes.Repeat([]byte{7}, 32)
	for _, alg := range Algorithms() {
		for _, sealed := range []bool{false, true} {
			cfg := KeyConfig{Alg: alg}
			if sealed {
				cfg.KEK = kek
			}
			sk, err := GenerateSigningKey(cfg, time.Now())
			if err != nil {
				t.Fatalf("%s: %v", alg, err)
			}
			if Sealed(sk) != sealed {
				t.Errorf("%s: Sealed = %v, want %v", alg, Sealed(sk), sealed)
			}
			k, err := ParseSigningKey(sk, cfg.KEK)
			if err != nil {
				t.Fatalf("%s sealed=%v: %v", alg, sealed, err)
			}
			if k.ID != sk.ID || k.Alg != alg || k.method.Alg() != alg {
				t.Errorf("%s: parsed %+v", alg, k)
			}
			jwk := k.PublicJWK()
			if alg == AlgHS256 {
				if jwk != nil {
					t.Errorf("HS256 key has a public JWK: %v", jwk)
				}
			} else if jwk["kid"] != sk.ID || jwk["alg"] != alg || jwk["use"] != "sig" || thumbprint(jwk) != sk.ID {
				t.Errorf("%s: JWK %v; kid must be the RFC 7638 thumbprint", alg, jwk)
			}
			if sealed {
				if _, err := ParseSigningKey(sk, nil); err == nil || !strings.Contains(err.Error(), "encrypted") {
					t.Errorf("%s: parsing a sealed key without the KEK: %v", alg, err)
				}
				if _, err := ParseSigningKey(sk, bytes.Repeat([]byte{8}, 32)); err == nil {
					t.Errorf("%s: a sealed key opened with another KEK", alg)
				}
				moved := sk
				moved.ID = "another-id"
				if _, err := ParseSigningKey(moved, kek); err == nil {
					t.Errorf("%s: a sealed key opened under another id", alg)
				}
			}
		}
	}
}

// TestRFC7638Example checks thumbprint against the example of RFC 7638 §3.1.
func TestRFC7638Example(t *testing.T) {
	t.Parallel()
	jwk := map[string]string{
		"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
		"n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
	}
	if got := thumbprint(jwk); got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("thumbprint = %s", got)
	}
}

func TestParseKEK(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=", "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc",
	} {
		if k, err := ParseKEK(s); err != nil || len(k) != 32 {
			t.Errorf("ParseKEK(%q) = %v, %v", s, k, err)
		}
	}
	for _, s := range []string{"", "short", "c2hvcnQ=", "!!!!"} {
		if _, err := ParseKEK(s); err == nil {
			t.Errorf("ParseKEK(%q) accepted", s)
		}
	}
}
