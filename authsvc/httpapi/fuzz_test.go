package httpapi

import (
	"bytes"
	"encoding/json"
	"math/big"
	"reflect"
	"testing"

	"zsm.dev/zsm/srpgroup"
)

// normalize puts a decoded request in the form a re-marshal gives it: a
// json.RawMessage is compacted by Marshal, and an absent one becomes null.
func normalize(v any) any {
	if s, ok := v.(*SignupRequest); ok {
		cp := *s
		if cp.KDF == nil {
			cp.KDF = json.RawMessage("null")
		} else {
			var b bytes.Buffer
			if err := json.Compact(&b, cp.KDF); err == nil {
				cp.KDF = b.Bytes()
			}
		}
		return &cp
	}
	return v
}

func roundTrip[T any](t *testing.T, body []byte) {
	t.Helper()
	v1 := new(T)
	if err := DecodeStrict(body, v1); err != nil {
		if err.Error() == "" {
			t.Fatal("empty error message")
		}
		return
	}
	b1, err := json.Marshal(v1)
	if err != nil {
		t.Fatalf("%T accepted but does not marshal: %v", v1, err)
	}
	v2 := new(T)
	if err := DecodeStrict(b1, v2); err != nil {
		t.Fatalf("%T: re-marshalled body %q refused: %v", v1, b1, err)
	}
	if !reflect.DeepEqual(normalize(v1), normalize(v2)) {
		t.Fatalf("%T changed in the round trip:\n first %+v\nsecond %+v", v1, v1, v2)
	}
	b2, _ := json.Marshal(v2)
	if !bytes.Equal(b1, b2) {
		t.Fatalf("%T: marshal not stable: %q vs %q", v1, b1, b2)
	}
}

// FuzzDecodeStrict feeds arbitrary bodies to the strict decoder of every
// request type: no panic, and an accepted body means the same request when
// re-marshalled and decoded again. Seeds: testdata/fuzz/FuzzDecodeStrict.
func FuzzDecodeStrict(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		roundTrip[SignupRequest](t, body)
		roundTrip[ParamsRequest](t, body)
		roundTrip[InitRequest](t, body)
		roundTrip[VerifyRequest](t, body)
		roundTrip[RefreshRequest](t, body)
	})
}

var nMinus1 = new(big.Int).Sub(srpgroup.N, big.NewInt(1))

// FuzzLoginInitParse runs login/init's input checks on arbitrary identity
// and A strings: no panic; an accepted identity is a fixed point of the
// normalization (client and server normalize independently and must hash
// the same bytes) within the size bounds; an accepted A lies in 1 < A < N-1
// and its canonical encoding is exactly the string sent.
// Seeds: testdata/fuzz/FuzzLoginInitParse.
func FuzzLoginInitParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, identity, a string) {
		if id, err := srpgroup.NormalizeIdentity(identity); err == nil {
			if len(id) < 3 || len(id) > 254 {
				t.Fatalf("accepted identity of %d bytes", len(id))
			}
			again, err := srpgroup.NormalizeIdentity(id)
			if err != nil || again != id {
				t.Fatalf("normalizing %q twice: %q, %v (not a fixed point)", id, again, err)
			}
		} else if id != "" {
			t.Fatal("identity returned with an error")
		}
		A, err := srpgroup.ParsePublic(a)
		if err != nil {
			if A != nil {
				t.Fatal("value returned with an error")
			}
			return
		}
		if A.Cmp(big.NewInt(1)) <= 0 || A.Cmp(nMinus1) >= 0 {
			t.Fatalf("accepted A outside 1 < A < N-1: %x", A)
		}
		if s := srpgroup.FormatPublic(A); s != a {
			t.Fatalf("accepted non-canonical A %q (canonical %q)", a, s)
		}
		back, err := srpgroup.ParsePublic(srpgroup.FormatPublic(A))
		if err != nil || back.Cmp(A) != 0 {
			t.Fatalf("FormatPublic round trip: %v", err)
		}
	})
}
