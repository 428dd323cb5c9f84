package keys

import (
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"
)

// SecretKey is the account's 128-bit Secret Key: made at sign-up, kept on
// the user's devices and in the emergency kit, never sent. It is the second
// secret of the key derivation, so neither a stolen verifier nor a malicious
// server's SRP transcript can be attacked with password guesses alone.
//
// Its String, GoString and Format methods never show the key; [SecretKey.Text]
// is the one way to get its text form.
type SecretKey [16]byte

// secretKeyVersion starts the text form; the digit is the format version.
const secretKeyVersion = "ZSM1"

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrSecretKey is returned for text that is not a Secret Key.
var ErrSecretKey = errors.New("keys: not a valid Secret Key (ZSM1-XXXXXX-XXXXXX-XXXXXX-XXXXXX-XX)")

// NewSecretKey makes a Secret Key from 16 bytes of rand.
func NewSecretKey(rand io.Reader) (SecretKey, error) {
	var sk SecretKey
	if _, err := io.ReadFull(rand, sk[:]); err != nil {
		return SecretKey{}, fmt.Errorf("keys: reading a Secret Key: %w", err)
	}
	return sk, nil
}

// Text returns the Secret Key's text form: "ZSM1-" and the 16 bytes in
// RFC 4648 base32 (upper case, no padding, 26 characters), in groups of 6
// joined by "-" (the last group has 2).
func (sk SecretKey) Text() string {
	s := b32.EncodeToString(sk[:])
	var b strings.Builder
	b.WriteString(secretKeyVersion + "-")
	for i := 0; i < len(s); i += 6 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i:min(i+6, len(s))])
	}
	return b.String()
}

// ParseSecretKey parses the text form. It drops ASCII spaces, tabs, CR, LF
// and dashes anywhere and upper-cases ASCII letters, so a key typed in lower
// case, in groups or pasted across lines parses; what is left must be "ZSM1"
// followed by exactly 26 characters of the RFC 4648 base32 alphabet whose
// unused low bits (the last 2 bits of the last character) are zero, so one
// key has one canonical text. Anything else, including non-ASCII letters
// that Unicode would upper-case to ASCII ones, is [ErrSecretKey].
func ParseSecretKey(s string) (SecretKey, error) {
	if len(s) > 256 {
		return SecretKey{}, ErrSecretKey
	}
	// ASCII-only folding: strings.ToUpper would turn "ſ" into "S".
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '-':
			continue
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		buf = append(buf, c)
	}
	rest, ok := strings.CutPrefix(string(buf), secretKeyVersion)
	if !ok || len(rest) != b32.EncodedLen(16) {
		return SecretKey{}, ErrSecretKey
	}
	b, err := b32.DecodeString(rest)
	if err != nil || len(b) != 16 || b32.EncodeToString(b) != rest {
		return SecretKey{}, ErrSecretKey
	}
	return SecretKey(b), nil
}

// String keeps the key out of logs and error messages.
func (SecretKey) String() string { return "keys.SecretKey{REDACTED}" }

// GoString keeps the key out of %#v.
func (sk SecretKey) GoString() string { return sk.String() }

// Format keeps the key out of every fmt verb, %x included.
func (sk SecretKey) Format(f fmt.State, _ rune) { io.WriteString(f, sk.String()) }
