package signer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
)

// FuzzClaimTypes feeds arbitrary payloads to the claim-type check: no
// panic, and a payload it accepts has numbers for exp, iat and nbf, strings
// for iss, sub, sid and role, and a string or strings for aud, wherever
// they are present. Seeds: testdata/fuzz/FuzzClaimTypes.
func FuzzClaimTypes(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		tok := "eyJhbGciOiJFZERTQSJ9." + base64.RawURLEncoding.EncodeToString(payload) + ".c2ln"
		if requireClaimTypes(tok) != nil {
			return
		}
		var claims map[string]any
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.UseNumber()
		if err := dec.Decode(&claims); err != nil {
			t.Fatalf("accepted a payload that is not a JSON object: %q", payload)
		}
		for _, k := range []string{"exp", "iat", "nbf"} {
			if v, ok := claims[k]; ok {
				if _, isNum := v.(json.Number); !isNum {
					t.Fatalf("accepted %s = %#v", k, v)
				}
			}
		}
		for _, k := range []string{"iss", "sub", "sid", "role"} {
			if v, ok := claims[k]; ok {
				if _, isStr := v.(string); !isStr {
					t.Fatalf("accepted %s = %#v", k, v)
				}
			}
		}
		if v, ok := claims["aud"]; ok {
			switch a := v.(type) {
			case string:
			case []any:
				for _, e := range a {
					if _, isStr := e.(string); !isStr {
						t.Fatalf("accepted aud %#v", v)
					}
				}
			default:
				t.Fatalf("accepted aud %#v", v)
			}
		}
	})
}
