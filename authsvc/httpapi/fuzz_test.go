package httpapi

import (
	"bytes"
	"encoding/json"
	"math/big"
	"reflect"
	"strings"
	"testing"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/srpgroup"
)

// normalize puts a decoded request in the form a re-marshal gives it: a
// json.RawMessage is compacted by Marshal, and an absent one becomes null.
func normalize(v any) any {
	if s, ok := v.(*api.SignupRequest); ok {
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
// request type: no panic; an accepted body means the same request when
// re-marshalled and decoded again; and a U+FFFD in a decoded string was
// sent as one (encoding/json makes one up for bytes that are not UTF-8 and
// for half a surrogate pair, and those bodies must be refused).
// Seeds: testdata/fuzz/FuzzDecodeStrict.
func FuzzDecodeStrict(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		var in api.InitRequest
		if DecodeStrict(body, &in) == nil && strings.ContainsRune(in.Identity+in.A, '\uFFFD') &&
			!bytes.Contains(body, []byte("\uFFFD")) && !bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
			t.Fatalf("accepted %q, which decodes to a made-up U+FFFD", body)
		}
		roundTrip[api.SignupRequest](t, body)
		roundTrip[api.ParamsRequest](t, body)
		roundTrip[api.InitRequest](t, body)
		roundTrip[api.VerifyRequest](t, body)
		roundTrip[api.RefreshRequest](t, body)
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

// Bodies that encoding/json would decode with a made-up U+FFFD are refused;
// escaped pairs and escaped backslashes are not mistaken for them.
func TestDecodeStrictRefusesWhatIsNotUTF8(t *testing.T) {
	for body, want := range map[string]string{
		"{\"identity\":\"a\xffb\",\"a\":\"2\"}":        "the request body is not valid UTF-8",
		"{\"identity\":\"a\xed\xa0\x80\",\"a\":\"2\"}": "the request body is not valid UTF-8", // a surrogate in UTF-8
		`{"identity":"a\udcffb","a":"2"}`:              "the request body escapes half of a UTF-16 surrogate pair",
		`{"identity":"a\ud83d","a":"2"}`:               "the request body escapes half of a UTF-16 surrogate pair",
		`{"identity":"a\ud83d\u0041","a":"2"}`:         "the request body escapes half of a UTF-16 surrogate pair",
		`{"identity":"a\ud83d\ud83d","a":"2"}`:         "the request body escapes half of a UTF-16 surrogate pair",
		`{"identity":"ab","a":"2","x":"\uDE00"}`:       "the request body escapes half of a UTF-16 surrogate pair",
	} {
		var v api.InitRequest
		if err := DecodeStrict([]byte(body), &v); err == nil || err.Error() != want {
			t.Errorf("DecodeStrict(%q) = %v, want %q", body, err, want)
		}
	}
	for body, identity := range map[string]string{
		`{"identity":"a\ud83d\ude00","a":"2"}`: "a\U0001F600",
		`{"identity":"a\\udcff","a":"2"}`:      `a\udcff`,
		`{"identity":"a\"\\\"","a":"2"}`:       `a"\"`,
		`{"identity":"\ufffd","a":"2"}`:        "\uFFFD", // sent as such: CheckNewIdentity's business
	} {
		var v api.InitRequest
		if err := DecodeStrict([]byte(body), &v); err != nil || v.Identity != identity {
			t.Errorf("DecodeStrict(%q) = %q, %v; want %q", body, v.Identity, err, identity)
		}
	}
}
