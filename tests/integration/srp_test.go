package integration

import (
	"context"
	"encoding/hex"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"zsm.dev/zsm/srpgroup"
)

func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(need(t).RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func handshakeKeys(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "zsm:hs:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// A values that would let anyone log in (A ≡ 0 mod N makes S = 0; 1 and N-1
// make S predictable) and malformed ones are refused before any work: 400,
// and no handshake state is written.
func TestLoginInitRefusesBadA(t *testing.T) {
	c := newClient(t)
	u := c.Signup("user")
	rdb := redisClient(t)
	before := len(handshakeKeys(t, rdb))
	N := srpgroup.N
	bad := map[string]string{
		"zero":         "0",
		"one":          "1",
		"N-1":          new(big.Int).Sub(N, big.NewInt(1)).Text(16),
		"N":            N.Text(16),
		"2N":           new(big.Int).Lsh(N, 1).Text(16),
		"leading zero": "0" + N.Text(16)[:10],
		"upper case":   strings.ToUpper(N.Text(16)[:40]),
		"not hex":      "xyz",
		"empty":        "",
		"over-long":    strings.Repeat("f", 2*srpgroup.FieldBytes+2),
	}
	for name, a := range bad {
		r := c.Do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.Identity, "a": a})
		expectRefusal(t, r, http.StatusBadRequest, "malformed_request", "A "+name)
	}
	if after := len(handshakeKeys(t, rdb)); after != before {
		t.Fatalf("refused inits left handshake state: %d keys before, %d after", before, after)
	}
	// A 1 MB A never reaches authsvc: nginx caps the body.
	r := c.Do("POST", "/auth/v1/login/init", "", `{"identity":"`+u.Identity+`","a":"`+strings.Repeat("a", 1<<20)+`"}`)
	expectRefusal(t, r, http.StatusRequestEntityTooLarge, "request_too_large", "1 MB body")
	// Group parameters are not something a client can send.
	r = c.Do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.Identity, "a": "2", "N": "17", "g": "2"})
	expectRefusal(t, r, http.StatusBadRequest, "malformed_request", "client-chosen group")
}

