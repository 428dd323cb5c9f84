package integration

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// eventually retries f every 200 ms until it returns true or d passes.
func eventually(d time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Without Redis there is no rate limit and no handshake store, so login
// fails closed with 503; nothing crashes, data reads that need no Redis go
// on, and login works again once Redis is back.
func TestRedisDownFailsClosed(t *testing.T) {
	s := need(t)
	c := newClient(t)
	u := c.Signup("user")
	sess := c.Login(u)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if err := s.StopService(ctx, "redis"); err != nil {
		t.Fatalf("stop redis: %v", err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = s.StartService(context.Background(), "redis")
		}
	}()

	r := c.Do("POST", "/auth/v1/login/params", "", map[string]string{"identity": u.Identity})
	expectRefusal(t, r, http.StatusServiceUnavailable, "service_unavailable", "params without redis")
	r = c.Do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.Identity, "a": "2"})
	expectRefusal(t, r, http.StatusServiceUnavailable, "service_unavailable", "init without redis")
	r = c.Do("POST", "/auth/v1/signup", "", map[string]any{"identity": "x" + randHex(4) + "@example.test", "srp_salt": "00", "srp_verifier": "2", "kdf": testKDF()})
	expectRefusal(t, r, http.StatusServiceUnavailable, "service_unavailable", "signup without redis")
	if _, err := c.Auth.LoginWithSecret(ctx, mustIdentity(t, u.Identity), u.Secret); err == nil {
		t.Fatal("login succeeded without redis")
	}
	expectStatus(t, c.Do("GET", "/rest/vaults", sess.AccessToken, nil), http.StatusOK, "data read without redis")

	if err := s.StartService(ctx, "redis"); err != nil {
		t.Fatalf("start redis: %v", err)
	}
	restarted = true
	var lastErr error
	if !eventually(20*time.Second, func() bool {
		_, lastErr = c.Auth.LoginWithSecret(ctx, mustIdentity(t, u.Identity), u.Secret)
		return lastErr == nil
	}) {
		t.Fatalf("login did not recover after redis came back: %v", lastErr)
	}
}

// When Postgres restarts, authsvc reconnects by itself.
func TestPostgresRestartRecovers(t *testing.T) {
	s := need(t)
	c := newClient(t)
	u := c.Signup("user")
	authPid := s.Pid("authsvc")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.RestartService(ctx, "postgres"); err != nil {
		t.Fatalf("restart postgres: %v", err)
	}
	var lastErr error
	if !eventually(30*time.Second, func() bool {
		var sess struct{ AccessToken string }
		ss, err := c.Auth.LoginWithSecret(ctx, mustIdentity(t, u.Identity), u.Secret)
		lastErr = err
		if err != nil {
			return false
		}
		sess.AccessToken = ss.AccessToken
		r := c.Do("GET", "/rest/vaults", sess.AccessToken, nil)
		return r.Status == http.StatusOK
	}) {
		t.Fatalf("login and reads did not recover after a Postgres restart: %v", lastErr)
	}
	if s.Pid("authsvc") != authPid {
		t.Fatal("authsvc was restarted; it should have recovered on its own")
	}
}

// Login starts are limited per client address, counted in Redis; a client
// cannot dodge the address limit with forwarding headers. (The limits per
// identity and per identity and address, and prefixes, are attacked in
// tests/ratelimits.)
func TestRateLimits(t *testing.T) {
	limited := func(r response) bool {
		if r.Status != http.StatusTooManyRequests {
			return false
		}
		if e := r.Err(t); e.Code != "rate_limited" {
			t.Fatalf("429 with code %q", e.Code)
		}
		if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 61 {
			t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
		}
		return true
	}
	// Per address (30 a minute by default), with spoofed forwarding headers
	// that nginx must overwrite and authsvc must ignore.
	spoofer := newClient(t)
	limitedAt := 0
	for i := 0; i < 40; i++ {
		r := spoofer.Do("POST", "/auth/v1/login/init", "",
			map[string]string{"identity": "ip-" + strconv.Itoa(i) + "@example.test", "a": "2"},
			"X-Zsm-Client-Ip", "10.0.0."+strconv.Itoa(i), "X-Forwarded-For", "10.1.0."+strconv.Itoa(i), "X-Real-IP", "10.2.0."+strconv.Itoa(i))
		if limited(r) {
			limitedAt = i
			break
		}
	}
	if limitedAt == 0 || limitedAt > 31 {
		t.Fatalf("per-address limit hit at attempt %d, want by the 31st", limitedAt)
	}
}

// Error answers have one JSON shape, carry the request id, and never show
// internals.
func TestErrorBodies(t *testing.T) {
	c := newClient(t)
	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/auth/v1/login/init", `{"identity":`, 400, "malformed_request"},
		{"POST", "/auth/v1/login/init", `{"identity":"a@b.c","a":"2","x":1}`, 400, "malformed_request"},
		{"POST", "/auth/v1/login/init", `[1,2,3]`, 400, "malformed_request"},
		{"POST", "/auth/v1/login/verify", `{"handshake_id":"'; DROP TABLE auth.users; --","m":"00"}`, 400, "malformed_request"},
		{"GET", "/auth/v1/no-such-thing", ``, 404, "not_found"},
		{"GET", "/auth/v1/signup", ``, 405, "method_not_allowed"},
	}
	for _, tc := range cases {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		r := c.Do(tc.method, tc.path, "", body, "X-Request-Id", "test-req-"+randHex(4))
		expectRefusal(t, r, tc.status, tc.code, tc.method+" "+tc.path+" "+tc.body)
		var m map[string]any
		r.JSON(t, &m)
		if len(m) != 3 {
			t.Errorf("error body has members %v, want exactly code, message, request_id", m)
		}
		e := r.Err(t)
		if e.RequestID == "" || e.RequestID != r.Header.Get("X-Request-Id") {
			t.Errorf("request_id %q, header %q", e.RequestID, r.Header.Get("X-Request-Id"))
		}
		for _, leak := range []string{"SQL", "pgx", "goroutine", "panic", ".go:", "syntax error at", "DROP"} {
			if strings.Contains(e.Message, leak) {
				t.Errorf("error message leaks %q: %s", leak, e.Message)
			}
		}
	}
}
