package integration

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/zsm"
)

// evilServer sits between the real client code and the real stack and lets
// a test rewrite any answer, as a malicious server could.
type evilServer struct {
	*httptest.Server
	mu      sync.Mutex
	rewrite func(path string, body []byte) []byte // nil: pass through
	seen    []string                              // paths requested
}

func newEvilServer(t *testing.T) *evilServer {
	target, err := url.Parse(need(t).GatewayURL())
	if err != nil {
		t.Fatal(err)
	}
	e := &evilServer{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// Each proxy reaches the gateway from a loopback address of its own, so
	// that the per-address limits of one test's accounts never touch
	// another's (like httpFrom).
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(sourceIP())}, Timeout: 5 * time.Second}
	proxy.Transport = &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}
	direct := proxy.Director
	proxy.Director = func(r *http.Request) {
		direct(r)
		r.Header.Del("Accept-Encoding")
		e.mu.Lock()
		e.seen = append(e.seen, r.URL.Path)
		e.mu.Unlock()
	}
	proxy.ModifyResponse = func(resp *http.Response) error {
		e.mu.Lock()
		f := e.rewrite
		e.mu.Unlock()
		if f == nil {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		body = f(resp.Request.URL.Path+"?"+resp.Request.URL.RawQuery, body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	e.Server = httptest.NewServer(proxy)
	t.Cleanup(e.Close)
	return e
}

func (e *evilServer) set(f func(path string, body []byte) []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rewrite = f
}

func (e *evilServer) requested(prefix string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.seen {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// rows edits a JSON array answer for paths starting with prefix.
func rows(prefix string, edit func([]map[string]any) []map[string]any) func(string, []byte) []byte {
	return func(path string, body []byte) []byte {
		if !strings.HasPrefix(path, prefix) {
			return body
		}
		var rs []map[string]any
		if json.Unmarshal(body, &rs) != nil {
			return body
		}
		out, _ := json.Marshal(edit(rs))
		return out
	}
}

// states edits the answer of api.vault_states, the one snapshot ListVaults
// opens vaults from.
func states(edit func([]map[string]any) []map[string]any) func(string, []byte) []byte {
	return rows("/rest/rpc/vault_states", edit)
}

// grantOf is the caller's grant inside a vault_states row.
func grantOf(r map[string]any) map[string]any {
	g, _ := r["grant"].(map[string]any)
	return g
}

// foreignVault is a vault_states row the server makes up: a vault of
// stranger's with a grant to user that stranger "signed" (random bytes),
// and no log.
func foreignVault(vault, stranger uuid.UUID, user any) map[string]any {
	return map[string]any{"id": vault.String(), "owner_id": stranger.String(), "meta": "AAAA", "revision": 1,
		"created_at": "2026-11-29T10:00:00Z", "log": []any{}, "chain": []any{}, "manifest": nil,
		"grant": map[string]any{"user_id": user, "role": "owner", "sealed_key": base64.StdEncoding.EncodeToString(randBytes(80)),
			"granted_by": stranger.String(), "signature": base64.StdEncoding.EncodeToString(randBytes(64)),
			"created_at": "2026-11-29T10:00:00Z", "key_generation": 1, "grant_version": 1, "kem_id": nil}}
}

// account signs up through the honest gateway and logs in through evil.
type account struct {
	Identity, password string
	sk                 keys.SecretKey
	state              *zsm.FileState
	client             *zsm.Client
}

func newAccount(t *testing.T, evil *evilServer) *account {
	t.Helper()
	ctx := context.Background()
	a := &account{Identity: "victim-" + randHex(5) + "@example.test", password: "correct horse " + randHex(4), state: zsm.NewMemState()}
	hc := httpFrom(sourceIP())
	res, err := zsm.Signup(ctx, hc, evil.URL, a.Identity, a.password, a.state)
	if err != nil {
		t.Fatalf("signup: %v", err)
	}
	a.sk = res.SecretKey
	sess, err := zsm.Login(ctx, hc, evil.URL, a.Identity, a.password, a.sk, a.state)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	a.client = zsm.New(sess, a.state, hc)
	return a
}

func expectErr(t *testing.T, err error, want error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted; want %v", what, want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v; want %v", what, err, want)
	}
}

// A malicious server tampers with the answers the real client code gets.
// Every tampering is refused with a clear error; none is silently accepted.
func TestMaliciousServerIsDetected(t *testing.T) {
	ctx := context.Background()
	evil := newEvilServer(t)
	a := newAccount(t, evil)
	c := a.client

	va, err := c.CreateVault(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	vb, err := c.CreateVault(ctx, "beta")
	if err != nil {
		t.Fatal(err)
	}
	s1, err := c.SetSecret(ctx, va, "API_KEY", "value-one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx, va, "DB_PASSWORD", "value-two"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx, vb, "OTHER", "value-three"); err != nil {
		t.Fatal(err)
	}
	// Control: honest answers are accepted.
	if got, err := c.SecretByName(ctx, va, "API_KEY"); err != nil || got.Value != "value-one" {
		t.Fatalf("honest read: %v %v", got, err)
	}

	t.Run("swap the ciphertexts of two secrets", func(t *testing.T) {
		swapped := false
		evil.set(rows("/rest/secrets", func(rs []map[string]any) []map[string]any {
			if len(rs) == 2 {
				rs[0]["ciphertext"], rs[1]["ciphertext"] = rs[1]["ciphertext"], rs[0]["ciphertext"]
				swapped = true
			}
			return rs
		}))
		defer evil.set(nil)
		_, err := c.SecretByName(ctx, va, "API_KEY")
		if !swapped {
			t.Fatal("the attack did not happen")
		}
		expectErr(t, err, zsm.ErrTampered, "swapped ciphertexts")
	})

	t.Run("move a secret to another vault", func(t *testing.T) {
		// The server lists vault alpha's secret under beta, claiming beta.
		var moved map[string]any
		evil.set(rows("/rest/secrets", func(rs []map[string]any) []map[string]any {
			if strings.Contains(rs0(rs), va.ID.String()) {
				moved = rs[0]
			}
			return rs
		}))
		if _, err := c.Secrets(ctx, va); err != nil {
			t.Fatal(err)
		}
		if moved == nil {
			t.Fatal("no secret of vault alpha captured")
		}
		evil.set(rows("/rest/secrets", func(rs []map[string]any) []map[string]any {
			m := map[string]any{}
			for k, v := range moved {
				m[k] = v
			}
			m["vault_id"] = vb.ID.String()
			return append(rs, m)
		}))
		defer evil.set(nil)
		_, err := c.Secrets(ctx, vb)
		expectErr(t, err, zsm.ErrTampered, "secret moved to another vault")
	})

	t.Run("serve an older revision after a newer one was seen", func(t *testing.T) {
		var old []byte
		evil.set(func(path string, body []byte) []byte {
			if strings.HasPrefix(path, "/rest/secrets") && strings.Contains(path, va.ID.String()) && old == nil {
				old = append([]byte(nil), body...)
			}
			return body
		})
		if _, err := c.SecretByName(ctx, va, "API_KEY"); err != nil {
			t.Fatal(err)
		}
		evil.set(nil)
		if old == nil {
			t.Fatal("no answer captured")
		}
		if _, err := c.SetSecret(ctx, va, "API_KEY", "value-one-v2"); err != nil {
			t.Fatal(err)
		}
		if got, err := c.SecretByName(ctx, va, "API_KEY"); err != nil || got.Revision != s1.Revision+1 {
			t.Fatalf("newer revision: %v %v", got, err)
		}
		evil.set(func(path string, body []byte) []byte {
			if strings.HasPrefix(path, "/rest/secrets") && strings.Contains(path, va.ID.String()) {
				return old
			}
			return body
		})
		defer evil.set(nil)
		_, err := c.SecretByName(ctx, va, "API_KEY")
		expectErr(t, err, zsm.ErrRollback, "replayed older revision")
	})

	t.Run("relabel an old ciphertext with the new revision", func(t *testing.T) {
		hist, err := c.History(ctx, va, "API_KEY")
		if err != nil || len(hist) < 2 {
			t.Fatalf("history: %v %v", hist, err)
		}
		var oldCT string
		evil.set(rows("/rest/secret_versions", func(rs []map[string]any) []map[string]any {
			for _, r := range rs {
				if r["revision"].(float64) == 1 {
					oldCT = r["ciphertext"].(string)
				}
			}
			return rs
		}))
		if _, err := c.History(ctx, va, "API_KEY"); err != nil {
			t.Fatal(err)
		}
		if oldCT == "" {
			t.Fatal("revision 1 not captured")
		}
		evil.set(rows("/rest/secrets", func(rs []map[string]any) []map[string]any {
			for _, r := range rs {
				if r["revision"].(float64) == 2 {
					r["ciphertext"] = oldCT
				}
			}
			return rs
		}))
		defer evil.set(nil)
		_, err = c.SecretByName(ctx, va, "API_KEY")
		expectErr(t, err, zsm.ErrTampered, "old ciphertext under a new revision")
	})

	t.Run("flip one byte", func(t *testing.T) {
		evil.set(rows("/rest/secrets", func(rs []map[string]any) []map[string]any {
			for _, r := range rs {
				b, _ := base64.StdEncoding.DecodeString(r["ciphertext"].(string))
				b[len(b)-20] ^= 0x01
				r["ciphertext"] = base64.StdEncoding.EncodeToString(b)
			}
			return rs
		}))
		defer evil.set(nil)
		_, err := c.List(ctx, va)
		expectErr(t, err, zsm.ErrTampered, "flipped byte")
	})

	t.Run("substitute the vault key", func(t *testing.T) {
		// The server knows the account's public keys and seals a key of its
		// own choosing to them: it decrypts fine, but nobody signed it, and
		// the log commits to another key.
		var xw string
		conn := db(t)
		if err := conn.QueryRow(ctx, `SELECT xwing_public FROM api.public_keys WHERE user_id = $1`, c.Session().UserID).Scan(&xw); err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(xw)
		pk, err := grant.RecipientKey(nil, raw)
		if err != nil {
			t.Fatal(err)
		}
		evilKey := randBytes(32)
		evil.set(states(func(rs []map[string]any) []map[string]any {
			for _, r := range rs {
				vid := uuid.MustParse(r["id"].(string))
				sealed, _, err := grant.SealVaultKeyV2(pk, vid, c.Session().UserID, 1, evilKey)
				if err != nil {
					panic(err)
				}
				grantOf(r)["sealed_key"] = sealed
			}
			return rs
		}))
		defer evil.set(nil)
		// Each vault is refused on its own; the listing itself does not fail.
		l, err := c.ListVaults(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Vaults) != 0 || len(l.Refused) != 2 {
			t.Fatalf("listed %d vaults and refused %d; want 0 and 2", len(l.Vaults), len(l.Refused))
		}
		for _, r := range l.Refused {
			expectErr(t, r, zsm.ErrTampered, "substituted vault key")
		}
		_, err = c.VaultByName(ctx, "alpha")
		expectErr(t, err, zsm.ErrTampered, "substituted vault key, asked by name")
	})

	t.Run("tamper with one vault's grant: the other vaults still open", func(t *testing.T) {
		evil.set(states(func(rs []map[string]any) []map[string]any {
			for _, r := range rs {
				if r["id"] == va.ID.String() {
					grantOf(r)["role"] = "viewer" // the signature and the log cover the role
				}
			}
			return rs
		}))
		defer evil.set(nil)
		l, err := c.ListVaults(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Vaults) != 1 || l.Vaults[0].ID != vb.ID || len(l.Refused) != 1 || l.Refused[0].ID != va.ID {
			t.Fatalf("vaults %v, refused %v; want beta opened and alpha refused", l.Vaults, l.Refused)
		}
		expectErr(t, l.Refused[0], zsm.ErrTampered, "alpha's grant")
		if got, err := c.SecretByName(ctx, l.Vaults[0], "OTHER"); err != nil || got.Value != "value-three" {
			t.Fatalf("beta's secret: %v %v", got, err)
		}
		_, err = c.VaultByName(ctx, "alpha")
		expectErr(t, err, zsm.ErrTampered, "alpha asked by name")
	})

	t.Run("add a grant signed by somebody else", func(t *testing.T) {
		// The server (or another user, see TestUnsolicitedGrantIsAnInvitation)
		// adds a vault with a membership signed by a stranger. It is an
		// invitation: listed apart, used for nothing, and the account's
		// own vaults open as before.
		foreign, stranger := uuid.New(), uuid.New()
		evil.set(states(func(rs []map[string]any) []map[string]any {
			return append(rs, foreignVault(foreign, stranger, c.Session().UserID.String()))
		}))
		defer evil.set(nil)
		l, err := c.ListVaults(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Vaults) != 2 || len(l.Refused) != 0 || len(l.Invitations) != 1 {
			t.Fatalf("vaults %v, invitations %v, refused %v; want 2, 1, 0", l.Vaults, l.Invitations, l.Refused)
		}
		if i := l.Invitations[0]; i.VaultID != foreign || i.From != stranger || i.Role != "owner" || i.FromIdentity != "" {
			t.Fatalf("invitation %+v", i)
		}
		v, err := c.VaultByName(ctx, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.SecretByName(ctx, v, "DB_PASSWORD"); err != nil || got.Value != "value-two" {
			t.Fatalf("own secret next to a foreign grant: %v %v", got, err)
		}
		if _, err := c.VaultByName(ctx, "nonexistent"); !errors.Is(err, zsm.ErrNotFound) {
			t.Fatalf("unknown vault next to an invitation: %v, want ErrNotFound", err)
		}
	})

	t.Run("swap the public keys in an identity lookup", func(t *testing.T) {
		other := newAccount(t, evil)
		pk, err := c.LookupIdentity(ctx, other.Identity)
		if err != nil || !pk.Signed || pk.UserID != other.client.Session().UserID {
			t.Fatalf("honest lookup: %+v %v", pk, err)
		}
		_, x, _ := newX25519()
		evil.set(rows("/rest/rpc/lookup_identity", func(rs []map[string]any) []map[string]any {
			for _, r := range rs {
				r["x25519_public"] = x
			}
			return rs
		}))
		defer evil.set(nil)
		_, err = c.LookupIdentity(ctx, other.Identity)
		expectErr(t, err, zsm.ErrTampered, "lookup with a substituted X25519 key")
		evil.set(rows("/rest/rpc/lookup_identity", func(rs []map[string]any) []map[string]any {
			for _, r := range rs {
				r["user_id"] = uuid.NewString()
			}
			return rs
		}))
		_, err = c.LookupIdentity(ctx, other.Identity)
		expectErr(t, err, zsm.ErrTampered, "lookup naming another user id")
	})

	t.Run("lower the KDF parameters", func(t *testing.T) {
		fresh := newEvilServer(t)
		fresh.set(func(path string, body []byte) []byte {
			if !strings.HasPrefix(path, "/auth/v1/login/params") {
				return body
			}
			var m map[string]map[string]any
			_ = json.Unmarshal(body, &m)
			m["kdf"]["memory_kib"] = 8
			m["kdf"]["iterations"] = 1
			out, _ := json.Marshal(m)
			return out
		})
		_, err := zsm.Login(ctx, httpFrom(sourceIP()), fresh.URL, a.Identity, a.password, a.sk, zsm.NewMemState())
		expectErr(t, err, keys.ErrWeakKDF, "weak KDF")
		if fresh.requested("/auth/v1/login/init") || fresh.requested("/auth/v1/login/verify") {
			t.Fatal("the client sent its SRP values after being given weak parameters")
		}
	})

	t.Run("change the KDF salt of a pinned account", func(t *testing.T) {
		fresh := newEvilServer(t)
		fresh.set(func(path string, body []byte) []byte {
			if !strings.HasPrefix(path, "/auth/v1/login/params") {
				return body
			}
			var m map[string]map[string]any
			_ = json.Unmarshal(body, &m)
			m["kdf"]["salt"] = base64.StdEncoding.EncodeToString(randBytes(16))
			out, _ := json.Marshal(m)
			return out
		})
		// The state pinned the parameters under the evil server's address at
		// sign-up; pin them for this one too.
		st := zsm.NewMemState()
		if _, err := zsm.Login(ctx, httpFrom(sourceIP()), evil.URL, a.Identity, a.password, a.sk, st); err != nil {
			t.Fatal(err)
		}
		pinned, _ := st.PinnedKDF(strings.TrimRight(evil.URL, "/") + "|" + a.Identity)
		st.PinKDF(strings.TrimRight(fresh.URL, "/")+"|"+a.Identity, pinned)
		_, err := zsm.Login(ctx, httpFrom(sourceIP()), fresh.URL, a.Identity, a.password, a.sk, st)
		expectErr(t, err, zsm.ErrKDFChange, "changed salt")
		if fresh.requested("/auth/v1/login/init") {
			t.Fatal("the client sent its SRP values after the parameters changed")
		}
	})

	t.Run("forge the server's SRP proof", func(t *testing.T) {
		fresh := newEvilServer(t)
		fresh.set(func(path string, body []byte) []byte {
			if !strings.HasPrefix(path, "/auth/v1/login/verify") {
				return body
			}
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			m["server_proof"] = strings.Repeat("0", 64)
			out, _ := json.Marshal(m)
			return out
		})
		_, err := zsm.Login(ctx, httpFrom(sourceIP()), fresh.URL, a.Identity, a.password, a.sk, zsm.NewMemState())
		expectErr(t, err, zsm.ErrTampered, "forged server proof")
	})

	t.Run("swap a public key in the key bundle", func(t *testing.T) {
		fresh := newEvilServer(t)
		_, other, _ := newX25519()
		fresh.set(func(path string, body []byte) []byte {
			if !strings.HasPrefix(path, "/auth/v1/login/verify") {
				return body
			}
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			m["key_bundle"].(map[string]any)["x25519_public"] = other
			out, _ := json.Marshal(m)
			return out
		})
		_, err := zsm.Login(ctx, httpFrom(sourceIP()), fresh.URL, a.Identity, a.password, a.sk, zsm.NewMemState())
		expectErr(t, err, zsm.ErrTampered, "bundle with a foreign public key")
	})

	t.Run("withhold the key bundle at login", func(t *testing.T) {
		fresh := newEvilServer(t)
		fresh.set(func(path string, body []byte) []byte {
			if !strings.HasPrefix(path, "/auth/v1/login/verify") {
				return body
			}
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			m["key_bundle"] = nil
			out, _ := json.Marshal(m)
			return out
		})
		_, err := zsm.Login(ctx, httpFrom(sourceIP()), fresh.URL, a.Identity, a.password, a.sk, zsm.NewMemState())
		expectErr(t, err, zsm.ErrTampered, "key_bundle null")
	})

	t.Run("answer a sign-up with another user id", func(t *testing.T) {
		fresh := newEvilServer(t)
		other := uuid.NewString()
		fresh.set(func(path string, body []byte) []byte {
			if !strings.HasPrefix(path, "/auth/v1/signup") {
				return body
			}
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			m["user_id"] = other
			out, _ := json.Marshal(m)
			return out
		})
		res, err := zsm.Signup(ctx, httpFrom(sourceIP()), fresh.URL, "renamed-"+randHex(5)+"@example.test", "pw "+randHex(4), zsm.NewMemState())
		if res != nil {
			t.Fatal("the sign-up result was handed out")
		}
		expectErr(t, err, zsm.ErrTampered, "sign-up answered with another user id")
	})

	t.Run("wrong password and wrong Secret Key", func(t *testing.T) {
		_, err := zsm.Login(ctx, httpFrom(sourceIP()), evil.URL, a.Identity, a.password+"x", a.sk, zsm.NewMemState())
		expectErr(t, err, zsm.ErrLoginFailed, "wrong password")
		otherSK, _ := keys.NewSecretKey(rand.Reader)
		_, err = zsm.Login(ctx, httpFrom(sourceIP()), evil.URL, a.Identity, a.password, otherSK, zsm.NewMemState())
		expectErr(t, err, zsm.ErrLoginFailed, "wrong Secret Key")
	})
}

func rs0(rs []map[string]any) string {
	if len(rs) == 0 {
		return ""
	}
	v, _ := rs[0]["vault_id"].(string)
	return v
}

func newX25519() (*ecdh.PrivateKey, string, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	return k, base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()), nil
}