// Registration input is checked: 1 < v < N-1, salt of the group's size, KDF
// at or above the floor. A refused sign-up creates nothing.
func TestSignupRefusesBadRegistration(t *testing.T) {
	c := newClient(t)
	reg, err := srpgroup.Register("probe@example.test", randBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	good := func(identity string) map[string]any {
		return map[string]any{
			"identity": identity, "srp_salt": hex.EncodeToString(reg.Salt),
			"srp_verifier": new(big.Int).SetBytes(reg.Verifier).Text(16), "kdf": testKDF(),
		}
	}
	N := srpgroup.N
	cases := map[string]func(map[string]any){
		"v = 0":              func(m map[string]any) { m["srp_verifier"] = "0" },
		"v = 1":              func(m map[string]any) { m["srp_verifier"] = "1" },
		"v = N-1":            func(m map[string]any) { m["srp_verifier"] = new(big.Int).Sub(N, big.NewInt(1)).Text(16) },
		"v = N":              func(m map[string]any) { m["srp_verifier"] = N.Text(16) },
		"short salt":         func(m map[string]any) { m["srp_salt"] = "00ff" },
		"memory below floor": func(m map[string]any) { k := testKDF(); k.MemoryKiB = 65535; m["kdf"] = k },
		"t below floor":      func(m map[string]any) { k := testKDF(); k.Iterations = 2; m["kdf"] = k },
		"p below floor":      func(m map[string]any) { k := testKDF(); k.Parallelism = 1; m["kdf"] = k },
		"other KDF":          func(m map[string]any) { k := testKDF(); k.Alg = "pbkdf2"; m["kdf"] = k },
		"bad identity":       func(m map[string]any) { m["identity"] = "a b" },
	}
	conn := db(t)
	for name, change := range cases {
		identity := "bad-" + randHex(4) + "@example.test"
		body := good(identity)
		change(body)
		r := c.Do("POST", "/auth/v1/signup", "", body)
		wantCode := "invalid_registration"
		expectRefusal(t, r, http.StatusBadRequest, wantCode, name)
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM auth.users WHERE identity = $1`, identity).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%s: refused sign-up created %d users (%v)", name, n, err)
		}
	}
	// The same identity twice, in two spellings that normalize alike (from a
	// fresh address: the loop above used up this one's sign-up allowance).
	c = newClient(t)
	identity := "Twice-" + randHex(4) + "@Example.test"
	expectStatus(t, c.Do("POST", "/auth/v1/signup", "", good(identity)), http.StatusCreated, "first sign-up")
	r := c.Do("POST", "/auth/v1/signup", "", good(strings.ToLower(identity)))
	expectRefusal(t, r, http.StatusConflict, "identity_unavailable", "second sign-up")
}

// A handshake is sealed in Redis, lives at most 60 s and allows one verify.
func TestHandshakeIsSealedAndSingleUse(t *testing.T) {
	c := newClient(t)
	u := c.Signup("user")
	rdb := redisClient(t)

	cl, err := srpgroup.Env().NewClient([]byte(u.Identity), u.Secret)
	if err != nil {
		t.Fatal(err)
	}
	cred := cl.Credentials()
	A, _ := new(big.Int).SetString(cred[strings.IndexByte(cred, ':')+1:], 16)
	r := c.Do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.Identity, "a": A.Text(16)})
	expectStatus(t, r, http.StatusOK, "init")
	var ch struct {
		HandshakeID string `json:"handshake_id"`
		SRPSalt     string `json:"srp_salt"`
		B           string `json:"b"`
	}
	r.JSON(t, &ch)
	if strings.Contains(string(r.Body), "access_token") {
		t.Fatal("init handed out a token before any proof")
	}

	raw, err := rdb.Get(context.Background(), "zsm:hs:"+ch.HandshakeID).Bytes()
	if err != nil {
		t.Fatalf("no handshake state in Redis: %v", err)
	}
	rawHex := hex.EncodeToString(raw)
	for name, v := range map[string]string{"B": ch.B, "salt": ch.SRPSalt[:64]} {
		if strings.Contains(string(raw), v[:32]) || strings.Contains(rawHex, v[:32]) {
			t.Errorf("handshake state in Redis shows %s in the clear", name)
		}
	}
	ttl, err := rdb.PTTL(context.Background(), "zsm:hs:"+ch.HandshakeID).Result()
	if err != nil || ttl <= 0 || ttl > 60*time.Second {
		t.Errorf("handshake TTL %v (%v), want (0, 60s]", ttl, err)
	}

	m, err := cl.Generate(ch.SRPSalt + ":" + ch.B)
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]string{"handshake_id": ch.HandshakeID, "m": m}
	r = c.Do("POST", "/auth/v1/login/verify", "", body)
	expectStatus(t, r, http.StatusOK, "verify")
	var ok struct {
		ServerProof string `json:"server_proof"`
	}
	r.JSON(t, &ok)
	if !cl.ServerOk(ok.ServerProof) {
		t.Fatal("the server's proof does not verify")
	}
	// Replaying the same verify gets nothing.
	r = c.Do("POST", "/auth/v1/login/verify", "", body)
	expectRefusal(t, r, http.StatusUnauthorized, "login_failed", "replayed verify")
	if n, _ := rdb.Exists(context.Background(), "zsm:hs:"+ch.HandshakeID).Result(); n != 0 {
		t.Fatal("handshake state outlived its verify")
	}
}

// An unknown identity cannot be told from a known one by login's answers.
func TestUnknownIdentityLooksLikeAKnownOne(t *testing.T) {
	c := newClient(t)
	u := c.Signup("user")
	unknown := "nobody-" + randHex(6) + "@example.test"

	params := func(identity string) map[string]any {
		r := c.Do("POST", "/auth/v1/login/params", "", map[string]string{"identity": identity})
		expectStatus(t, r, http.StatusOK, "params "+identity)
		var out struct {
			KDF map[string]any `json:"kdf"`
		}
		r.JSON(t, &out)
		return out.KDF
	}
	pk, pu1, pu2 := params(u.Identity), params(unknown), params(unknown)
	if len(pk) != len(pu1) || len(pk["salt"].(string)) != len(pu1["salt"].(string)) {
		t.Errorf("params differ in shape: known %v, unknown %v", pk, pu1)
	}
	for k := range pk {
		if k != "salt" && pk[k] != pu1[k] {
			t.Errorf("params member %s differs: known %v, unknown %v", k, pk[k], pu1[k])
		}
	}
	if pu1["salt"] != pu2["salt"] {
		t.Error("repeated params for an unknown identity disagree")
	}

	init := func(identity string) map[string]any {
		cl, _ := srpgroup.Env().NewClient([]byte(identity), randBytes(32))
		cred := cl.Credentials()
		A, _ := new(big.Int).SetString(cred[strings.IndexByte(cred, ':')+1:], 16)
		r := c.Do("POST", "/auth/v1/login/init", "", map[string]string{"identity": identity, "a": A.Text(16)})
		expectStatus(t, r, http.StatusOK, "init "+identity)
		var out map[string]any
		r.JSON(t, &out)
		return out
	}
	ik, iu := init(u.Identity), init(unknown)
	for k, v := range ik {
		w, ok := iu[k]
		if !ok {
			t.Errorf("unknown identity's init lacks %s", k)
			continue
		}
		if s, isStr := v.(string); isStr && k != "b" && len(s) != len(w.(string)) {
			t.Errorf("init member %s differs in length", k)
		}
	}
	if iu["srp_salt"] != init(unknown)["srp_salt"] {
		t.Error("repeated inits for an unknown identity give different salts")
	}

	_, errUnknown := c.Auth.LoginWithSecret(context.Background(), mustIdentity(t, unknown), randBytes(32))
	_, errWrong := c.Auth.LoginWithSecret(context.Background(), mustIdentity(t, u.Identity), randBytes(32))
	if errUnknown == nil || errWrong == nil {
		t.Fatalf("logins without the right secret succeeded: %v / %v", errUnknown, errWrong)
	}
	eu, ew := apiErr(t, errUnknown), apiErr(t, errWrong)
	if eu.Status != http.StatusUnauthorized || eu.Code != "login_failed" || eu.Code != ew.Code || eu.Message != ew.Message || eu.Status != ew.Status {
		t.Fatalf("unknown identity: %v; wrong password: %v — must be the same", errUnknown, errWrong)
	}
}
