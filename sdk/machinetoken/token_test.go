package machinetoken

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func newToken(t *testing.T) Token {
	t.Helper()
	tok, err := New(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRoundTrip(t *testing.T) {
	tok := newToken(t)
	text := tok.Reveal()
	if !strings.HasPrefix(text, Prefix) || len(text) != TextSize {
		t.Fatalf("text form %d bytes, want %d with prefix %q", len(text), TextSize, Prefix)
	}
	if tok.ID().Version() != 4 || tok.ID().Variant() != uuid.RFC4122 {
		t.Fatalf("token id %s is not a version 4 uuid", tok.ID())
	}
	for _, spelling := range []string{text, text + "\n", " \t" + text + "\r\n"} {
		got, err := Parse(spelling)
		if err != nil {
			t.Fatalf("Parse(%q): %v", spelling, err)
		}
		if got.ID() != tok.ID() || got.Reveal() != text {
			t.Fatal("parsed token differs")
		}
	}
}

// TestEveryFlippedCharacterIsRefused changes each character of a token to
// every other character of the base64url alphabet: the check must catch
// each one, with the one error that says nothing about which part was
// wrong.
func TestEveryFlippedCharacterIsRefused(t *testing.T) {
	text := newToken(t).Reveal()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	accepted := 0
	for i := len(Prefix); i < len(text); i++ {
		for _, c := range []byte(alphabet) {
			if c == text[i] {
				continue
			}
			b := []byte(text)
			b[i] = c
			if _, err := Parse(string(b)); err == nil {
				accepted++
			} else if !errors.Is(err, ErrMalformed) || err.Error() != "malformed token" {
				t.Fatalf("position %d: error %v", i, err)
			}
		}
	}
	// A 32-bit check lets through about one change in 4 billion; among
	// these 4,000-odd changes none may pass. (The last character carries
	// 2 bits of padding that Strict decoding also refuses.)
	if accepted != 0 {
		t.Fatalf("%d changed tokens were accepted", accepted)
	}
}

// standardBase64 is a token in standard base64 instead of URL-safe: a
// token whose text has a - or _ (about one in nine has neither, and would
// read the same in both alphabets), with those replaced by + and /.
func standardBase64(t *testing.T) string {
	t.Helper()
	for range 200 {
		body := strings.TrimPrefix(newToken(t).Reveal(), Prefix)
		if strings.ContainsAny(body, "-_") {
			return Prefix + strings.NewReplacer("-", "+", "_", "/").Replace(body)
		}
	}
	t.Fatal("200 tokens without a - or _ in their text")
	return ""
}

func TestMalformed(t *testing.T) {
	tok := newToken(t)
	text := tok.Reveal()
	body := strings.TrimPrefix(text, Prefix)
	// A token with a valid check whose id is not a version 4 uuid.
	notV4 := func() string {
		id := tok.ID()
		id[6] = id[6]&0x0f | 0x70
		c := check(id, &tok.s.b)
		return Prefix + b64(append(append(append([]byte{}, id[:]...), tok.s.b[:]...), c[:]...))
	}()
	for name, s := range map[string]string{
		"empty":             "",
		"prefix only":       Prefix,
		"no prefix":         body,
		"another version":   "zsm_tok_v2_" + body,
		"upper-case prefix": strings.ToUpper(Prefix) + body,
		"one short":         text[:len(text)-1],
		"one long":          text + "A",
		"standard base64":   standardBase64(t),
		"padded":            text + "==",
		"space inside":      text[:20] + " " + text[21:],
		"not version 4":     notV4,
		"non-ASCII":         text[:len(text)-1] + "é",
	} {
		if _, err := Parse(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		}
	}
}

// TestRedacted prints a token and its keys every way a program might, and
// looks for any part of the secret, the text form or the keys.
func TestRedacted(t *testing.T) {
	tok := newToken(t)
	k, err := Derive(tok)
	if err != nil {
		t.Fatal(err)
	}
	text := tok.Reveal()
	body := strings.TrimPrefix(text, Prefix)
	secretHex := fmt.Sprintf("%x", tok.s.b[:])
	seed := fmt.Sprintf("%x", k.Ed25519.Seed())
	type holder struct {
		Tok  Token
		Keys *Keys
		tok  Token // unexported: fmt cannot call its methods
	}
	h := holder{Tok: tok, Keys: k, tok: tok}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		out = append(out, fmt.Sprintf(verb, tok), fmt.Sprintf(verb, &tok), fmt.Sprintf(verb, k), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(j))
	m, err := json.Marshal(map[string]any{"token": tok, "keys": k})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(m))
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "token", tok, "keys", k, "holder", h)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "token", tok, "keys", k, "ptr", &tok)
	out = append(out, logs.String(), tok.String(), tok.GoString())
	for _, s := range out {
		for _, leak := range []string{body, body[:20], secretHex, secretHex[:16], seed[:16]} {
			if strings.Contains(s, leak) {
				t.Fatalf("leaked %q in %q", leak, s)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(tok), "[redacted]") || !strings.Contains(string(j), `"[redacted]"`) {
		t.Fatalf("redaction marker missing: %v / %s", tok, j)
	}
}

func TestDerive(t *testing.T) {
	tok := newToken(t)
	a, err := Derive(tok)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Derive(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Ed25519.Equal(b.Ed25519) || !a.X25519.Equal(b.X25519) || !bytes.Equal(a.CacheKey(), b.CacheKey()) ||
		!bytes.Equal(a.XWing.PublicKey().Bytes(), b.XWing.PublicKey().Bytes()) {
		t.Fatal("derivation is not deterministic")
	}
	other, _ := Derive(newToken(t))
	if a.Ed25519.Equal(other.Ed25519) || bytes.Equal(a.CacheKey(), other.CacheKey()) {
		t.Fatal("two tokens derived the same keys")
	}
	// Each label gives its own key.
	seen := map[string]bool{}
	for _, b := range [][]byte{a.Ed25519.Seed(), a.X25519.Bytes(), a.CacheKey(), a.anchor} {
		if seen[string(b)] {
			t.Fatal("two labels gave the same key")
		}
		seen[string(b)] = true
	}
	if _, err := Derive(Token{}); err == nil {
		t.Fatal("the zero token derived keys")
	}
}

func TestRecord(t *testing.T) {
	k, err := Derive(newToken(t))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := k.SignRecord()
	if err != nil {
		t.Fatal(err)
	}
	p := k.Public()
	if err := VerifyRecord(p, sig); err != nil {
		t.Fatalf("own record: %v", err)
	}
	m, _ := p.RecordMessage()
	if !bytes.Contains(m, []byte(Identity(k.TokenID))) || !bytes.HasPrefix(m, []byte("zsm v2 key-record\x00")) {
		t.Fatal("record message lacks the label or the identity")
	}
	other, _ := Derive(newToken(t))
	for name, q := range map[string]Public{
		"another token id":      {TokenID: other.TokenID, X25519: p.X25519, Ed25519: p.Ed25519, XWing: p.XWing},
		"another X25519 key":    {TokenID: p.TokenID, X25519: other.Public().X25519, Ed25519: p.Ed25519, XWing: p.XWing},
		"another X-Wing key":    {TokenID: p.TokenID, X25519: p.X25519, Ed25519: p.Ed25519, XWing: other.Public().XWing},
		"another Ed25519 key":   {TokenID: p.TokenID, X25519: p.X25519, Ed25519: other.Public().Ed25519, XWing: p.XWing},
		"small-order Ed25519":   {TokenID: p.TokenID, X25519: p.X25519, Ed25519: append([]byte{1}, make([]byte, 31)...), XWing: p.XWing},
		"short X-Wing key":      {TokenID: p.TokenID, X25519: p.X25519, Ed25519: p.Ed25519, XWing: p.XWing[:1184]},
		"X-Wing key not ML-KEM": {TokenID: p.TokenID, X25519: p.X25519, Ed25519: p.Ed25519, XWing: bytes.Repeat([]byte{0xff}, 1216)},
	} {
		if err := VerifyRecord(q, sig); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: VerifyRecord = %v", name, err)
		}
	}
	if err := VerifyRecord(p, sig[:len(sig)-4]+"AAA="); !errors.Is(err, ErrBadRecord) {
		t.Errorf("altered signature verified: %v", err)
	}
}

func TestAnchorAndLogin(t *testing.T) {
	k, err := Derive(newToken(t))
	if err != nil {
		t.Fatal(err)
	}
	creator := uuid.New()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	a, err := k.Anchor(creator, pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.CheckAnchor(creator, pub, a); err != nil {
		t.Fatal(err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := k.CheckAnchor(creator, other, a); !errors.Is(err, ErrBadAnchor) {
		t.Fatalf("another key: %v", err)
	}
	if err := k.CheckAnchor(uuid.New(), pub, a); !errors.Is(err, ErrBadAnchor) {
		t.Fatalf("another creator: %v", err)
	}
	k2, _ := Derive(newToken(t))
	if err := k2.CheckAnchor(creator, pub, a); !errors.Is(err, ErrBadAnchor) {
		t.Fatalf("another token's anchor: %v", err)
	}

	nonce := make([]byte, NonceSize)
	rand.Read(nonce)
	sig, err := k.SignLogin(nonce, "zsm-api")
	if err != nil {
		t.Fatal(err)
	}
	p := k.Public()
	if !VerifyLogin(k.TokenID, p.Ed25519, nonce, "zsm-api", sig) {
		t.Fatal("login signature does not verify")
	}
	other2 := append([]byte{}, nonce...)
	other2[0] ^= 1
	for name, ok := range map[string]bool{
		"another audience": VerifyLogin(k.TokenID, p.Ed25519, nonce, "zsm-api2", sig),
		"another nonce":    VerifyLogin(k.TokenID, p.Ed25519, other2, "zsm-api", sig),
		"another token id": VerifyLogin(k2.TokenID, p.Ed25519, nonce, "zsm-api", sig),
		"another key":      VerifyLogin(k.TokenID, k2.Public().Ed25519, nonce, "zsm-api", sig),
		"short nonce":      VerifyLogin(k.TokenID, p.Ed25519, nonce[:16], "zsm-api", sig),
		"empty audience":   VerifyLogin(k.TokenID, p.Ed25519, nonce, "", sig),
	} {
		if ok {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestParseID(t *testing.T) {
	id := newToken(t).ID()
	if got, err := ParseID(id.String()); err != nil || got != id {
		t.Fatalf("ParseID: %v", err)
	}
	for _, s := range []string{"", strings.ToUpper(id.String()), "{" + id.String() + "}", uuid.Must(uuid.NewV7()).String(), "urn:uuid:" + id.String()} {
		if _, err := ParseID(s); err == nil {
			t.Errorf("ParseID(%q) accepted", s)
		}
	}
}

// FuzzParse: Parse never panics, accepts only what it gives back exactly,
// and what it accepts is a version 4 id with a matching check.
func FuzzParse(f *testing.F) {
	tok, _ := New(bytes.NewReader(bytes.Repeat([]byte{7}, 48)))
	f.Add(tok.Reveal())
	f.Add(Prefix)
	f.Add("")
	f.Add(tok.Reveal() + "\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if got.Reveal() != strings.Trim(s, " \t\r\n") {
			t.Fatalf("accepted %q but gives back %q", s, got.Reveal())
		}
		if got.ID().Version() != 4 {
			t.Fatal("accepted an id that is not version 4")
		}
	})
}

func b64(b []byte) string {
	s, _ := json.Marshal(b) // standard base64
	return strings.NewReplacer("+", "-", "/", "_", "=", "", `"`, "").Replace(string(s))
}
