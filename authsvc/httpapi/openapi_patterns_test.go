package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"zsm.dev/zsm/authsvc/handshake"
	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/srpgroup"
)

// The request patterns of openapi.yaml agree with the parsers behind them:
// whatever a pattern admits, the server takes (a schema-valid request is
// never refused for its shape), and what the server takes, the pattern
// admits (except where the document says it leaves a sliver out). Random
// values near each boundary are tried both ways; TestSchemathesis does the
// same through HTTP.
func TestSchemaPatternsAgreeWithParsers(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	schemas := doc.Components.Schemas
	pattern := func(s *openapi3.Schema) *regexp.Regexp {
		t.Helper()
		if s.Pattern == "" {
			t.Fatal("no pattern")
		}
		return regexp.MustCompile(s.Pattern)
	}
	r := mrand.New(mrand.NewPCG(1, 2))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	// flip returns s with one character replaced by another of the base64
	// alphabets, which often leaves the padding bits non-zero.
	flip := func(s string) string {
		const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_="
		b := []byte(s)
		b[r.IntN(len(b))] = abc[r.IntN(len(abc))]
		return string(b)
	}
	agree := func(name string, re *regexp.Regexp, accepts func(string) bool, samples []string) {
		t.Helper()
		for _, v := range samples {
			if m, a := re.MatchString(v), accepts(v); m != a {
				t.Errorf("%s: %q matches the pattern: %v, the server takes it: %v", name, v, m, a)
			}
		}
	}

	var groupSamples []string
	nm1 := new(big.Int).Sub(srpgroup.N, big.NewInt(1))
	for _, x := range []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(2), big.NewInt(15), big.NewInt(16)} {
		groupSamples = append(groupSamples, x.Text(16))
	}
	for i := 0; i < 300; i++ {
		x := new(big.Int).SetBytes(randBytes(1 + r.IntN(srpgroup.FieldBytes)))
		groupSamples = append(groupSamples, x.Text(16), "0"+x.Text(16), fmt.Sprintf("%X", x))
	}
	groupSamples = append(groupSamples, nm1.Text(16), srpgroup.N.Text(16), "1"+srpgroup.N.Text(16), "")
	bigHex := pattern(schemas["BigHex"].Value)
	for _, v := range groupSamples {
		// The pattern leaves out 768-digit values that start with sixteen
		// f digits (documented); everything it admits must be taken.
		_, err := srpgroup.ParsePublic(v)
		switch m := bigHex.MatchString(v); {
		case m && err != nil:
			t.Errorf("BigHex admits %q, which the server refuses: %v", v, err)
		case !m && err == nil && !(len(v) == 768 && v[:16] == "ffffffffffffffff"):
			t.Errorf("BigHex refuses %q, which the server takes", v)
		}
	}

	var ids, sigs, keys, salts, refresh []string
	for i := 0; i < 300; i++ {
		id := base64.RawURLEncoding.EncodeToString(randBytes(16))
		sig := base64.StdEncoding.EncodeToString(randBytes(64))
		key := base64.StdEncoding.EncodeToString(randBytes(32))
		salt := base64.StdEncoding.EncodeToString(randBytes(16))
		rt := "zsmrt_" + base64.RawURLEncoding.EncodeToString(randBytes(32))
		ids = append(ids, id, flip(id))
		sigs = append(sigs, sig, flip(sig))
		keys = append(keys, key, flip(key))
		salts = append(salts, salt, flip(salt))
		refresh = append(refresh, rt, flip(rt))
	}
	agree("HandshakeID", pattern(schemas["HandshakeID"].Value), handshake.ValidID, ids)
	agree("Signature", pattern(schemas["Signature"].Value), keyrecord.WellFormedSignature, sigs)
	agree("Base64Key", pattern(schemas["Base64Key"].Value), func(s string) bool {
		b, err := base64.StdEncoding.Strict().DecodeString(s)
		return err == nil && len(b) == 32 && base64.StdEncoding.EncodeToString(b) == s
	}, keys)
	agree("KDF salt", pattern(schemas["KDF"].Value.Properties["salt"].Value), func(s string) bool {
		raw, _ := json.Marshal(map[string]any{"alg": "argon2id", "salt": s, "memory_kib": 65536, "iterations": 3, "parallelism": 4})
		_, err := srplogin.ParseKDF(raw)
		return err == nil
	}, salts)
	agree("refresh_token", pattern(schemas["RefreshRequest"].Value.Properties["refresh_token"].Value), func(s string) bool {
		body, ok := strings.CutPrefix(s, "zsmrt_")
		b, err := base64.RawURLEncoding.Strict().DecodeString(body)
		return ok && len(body) == 43 && err == nil && len(b) == 32
	}, refresh)

	var envs []string
	for n := 1; n < 160; n++ {
		e := base64.StdEncoding.EncodeToString(randBytes(n))
		envs = append(envs, e, flip(e))
	}
	agree("Base64Envelope", pattern(schemas["Base64Envelope"].Value), func(s string) bool {
		b, err := base64.StdEncoding.Strict().DecodeString(s)
		return err == nil && s != "" && base64.StdEncoding.EncodeToString(b) == s
	}, envs)
}
