// Package integration tests zsm end to end: a real stack (PostgreSQL 18,
// PostgREST 12, Redis, nginx and authsvc built from this tree) started by the
// project's own stack runner on free loopback ports, and every request sent
// through the nginx gateway as a client would. Nothing is mocked. If the
// stack cannot start, every test fails: there is no silent skip.
package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/stack"
)

var (
	st       *stack.Stack
	startErr error
)

func TestMain(m *testing.M) {
	var stop func()
	st, stop, startErr = stack.StartTemp("zsm-it-", stack.Config{LoginRatePerSecond: 50, LoginBurst: 100})
	code := m.Run()
	stop()
	os.Exit(code)
}

// need fails the test when the stack did not start.
func need(t *testing.T) *stack.Stack {
	t.Helper()
	if startErr != nil {
		t.Fatalf("the stack did not start: %v", startErr)
	}
	return st
}

var nextIP atomic.Int32

// sourceIP hands each caller its own loopback source address (127.0.1.x),
// so that per-address rate limits of one test never touch another.
func sourceIP() string {
	return fmt.Sprintf("127.0.1.%d", nextIP.Add(1))
}

// httpFrom returns an HTTP client whose connections leave from ip.
func httpFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4},
	}
}

// client is one simulated user's device: an authclient plus raw HTTP.
type client struct {
	t    *testing.T
	ip   string
	http *http.Client
	auth *authclient.Client
}

func newClient(t *testing.T) *client {
	s := need(t)
	ip := sourceIP()
	c := &client{t: t, ip: ip, http: httpFrom(ip), auth: authclient.New(s.GatewayURL())}
	c.auth.HTTP = c.http
	return c
}

func testKDF() api.KDF {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	return api.KDF{Alg: "argon2id", Salt: base64.StdEncoding.EncodeToString(salt), MemoryKiB: 65536, Iterations: 3, Parallelism: 4}
}

// user is a registered account with its SRP secret (what the real client
// derives from password and Secret Key; random here).
type user struct {
	identity string
	secret   []byte
	id       string
}

func (c *client) signup() user {
	c.t.Helper()
	u := user{identity: fmt.Sprintf("user-%s@example.test", randHex(6)), secret: randBytes(32)}
	id, err := c.auth.Signup(context.Background(), u.identity, u.secret, testKDF())
	if err != nil {
		c.t.Fatalf("signup: %v", err)
	}
	u.id = id
	return u
}

func (c *client) login(u user) authclient.Session {
	c.t.Helper()
	s, err := c.auth.LoginWithSecret(context.Background(), u.identity, u.secret)
	if err != nil {
		c.t.Fatalf("login: %v", err)
	}
	if s.UserID != u.id {
		c.t.Fatalf("login returned user %s, want %s", s.UserID, u.id)
	}
	return s
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, r.body)
	}
}

// errBody is the error shape, of authsvc and of PostgREST alike (PostgREST
// has details and hint instead of request_id).
type errBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func (r response) err(t *testing.T) errBody {
	t.Helper()
	var e errBody
	r.json(t, &e)
	return e
}

// do sends a request through the gateway.
func (c *client) do(method, path, token string, body any, hdr ...string) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, need(c.t).GatewayURL()+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func expectStatus(t *testing.T, r response, want int, what string) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.status, want, r.body)
	}
}

// expectRefusal checks status and error code exactly.
func expectRefusal(t *testing.T, r response, status int, code, what string) {
	t.Helper()
	expectStatus(t, r, status, what)
	if e := r.err(t); e.Code != code {
		t.Fatalf("%s: code %q, want %q; body %s", what, e.Code, code, r.body)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randHex(n int) string { return hex.EncodeToString(randBytes(n)) }

// db opens a superuser connection to the zsm database, for checks behind
// the API's back.
func db(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, need(t).AdminDSN())
	if err != nil {
		t.Fatalf("connect as superuser: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// currentKey returns the private half of the key authsvc signs with, so
// tests can sign tokens that are perfectly valid except for the one claim
// they attack.
func currentKey(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	s := need(t)
	ctx := context.Background()
	sto, err := store.Open(ctx, s.AuthsvcDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer sto.Close()
	keys, err := sto.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := hex.DecodeString(s.KeyEncryptionKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.State == store.KeyCurrent {
			priv, err := signer.OpenPrivateKey(kek, k)
			if err != nil {
				t.Fatal(err)
			}
			return k.KID, priv
		}
	}
	t.Fatal("no current signing key")
	return "", nil
}

func b64(v any) string {
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case string:
		b = []byte(x)
	default:
		var err error
		if b, err = json.Marshal(x); err != nil {
			panic(err)
		}
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// signEdDSA makes a compact JWS by hand, so a test can put any header and
// claims into it.
func signEdDSA(header, claims map[string]any, key ed25519.PrivateKey) string {
	in := b64(header) + "." + b64(claims)
	return in + "." + b64(ed25519.Sign(key, []byte(in)))
}

func b64decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func apiErr(t *testing.T, err error) *authclient.APIError {
	t.Helper()
	var e *authclient.APIError
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an API error", err)
	}
	return e
}

func pgxConnect(ctx context.Context, dsn string) (*pgx.Conn, error) { return pgx.Connect(ctx, dsn) }

func randHexOf(b []byte) string { return hex.EncodeToString(b) }
