// Package machinetoken is the machine token of docs/crypto.md §13: one
// string that identifies a token, authenticates it and carries its key
// material, for CI jobs and servers that use zsm without a person.
//
//	zsm_tok_v1_ || base64url-nopad(token_id (16) || secret (32) || check (4))
//	check = SHA-256("zsm v1 token-check" || 0x00 || token_id || secret)[0:4]
//
// The token id is a random (version 4) uuid, public: it names the token to
// the server. The secret never leaves the machine that holds the token:
// every key of the token is derived from it (Derive), and the server knows
// only the public halves. The check lets a client refuse a mistyped or
// truncated token before anything reaches the network.
//
// A Token never shows its secret: String, GoString, every fmt verb, JSON and
// slog all print "[redacted]". [Token.Reveal] is the one way to the text
// form, for showing it once when it is made.
package machinetoken

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/google/uuid"
)

// Prefix opens every token's text form; secret scanners can match it.
const Prefix = "zsm_tok_v1_"

// Sizes of the parts of a token.
const (
	IDSize     = 16
	SecretSize = 32
	CheckSize  = 4
	// TextSize is the length of the text form: the prefix and 70 characters
	// of unpadded base64url for 52 bytes.
	TextSize = len(Prefix) + (IDSize+SecretSize+CheckSize)*8/6 + 1
)

const checkLabel = "zsm v1 token-check"

// ErrMalformed is the one answer to text that is not a token: a wrong
// prefix, length, alphabet or check, or an id that is not a version 4
// uuid. It says nothing about which part was wrong.
var ErrMalformed = errors.New("malformed token")

// redacted is what a Token or Keys print wherever they are printed.
const redacted = "[redacted]"

// secret is behind a pointer so that a Token inside another value's
// unexported field prints as an address, never as bytes (fmt does not
// follow pointers below the top level).
type secret struct{ b [SecretSize]byte }

// Token is a parsed machine token. The zero Token is not valid.
type Token struct {
	id uuid.UUID
	s  *secret
}

// New makes a token from 48 bytes of rand: 16 for the id (made a version 4
// uuid), 32 for the secret.
func New(rand io.Reader) (Token, error) {
	var b [IDSize + SecretSize]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return Token{}, fmt.Errorf("machinetoken: reading randomness: %w", err)
	}
	defer clear(b[:])
	id := uuid.UUID(b[:IDSize])
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	t := Token{id: id, s: &secret{}}
	copy(t.s.b[:], b[IDSize:])
	return t, nil
}

// check computes the 4 check bytes of id and secret.
func check(id uuid.UUID, s *[SecretSize]byte) [CheckSize]byte {
	h := sha256.New()
	h.Write([]byte(checkLabel))
	h.Write([]byte{0})
	h.Write(id[:])
	h.Write(s[:])
	var out [CheckSize]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Parse reads a token's text form. Space, tab, CR and LF around it are
// ignored (a token read from a file or a CI variable often ends with a
// line break); anything else that is not exactly a token is ErrMalformed,
// decided before any network call.
func Parse(text string) (Token, error) {
	text = strings.Trim(text, " \t\r\n")
	body, ok := strings.CutPrefix(text, Prefix)
	if !ok || len(text) != TextSize {
		return Token{}, ErrMalformed
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil || len(raw) != IDSize+SecretSize+CheckSize {
		return Token{}, ErrMalformed
	}
	defer clear(raw)
	id := uuid.UUID(raw[:IDSize])
	var s secret
	copy(s.b[:], raw[IDSize:IDSize+SecretSize])
	want := check(id, &s.b)
	if subtle.ConstantTimeCompare(want[:], raw[IDSize+SecretSize:]) != 1 {
		clear(s.b[:])
		return Token{}, ErrMalformed
	}
	if id.Version() != 4 || id.Variant() != uuid.RFC4122 {
		clear(s.b[:])
		return Token{}, ErrMalformed
	}
	return Token{id: id, s: &s}, nil
}

// ID is the token's id: public, the name the server knows it by.
func (t Token) ID() uuid.UUID { return t.id }

// Valid reports whether t was made by New or Parse.
func (t Token) Valid() bool { return t.s != nil }

// Reveal returns the token's text form. It is the only way to it: call it
// once, to show a new token to the person who made it.
func (t Token) Reveal() string {
	if t.s == nil {
		return ""
	}
	c := check(t.id, &t.s.b)
	raw := make([]byte, 0, IDSize+SecretSize+CheckSize)
	raw = append(raw, t.id[:]...)
	raw = append(raw, t.s.b[:]...)
	raw = append(raw, c[:]...)
	defer clear(raw)
	return Prefix + base64.RawURLEncoding.EncodeToString(raw)
}

// Wipe overwrites the secret; the token is useless afterwards.
func (t Token) Wipe() {
	if t.s != nil {
		clear(t.s.b[:])
	}
}

// String keeps the token out of logs and error messages.
func (Token) String() string { return redacted }

// GoString keeps the token out of %#v.
func (Token) GoString() string { return redacted }

// Format keeps the token out of every fmt verb, %x and %q included.
func (Token) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON keeps the token out of JSON.
func (Token) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText keeps the token out of every text encoding (map keys, YAML).
func (Token) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue keeps the token out of slog.
func (Token) LogValue() slog.Value { return slog.StringValue(redacted) }
