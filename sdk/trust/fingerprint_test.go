package trust_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/trust"
)

var (
	bobID  = uuid.MustParse("0190a3b4-0000-7000-8000-0000000000b0")
	bobKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xb0}, 32)).Public().(ed25519.PublicKey)
	bob    = trust.Identity{UserID: bobID, Identity: "bob@example.com", Ed25519Public: bobKey}
)

func TestDigestLayout(t *testing.T) {
	d, err := bob.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var m []byte
	m = append(m, "zsm v1 fingerprint\x00"...)
	m = append(m, bobID[:]...)
	m = append(m, byte(len("bob@example.com")))
	m = append(m, "bob@example.com"...)
	m = append(m, bobKey...)
	if want := sha512.Sum512(m); d != want {
		t.Fatal("digest layout differs")
	}
	fp, _ := bob.Fingerprint()
	if !bytes.Equal(fp[:], d[:32]) || fp != d.Fingerprint() {
		t.Fatal("fingerprint is not d[0:32]")
	}
}

func TestSafetyNumber(t *testing.T) {
	d, _ := bob.Digest()
	s := d.SafetyNumber()
	if !regexp.MustCompile(`^[0-9]{5}( [0-9]{5}){11}$`).MatchString(s) {
		t.Fatalf("safety number %q is not 12 groups of 5 digits", s)
	}
	groups := strings.Split(s, " ")
	for i, g := range groups {
		var x [8]byte
		copy(x[3:], d[5*i:5*i+5])
		if want := fmt.Sprintf("%05d", binary.BigEndian.Uint64(x[:])%100000); g != want {
			t.Fatalf("group %d = %s, want %s", i, g, want)
		}
	}
	// Leading zeros are kept: a digest whose first 5 bytes are zero.
	var z trust.Digest
	if got := z.SafetyNumber(); got != "00000 00000 00000 00000 00000 00000 00000 00000 00000 00000 00000 00000" {
		t.Fatalf("zero digest: %q", got)
	}
}

// TestFingerprintCoversEverything: changing the user id, the identity or
// the key changes the fingerprint, the safety number and the QR string.
// The server substituting Bob's key is therefore visible in the number
// people compare.
func TestFingerprintCoversEverything(t *testing.T) {
	d, _ := bob.Digest()
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xee}, 32)).Public().(ed25519.PublicKey)
	flipped := bytes.Clone(bobKey)
	flipped[31] ^= 1
	otherID := bobID
	otherID[15] ^= 1
	for name, i := range map[string]trust.Identity{
		"server's key":     {bobID, "bob@example.com", other},
		"one bit of key":   {bobID, "bob@example.com", flipped},
		"another user id":  {otherID, "bob@example.com", bobKey},
		"another identity": {bobID, "bob@example.org", bobKey},
	} {
		e, err := i.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if e == d || e.SafetyNumber() == d.SafetyNumber() || e.QR() == d.QR() {
			t.Errorf("%s: fingerprint unchanged", name)
		}
	}
}

func TestFingerprintRefuses(t *testing.T) {
	for name, i := range map[string]trust.Identity{
		"upper case identity": {bobID, "Bob@example.com", bobKey},
		"surrounding space":   {bobID, " bob@example.com", bobKey},
		"empty identity":      {bobID, "", bobKey},
		"256-byte identity":   {bobID, strings.Repeat("a", 256), bobKey},
		"31-byte key":         {bobID, "bob@example.com", bobKey[:31]},
		"no key":              {bobID, "bob@example.com", nil},
	} {
		if _, err := i.Digest(); !errors.Is(err, trust.ErrBadIdentity) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestQR(t *testing.T) {
	d, _ := bob.Digest()
	qr := d.QR()
	if !strings.HasPrefix(qr, "zsmfp1:") || len(qr) != 50 || qr[7:] != base64.RawURLEncoding.EncodeToString(d[:32]) {
		t.Fatalf("QR = %q", qr)
	}
	fp, err := trust.ParseQR(qr)
	if err != nil || fp != d.Fingerprint() {
		t.Fatalf("ParseQR = %x, %v", fp, err)
	}
	if err := trust.MatchQR(qr, bob); err != nil {
		t.Fatal(err)
	}
	evil := bob
	evil.Ed25519Public = ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	if err := trust.MatchQR(qr, evil); !errors.Is(err, trust.ErrMismatch) {
		t.Errorf("QR of Bob against the server's key: %v", err)
	}
	last := qr[len(qr)-1]
	nonCanonical := qr[:len(qr)-1] + string(next(last))
	for name, s := range map[string]string{
		"empty":              "",
		"no prefix":          qr[7:],
		"other prefix":       "zsmfp2:" + qr[7:],
		"upper-case prefix":  "ZSMFP1:" + qr[7:],
		"padded":             qr + "=",
		"42 characters":      qr[:49],
		"44 characters":      qr + "A",
		"standard alphabet":  "zsmfp1:" + strings.NewReplacer("-", "+", "_", "/").Replace(qr[7:]) + strings.Repeat("", 0),
		"line break":         qr[:20] + "\n" + qr[21:],
		"non-zero last bits": nonCanonical,
		"space":              qr[:20] + " " + qr[21:],
	} {
		if s == qr {
			continue
		}
		if _, err := trust.ParseQR(s); !errors.Is(err, trust.ErrBadQR) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// next returns a base64url character with the same top 4 bits (the last of
// 43 characters carries 4 data bits), so only the unused bits differ.
func next(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i^1]
}
