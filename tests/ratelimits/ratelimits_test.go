package ratelimits

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/tests/internal/stacktest"
)

func retryAfter(t *testing.T, r response) int {
	t.Helper()
	n, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || n < 1 {
		t.Fatalf("429 with Retry-After %q", r.Header.Get("Retry-After"))
	}
	return n
}

// Targeted lockout: eleven login/init calls for a victim's identity, made
// without the password from one address, used to get the victim's own
// login refused with 429 from anywhere. Now the attempts count against the
// victim's identity from the attacker's network only: the attacker backs
// off (429 rate_limited after the free attempts, Retry-After growing),
// while the victim logs in from another address, first time or not.
func TestOneAddressCannotLockOutTheOwner(t *testing.T) {
	victim := from(t, "127.10.1.1")
	u := victim.Signup("rl")
	attacker := from(t, "127.10.2.1")
	// backoff checks the wait the server asks for: the wait set by the
	// attempt started at t0, less the time that passed until the refusal
	// (at most since t0), rounded, plus one second.
	backoff := func(r response, t0 time.Time, wait time.Duration, what string) int {
		t.Helper()
		expect(t, r, http.StatusTooManyRequests, "rate_limited", what)
		ra := retryAfter(t, r)
		if lo := (wait - time.Since(t0)).Seconds(); float64(ra) > wait.Seconds()+1 || float64(ra) < lo {
			t.Errorf("%s: Retry-After %d, want between %.1f and %.0f", what, ra, lo, wait.Seconds()+1)
		}
		return ra
	}
	var t0 time.Time
	for i := 0; i < freeAttempts; i++ {
		t0 = time.Now()
		expect(t, guess(attacker, u.Identity), http.StatusOK, "", fmt.Sprintf("attacker's attempt %d", i+1))
	}
	ra := backoff(guess(attacker, u.Identity), t0, 2*time.Second, "attacker's attempt past the free ones")
	// Another address of the attacker's network is the same network.
	expect(t, guess(from(t, "127.10.2.77"), u.Identity), http.StatusTooManyRequests, "rate_limited", "attacker's neighbour")
	// The waits grow: after the first one is over, one attempt, then 4 s.
	time.Sleep(time.Duration(ra) * time.Second)
	t0 = time.Now()
	expect(t, guess(attacker, u.Identity), http.StatusOK, "", "attempt after the first wait")
	backoff(guess(attacker, u.Identity), t0, 4*time.Second, "attempt right after")

	// The owner, from the network they signed up from and from one they
	// never used: both logins succeed, at once.
	if _, err := victim.LoginAs(u); err != nil {
		t.Fatalf("the owner's login from their own address: %v", err)
	}
	if _, err := from(t, "127.10.3.1").LoginAs(u); err != nil {
		t.Fatalf("the owner's login from a new address: %v", err)
	}
	// The owner's success forgives nothing of the attacker's.
	expect(t, guess(attacker, u.Identity), http.StatusTooManyRequests, "rate_limited", "attacker after the owner's logins")
}

// Distributed guessing: past perIdentity unproven attempts an hour from
// all networks together, an identity takes attempts only from networks it
// logged in from recently (429 rate_limited for every other, with a message
// saying so). That is the trade-off docs/auth.md describes: the real owner
// on a new network waits too. An unknown identity is limited at exactly the
// same count with exactly the same answer, so the limit tells nobody who is
// registered.
func TestIdentityLimitSparesKnownNetworks(t *testing.T) {
	home := from(t, "127.11.1.1")
	u := home.Signup("rl")
	if _, err := home.LoginAs(u); err != nil {
		t.Fatal(err)
	}
	unknown := "nobody-" + randHex(6) + "@example.test"
	var refusals [2]response
	for k, identity := range []string{u.Identity, unknown} {
		// perIdentity attempts from perIdentity/freeAttempts networks.
		n := 0
		for net := 0; n < perIdentity; net++ {
			a := from(t, fmt.Sprintf("127.11.%d.1", 10+k*50+net))
			for i := 0; i < freeAttempts && n < perIdentity; i++ {
				expect(t, guess(a, identity), http.StatusOK, "", fmt.Sprintf("attempt %d on %s", n+1, identity))
				n++
			}
		}
		r := guess(from(t, fmt.Sprintf("127.11.%d.1", 45+k*50)), identity)
		expect(t, r, http.StatusTooManyRequests, "rate_limited", "attempt from a new network past the identity's limit")
		if ra := retryAfter(t, r); ra < 3000 || ra > 3601 {
			t.Errorf("identity limit: Retry-After %d, want the rest of the hour", ra)
		}
		refusals[k] = r
	}
	if a, b := refusals[0].Err(t), refusals[1].Err(t); a.Code != b.Code || a.Message != b.Message || !strings.Contains(a.Message, "network you logged in from") {
		t.Errorf("known and unknown identity refused differently: %+v vs %+v", a, b)
	}

	// The owner from their home network (another address in it) gets in.
	if _, err := from(t, "127.11.1.99").LoginAs(u); err != nil {
		t.Fatalf("the owner's login from a known network: %v", err)
	}
	// From a network they never logged in from, they wait like anyone.
	_, err := from(t, "127.11.46.1").LoginAs(u)
	var ae *authclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || ae.Code != "rate_limited" {
		t.Fatalf("the owner from a new network: %v, want 429 rate_limited", err)
	}
}

