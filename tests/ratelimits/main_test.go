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
	"fmt"
	"net/http"
	"os"
	"testing"

	"zsm.dev/zsm/stack"
	"zsm.dev/zsm/tests/internal/stacktest"
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
	os.Exit(stacktest.Run(m, "zsm-rl-", stack.Config{LoginRatePerSecond: 1000, LoginBurst: 1000, AuthsvcEnv: testEnv}))
}

// The helpers of tests/internal/stacktest.
var (
	need    = stacktest.Need
	from    = stacktest.DeviceAt // a device whose connections leave from one loopback address
	expect  = stacktest.Expect
	randHex = stacktest.RandHex
)

type response = stacktest.Response

// guess is one attempt by someone without the password: login/init (A = 2
// is a valid group element) and, when init is answered, a verify with a
// made-up proof. It returns init's answer.
func guess(c *stacktest.Device, identity string) response {
	c.T.Helper()
	r := c.Do("POST", "/auth/v1/login/init", "", map[string]string{"identity": identity, "a": "2"})
	if r.Status != http.StatusOK {
		return r
	}
	var ch struct {
		HandshakeID string `json:"handshake_id"`
	}
	r.JSON(c.T, &ch)
	v := c.Do("POST", "/auth/v1/login/verify", "", map[string]string{"handshake_id": ch.HandshakeID, "m": randHex(32)})
	expect(c.T, v, http.StatusUnauthorized, "login_failed", "verify with a made-up proof")
	return r
}
