package config_test

import (
	"strings"
	"testing"
	"time"

	"zsm.dev/zsm/authsvc/config"
)

func TestSessionIdleTTL(t *testing.T) {
	c, err := config.FromEnv(env(full()), true)
	if err != nil || c.SessionIdleTTL != 7*24*time.Hour {
		t.Fatalf("default: %v %v", c.SessionIdleTTL, err)
	}
	c, err = config.FromEnv(env(with("AUTHSVC_SESSION_IDLE_TTL", "36h")), true)
	if err != nil || c.SessionIdleTTL != 36*time.Hour {
		t.Fatalf("36h: %v %v", c.SessionIdleTTL, err)
	}
	for _, bad := range []string{"10m", "1s", "9000h", "-1h", "soon"} {
		_, err := config.FromEnv(env(with("AUTHSVC_SESSION_IDLE_TTL", bad, "AUTHSVC_ACCESS_TTL", "15m")), true)
		if err == nil || !strings.Contains(err.Error(), "AUTHSVC_SESSION_IDLE_TTL") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	// Reported together with every other problem.
	_, err = config.FromEnv(env(with("AUTHSVC_SESSION_IDLE_TTL", "1m", "AUTHSVC_HANDSHAKE_TTL", "2h")), true)
	if err == nil || !strings.Contains(err.Error(), "AUTHSVC_SESSION_IDLE_TTL") || !strings.Contains(err.Error(), "AUTHSVC_HANDSHAKE_TTL") {
		t.Fatalf("%v", err)
	}
}
