package events

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"zsm.dev/zsm/authsvc/config"
)

func TestSignVerify(t *testing.T) {
	secret := "whsec_" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	body := []byte(`{"id":"e","type":"secret.updated"}`)
	now := time.Unix(1_800_000_000, 0)
	h := Sign(secret, now, body)
	if err := VerifySignature(secret, h, body, now.Add(time.Minute), 0); err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature(secret, h, append([]byte{}, `{"id":"e","type":"secret.deleted"}`...), now, 0); !errors.Is(err, ErrSignatureMismatch) {
		t.Fatalf("tampered body: %v", err)
	}
	if err := VerifySignature(secret+"0", h, body, now, 0); !errors.Is(err, ErrSignatureMismatch) {
		t.Fatalf("other secret: %v", err)
	}
	if err := VerifySignature(secret, h, body, now.Add(6*time.Minute), 0); !errors.Is(err, ErrSignatureStale) {
		t.Fatalf("old signature: %v", err)
	}
	if err := VerifySignature(secret, h, body, now.Add(-6*time.Minute), 0); !errors.Is(err, ErrSignatureStale) {
		t.Fatalf("future signature: %v", err)
	}
	// A replay with a new timestamp but the old MAC fails.
	forged := "t=" + "1800000100" + h[len("t=1800000000"):]
	if err := VerifySignature(secret, forged, body, now, 0); !errors.Is(err, ErrSignatureMismatch) {
		t.Fatalf("moved timestamp: %v", err)
	}
	for _, bad := range []string{"", "t=1", "v1=00", "t=x,v1=" + h[len(h)-64:], "t=1800000000,v1=zz", "garbage"} {
		if err := VerifySignature(secret, bad, body, now, 0); !errors.Is(err, ErrSignatureMalformed) {
			t.Errorf("header %q: %v", bad, err)
		}
	}
	// Several v1 values (a receiver rolling secrets) — any match counts.
	if err := VerifySignature(secret, h+",v1="+h[len(h)-64:], body, now, 0); err != nil {
		t.Fatal(err)
	}
}

func TestBackoff(t *testing.T) {
	base, limit := time.Second, 30*time.Second
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i, w := range want {
		for range 50 {
			d := Backoff(base, limit, i+1)
			lo, hi := time.Duration(float64(w*time.Second)*0.8), time.Duration(float64(w*time.Second)*1.2)
			if d < lo || d >= hi {
				t.Fatalf("attempt %d: %v, want in [%v, %v)", i+1, d, lo, hi)
			}
		}
	}
}

// The worker's defaults are config's: the settings config.FromEnv gives
// without any webhook variable start a worker, and settings that did not
// come through it (zero values) are refused rather than quietly defaulted
// a second time.
func TestSettingsComeFromConfig(t *testing.T) {
	cfg, err := config.FromEnv(func(name string) string {
		if name == "AUTHSVC_DATABASE_URL" {
			return "postgres://authsvc@127.0.0.1:1/zsm"
		}
		return ""
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	w, err := New(nil, Config{Webhooks: cfg.Webhooks, Log: log})
	if err != nil {
		t.Fatalf("config's defaults: %v", err)
	}
	if w.cfg.Concurrency != 16 || w.cfg.Timeout != 10*time.Second || w.cfg.connectTimeout() != 5*time.Second || w.lease() != 20*time.Second {
		t.Fatalf("settings %+v", w.cfg.Webhooks)
	}
	short := cfg.Webhooks
	short.Timeout = 2 * time.Second
	if c := (Config{Webhooks: short}); c.connectTimeout() != 2*time.Second {
		t.Fatalf("connect timeout %v, want the delivery's 2 s", c.connectTimeout())
	}
	for name, c := range map[string]Config{
		"zero":           {Log: log},
		"no concurrency": {Webhooks: func() config.Webhooks { w := cfg.Webhooks; w.Concurrency = 0; return w }(), Log: log},
		"no log":         {Webhooks: cfg.Webhooks},
	} {
		if _, err := New(nil, c); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := Open(context.Background(), "postgres://authsvc@127.0.0.1:1/zsm", c); err == nil {
			t.Errorf("%s: Open accepted", name)
		}
	}
}
