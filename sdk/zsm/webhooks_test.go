package zsm

import (
	"errors"
	"testing"
	"time"

	"zsm.dev/zsm/authsvc/events"
)

// The SDK's verification agrees with the server's signing.
func TestVerifyWebhookAgreesWithServer(t *testing.T) {
	secret := "whsec_" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"
	body := []byte(`{"id":"6f0c2a34-5a4f-4d9e-9d67-1f1e9f3f1c11","type":"secret.rotated","created_at":"2026-11-27T00:00:00Z","vault_id":"6f0c2a34-5a4f-4d9e-9d67-1f1e9f3f1c12","revision":2}`)
	now := time.Now()
	h := events.Sign(secret, now, body)
	ev, err := VerifyWebhook(secret, h, body, now)
	if err != nil || ev.Type != EventSecretRotated || ev.Revision == nil || *ev.Revision != 2 {
		t.Fatalf("%+v %v", ev, err)
	}
	if _, err := VerifyWebhook(secret, h, append(body[:len(body)-2:len(body)-2], "3}"...), now); !errors.Is(err, ErrWebhookSignature) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := VerifyWebhook(secret, h, body, now.Add(10*time.Minute)); !errors.Is(err, ErrWebhookStale) {
		t.Fatalf("stale: %v", err)
	}
	if _, err := VerifyWebhook(secret, "v1=00", body, now); !errors.Is(err, ErrWebhookSignature) {
		t.Fatalf("malformed: %v", err)
	}
}

func TestParseInterval(t *testing.T) {
	good := map[string]time.Duration{"90d": 90 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "36h": 36 * time.Hour, "1m": time.Minute, "3650d": 3650 * 24 * time.Hour}
	for s, want := range good {
		if got, err := ParseInterval(s); err != nil || got != want {
			t.Errorf("ParseInterval(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "0d", "-1d", "30s", "3651d", "d", "1.5d", "90", "forever", "1dw"} {
		if _, err := ParseInterval(s); err == nil {
			t.Errorf("ParseInterval(%q) accepted", s)
		}
	}
}
