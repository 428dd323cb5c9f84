// Package stacktest is what the tests against a running stack share: the
// throwaway stack a test binary starts (stack.StartTemp), the devices that
// talk to it through the gateway (an HTTP client leaving from a loopback
// address of its own, and an authclient over it), accounts signed up with
// a random SRP secret, and the checks of an answer's status and error code.
//
// A test that needs the stack and finds it did not start fails: nothing is
// ever skipped.
package stacktest

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
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/srpgroup"
	"zsm.dev/zsm/stack"
)

// The stack of this test binary (one per package: each runs its own).
var (
	st       *stack.Stack
	startErr error
)

// Run starts a throwaway stack in a directory named after prefix, runs the
// binary's tests and stops the stack. TestMain exits with what it returns:
//
//	func TestMain(m *testing.M) { os.Exit(stacktest.Run(m, "zsm-it-", stack.Config{…})) }
func Run(m *testing.M, prefix string, cfg stack.Config) int {
	var stop func()
	st, stop, startErr = stack.StartTemp(prefix, cfg)
	code := m.Run()
	stop()
	return code
}

// Need returns the stack, failing the test when it did not start.
func Need(t testing.TB) *stack.Stack {
	t.Helper()
	if startErr != nil {
		t.Fatalf("the stack did not start: %v", startErr)
	}
	return st
}

// HTTPFrom returns an HTTP client whose connections leave from ip, so that
// per-address limits count it apart from every other address.
func HTTPFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4},
	}
}

var nextIP atomic.Int32

// SourceIP hands each caller a loopback address of its own (127.0.1.x),
// so that the per-address rate limits one test runs into never touch
// another's.
func SourceIP() string {
	return fmt.Sprintf("127.0.1.%d", nextIP.Add(1))
}

// Device is one simulated client device: its address, an HTTP client
// leaving from it, and an authclient over that client, all talking to
// Base (the gateway).
type Device struct {
	T    *testing.T
	IP   string
	Base string
	HTTP *http.Client
	Auth *authclient.Client
}

// NewDevice returns a device at a loopback address of its own.
func NewDevice(t *testing.T) *Device { return DeviceAt(t, SourceIP()) }

// DeviceAt returns a device whose connections leave from ip.
func DeviceAt(t *testing.T, ip string) *Device {
	s := Need(t)
	hc := HTTPFrom(ip)
	t.Cleanup(hc.CloseIdleConnections)
	d := &Device{T: t, IP: ip, Base: s.GatewayURL(), HTTP: hc, Auth: authclient.New(s.GatewayURL())}
	d.Auth.HTTP = hc
	return d
}

// DeviceFor returns a device talking to base (one replica, say) from the
// default address.
func DeviceFor(t *testing.T, base string) *Device {
	hc := &http.Client{Timeout: 30 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	d := &Device{T: t, IP: "127.0.0.1", Base: base, HTTP: hc, Auth: authclient.New(base)}
	d.Auth.HTTP = hc
	return d
}

// Response is an HTTP answer, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test if it is not JSON.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, r.Body)
	}
}

// Err decodes the error body: authsvc's {"code", "message", "request_id"},
// or PostgREST's, which has the same code and message.
func (r Response) Err(t testing.TB) api.Error {
	t.Helper()
	var e api.Error
	r.JSON(t, &e)
	return e
}

// Do sends a request to the device's base URL. body is nil, []byte, a
// string, or a value sent as JSON; hdr are extra header pairs.
func (d *Device) Do(method, path, token string, body any, hdr ...string) Response {
	d.T.Helper()
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
			d.T.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, d.Base+path, rd)
	if err != nil {
		d.T.Fatal(err)
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
	resp, err := d.HTTP.Do(req)
	if err != nil {
		d.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		d.T.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// ExpectStatus checks the status of an answer.
func ExpectStatus(t testing.TB, r Response, want int, what string) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.Status, want, r.Body)
	}
}

// Expect checks status and error code exactly; an empty code checks the
// status only.
func Expect(t testing.TB, r Response, status int, code, what string) {
	t.Helper()
	ExpectStatus(t, r, status, what)
	if code == "" {
		return
	}
	if e := r.Err(t); e.Code != code {
		t.Fatalf("%s: code %q, want %q; body %s", what, e.Code, code, r.Body)
	}
}

// RandBytes returns n random bytes.
func RandBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// RandHex returns n random bytes in hex.
func RandHex(n int) string { return hex.EncodeToString(RandBytes(n)) }

// KDF returns floor parameters with a fresh salt, as the zsm client makes
// them at sign-up.
func KDF() api.KDF {
	return api.KDF{Alg: api.KDFAlg, Salt: base64.StdEncoding.EncodeToString(RandBytes(api.KDFSaltBytes)),
		MemoryKiB: api.KDFFloorMemoryKiB, Iterations: api.KDFFloorIterations, Parallelism: api.KDFFloorParallelism}
}

// Identity is what a client makes of an identity typed by its user.
func Identity(t testing.TB, s string) srpgroup.Identity {
	t.Helper()
	id, err := srpgroup.ParseIdentity(s)
	if err != nil {
		t.Fatalf("identity %q: %v", s, err)
	}
	return id
}

// Account is a registered account and its SRP secret: random here, where
// the real client derives it from the password and the Secret Key.
type Account struct {
	Identity string
	Secret   []byte
	ID       string // the user id, once signed up
}

// NewAccount returns an account not signed up yet, with an identity of its
// own that starts with prefix.
func NewAccount(prefix string) Account {
	return Account{Identity: prefix + "-" + RandHex(6) + "@example.test", Secret: RandBytes(32)}
}

// Signup registers a new account through the device.
func (d *Device) Signup(prefix string) Account {
	d.T.Helper()
	a := NewAccount(prefix)
	id, err := d.Auth.Signup(context.Background(), Identity(d.T, a.Identity), a.Secret, KDF())
	if err != nil {
		d.T.Fatalf("signup from %s: %v", d.IP, err)
	}
	a.ID = id
	return a
}

// LoginAs runs the whole SRP login for a and returns its error, if any.
func (d *Device) LoginAs(a Account) (authclient.Session, error) {
	d.T.Helper()
	return d.Auth.LoginWithSecret(context.Background(), Identity(d.T, a.Identity), a.Secret)
}

// Login logs a in, failing the test if it does not succeed as a's account.
func (d *Device) Login(a Account) authclient.Session {
	d.T.Helper()
	s, err := d.LoginAs(a)
	if err != nil {
		d.T.Fatalf("login: %v", err)
	}
	if a.ID != "" && s.UserID != a.ID {
		d.T.Fatalf("login returned user %s, want %s", s.UserID, a.ID)
	}
	return s
}
