package integration

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/http"
	"testing"

	"zsm.dev/zsm/srpgroup"
)

// Identities are refused when they are not what their owner typed or when
// they can pass for someone else's: a raw 0xFF byte in the JSON body was
// turned into U+FFFD by the decoder and the sign-up succeeded (now 400
// malformed_request, as is an escaped half surrogate pair), and a Latin
// name with a Cyrillic "а" in it could be registered beside the real one
// (now 400 invalid_registration). Nothing is created by a refused sign-up.
func TestSignupRefusesMalformedAndConfusableIdentities(t *testing.T) {
	c := newClient(t)
	conn := db(t)
	reg, err := srpgroup.Register("probe@example.test", randBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	body := func(identity string) []byte {
		b, err := json.Marshal(map[string]any{
			"identity": identity, "srp_salt": hex.EncodeToString(reg.Salt),
			"srp_verifier": new(big.Int).SetBytes(reg.Verifier).Text(16), "kdf": testKDF(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	users := func(tag string) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM auth.users WHERE strpos(identity, $1) > 0`, tag).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Digits only: hex would bring Latin letters into names of other scripts.
	tag := func() string { return fmt.Sprint(rand.Int64N(1e12)) }

	// Not UTF-8: a raw 0xFF byte, and a UTF-16 surrogate escaped alone.
	for name, make := range map[string]func(tag string) []byte{
		"raw 0xFF": func(tag string) []byte {
			return bytes.Replace(body("a-"+tag+"-PLACEHOLDER@example.test"), []byte("PLACEHOLDER"), []byte{0xff}, 1)
		},
		"escaped lone surrogate": func(tag string) []byte {
			return bytes.Replace(body("a-"+tag+"-PLACEHOLDER@example.test"), []byte("PLACEHOLDER"), []byte(`\udcff`), 1)
		},
	} {
		tg := tag()
		r := c.Do("POST", "/auth/v1/signup", "", make(tg))
		expectRefusal(t, r, http.StatusBadRequest, "malformed_request", name)
		if n := users(tg); n != 0 {
			t.Fatalf("%s: refused sign-up created %d users", name, n)
		}
		// login/params and login/init refuse the same bytes the same way.
		for _, path := range []string{"/auth/v1/login/params", "/auth/v1/login/init"} {
			b := bytes.Replace([]byte(`{"identity":"a-X@example.test","a":"2"}`), []byte("X"), []byte{0xff}, 1)
			if path == "/auth/v1/login/params" {
				b = bytes.Replace([]byte(`{"identity":"a-X@example.test"}`), []byte("X"), []byte{0xff}, 1)
			}
			expectRefusal(t, c.Do("POST", path, "", b), http.StatusBadRequest, "malformed_request", name+" at "+path)
		}
	}

	// Confusable mixes of scripts within one part of the identity.
	c = newClient(t) // a fresh sign-up allowance
	for _, format := range []string{
		"\u0430lice%s@example.test",  // Cyrillic а, then Latin
		"p\u0430ypal%s@example.test", // the same inside a name
		"alice%s@ex\u0430mple.test",  // in the domain
		"\u03bfpenai%s@example.test", // Greek ο
		"иван\u0061%s@example.test",  // Latin a in a Cyrillic name
		"alice%s\uFFFD@example.test", // the replacement character, sent as such
	} {
		tg := tag()
		identity := fmt.Sprintf(format, tg)
		r := c.Do("POST", "/auth/v1/signup", "", body(identity))
		expectRefusal(t, r, http.StatusBadRequest, "invalid_registration", identity)
		if n := users(tg); n != 0 {
			t.Fatalf("%s: refused sign-up created %d users", identity, n)
		}
	}
	// Names in one script, and the combinations CJK is written in, are fine.
	c = newClient(t)
	for _, format := range []string{"иван%s@пример.рф", "ivan%s@пример.рф", "たなか漢字%s@example.jp", "kim김%s@example.kr", "alice%s@example.test"} {
		tg := tag()
		r := c.Do("POST", "/auth/v1/signup", "", body(fmt.Sprintf(format, tg)))
		expectStatus(t, r, http.StatusCreated, "sign-up of "+fmt.Sprintf(format, tg))
		if n := users(tg); n != 1 {
			t.Fatalf("%s: %d users", fmt.Sprintf(format, tg), n)
		}
	}
}
