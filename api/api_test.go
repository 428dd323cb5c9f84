package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"go/build"
	"strings"
	"testing"
	"time"
)

func floor() KDF {
	return KDF{Alg: KDFAlg, Salt: base64.StdEncoding.EncodeToString(make([]byte, KDFSaltBytes)),
		MemoryKiB: KDFFloorMemoryKiB, Iterations: KDFFloorIterations, Parallelism: KDFFloorParallelism}
}

func TestKDFCheck(t *testing.T) {
	ok := []func(*KDF){
		func(*KDF) {},
		func(k *KDF) {
			k.MemoryKiB, k.Iterations, k.Parallelism = KDFMaxMemoryKiB, KDFMaxIterations, KDFMaxParallelism
		},
	}
	for i, f := range ok {
		k := floor()
		f(&k)
		if err := k.Check(); err != nil {
			t.Errorf("case %d: %+v refused: %v", i, k, err)
		}
	}
	bad := map[string]func(*KDF){
		"argon2i":           func(k *KDF) { k.Alg = "argon2i" },
		"upper-case alg":    func(k *KDF) { k.Alg = "Argon2id" },
		"memory below":      func(k *KDF) { k.MemoryKiB-- },
		"memory above":      func(k *KDF) { k.MemoryKiB = KDFMaxMemoryKiB + 1 },
		"iterations below":  func(k *KDF) { k.Iterations-- },
		"iterations above":  func(k *KDF) { k.Iterations = KDFMaxIterations + 1 },
		"parallelism below": func(k *KDF) { k.Parallelism-- },
		"parallelism above": func(k *KDF) { k.Parallelism = KDFMaxParallelism + 1 },
		"salt 15 bytes":     func(k *KDF) { k.Salt = base64.StdEncoding.EncodeToString(make([]byte, 15)) },
		"salt 17 bytes":     func(k *KDF) { k.Salt = base64.StdEncoding.EncodeToString(make([]byte, 17)) },
		"salt unpadded":     func(k *KDF) { k.Salt = base64.RawStdEncoding.EncodeToString(make([]byte, 16)) },
		"salt url alphabet": func(k *KDF) {
			k.Salt = base64.URLEncoding.EncodeToString([]byte("\xfb\xff\xfb\xff\xfb\xff\xfb\xff\xfb\xff\xfb\xff\xfb\xff\xfb\xff"))
		},
		"salt with newline":  func(k *KDF) { k.Salt = k.Salt[:8] + "\n" + k.Salt[8:] },
		"salt non-canonical": func(k *KDF) { k.Salt = k.Salt[:len(k.Salt)-3] + "B==" },
		"no salt":            func(k *KDF) { k.Salt = "" },
	}
	for name, f := range bad {
		k := floor()
		f(&k)
		err := k.Check()
		if err == nil {
			t.Errorf("%s: %+v accepted", name, k)
		} else if err.Error() == "" {
			t.Errorf("%s: empty reason", name)
		}
	}
}

// The wire form of the KDF is what authsvc stores and both sides pin:
// exactly these members, in this order.
func TestKDFWireForm(t *testing.T) {
	b, err := json.Marshal(floor())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"alg":"argon2id","salt":"AAAAAAAAAAAAAAAAAAAAAA==","memory_kib":65536,"iterations":3,"parallelism":4}`
	if string(b) != want {
		t.Fatalf("%s\nwant %s", b, want)
	}
}

// Tokens print without the tokens, under every verb.
func TestTokensRedact(t *testing.T) {
	tk := Tokens{UserID: "u-1", SessionID: "s-1", AccessToken: "eyJSECRETACCESS", RefreshToken: "zsmrt_SECRETREFRESH",
		TokenType: TokenType, ExpiresAt: time.Unix(1_800_000_000, 0)}
	lr := LoginResponse{Tokens: tk, ServerProof: "proof"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{tk, lr, &tk} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, "SECRET") {
				t.Errorf("%s of %T leaks a token: %s", verb, v, out)
			}
		}
	}
	// The wire form carries them, of course.
	b, _ := json.Marshal(lr)
	if !strings.Contains(string(b), "SECRETACCESS") || !strings.Contains(string(b), `"key_bundle":null`) {
		t.Fatalf("wire form %s", b)
	}
}

// The contract takes the standard library only, so a client can take it
// without taking anything else.
func TestStandardLibraryOnly(t *testing.T) {
	p, err := build.Import("zsm.dev/zsm/api", ".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range p.Imports {
		q, err := build.Import(imp, p.Dir, 0)
		if err != nil || !q.Goroot {
			t.Errorf("api imports %s, which is not in the standard library (%v)", imp, err)
		}
	}
}
