// Package ratelimits attacks authsvc's rate limits end to end: targeted
// lockout of another user's identity, many addresses of one network, and
// floods of cheap requests, against a stack of its own (PostgreSQL,
// PostgREST, Redis, nginx and authsvc, started by the project's runner)
// whose limits are small enough to reach in a test and whose IPv4 prefix
// is /24, so that loopback addresses 127.x.y.z stand for many networks.
// Every request goes through the nginx gateway, whose client address
// ($remote_addr) authsvc counts, except the IPv6 checks, which talk to
// authsvc from its trusted proxy address with X-Zsm-Client-Ip set, as
// nginx does.
package ratelimits

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/stack"
)

var (
	st       *stack.Stack
	startErr error
)

// The limits of this stack (docs/auth.md has the defaults): per address
// prefix 8 login starts a minute (32 params, refreshes and logouts); 2
// attempts per identity and prefix, then waits of 2 s, 4 s, … up to 1 h
// (at most 12 attempts an hour from one prefix); 16 unproven attempts per
// identity an hour.
const (
	startsPerMinute = 8
	freeAttempts    = 2
	perIdentity     = 16
)

var testEnv = map[string]string{
	"AUTHSVC_RATE_IPV4_PREFIX":                "24",
	"AUTHSVC_LOGIN_RATE_PER_IP":               fmt.Sprint(startsPerMinute),
	"AUTHSVC_SIGNUP_RATE_PER_IP":              "100",
	"AUTHSVC_LOGIN_FAILURES_PER_IDENTITY":     fmt.Sprint(perIdentity),
	"AUTHSVC_LOGIN_FAILURE_WINDOW":            "1h",
	"AUTHSVC_LOGIN_FREE_ATTEMPTS_PER_ADDRESS": fmt.Sprint(freeAttempts),
	"AUTHSVC_LOGIN_BACKOFF_BASE":              "2s",
	"AUTHSVC_LOGIN_BACKOFF_MAX":               "1h",
}

func TestMain(m *testing.M) {
	var stop func()
	st, stop, startErr = stack.StartTemp("zsm-rl-", stack.Config{LoginRatePerSecond: 1000, LoginBurst: 1000, AuthsvcEnv: testEnv})
	code := m.Run()
	stop()
	os.Exit(code)
}

func need(t *testing.T) *stack.Stack {
	t.Helper()
	if startErr != nil {
		t.Fatalf("the stack did not start: %v", startErr)
	}
	return st
}

// client is one device, whose connections leave from one loopback address.
type client struct {
	t    *testing.T
	ip   string
	base string
	http *http.Client
	auth *authclient.Client
}

// from returns a client at ip talking to the gateway.
func from(t *testing.T, ip string) *client {
	s := need(t)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	t.Cleanup(hc.CloseIdleConnections)
	c := &client{t: t, ip: ip, base: s.GatewayURL(), http: hc, auth: authclient.New(s.GatewayURL())}
	c.auth.HTTP = hc
	return c
}

type response struct {
	status int
	header http.Header
	body   []byte
}

type errBody struct {
	Code, Message string
}

func (r response) err() errBody {
	var e errBody
	_ = json.Unmarshal(r.body, &e)
	return e
}

// post sends a JSON body; hdr are extra header pairs.
func (c *client) post(path string, body any, hdr ...string) response {
	c.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequest("POST", c.base+path, bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: out}
}

func expect(t *testing.T, r response, status int, code, what string) {
	t.Helper()
	if r.status != status || (code != "" && r.err().Code != code) {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, r.body, status, code)
	}
}

// user is a registered account and its SRP secret.
type user struct {
	identity string
	secret   []byte
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (c *client) signup() user {
	c.t.Helper()
	u := user{identity: "rl-" + randHex(6) + "@example.test", secret: make([]byte, 32)}
	_, _ = rand.Read(u.secret)
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	kdf := authclient.KDF{Alg: "argon2id", Salt: base64.StdEncoding.EncodeToString(salt), MemoryKiB: 65536, Iterations: 3, Parallelism: 4}
	if _, err := c.auth.Signup(context.Background(), u.identity, u.secret, kdf); err != nil {
		c.t.Fatalf("signup from %s: %v", c.ip, err)
	}
	return u
}

// login logs u in with the right secret and returns the error, if any.
func (c *client) login(u user) (authclient.Session, error) {
	return c.auth.LoginWithSecret(context.Background(), u.identity, u.secret)
}

// guess is one attempt by someone without the password: login/init (A = 2
// is a valid group element) and, when init is answered, a verify with a
// made-up proof. It returns init's answer.
func (c *client) guess(identity string) response {
	c.t.Helper()
	r := c.post("/auth/v1/login/init", map[string]string{"identity": identity, "a": "2"})
	if r.status != http.StatusOK {
		return r
	}
	var ch struct {
		HandshakeID string `json:"handshake_id"`
	}
	if err := json.Unmarshal(r.body, &ch); err != nil {
		c.t.Fatal(err)
	}
	v := c.post("/auth/v1/login/verify", map[string]string{"handshake_id": ch.HandshakeID, "m": randHex(32)})
	expect(c.t, v, http.StatusUnauthorized, "login_failed", "verify with a made-up proof")
	return r
}
