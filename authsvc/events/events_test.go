package events

import (
	"errors"
	"testing"
	"time"
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
