package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of every delivery.
const (
	HeaderSignature = "X-Zsm-Signature"  // t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
	HeaderEventID   = "X-Zsm-Event-Id"   // the event's uuid: the same on every redelivery (idempotency id)
	HeaderEventType = "X-Zsm-Event-Type" // e.g. secret.updated
	HeaderWebhookID = "X-Zsm-Webhook-Id" // the webhook the delivery is for
	HeaderAttempt   = "X-Zsm-Delivery-Attempt"
)

// DefaultTolerance is how far a signature's timestamp may be from the
// receiver's clock.
const DefaultTolerance = 5 * time.Minute

// Errors of VerifySignature.
var (
	ErrSignatureMalformed = errors.New("webhook signature header is malformed")
	ErrSignatureMismatch  = errors.New("webhook signature does not match")
	ErrSignatureStale     = errors.New("webhook signature timestamp is too far from now")
)

func mac(secret string, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Sign returns the X-Zsm-Signature value for body sent at t with the
// webhook's signing secret (the whole "whsec_…" string is the HMAC key).
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// VerifySignature checks an X-Zsm-Signature header against the raw body:
// the timestamp must be within tolerance of now (0: DefaultTolerance), and
// one v1 value must equal the HMAC, compared in constant time.
func VerifySignature(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureMalformed
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return ErrSignatureMalformed
			}
			sigs = append(sigs, b)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignatureMalformed
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrSignatureStale
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrSignatureMismatch
}
