package integration

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// Runs last (files run in name order): after every flow above, no log of
// any service holds a token, a refresh token or an SRP secret value.
func TestLogsHoldNoSecrets(t *testing.T) {
	s := need(t)
	c := newClient(t)
	u := c.Signup("user")
	sess := c.Login(u)
	if _, err := c.Auth.Refresh(context.Background(), sess.RefreshToken); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, c.Do("GET", "/rest/vaults?select=id", sess.AccessToken, nil), 200, "read")

	time.Sleep(1500 * time.Millisecond) // nginx flushes its buffered access log every second

	needles := map[string]string{
		"a JWT":                 "eyJ",
		"a refresh token":       "zsmrt_",
		"this access token":     sess.AccessToken[len(sess.AccessToken)-20:],
		"this refresh token":    sess.RefreshToken[6:26],
		"the SRP secret in hex": randHexOf(u.Secret)[:24],
	}
	for _, svc := range []string{"nginx", "authsvc", "postgrest", "postgres", "redis"} {
		path := s.LogFile(svc)
		if path == "" {
			t.Errorf("no log file known for %s", svc)
			continue
		}
		for _, p := range strings.Split(path, string(os.PathListSeparator)) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%s log %s: %v", svc, p, err)
				continue
			}
			for what, needle := range needles {
				if strings.Contains(string(b), needle) {
					t.Errorf("%s log %s contains %s", svc, p, what)
				}
			}
		}
	}
}