// Rate limits count a network, not an address: with the IPv4 prefix set
// to /24, three addresses of one /24 share one allowance of login starts
// (90 of 90 from three addresses got through before), while the next /24
// has its own; an IPv6 client is counted per /64, whatever address of it
// it uses. Each start names a fresh identity, so only the address limit
// is in play.
func TestLimitsPerAddressPrefix(t *testing.T) {
	s := need(t)
	start := func(c *stacktest.Device, hdr ...string) response {
		return c.Do("POST", "/auth/v1/login/init", "", map[string]string{"identity": "p-" + randHex(6) + "@example.test", "a": "2"}, hdr...)
	}
	for i := 0; i < startsPerMinute; i++ {
		expect(t, start(from(t, fmt.Sprintf("127.12.0.%d", 1+i%3))), http.StatusOK, "", fmt.Sprintf("start %d from 127.12.0.0/24", i+1))
	}
	expect(t, start(from(t, "127.12.0.4")), http.StatusTooManyRequests, "rate_limited", "a fourth address of the same /24")
	expect(t, start(from(t, "127.12.1.1")), http.StatusOK, "", "the next /24")

	// IPv6: straight to authsvc from its trusted proxy address, as nginx
	// sends it, with the client address in X-Zsm-Client-Ip.
	proxy := from(t, "127.0.0.1")
	proxy.Base = s.AuthsvcURL()
	for i := 0; i < startsPerMinute; i++ {
		addr := fmt.Sprintf("2001:db8:12:34:%x::%x", i*4099, i+1)
		expect(t, start(proxy, "X-Zsm-Client-Ip", addr), http.StatusOK, "", "start from "+addr)
	}
	expect(t, start(proxy, "X-Zsm-Client-Ip", "2001:db8:12:34:ffff:ffff:ffff:ffff"), http.StatusTooManyRequests, "rate_limited", "another address of the same /64")
	expect(t, start(proxy, "X-Zsm-Client-Ip", "2001:db8:12:35::1"), http.StatusOK, "", "the next /64")
	// An IPv4-mapped address is the IPv4 address: same /24 as above.
	expect(t, start(proxy, "X-Zsm-Client-Ip", "::ffff:127.12.0.9"), http.StatusTooManyRequests, "rate_limited", "IPv4-mapped spelling of the full /24")
}

// Logout had no limit at all; it is counted per network now, like refresh
// (4x the login starts a minute): a flood of made-up refresh tokens ends in
// 429 rate_limited, for the neighbours in the same network too.
func TestLogoutRateLimited(t *testing.T) {
	c := from(t, "127.13.0.1")
	for i := 0; i < 4*startsPerMinute; i++ {
		expect(t, c.Do("POST", "/auth/v1/logout", "", map[string]string{"refresh_token": randHex(32)}), http.StatusUnauthorized, "invalid_refresh_token", fmt.Sprintf("logout %d", i+1))
	}
	r := c.Do("POST", "/auth/v1/logout", "", map[string]string{"refresh_token": randHex(32)})
	expect(t, r, http.StatusTooManyRequests, "rate_limited", "logout past the limit")
	retryAfter(t, r)
	expect(t, from(t, "127.13.0.2").Do("POST", "/auth/v1/logout", "", map[string]string{"refresh_token": randHex(32)}), http.StatusTooManyRequests, "rate_limited", "a neighbour's logout")
	// A real logout from another network still works.
	other := from(t, "127.13.1.1")
	u := other.Signup("rl")
	sess, err := other.LoginAs(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Auth.Logout(context.Background(), sess.RefreshToken); err != nil {
		t.Fatalf("logout from another network: %v", err)
	}
}
