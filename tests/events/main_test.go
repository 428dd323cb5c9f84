// Package events tests data events end to end: triggers that write the
// outbox with each change, two authsvc replicas delivering webhooks to a
// real HTTP receiver on 127.0.0.1 (allowed explicitly; no test sends
// traffic anywhere else), signatures, retries and disabling, a worker
// killed mid-delivery, rotation reminders, the audit trail, and who may
// manage webhooks. A real stack, started by the project's runner.
package events

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"zsm.dev/zsm/sdk/zsm"
	"zsm.dev/zsm/stack"
	"zsm.dev/zsm/tests/internal/stacktest"
)

// Test settings: loopback and http allowed (for the receiver), fast
// retries, a short delivery timeout (so leases expire quickly), a quick
// poll.
var testEnv = map[string]string{
	"AUTHSVC_LOGIN_RATE_PER_IP":     "100000",
	"AUTHSVC_SIGNUP_RATE_PER_IP":    "100000",
	"AUTHSVC_WEBHOOK_ALLOW_HTTP":    "true",
	"AUTHSVC_WEBHOOK_ALLOW_NETS":    "127.0.0.0/8",
	"AUTHSVC_WEBHOOK_RETRY_BASE":    "200ms",
	"AUTHSVC_WEBHOOK_RETRY_MAX":     "2s",
	"AUTHSVC_WEBHOOK_MAX_ATTEMPTS":  "4",
	"AUTHSVC_WEBHOOK_DISABLE_AFTER": "2",
	"AUTHSVC_WEBHOOK_TIMEOUT":       "2s",
	"AUTHSVC_EVENTS_POLL_INTERVAL":  "100ms",
}

func TestMain(m *testing.M) {
	os.Exit(stacktest.Run(m, "zsm-ev-", stack.Config{AuthsvcReplicas: 2, LoginRatePerSecond: 1000, LoginBurst: 1000, AuthsvcEnv: testEnv}))
}

var (
	need    = stacktest.Need
	randHex = stacktest.RandHex
)

// account is a signed-up, logged-in user of the SDK.
type account struct {
	c  *zsm.Client
	id uuid.UUID
	hc *http.Client
}

func newAccount(t *testing.T) *account {
	t.Helper()
	s := need(t)
	ctx := context.Background()
	hc := zsm.NewHTTPClient()
	state := zsm.NewMemState()
	identity := "ev-" + randHex(6) + "@example.test"
	pw := "correct horse " + randHex(4)
	res, err := zsm.Signup(ctx, hc, s.GatewayURL(), identity, pw, state)
	if err != nil {
		t.Fatalf("signup: %v", err)
	}
	sess, err := zsm.Login(ctx, hc, s.GatewayURL(), identity, pw, res.SecretKey, state)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return &account{c: zsm.New(sess, state, hc), id: res.UserID, hc: hc}
}

// rest sends a raw request through the gateway with the account's token.
func (a *account) rest(t *testing.T, method, path string, body any, hdr ...string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, need(t).GatewayURL()+"/rest"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.c.Session().AccessToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// refused checks an exact refusal: status and PostgREST error code.
func refused(t *testing.T, status int, body []byte, wantStatus int, wantCode, what string) {
	t.Helper()
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &e)
	if status != wantStatus || e.Code != wantCode {
		t.Fatalf("%s: %d %s, want %d with code %s", what, status, body, wantStatus, wantCode)
	}
}

// addMember grants user a role in the owner's vault, as the owner. (The
// grant's sealed key and signature are placeholders: the server cannot
// check them, and these tests never open the vault as that member.)
func addMember(t *testing.T, owner *account, v zsm.Vault, user uuid.UUID, role string) {
	t.Helper()
	code, body := owner.rest(t, "POST", "/access_policies", map[string]any{
		"vault_id": v.ID, "user_id": user, "role": role, "sealed_key": "placeholder", "granted_by": owner.id, "signature": "placeholder",
	})
	if code != 201 {
		t.Fatalf("grant %s: %d %s", role, code, body)
	}
}

func removeMember(t *testing.T, owner *account, v zsm.Vault, user uuid.UUID) {
	t.Helper()
	code, body := owner.rest(t, "DELETE", "/access_policies?vault_id=eq."+v.ID.String()+"&user_id=eq."+user.String(), nil)
	if code != 204 {
		t.Fatalf("revoke: %d %s", code, body)
	}
}

// db is a superuser connection, for checks behind the API's back.
func db(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, need(t).AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// delivery is one request the receiver got.
type delivery struct {
	at     time.Time
	header http.Header
	body   []byte
}

func (d delivery) id() string  { return d.header.Get("X-Zsm-Event-Id") }
func (d delivery) typ() string { return d.header.Get("X-Zsm-Event-Type") }
func (d delivery) event() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(d.body, &m)
	return m
}

// receiver is a real HTTP endpoint on 127.0.0.1. handle decides the status
// of the n-th request (from 1); it may block.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []delivery
	handle func(n int, r *http.Request) int
}

func newReceiver(t *testing.T, handle func(n int, r *http.Request) int) *receiver {
	rc := &receiver{handle: handle}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, delivery{at: time.Now(), header: r.Header.Clone(), body: body})
		n := len(rc.got)
		rc.mu.Unlock()
		status := 204
		if rc.handle != nil {
			status = rc.handle(n, r)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/hook" }

func (rc *receiver) all() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

// wait polls until cond holds on what arrived, or fails after timeout.
func (rc *receiver) wait(t *testing.T, timeout time.Duration, what string, cond func([]delivery) bool) []delivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := rc.all()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			types := []string{}
			for _, d := range got {
				types = append(types, d.typ())
			}
			t.Fatalf("%s: not within %v; received %v", what, timeout, types)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ofType(ds []delivery, typ string) []delivery {
	var out []delivery
	for _, d := range ds {
		if d.typ() == typ {
			out = append(out, d)
		}
	}
	return out
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
