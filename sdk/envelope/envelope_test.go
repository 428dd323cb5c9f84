package envelope_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"

	"zsm.dev/zsm/sdk/envelope"
)

var (
	testKey  = bytes.Repeat([]byte{0x42}, 32)
	otherKey = bytes.Repeat([]byte{0x43}, 32)
	testCtx  = envelope.Context{
		Type:     envelope.Secret,
		VaultID:  uuid.MustParse("0190a3b4-0000-7000-8000-000000000001"),
		ObjectID: uuid.MustParse("0190a3b4-0000-7000-8000-000000000002"),
		Revision: 7,
	}
	testPlain = []byte(`{"name":"db","value":"hunter2"}`)
)

func seal(t testing.TB, key []byte, ctx envelope.Context, pt []byte) []byte {
	t.Helper()
	env, err := envelope.Seal(key, ctx, pt, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestRoundTrip(t *testing.T) {
	for _, pt := range [][]byte{nil, {}, {0}, testPlain, bytes.Repeat([]byte{1}, 1<<16)} {
		env := seal(t, testKey, testCtx, pt)
		if len(env) != len(pt)+envelope.Overhead {
			t.Errorf("len(env) = %d, want %d", len(env), len(pt)+envelope.Overhead)
		}
		got, err := envelope.Open(testKey, testCtx, env)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, pt) || got == nil {
			t.Errorf("Open = %x, want %x (non-nil)", got, pt)
		}
		s, err := envelope.SealString(testKey, testCtx, pt, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		got, err = envelope.OpenString(testKey, testCtx, s)
		if err != nil || !bytes.Equal(got, pt) {
			t.Errorf("OpenString = %x, %v", got, err)
		}
	}
}

func TestLayout(t *testing.T) {
	// The envelope is exactly version || type || nonce || commitment ||
	// XChaCha20-Poly1305(key, nonce, pt, AD): decrypt it with the primitives
	// directly, so the layout is pinned independently of Open.
	nonce := bytes.Repeat([]byte{9}, 24)
	env, err := envelope.Seal(testKey, testCtx, testPlain, bytes.NewReader(nonce))
	if err != nil {
		t.Fatal(err)
	}
	if env[0] != 1 || env[1] != 5 || !bytes.Equal(env[2:26], nonce) {
		t.Fatalf("header = %x", env[:26])
	}
	m := hmac.New(sha256.New, testKey)
	m.Write([]byte("zsm v1 key-commitment\x00"))
	m.Write(nonce)
	if !bytes.Equal(env[26:58], m.Sum(nil)) {
		t.Fatalf("commitment = %x", env[26:58])
	}
	ad := testCtx.AD()
	wantAD := append([]byte("zsm-envelope\x00\x01\x05"), testCtx.VaultID[:]...)
	wantAD = append(wantAD, testCtx.ObjectID[:]...)
	wantAD = append(wantAD, 0, 0, 0, 0, 0, 0, 0, 7)
	if !bytes.Equal(ad, wantAD) {
		t.Fatalf("AD = %x, want %x", ad, wantAD)
	}
	aead, _ := chacha20poly1305.NewX(testKey)
	pt, err := aead.Open(nil, nonce, env[58:], wantAD)
	if err != nil || !bytes.Equal(pt, testPlain) {
		t.Fatalf("raw AEAD open: %x, %v", pt, err)
	}
}

func TestAD(t *testing.T) {
	// Each field moves the AD; the AD has a fixed size so no two contexts
	// can share an encoding.
	base := testCtx.AD()
	if len(base) != 55 {
		t.Fatalf("len(AD) = %d, want 55", len(base))
	}
	for name, c := range contextVariants() {
		if bytes.Equal(c.AD(), base) {
			t.Errorf("%s: AD unchanged", name)
		}
	}
}

func contextVariants() map[string]envelope.Context {
	v := map[string]envelope.Context{}
	c := testCtx
	c.Type = envelope.VaultMeta
	v["type"] = c
	c = testCtx
	c.VaultID[15] ^= 1
	v["vault"] = c
	c = testCtx
	c.ObjectID[0] ^= 0x80
	v["object"] = c
	c = testCtx
	c.Revision++
	v["revision+1"] = c
	c = testCtx
	c.Revision--
	v["revision-1 (rollback relabel)"] = c
	c = testCtx
	c.Revision |= 1 << 63
	v["revision high bit"] = c
	c = testCtx
	c.VaultID, c.ObjectID = c.ObjectID, c.VaultID
	v["vault and object swapped"] = c
	return v
}

func TestContextBinding(t *testing.T) {
	env := seal(t, testKey, testCtx, testPlain)
	for name, c := range contextVariants() {
		_, err := envelope.Open(testKey, c, env)
		want := envelope.ErrTampered
		if c.Type != testCtx.Type {
			want = envelope.ErrWrongType
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: Open err = %v, want %v", name, err, want)
		}
	}
	// A relabelled type byte with the context to match still fails: the
	// type is in the AD too, not only in the header.
	moved := bytes.Clone(env)
	moved[1] = byte(envelope.VaultMeta)
	c := testCtx
	c.Type = envelope.VaultMeta
	if _, err := envelope.Open(testKey, c, moved); !errors.Is(err, envelope.ErrTampered) {
		t.Errorf("relabelled type: err = %v, want ErrTampered", err)
	}
}

func TestEveryByteFlip(t *testing.T) {
	env := seal(t, testKey, testCtx, testPlain)
	for i := range env {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(env)
			bad[i] ^= mask
			_, err := envelope.Open(testKey, testCtx, bad)
			var want error
			switch {
			case i == 0:
				want = envelope.ErrUnsupportedVersion
			case i == 1 && envelope.Type(bad[1]) >= 1 && envelope.Type(bad[1]) <= 5:
				want = envelope.ErrWrongType
			case i == 1:
				want = envelope.ErrMalformed
			default:
				want = envelope.ErrTampered
			}
			if !errors.Is(err, want) {
				t.Fatalf("byte %d ^ %#x: err = %v, want %v", i, mask, err, want)
			}
		}
	}
}

func TestTruncationAndExtension(t *testing.T) {
	env := seal(t, testKey, testCtx, testPlain)
	for n := 0; n < len(env); n++ {
		_, err := envelope.Open(testKey, testCtx, env[:n])
		if err == nil {
			t.Fatalf("truncated to %d bytes: opened", n)
		}
		want := envelope.ErrTampered
		if n < envelope.Overhead {
			want = envelope.ErrMalformed
		}
		if !errors.Is(err, want) {
			t.Fatalf("truncated to %d: err = %v, want %v", n, err, want)
		}
	}
	for _, extra := range [][]byte{{0}, {0xff}, make([]byte, 16)} {
		if _, err := envelope.Open(testKey, testCtx, append(bytes.Clone(env), extra...)); !errors.Is(err, envelope.ErrTampered) {
			t.Errorf("extended by %x: err = %v", extra, err)
		}
	}
}

func TestEveryOtherVersion(t *testing.T) {
	env := seal(t, testKey, testCtx, testPlain)
	for v := 0; v < 256; v++ {
		if v == envelope.Version {
			continue
		}
		bad := bytes.Clone(env)
		bad[0] = byte(v)
		if _, err := envelope.Open(testKey, testCtx, bad); !errors.Is(err, envelope.ErrUnsupportedVersion) {
			t.Fatalf("version %d: err = %v", v, err)
		}
		if _, err := envelope.Parse(bad); !errors.Is(err, envelope.ErrUnsupportedVersion) {
			t.Fatalf("Parse version %d: err = %v", v, err)
		}
	}
	// Version is checked before the length, so a short future-format blob
	// is still reported as an unknown version.
	if _, err := envelope.Parse([]byte{2}); !errors.Is(err, envelope.ErrUnsupportedVersion) {
		t.Errorf("Parse([2]) = %v", err)
	}
}

func TestUnknownTypes(t *testing.T) {
	env := seal(t, testKey, testCtx, testPlain)
	for ty := 0; ty < 256; ty++ {
		bad := bytes.Clone(env)
		bad[1] = byte(ty)
		_, err := envelope.Parse(bad)
		if known := ty >= 1 && ty <= 8; known != (err == nil) {
			t.Fatalf("type %d: Parse err = %v", ty, err)
		}
		if err != nil && !errors.Is(err, envelope.ErrMalformed) {
			t.Fatalf("type %d: Parse err = %v, want ErrMalformed", ty, err)
		}
	}
	// Sealing or opening with a context of no known type is refused.
	for _, ty := range []envelope.Type{0, 9, 255} {
		c := testCtx
		c.Type = ty
		if _, err := envelope.Seal(testKey, c, testPlain, rand.Reader); err == nil {
			t.Errorf("Seal with type %d succeeded", ty)
		}
		if _, err := envelope.Open(testKey, c, env); err == nil {
			t.Errorf("Open with type %d succeeded", ty)
		}
	}
}

func TestWrongKey(t *testing.T) {
	env := seal(t, testKey, testCtx, testPlain)
	if _, err := envelope.Open(otherKey, testCtx, env); !errors.Is(err, envelope.ErrTampered) {
		t.Fatalf("wrong key: err = %v", err)
	}
	// Bad key sizes are a programming error, not ErrTampered.
	for _, k := range [][]byte{nil, testKey[:31], append(bytes.Clone(testKey), 0)} {
		if _, err := envelope.Open(k, testCtx, env); err == nil || errors.Is(err, envelope.ErrTampered) {
			t.Errorf("key of %d bytes: err = %v", len(k), err)
		}
		if _, err := envelope.Seal(k, testCtx, testPlain, rand.Reader); err == nil {
			t.Errorf("Seal with key of %d bytes succeeded", len(k))
		}
	}
}

// TestCommitmentCheckedBeforeAEAD builds an envelope whose AEAD part is
// valid under the key but whose commitment belongs to another key. Open must
// refuse it: the commitment, not the AEAD, decides which key an envelope is
// for. This is what stops a ciphertext crafted to decrypt under two keys
// (an "invisible salamander", which XChaCha20-Poly1305 allows) from opening
// under the second one.
func TestCommitmentCheckedBeforeAEAD(t *testing.T) {
	nonce := bytes.Repeat([]byte{7}, 24)
	env, err := envelope.Seal(testKey, testCtx, testPlain, bytes.NewReader(nonce))
	if err != nil {
		t.Fatal(err)
	}
	other, err := envelope.Seal(otherKey, testCtx, testPlain, bytes.NewReader(nonce))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := envelope.Parse(env)
	q, _ := envelope.Parse(other)
	if p.Commitment == q.Commitment {
		t.Fatal("two keys give the same commitment for one nonce")
	}
	// The AEAD part of env is valid under testKey; put otherKey's
	// commitment on it.
	p.Commitment = q.Commitment
	forged := p.Marshal()
	aead, _ := chacha20poly1305.NewX(testKey)
	if _, err := aead.Open(nil, p.Nonce[:], p.Ciphertext, testCtx.AD()); err != nil {
		t.Fatal("the AEAD part should be valid under testKey")
	}
	if _, err := envelope.Open(testKey, testCtx, forged); !errors.Is(err, envelope.ErrTampered) {
		t.Fatalf("valid AEAD with a wrong commitment: err = %v", err)
	}
	// And an all-zero commitment (a "no commitment" downgrade) is refused.
	p.Commitment = [32]byte{}
	if _, err := envelope.Open(testKey, testCtx, p.Marshal()); !errors.Is(err, envelope.ErrTampered) {
		t.Fatalf("zero commitment: err = %v", err)
	}
}

func TestNonceUniqueness(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	seen := make(map[[24]byte]struct{}, n)
	for i := 0; i < n; i++ {
		env := seal(t, testKey, testCtx, testPlain)
		var nonce [24]byte
		copy(nonce[:], env[2:])
		if _, dup := seen[nonce]; dup {
			t.Fatalf("nonce repeated after %d seals", i)
		}
		seen[nonce] = struct{}{}
	}
	a := seal(t, testKey, testCtx, testPlain)
	b := seal(t, testKey, testCtx, testPlain)
	if bytes.Equal(a, b) || bytes.Equal(a[58:], b[58:]) {
		t.Fatal("the same plaintext sealed twice gives the same envelope")
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestRandomnessFailure(t *testing.T) {
	if _, err := envelope.Seal(testKey, testCtx, testPlain, failingReader{}); err == nil {
		t.Fatal("Seal succeeded without randomness")
	}
	if _, err := envelope.Seal(testKey, testCtx, testPlain, io.LimitReader(rand.Reader, 23)); err == nil {
		t.Fatal("Seal succeeded with a 23-byte nonce")
	}
}

func TestOpenStringRefusesNonCanonicalBase64(t *testing.T) {
	env := seal(t, testKey, testCtx, testPlain)
	good := base64.StdEncoding.EncodeToString(env)
	bad := map[string]string{
		"empty":       "",
		"url":         base64.URLEncoding.EncodeToString(env),
		"raw":         base64.RawStdEncoding.EncodeToString(env),
		"newline":     good[:20] + "\n" + good[20:],
		"space":       " " + good,
		"not base64":  "!!!!",
		"trailing":    good + "AA==",
		"hex":         "01050000",
		"half padded": good[:len(good)-1],
	}
	for name, s := range bad {
		if s == good {
			continue
		}
		_, err := envelope.OpenString(testKey, testCtx, s)
		if err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	// Non-zero padding bits: the last base64 character before '=' changes
	// but decodes to the same bytes under a lax decoder.
	if len(env)%3 != 0 {
		i := bytes.LastIndexFunc([]byte(good), func(r rune) bool { return r != '=' })
		b := []byte(good)
		b[i] = nextB64(b[i])
		if _, err := envelope.OpenString(testKey, testCtx, string(b)); !errors.Is(err, envelope.ErrMalformed) && !errors.Is(err, envelope.ErrTampered) {
			t.Errorf("non-canonical padding bits: err = %v", err)
		}
	}
}

func nextB64(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := bytes.IndexByte([]byte(alphabet), c)
	return alphabet[(i+1)%64]
}

func TestParseMarshal(t *testing.T) {
	env := seal(t, testKey, testCtx, testPlain)
	p, err := envelope.Parse(env)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 1 || p.Type != envelope.Secret || len(p.Ciphertext) != len(testPlain)+16 {
		t.Fatalf("Parse = %+v", p)
	}
	if !bytes.Equal(p.Marshal(), env) {
		t.Fatal("Marshal(Parse(env)) != env")
	}
}

func FuzzEnvelopeParse(f *testing.F) {
	f.Add(seal(f, testKey, testCtx, testPlain))
	f.Add(seal(f, testKey, envelope.Context{Type: envelope.AccountKey}, make([]byte, 32)))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := envelope.Parse(b)
		if err != nil {
			if !errors.Is(err, envelope.ErrMalformed) && !errors.Is(err, envelope.ErrUnsupportedVersion) {
				t.Fatalf("Parse error of no known class: %v", err)
			}
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("Parse(b).Marshal() = %x, want %x", p.Marshal(), b)
		}
		// Opening arbitrary bytes never panics and never succeeds (the
		// seeds are sealed under testKey, so open under another key).
		c := testCtx
		c.Type = p.Type
		if _, err := envelope.Open(otherKey, c, b); err == nil {
			t.Fatal("Open accepted fuzzed bytes")
		}
	})
}

func BenchmarkOpen256(b *testing.B) {
	env := seal(b, testKey, testCtx, make([]byte, 256))
	b.ReportAllocs()
	b.SetBytes(256)
	for b.Loop() {
		if _, err := envelope.Open(testKey, testCtx, env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal256(b *testing.B) {
	pt := make([]byte, 256)
	b.ReportAllocs()
	b.SetBytes(256)
	for b.Loop() {
		if _, err := envelope.Seal(testKey, testCtx, pt, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSharingTypes: the types sharing added (6 X-Wing seed, 7 pin set, 8
// previous vault key) seal and open in their contexts, and each is bound
// into the associated data like the others: an envelope of one of them
// opened as another type is refused, and relabelling the type byte to match
// fails the AEAD.
func TestSharingTypes(t *testing.T) {
	vault := testCtx.VaultID
	user := testCtx.ObjectID
	for _, c := range []struct {
		ctx  envelope.Context
		name string
	}{
		{envelope.Context{Type: envelope.XWingSeed, ObjectID: user}, "X-Wing private key"},
		{envelope.Context{Type: envelope.PinSet, ObjectID: user, Revision: 4}, "pin set"},
		{envelope.Context{Type: envelope.PrevVaultKey, VaultID: vault, ObjectID: vault, Revision: 2}, "previous vault key"},
	} {
		if c.ctx.Type.String() != c.name {
			t.Errorf("type %d: String = %q, want %q", c.ctx.Type, c.ctx.Type, c.name)
		}
		pt := bytes.Repeat([]byte{byte(c.ctx.Type)}, 32)
		env := seal(t, testKey, c.ctx, pt)
		if env[1] != byte(c.ctx.Type) {
			t.Fatalf("type byte %d, want %d", env[1], c.ctx.Type)
		}
		got, err := envelope.Open(testKey, c.ctx, env)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%v: Open = %x, %v", c.ctx.Type, got, err)
		}
		other := c.ctx
		other.Type = envelope.Secret
		if _, err := envelope.Open(testKey, other, env); !errors.Is(err, envelope.ErrWrongType) {
			t.Errorf("%v opened as a secret: err = %v", c.ctx.Type, err)
		}
		relabelled := bytes.Clone(env)
		relabelled[1] = byte(envelope.Secret)
		if _, err := envelope.Open(testKey, other, relabelled); !errors.Is(err, envelope.ErrTampered) {
			t.Errorf("%v relabelled as a secret: err = %v", c.ctx.Type, err)
		}
		// A pin set of another revision, or a previous key of another
		// generation, does not open (the revision is in the AD).
		moved := c.ctx
		moved.Revision++
		if _, err := envelope.Open(testKey, moved, env); !errors.Is(err, envelope.ErrTampered) {
			t.Errorf("%v under revision+1: err = %v", c.ctx.Type, err)
		}
	}
	if s := envelope.Type(9).String(); s != "unknown type 9" {
		t.Errorf("Type(9).String() = %q", s)
	}
}
