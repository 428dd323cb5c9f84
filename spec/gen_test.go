package spec

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/google/uuid"
	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/srpgroup"
)

var update = flag.Bool("update", false, "rewrite spec/vectors from the generator")

const generatorName = "zsm.dev/zsm/spec TestVectors (go test ./spec -run TestVectors -update)"

// TestVectors regenerates every vector file in memory and fails if any byte
// differs from the committed file; with -update it writes the files.
//
// The generator is deterministic: every io.Reader the implementation takes
// is a ChaCha8 stream seeded from the file name, and the randomness that
// crypto/hpke and go-srp draw internally comes from
// testing/cryptotest.SetGlobalRandom. The latter is not promised to stay the
// same across Go releases: if only hpke_vault_key.json, srp_blake2b_3072.json
// and flow.json differ after a Go upgrade while TestVectorsVerify still
// passes, the committed vectors are still valid; regenerate them with -update.
func TestVectors(t *testing.T) {
	files := generate(t)
	dir := "vectors"
	if *update {
		old, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, f := range old {
			os.Remove(f)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	committed, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range committed {
		if _, ok := files[filepath.Base(f)]; !ok {
			t.Errorf("%s is not made by the generator", f)
		}
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v (run go test ./spec -run TestVectors -update)", name, err)
			continue
		}
		if !bytes.Equal(got, data) {
			line := 1 + bytes.Count(data[:firstDiff(got, data)], []byte("\n"))
			t.Errorf("%s differs from the generator's output from line %d (run go test ./spec -run TestVectors -update and review the diff)", name, line)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// seeded returns a deterministic stream for io.Reader parameters.
func seeded(label string) io.Reader {
	return mrand.NewChaCha8(sha256.Sum256([]byte("zsm vectors " + label)))
}

func read(r io.Reader, n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		panic(err)
	}
	return b
}

func newUUID(r io.Reader) uuid.UUID {
	u, err := uuid.NewRandomFromReader(r)
	if err != nil {
		panic(err)
	}
	return u
}

func counter() func() int {
	n := 0
	return func() int { n++; return n }
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func generate(t *testing.T) map[string][]byte {
	return map[string][]byte{
		"kdf.json":              genKDF(t),
		"secret_key.json":       genSecretKey(t),
		"envelope.json":         genEnvelope(t),
		"bundle.json":           genBundle(t),
		"hpke_vault_key.json":   genHPKE(t),
		"grant.json":            genGrant(t),
		"srp_blake2b_3072.json": genSRP(t),
		"flow.json":             genFlow(t),
		"fingerprint.json":      genFingerprint(t),
		"pins.json":             genPins(t),
		"vault_log.json":        genVaultLog(t),
		"manifest.json":         genManifest(t),
		"key_record.json":       genKeyRecord(t),
		"identity.json":         genIdentity(t),
	}
}

var slowNote = Note{"FUNCTIONALITY", "Argon2id at the floor (64 MiB, t=3, p=4): about 0.15 s; skip in quick runs"}

// ---------------------------------------------------------------- kdf.json

func kdfJSON(p keys.KDFParams) *KDFParamsJSON {
	return &KDFParamsJSON{p.Alg, p.Salt, p.MemoryKiB, p.Iterations, p.Parallelism}
}

func infoFor(label, identity string) []byte { return []byte(label + "\x00" + identity) }

func genKDF(t *testing.T) []byte {
	r := seeded("kdf")
	next := counter()
	var groups []KDFGroup

	// Argon2id, raw.
	ag := KDFGroup{Type: "argon2id"}
	for _, c := range []struct {
		comment  string
		password string
		m, t     uint32
		p        uint8
		flags    []string
	}{
		{"small parameters", "password", 64, 1, 1, nil},
		{"small parameters, p = 4", "correct horse battery staple", 64, 3, 4, nil},
		{"small parameters, multi-byte UTF-8", "caf\u00e9 \u2713 \U0001f511", 256, 2, 2, nil},
		{"the floor: m = 65536 KiB, t = 3, p = 4", "correct horse battery staple", 65536, 3, 4, []string{"Slow"}},
	} {
		salt := read(r, 16)
		ag.Tests = append(ag.Tests, KDFTest{
			Case:     Case{next(), c.comment, orEmpty(c.flags)},
			Password: []byte(c.password), Salt: salt, MemoryKiB: c.m, Iterations: c.t, Parallelism: c.p,
			KPw:     argon2.IDKey([]byte(c.password), salt, c.t, c.m, c.p, 32),
			Outcome: Outcome{Result: "valid"},
		})
	}
	groups = append(groups, ag)

	// HKDF split.
	hg := KDFGroup{Type: "hkdf_split"}
	for _, c := range []struct{ comment, identity string }{
		{"ASCII identity", "alice@example.com"},
		{"non-ASCII identity (already normalized)", "j\u00fcrgen@example.com"},
		{"user name identity", "bob"},
	} {
		kpw, sk := read(r, 32), keys.SecretKey(read(r, 16))
		d := must[keys.Derived](t)(splitForVectors(kpw, sk, c.identity))
		hg.Tests = append(hg.Tests, KDFTest{
			Case: Case{next(), c.comment, []string{}},
			KPw:  kpw, SecretKey: sk[:], Identity: c.identity,
			InfoSRP: infoFor("zsm v1 srp-secret", c.identity), InfoUnlock: infoFor("zsm v1 unlock-key", c.identity),
			SRPSecret: d.SRPSecret, UnlockKey: d.UnlockKey,
			Outcome: Outcome{Result: "valid"},
		})
	}
	groups = append(groups, hg)

	// Derive end to end at the floor, and its refusals.
	dg := KDFGroup{Type: "derive"}
	for _, c := range []struct{ comment, password string }{
		{"ASCII password", "correct horse battery staple"},
		{"NFKC: decomposed é and the ligature ﬁ normalize to é and fi", "cafe\u0301 \ufb01le"},
	} {
		p := must[keys.KDFParams](t)(keys.DefaultKDF(r))
		sk := must[keys.SecretKey](t)(keys.NewSecretKey(r))
		id := "alice@example.com"
		d := must[keys.Derived](t)(keys.Derive(c.password, sk, id, p))
		salt, _ := base64.StdEncoding.DecodeString(p.Salt)
		nfkc := norm.NFKC.String(c.password)
		dg.Tests = append(dg.Tests, KDFTest{
			Case:     Case{next(), c.comment, []string{"Slow"}},
			Password: []byte(c.password), PasswordNFKC: []byte(nfkc), KDF: kdfJSON(p), SecretKey: sk[:], Identity: id,
			KPw:       argon2.IDKey([]byte(nfkc), salt, p.Iterations, p.MemoryKiB, p.Parallelism, 32),
			SRPSecret: d.SRPSecret, UnlockKey: d.UnlockKey,
			Outcome: Outcome{Result: "valid"},
		})
	}
	floorP := must[keys.KDFParams](t)(keys.DefaultKDF(r))
	sk := must[keys.SecretKey](t)(keys.NewSecretKey(r))
	for _, c := range []struct{ comment, password, identity, err string }{
		{"empty password", "", "alice@example.com", "bad_password"},
		{"password not valid UTF-8", "pass\xffword", "alice@example.com", "bad_password"},
		{"identity not normalized (upper case)", "pw", "Alice@example.com", "bad_identity"},
		{"identity not normalized (surrounding space)", "pw", " alice@example.com", "bad_identity"},
	} {
		dg.Tests = append(dg.Tests, KDFTest{
			Case:     Case{next(), c.comment, []string{"Refused"}},
			Password: []byte(c.password), KDF: kdfJSON(floorP), SecretKey: sk[:], Identity: c.identity,
			Outcome: Outcome{"invalid", c.err},
		})
	}
	groups = append(groups, dg)

	// Parameter checks.
	pg := KDFGroup{Type: "params"}
	b64 := base64.StdEncoding.EncodeToString
	salt16 := b64(read(r, 16))
	for _, c := range []struct {
		comment string
		edit    func(*keys.KDFParams)
		flag    string
	}{
		{"the floor", func(*keys.KDFParams) {}, ""},
		{"the maxima", func(p *keys.KDFParams) { p.MemoryKiB, p.Iterations, p.Parallelism = 4<<20, 64, 16 }, ""},
		{"memory_kib 65535", func(p *keys.KDFParams) { p.MemoryKiB = 65535 }, "WeakMemory"},
		{"memory_kib 8", func(p *keys.KDFParams) { p.MemoryKiB = 8 }, "WeakMemory"},
		{"memory_kib 4194305", func(p *keys.KDFParams) { p.MemoryKiB = 4<<20 + 1 }, "AboveMaximum"},
		{"iterations 2", func(p *keys.KDFParams) { p.Iterations = 2 }, "WeakIterations"},
		{"iterations 1", func(p *keys.KDFParams) { p.Iterations = 1 }, "WeakIterations"},
		{"iterations 65", func(p *keys.KDFParams) { p.Iterations = 65 }, "AboveMaximum"},
		{"parallelism 3", func(p *keys.KDFParams) { p.Parallelism = 3 }, "WeakParallelism"},
		{"parallelism 17", func(p *keys.KDFParams) { p.Parallelism = 17 }, "AboveMaximum"},
		{"salt of 15 bytes", func(p *keys.KDFParams) { p.Salt = b64(make([]byte, 15)) }, "BadSalt"},
		{"salt of 17 bytes", func(p *keys.KDFParams) { p.Salt = b64(make([]byte, 17)) }, "BadSalt"},
		{"salt of 0 bytes", func(p *keys.KDFParams) { p.Salt = "" }, "BadSalt"},
		{"salt without padding", func(p *keys.KDFParams) { p.Salt = strings.TrimRight(p.Salt, "=") }, "BadSalt"},
		{"salt with non-zero padding bits", func(p *keys.KDFParams) { p.Salt = p.Salt[:21] + "B==" }, "BadSalt"},
		{"salt in base64url", func(p *keys.KDFParams) { p.Salt = base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 16)) }, "BadSalt"},
		{"salt with a line break", func(p *keys.KDFParams) { p.Salt = p.Salt[:8] + "\n" + p.Salt[8:] }, "BadSalt"},
		{"alg argon2i", func(p *keys.KDFParams) { p.Alg = "argon2i" }, "BadAlg"},
		{"alg Argon2id (case matters)", func(p *keys.KDFParams) { p.Alg = "Argon2id" }, "BadAlg"},
		{"alg pbkdf2-sha256", func(p *keys.KDFParams) { p.Alg = "pbkdf2-sha256" }, "BadAlg"},
	} {
		p := keys.KDFParams{Alg: "argon2id", Salt: salt16, MemoryKiB: 65536, Iterations: 3, Parallelism: 4}
		if strings.HasSuffix(salt16, "==") == false {
			t.Fatal("a 16-byte salt ends in ==")
		}
		c.edit(&p)
		tc := KDFTest{Case: Case{next(), c.comment, []string{}}, KDF: kdfJSON(p), Outcome: Outcome{Result: "valid"}}
		if c.flag != "" {
			tc.Flags = []string{c.flag}
			tc.Outcome = Outcome{"invalid", "weak_kdf"}
		}
		if (p.Check() == nil) != (c.flag == "") {
			t.Fatalf("params %q: Check = %v", c.comment, p.Check())
		}
		pg.Tests = append(pg.Tests, tc)
	}
	groups = append(groups, pg)

	return encode(t, File[KDFGroup]{
		Algorithm: "ZSM-V1-KDF", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/crypto.md §1. Group argon2id: Argon2id (RFC 9106, version 0x13, no secret, no associated data), 32-byte output kpw.",
			"Group hkdf_split: srpSecret = HKDF-SHA256(ikm = kpw, salt = secretKey, info = infoSrp, L = 32); unlockKey likewise with infoUnlock. info = label || 0x00 || identity (UTF-8).",
			"Group derive: password (as typed) -> passwordNfkc = NFKC(password) -> Argon2id with the kdf parameters (salt base64-decoded) -> kpw -> the split. Invalid tests name the refusal: bad_password (empty or not UTF-8), bad_identity (not in srpgroup.NormalizeIdentity's normal form).",
			"Group params: the client's floor check, before any use. kdf is the JSON object authsvc sends, verbatim; invalid ones must be refused (weak_kdf) whatever the server says.",
		},
		Notes: map[string]Note{
			"Slow":            slowNote,
			"Refused":         {"EDGE_CASE", "input the client refuses before deriving anything"},
			"WeakMemory":      {"KDF_DOWNGRADE", "memory below the 65536 KiB floor"},
			"WeakIterations":  {"KDF_DOWNGRADE", "iterations below 3"},
			"WeakParallelism": {"KDF_DOWNGRADE", "parallelism below 4"},
			"AboveMaximum":    {"DOS", "a parameter above the sane maximum (4 GiB, 64, 16): a server could make the client spin"},
			"BadSalt":         {"KDF_DOWNGRADE", "salt not exactly 16 bytes of canonical standard base64 with padding"},
			"BadAlg":          {"KDF_DOWNGRADE", "alg other than the exact string argon2id"},
		},
		TestGroups: groups,
	})
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// splitForVectors is the HKDF step as docs/crypto.md writes it, with the
// standard library; keys' own tests check its unexported split against
// the vectors this produces.
func splitForVectors(kpw []byte, sk keys.SecretKey, identity string) (keys.Derived, error) {
	s, err := hkdfKey(kpw, sk[:], infoFor("zsm v1 srp-secret", identity))
	if err != nil {
		return keys.Derived{}, err
	}
	u, err := hkdfKey(kpw, sk[:], infoFor("zsm v1 unlock-key", identity))
	return keys.Derived{SRPSecret: s, UnlockKey: u}, err
}

// --------------------------------------------------------- secret_key.json

func genSecretKey(t *testing.T) []byte {
	r := seeded("secret_key")
	next := counter()
	vg := SecretKeyGroup{Type: "parse"}
	add := func(comment, text string, k keys.SecretKey) {
		vg.Tests = append(vg.Tests, SecretKeyTest{Case: Case{next(), comment, []string{}}, Text: text, Canonical: k.Text(), Key: k[:], Outcome: Outcome{Result: "valid"}})
	}
	add("all zero", "ZSM1-AAAAAA-AAAAAA-AAAAAA-AAAAAA-AA", keys.SecretKey{})
	add("all ones", "ZSM1-777777-777777-777777-777777-74", keys.SecretKey(bytes.Repeat([]byte{0xff}, 16)))
	for i := 0; i < 3; i++ {
		k := must[keys.SecretKey](t)(keys.NewSecretKey(r))
		s := k.Text()
		add("canonical form", s, k)
		switch i {
		case 0:
			add("lower case", strings.ToLower(s), k)
			add("no dashes", "ZSM1"+strings.ReplaceAll(s[5:], "-", ""), k)
		case 1:
			add("spaces instead of dashes", strings.ReplaceAll(s, "-", " "), k)
			add("pasted across lines with surrounding space", "  "+s[:19]+"\r\n"+s[19:]+"\n", k)
		case 2:
			add("mixed case, doubled dashes, tab", "zSm1-"+strings.ReplaceAll(strings.ToLower(s[5:12]), "-", "--")+"\t"+s[12:], k)
		}
	}
	good := "ZSM1-777777-777777-777777-777777-74"
	ig := SecretKeyGroup{Type: "parse"}
	for _, c := range []struct{ comment, text, flag string }{
		{"empty", "", "BadLength"},
		{"no prefix", good[5:], "BadPrefix"},
		{"other version", "ZSM2" + good[4:], "BadPrefix"},
		{"prefix at the end", good[5:] + "-ZSM1", "BadPrefix"},
		{"25 characters", good[:len(good)-1], "BadLength"},
		{"27 characters", good + "A", "BadLength"},
		{"15 bytes (24 characters)", "ZSM1-777777-777777-777777-777777", "BadLength"},
		{"17 bytes (28 characters)", good + "AA", "BadLength"},
		{"non-zero unused bits in the last character", "ZSM1-777777-777777-777777-777777-77", "NonCanonical"},
		{"padding", good + "======", "BadAlphabet"},
		{"digit 0 (not base32)", "ZSM1-0" + good[6:], "BadAlphabet"},
		{"digit 1 (not base32)", "ZSM1-1" + good[6:], "BadAlphabet"},
		{"digit 8 (not base32)", "ZSM1-8" + good[6:], "BadAlphabet"},
		{"long s (U+017F), which Unicode upper-cases to S", "ZSM1-\u017f" + good[6:], "BadAlphabet"},
		{"fullwidth A (U+FF21)", "ZSM1-\uff21" + good[6:], "BadAlphabet"},
		{"no-break space (U+00A0) as a separator", strings.Replace(good, "-", "\u00a0", 2), "BadAlphabet"},
		{"underscore separator", strings.ReplaceAll(good, "-", "_"), "BadAlphabet"},
		{"NUL at the end", good + "\x00", "BadAlphabet"},
	} {
		ig.Tests = append(ig.Tests, SecretKeyTest{Case: Case{next(), c.comment, []string{c.flag}}, Text: c.text, Outcome: Outcome{"invalid", "bad_secret_key"}})
	}
	return encode(t, File[SecretKeyGroup]{
		Algorithm: "ZSM-V1-SECRET-KEY", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/crypto.md §1, Secret Key text form. Text() is canonical: ZSM1- then RFC 4648 base32 of the 16 bytes (upper case, no padding, 26 characters) in groups of 6 joined by '-'.",
			"Parsing drops ASCII space, tab, CR, LF and '-' anywhere, upper-cases ASCII a-z only, then requires ZSM1 followed by exactly 26 base32 characters that re-encode to themselves.",
			"Valid tests: text parses to key, and key's canonical text is canonical. Invalid tests must be refused (bad_secret_key).",
		},
		Notes: map[string]Note{
			"BadLength":    {"EDGE_CASE", "not exactly 16 bytes"},
			"BadPrefix":    {"EDGE_CASE", "missing or wrong ZSM1 prefix"},
			"BadAlphabet":  {"EDGE_CASE", "a character outside the base32 alphabet and the ignored separators; Unicode case mapping must not be applied"},
			"NonCanonical": {"MALLEABILITY", "the last character's two unused bits are not zero: a second spelling of the same bytes"},
		},
		TestGroups: []SecretKeyGroup{vg, ig},
	})
}

// ----------------------------------------------------------- envelope.json

func adInput(c envelope.Context) ADInput {
	return ADInput{uint8(c.Type), c.VaultID.String(), c.ObjectID.String(), strconv.FormatUint(c.Revision, 10)}
}

func genEnvelope(t *testing.T) []byte {
	r := seeded("envelope")
	next := counter()
	user, vault, secret := newUUID(r), newUUID(r), newUUID(r)
	unlock, account, vaultKey := read(r, 32), read(r, 32), read(r, 32)

	sg := EnvelopeGroup{Type: "seal"}
	type sealed struct {
		key []byte
		ctx envelope.Context
		pt  []byte
		env []byte
	}
	var made []sealed
	for _, c := range []struct {
		comment string
		key     []byte
		ctx     envelope.Context
		pt      []byte
	}{
		{"type 1: account key under the unlock key", unlock, envelope.Context{Type: envelope.AccountKey, ObjectID: user}, account},
		{"type 2: X25519 scalar under the account key", account, envelope.Context{Type: envelope.X25519Private, ObjectID: user}, read(r, 32)},
		{"type 3: Ed25519 seed under the account key", account, envelope.Context{Type: envelope.Ed25519Private, ObjectID: user}, read(r, 32)},
		{"type 4: vault metadata", vaultKey, envelope.Context{Type: envelope.VaultMeta, VaultID: vault, ObjectID: vault, Revision: 1}, []byte(`{"name":"Production"}`)},
		{"type 5: a secret", vaultKey, envelope.Context{Type: envelope.Secret, VaultID: vault, ObjectID: secret, Revision: 3}, []byte(`{"name":"DATABASE_URL","value":"postgres://u:p@db/app"}`)},
		{"type 5: empty plaintext", vaultKey, envelope.Context{Type: envelope.Secret, VaultID: vault, ObjectID: secret, Revision: 4}, []byte{}},
		{"type 5: revision 2^64-1", vaultKey, envelope.Context{Type: envelope.Secret, VaultID: vault, ObjectID: secret, Revision: ^uint64(0)}, []byte(`{"name":"n","value":"v"}`)},
		{"type 5: 1000-byte plaintext", vaultKey, envelope.Context{Type: envelope.Secret, VaultID: vault, ObjectID: secret, Revision: 5}, read(r, 1000)},
	} {
		nonce := read(r, 24)
		env := must[[]byte](t)(envelope.Seal(c.key, c.ctx, c.pt, bytes.NewReader(nonce)))
		p := must[envelope.Parsed](t)(envelope.Parse(env))
		sg.Tests = append(sg.Tests, EnvelopeTest{
			Case: Case{next(), c.comment, []string{}}, Key: c.key, Nonce: nonce, ADInput: adInput(c.ctx), AD: c.ctx.AD(),
			Commitment: p.Commitment[:], Plaintext: c.pt, Envelope: env, Outcome: Outcome{Result: "valid"},
		})
		made = append(made, sealed{c.key, c.ctx, c.pt, env})
	}

	og := EnvelopeGroup{Type: "open"}
	s := made[4]
	add := func(comment, flag string, key []byte, ctx envelope.Context, env []byte, errClass string) {
		tc := EnvelopeTest{Case: Case{next(), comment, []string{}}, Key: key, ADInput: adInput(ctx), AD: ctx.AD(), Envelope: env}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if errClass == "" {
			tc.Plaintext = s.pt
			tc.Outcome = Outcome{Result: "valid"}
		} else {
			tc.Outcome = Outcome{"invalid", errClass}
		}
		og.Tests = append(og.Tests, tc)
	}
	mod := func(f func([]byte) []byte) []byte { return f(bytes.Clone(s.env)) }
	with := func(f func(*envelope.Context)) envelope.Context { c := s.ctx; f(&c); return c }
	add("valid", "", s.key, s.ctx, s.env, "")
	add("another vault id in the AD (moved to another vault)", "WrongAD", s.key, with(func(c *envelope.Context) { c.VaultID = vault; c.VaultID[15] ^= 1 }), s.env, "tampered")
	add("another object id in the AD (moved to another row)", "WrongAD", s.key, with(func(c *envelope.Context) { c.ObjectID = user }), s.env, "tampered")
	add("revision + 1 in the AD (an old ciphertext relabelled as new)", "WrongAD", s.key, with(func(c *envelope.Context) { c.Revision++ }), s.env, "tampered")
	add("revision - 1 in the AD", "WrongAD", s.key, with(func(c *envelope.Context) { c.Revision-- }), s.env, "tampered")
	add("vault and object ids swapped", "WrongAD", s.key, with(func(c *envelope.Context) { c.VaultID, c.ObjectID = c.ObjectID, c.VaultID }), s.env, "tampered")
	add("expected type 4, envelope says 5", "WrongType", s.key, with(func(c *envelope.Context) { c.Type = envelope.VaultMeta }), s.env, "wrong_type")
	add("type byte relabelled 5 -> 4 and the context to match (type is in the AD)", "WrongAD", s.key, with(func(c *envelope.Context) { c.Type = envelope.VaultMeta }), mod(func(b []byte) []byte { b[1] = 4; return b }), "tampered")
	add("last tag byte flipped", "ModifiedTag", s.key, s.ctx, mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), "tampered")
	add("first tag byte flipped", "ModifiedTag", s.key, s.ctx, mod(func(b []byte) []byte { b[len(b)-16] ^= 0x80; return b }), "tampered")
	add("ciphertext byte flipped", "ModifiedCiphertext", s.key, s.ctx, mod(func(b []byte) []byte { b[58] ^= 1; return b }), "tampered")
	add("nonce byte flipped (commitment no longer matches)", "BadCommitment", s.key, s.ctx, mod(func(b []byte) []byte { b[2] ^= 1; return b }), "tampered")
	add("commitment byte flipped", "BadCommitment", s.key, s.ctx, mod(func(b []byte) []byte { b[26+31] ^= 1; return b }), "tampered")
	add("all-zero commitment", "BadCommitment", s.key, s.ctx, mod(func(b []byte) []byte { clear(b[26:58]); return b }), "tampered")
	otherKey := bytes.Clone(s.key)
	otherKey[0] ^= 1
	other := must[[]byte](t)(envelope.Seal(otherKey, s.ctx, s.pt, bytes.NewReader(s.env[2:26])))
	add("valid AEAD under the key, commitment of another key (checked before the AEAD)", "BadCommitment", s.key, s.ctx,
		mod(func(b []byte) []byte { copy(b[26:58], other[26:58]); return b }), "tampered")
	add("wrong key", "WrongKey", otherKey, s.ctx, s.env, "tampered")
	add("the unlock key instead of the vault key", "WrongKey", unlock, s.ctx, s.env, "tampered")
	add("truncated by one byte", "Truncated", s.key, s.ctx, s.env[:len(s.env)-1], "tampered")
	add("truncated to 73 bytes (below the minimum)", "Truncated", s.key, s.ctx, s.env[:73], "malformed")
	add("header only", "Truncated", s.key, s.ctx, s.env[:58], "malformed")
	add("version byte only", "Truncated", s.key, s.ctx, s.env[:1], "malformed")
	add("empty", "Truncated", s.key, s.ctx, []byte{}, "malformed")
	add("one byte appended", "Extended", s.key, s.ctx, append(bytes.Clone(s.env), 0), "tampered")
	for _, v := range []byte{0, 2, 0xff} {
		add(fmt.Sprintf("version %d", v), "UnknownVersion", s.key, s.ctx, mod(func(b []byte) []byte { b[0] = v; return b }), "unsupported_version")
	}
	add("version 2, short (version is checked before length)", "UnknownVersion", s.key, s.ctx, []byte{2, 5}, "unsupported_version")
	for _, ty := range []byte{0, 9, 0xff} {
		add(fmt.Sprintf("unknown type %d", ty), "UnknownType", s.key, s.ctx, mod(func(b []byte) []byte { b[1] = ty; return b }), "malformed")
	}
	e := made[5] // empty plaintext
	og.Tests = append(og.Tests, EnvelopeTest{Case: Case{next(), "valid, empty plaintext (74 bytes)", []string{}}, Key: e.key, ADInput: adInput(e.ctx), AD: e.ctx.AD(), Envelope: e.env, Outcome: Outcome{Result: "valid"}})

	// The types sharing added (docs/crypto.md §2, §3, §7, §8).
	sg2 := EnvelopeGroup{Type: "seal"}
	for _, c := range []struct {
		comment string
		key     []byte
		ctx     envelope.Context
		pt      []byte
	}{
		{"type 6: X-Wing seed under the account key", account, envelope.Context{Type: envelope.XWingSeed, ObjectID: user}, read(r, 32)},
		{"type 7: pin set under the account key, row revision 3", account, envelope.Context{Type: envelope.PinSet, ObjectID: user, Revision: 3}, []byte(`{"version":1,"pins":[]}`)},
		{"type 8: the key of generation 2 under the key of generation 3", vaultKey, envelope.Context{Type: envelope.PrevVaultKey, VaultID: vault, ObjectID: vault, Revision: 2}, read(r, 32)},
	} {
		nonce := read(r, 24)
		env := must[[]byte](t)(envelope.Seal(c.key, c.ctx, c.pt, bytes.NewReader(nonce)))
		p := must[envelope.Parsed](t)(envelope.Parse(env))
		sg2.Tests = append(sg2.Tests, EnvelopeTest{
			Case: Case{next(), c.comment, []string{}}, Key: c.key, Nonce: nonce, ADInput: adInput(c.ctx), AD: c.ctx.AD(),
			Commitment: p.Commitment[:], Plaintext: c.pt, Envelope: env, Outcome: Outcome{Result: "valid"},
		})
	}

	return encode(t, File[EnvelopeGroup]{
		Algorithm: "ZSM-V1-ENVELOPE-XCHACHA20POLY1305-HMACSHA256", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/crypto.md §2. envelope = 0x01 || type || nonce (24) || commitment (32) || XChaCha20-Poly1305(key, nonce, plaintext, ad) (ciphertext || 16-byte tag).",
			"commitment = HMAC-SHA256(key, \"zsm v1 key-commitment\" || 0x00 || nonce). ad = \"zsm-envelope\" || 0x00 || 0x01 || type || vault_id (16) || object_id (16) || u64be(revision); adInput gives the builder's inputs, ad its output (55 bytes).",
			"Group seal: Seal(key, adInput, plaintext) with the given nonce must give envelope byte for byte. Group open: Open(key, adInput, envelope) must give plaintext or fail with the named class.",
			"Error classes, checked in this order: unsupported_version (byte 0 is not 1, checked first), malformed (fewer than 74 bytes, or a type byte outside 1..8), wrong_type (type byte differs from adInput.type), tampered (commitment mismatch, compared in constant time before decrypting, or AEAD failure). Text columns hold base64(envelope).",
			"Types: 1 account key, 2 X25519 private key, 3 Ed25519 private key, 4 vault metadata, 5 secret, 6 X-Wing seed, 7 pin set, 8 previous vault key (the second seal group).",
		},
		Notes: map[string]Note{
			"WrongAD":            {"AUTH_BYPASS", "the envelope opened with another context: moved to another vault, row, type or revision"},
			"WrongType":          {"AUTH_BYPASS", "the type byte differs from the expected type"},
			"ModifiedTag":        {"AUTH_BYPASS", "a tag bit flipped"},
			"ModifiedCiphertext": {"AUTH_BYPASS", "a ciphertext bit flipped"},
			"BadCommitment":      {"KEY_COMMITMENT", "the commitment does not match key and nonce; must be refused before the AEAD runs"},
			"WrongKey":           {"AUTH_BYPASS", "opened with another key"},
			"Truncated":          {"EDGE_CASE", "bytes removed from the end"},
			"Extended":           {"EDGE_CASE", "bytes appended"},
			"UnknownVersion":     {"DOWNGRADE", "a version byte other than 1; there is no other format and no legacy reader"},
			"UnknownType":        {"EDGE_CASE", "a type byte outside 1..8"},
		},
		TestGroups: []EnvelopeGroup{sg, og, sg2},
	})
}

// ------------------------------------------------------------- bundle.json

func bundleJSON(t *testing.T, b keys.Bundle) string {
	return string(must[[]byte](t)(json.Marshal(b)))
}

func genBundle(t *testing.T) []byte {
	r := seeded("bundle")
	next := counter()
	unlock, userID := read(r, 32), newUUID(r)
	a := must[*keys.AccountKeys](t)(keys.NewAccountKeys(r))
	b := must[keys.Bundle](t)(a.Bundle(unlock, userID, r))
	g := BundleGroup{Type: "open"}
	add := func(comment, flag string, key []byte, user uuid.UUID, doc, errClass string) {
		tc := BundleTest{Case: Case{next(), comment, []string{}}, UnlockKey: key, UserID: user.String(), Bundle: doc}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if errClass == "" {
			tc.AccountKey, tc.X25519Private, tc.X25519Public = a.AccountKey, a.X25519.Bytes(), a.X25519.PublicKey().Bytes()
			tc.Ed25519Seed, tc.Ed25519Public = a.Ed25519.Seed(), Hex(a.Ed25519.Public().(ed25519.PublicKey))
			tc.Outcome = Outcome{Result: "valid"}
		} else {
			tc.Outcome = Outcome{"invalid", errClass}
		}
		g.Tests = append(g.Tests, tc)
	}
	doc := bundleJSON(t, b)
	edit := func(f func(*keys.Bundle)) string { c := b; f(&c); return bundleJSON(t, c) }
	add("valid", "", unlock, userID, doc, "")
	var m map[string]any
	json.Unmarshal([]byte(doc), &m)
	add("valid, indented with members in another order", "", unlock, userID, string(must[[]byte](t)(json.MarshalIndent(m, "", "\t")))+"\n", "")
	wrong := bytes.Clone(unlock)
	wrong[31] ^= 1
	add("wrong unlock key (wrong password or Secret Key)", "WrongKey", wrong, userID, doc, "unlock")
	otherUser := userID
	otherUser[0] ^= 1
	add("another user's id (bundle of another user)", "WrongUser", unlock, otherUser, doc, "unlock")
	evil := must[*keys.AccountKeys](t)(keys.NewAccountKeys(r))
	add("X25519 public key substituted", "PublicKeyMismatch", unlock, userID,
		edit(func(c *keys.Bundle) {
			c.X25519Public = base64.StdEncoding.EncodeToString(evil.X25519.PublicKey().Bytes())
		}), "tampered")
	add("Ed25519 public key substituted", "PublicKeyMismatch", unlock, userID,
		edit(func(c *keys.Bundle) {
			c.Ed25519Public = base64.StdEncoding.EncodeToString(evil.Ed25519.Public().(ed25519.PublicKey))
		}), "tampered")
	evilB := must[keys.Bundle](t)(evil.Bundle(read(r, 32), userID, r))
	add("X25519 private key of another account key", "Swapped", unlock, userID, edit(func(c *keys.Bundle) { c.X25519Private = evilB.X25519Private }), "tampered")
	add("private key envelopes swapped", "Swapped", unlock, userID,
		edit(func(c *keys.Bundle) { c.X25519Private, c.Ed25519Private = c.Ed25519Private, c.X25519Private }), "malformed")
	relabel := func(s string, ty byte) string {
		raw, _ := base64.StdEncoding.DecodeString(s)
		raw[1] = ty
		return base64.StdEncoding.EncodeToString(raw)
	}
	add("private key envelopes swapped and type bytes relabelled (type is in the AD)", "Swapped", unlock, userID,
		edit(func(c *keys.Bundle) {
			c.X25519Private, c.Ed25519Private = relabel(c.Ed25519Private, 2), relabel(c.X25519Private, 3)
		}), "tampered")
	add("account key and X25519 private key swapped", "Swapped", unlock, userID,
		edit(func(c *keys.Bundle) { c.AccountKey, c.X25519Private = c.X25519Private, c.AccountKey }), "malformed")
	flip := func(s string) string {
		raw, _ := base64.StdEncoding.DecodeString(s)
		raw[len(raw)-1] ^= 1
		return base64.StdEncoding.EncodeToString(raw)
	}
	add("account key tag flipped", "ModifiedTag", unlock, userID, edit(func(c *keys.Bundle) { c.AccountKey = flip(c.AccountKey) }), "unlock")
	add("Ed25519 private key tag flipped", "ModifiedTag", unlock, userID, edit(func(c *keys.Bundle) { c.Ed25519Private = flip(c.Ed25519Private) }), "tampered")
	for _, c := range []struct{ comment, doc string }{
		{"unknown member", strings.Replace(doc, "{", `{"recovery_key":"AAAA",`, 1)},
		{"duplicate member", strings.Replace(doc, "{", `{"x25519_public":"`+b.X25519Public+`",`, 1)},
		{"member name in another case", strings.Replace(doc, `"account_key"`, `"Account_Key"`, 1)},
		{"missing member", strings.Replace(doc, `,"ed25519_public":"`+b.Ed25519Public+`"`, "", 1)},
		{"version 2", strings.Replace(doc, `"version":1`, `"version":2`, 1)},
		{"version 1.0", strings.Replace(doc, `"version":1`, `"version":1.0`, 1)},
		{"version as a string", strings.Replace(doc, `"version":1`, `"version":"1"`, 1)},
		{"public key of 31 bytes", strings.Replace(doc, b.X25519Public, base64.StdEncoding.EncodeToString(make([]byte, 31)), 1)},
		{"public key in base64url", strings.Replace(doc, b.Ed25519Public, base64.URLEncoding.EncodeToString(must[[]byte](t)(base64.StdEncoding.DecodeString(b.Ed25519Public))), 1)},
		{"account key envelope of version 2", strings.Replace(doc, b.AccountKey, relabelVersion(b.AccountKey), 1)},
		{"null field", strings.Replace(doc, `"`+b.AccountKey+`"`, "null", 1)},
		{"data after the object", doc + "{}"},
		{"not an object", "[" + doc + "]"},
	} {
		add(c.comment, "Malformed", unlock, userID, c.doc, "malformed")
	}

	// Version 2: the same account upgraded with an X-Wing key (32 bytes of
	// the stream as its seed), the five version 1 members unchanged.
	b2 := must[keys.Bundle](t)(a.UpgradeBundle(b, userID, r))
	add2 := func(comment, flag string, key []byte, doc, errClass string) {
		add(comment, flag, key, userID, doc, errClass)
		if errClass == "" {
			tc := &g.Tests[len(g.Tests)-1]
			tc.XWingSeed = must[[]byte](t)(a.XWing.Bytes())
			tc.XWingPublic = a.XWing.PublicKey().Bytes()
		}
	}
	doc2 := bundleJSON(t, b2)
	edit2 := func(f func(*keys.Bundle)) string { c := b2; f(&c); return bundleJSON(t, c) }
	add2("version 2: valid", "", unlock, doc2, "")
	var m2 map[string]any
	json.Unmarshal([]byte(doc2), &m2)
	add2("version 2: valid, indented with members in another order", "", unlock, string(must[[]byte](t)(json.MarshalIndent(m2, "", " "))), "")
	add2("version 2: wrong unlock key", "WrongKey", wrong, doc2, "unlock")
	if err := evil.AddXWing(r); err != nil {
		t.Fatal(err)
	}
	evilB2 := must[keys.Bundle](t)(evil.UpgradeBundle(evilB, userID, r))
	add2("version 2: X-Wing public key substituted", "PublicKeyMismatch", unlock, edit2(func(c *keys.Bundle) { c.XWingPublic = evilB2.XWingPublic }), "tampered")
	add2("version 2: X-Wing private key of another account key", "Swapped", unlock, edit2(func(c *keys.Bundle) { c.XWingPrivate = evilB2.XWingPrivate }), "tampered")
	short := must[string](t)(envelope.SealString(a.AccountKey, envelope.Context{Type: envelope.XWingSeed, ObjectID: userID}, read(r, 31), r))
	add2("version 2: X-Wing seed of 31 bytes under the account key", "BadSeed", unlock, edit2(func(c *keys.Bundle) { c.XWingPrivate = short }), "tampered")
	add2("version 2: the X25519 envelope relabelled type 6 as the X-Wing seed (type is in the AD)", "Swapped", unlock,
		edit2(func(c *keys.Bundle) { c.XWingPrivate = relabel(c.X25519Private, 6) }), "tampered")
	add2("version 2: X-Wing private key tag flipped", "ModifiedTag", unlock, edit2(func(c *keys.Bundle) { c.XWingPrivate = flip(c.XWingPrivate) }), "tampered")
	add2("version 2: last bit of the X-Wing public key flipped (its X25519 half)", "PublicKeyMismatch", unlock, edit2(func(c *keys.Bundle) { c.XWingPublic = flip(c.XWingPublic) }), "tampered")
	pub2 := must[[]byte](t)(base64.StdEncoding.DecodeString(b2.XWingPublic))
	for _, c := range []struct{ comment, doc string }{
		{"version 1 with the X-Wing members", strings.Replace(doc2, `"version":2`, `"version":1`, 1)},
		{"version 2 without the X-Wing members", strings.Replace(doc, `"version":1`, `"version":2`, 1)},
		{"version 2 without xwing_private", strings.Replace(doc2, `,"xwing_private":"`+b2.XWingPrivate+`"`, "", 1)},
		{"version 3", strings.Replace(doc2, `"version":2`, `"version":3`, 1)},
		{"xwing_public of 1215 bytes", strings.Replace(doc2, b2.XWingPublic, base64.StdEncoding.EncodeToString(pub2[:1215]), 1)},
		{"xwing_public not an ML-KEM-768 key (coefficients above q)", strings.Replace(doc2, b2.XWingPublic, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 1216)), 1)},
		{"xwing_private holds an envelope of type 2", strings.Replace(doc2, b2.XWingPrivate, b2.X25519Private, 1)},
		{"xwing_public repeated", strings.Replace(doc2, "{", `{"xwing_public":"`+b2.XWingPublic+`",`, 1)},
	} {
		add2("version 2: "+c.comment, "Malformed", unlock, c.doc, "malformed")
	}
	return encode(t, File[BundleGroup]{
		Algorithm: "ZSM-V1-KEY-BUNDLE", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/crypto.md §3. bundle is the JSON document the server stores, verbatim. Parse it strictly: exactly the six members (version, account_key, x25519_public, x25519_private, ed25519_public, ed25519_private), each once, names case-sensitive, version the number 1, binary members canonical standard base64 with padding, public keys 32 bytes, each envelope of its field's type (1, 2, 3), nothing after the object.",
			"Open: account key = Open(unlockKey, {type 1, zero vault, object userId, revision 0}, account_key); the X25519 scalar and Ed25519 seed likewise with types 2 and 3 under the account key; each private key must yield the published public key.",
			"Error classes: malformed (parse), unlock (the account key does not open), tampered (a private key does not open under the account key, or does not match its public key).",
			"Version 2 (docs/crypto.md §3): exactly the six members of version 1 and xwing_public (base64, 1216 bytes, a valid ML-KEM-768 encapsulation key followed by an X25519 key) and xwing_private (envelope type 6 under the account key, same context as types 2 and 3, plaintext the 32-byte X-Wing seed). The seed must be 32 bytes and yield xwing_public (MLKEM768-X25519 of draft-ietf-hpke-pq, HPKE KEM 0x647a: ML-KEM-768 and X25519 keys expanded from SHAKE256(seed)); valid tests give xwingSeed and xwingPublic.",
		},
		Notes: map[string]Note{
			"WrongKey":          {"AUTH_BYPASS", "wrong unlock key"},
			"WrongUser":         {"AUTH_BYPASS", "the bundle is bound to another user id"},
			"PublicKeyMismatch": {"KEY_SUBSTITUTION", "a published public key that the private key does not yield: the server's own key"},
			"Swapped":           {"AUTH_BYPASS", "envelopes moved between fields or accounts"},
			"ModifiedTag":       {"AUTH_BYPASS", "an envelope's tag bit flipped"},
			"Malformed":         {"EDGE_CASE", "not a well-formed bundle"},
			"BadSeed":           {"EDGE_CASE", "an X-Wing seed that is not 32 bytes"},
		},
		TestGroups: []BundleGroup{g},
	})
}

func relabelVersion(s string) string {
	raw, _ := base64.StdEncoding.DecodeString(s)
	raw[0] = 2
	return base64.StdEncoding.EncodeToString(raw)
}

// ----------------------------------------------------- hpke_vault_key.json

func vaultKeyInfo(vault, user uuid.UUID) []byte {
	return slices.Concat([]byte("zsm v1 vault-key\x00"), vault[:], user[:])
}

func genHPKE(t *testing.T) []byte {
	cryptotest.SetGlobalRandom(t, 1)
	r := seeded("hpke_vault_key")
	next := counter()
	g := HPKEGroup{Type: "open", KEMID: 0x0020, KDFID: 0x0001, AEADID: 0x0003}
	add := func(comment, flag string, sk *ecdh.PrivateKey, vault, user uuid.UUID, sealed string, vk []byte, errClass string) {
		tc := HPKETest{Case: Case{next(), comment, []string{}}, SkR: sk.Bytes(), PkR: sk.PublicKey().Bytes(),
			VaultID: vault.String(), UserID: user.String(), Info: vaultKeyInfo(vault, user), Sealed: sealed}
		if raw, err := base64.StdEncoding.DecodeString(sealed); err == nil && len(raw) == 80 {
			tc.Enc, tc.Ciphertext = raw[:32], raw[32:]
		}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if errClass == "" {
			tc.VaultKey, tc.Outcome = vk, Outcome{Result: "valid"}
		} else {
			tc.Outcome = Outcome{"invalid", errClass}
		}
		g.Tests = append(g.Tests, tc)
	}
	var first struct {
		sk          *ecdh.PrivateKey
		vault, user uuid.UUID
		sealed      string
		vk          []byte
	}
	for i := 0; i < 2; i++ {
		sk := must[*ecdh.PrivateKey](t)(ecdh.X25519().NewPrivateKey(read(r, 32)))
		vault, user, vk := newUUID(r), newUUID(r), read(r, 32)
		sealed := must[string](t)(grant.SealVaultKey(sk.PublicKey(), vault, user, vk))
		add("valid", "", sk, vault, user, sealed, vk, "")
		if i == 0 {
			first.sk, first.vault, first.user, first.sealed, first.vk = sk, vault, user, sealed, vk
		}
	}
	f := first
	other := newUUID(r)
	add("another user id in the info", "WrongInfo", f.sk, f.vault, other, f.sealed, nil, "does_not_open")
	add("another vault id in the info", "WrongInfo", f.sk, other, f.user, f.sealed, nil, "does_not_open")
	add("vault and user ids swapped", "WrongInfo", f.sk, f.user, f.vault, f.sealed, nil, "does_not_open")
	otherSK := must[*ecdh.PrivateKey](t)(ecdh.X25519().NewPrivateKey(read(r, 32)))
	add("another recipient key", "WrongKey", otherSK, f.vault, f.user, f.sealed, nil, "does_not_open")
	raw := must[[]byte](t)(base64.StdEncoding.DecodeString(f.sealed))
	flipped := func(i int) string { b := bytes.Clone(raw); b[i] ^= 1; return base64.StdEncoding.EncodeToString(b) }
	add("enc byte flipped", "ModifiedEnc", f.sk, f.vault, f.user, flipped(0), nil, "does_not_open")
	add("tag byte flipped", "ModifiedTag", f.sk, f.vault, f.user, flipped(79), nil, "does_not_open")
	add("ciphertext byte flipped", "ModifiedCiphertext", f.sk, f.vault, f.user, flipped(40), nil, "does_not_open")
	add("all-zero enc (low-order point)", "ModifiedEnc", f.sk, f.vault, f.user, base64.StdEncoding.EncodeToString(append(make([]byte, 32), raw[32:]...)), nil, "does_not_open")
	add("truncated to 79 bytes", "Malformed", f.sk, f.vault, f.user, base64.StdEncoding.EncodeToString(raw[:79]), nil, "malformed")
	add("81 bytes", "Malformed", f.sk, f.vault, f.user, base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 0)), nil, "malformed")
	add("base64url", "Malformed", f.sk, f.vault, f.user, base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 80)), nil, "malformed")
	add("empty", "Malformed", f.sk, f.vault, f.user, "", nil, "malformed")

	// Version 2 (docs/crypto.md §8): the generation in the info, and the
	// KEM the recipient's key record calls for.
	type recipient struct {
		sk     hpke.PrivateKey
		skR    []byte
		encLen int
	}
	newXWing := func() recipient {
		seed := read(r, 32)
		return recipient{must[hpke.PrivateKey](t)(keys.NewXWingKey(bytes.NewReader(seed))), seed, 1120}
	}
	newX25519 := func() recipient {
		x := must[*ecdh.PrivateKey](t)(ecdh.X25519().NewPrivateKey(read(r, 32)))
		return recipient{must[hpke.PrivateKey](t)(hpke.NewDHKEMPrivateKey(x)), x.Bytes(), 32}
	}
	var groups2 []HPKEGroup
	for _, kem := range []grant.KEM{grant.KEMXWing, grant.KEMX25519} {
		g2 := HPKEGroup{Type: "open_v2", KEMID: uint16(kem), KDFID: 0x0001, AEADID: 0x0003}
		newKey := newX25519
		if kem == grant.KEMXWing {
			newKey = newXWing
		}
		add2 := func(comment, flag string, k recipient, vault, user uuid.UUID, gen uint64, sealed string, vk []byte, errClass string) {
			tc := HPKETest{Case: Case{next(), comment, []string{}}, SkR: k.skR, PkR: k.sk.PublicKey().Bytes(),
				VaultID: vault.String(), UserID: user.String(), Generation: strconv.FormatUint(gen, 10), Info: vaultKeyInfoV2(vault, user, gen), Sealed: sealed}
			if raw, err := base64.StdEncoding.DecodeString(sealed); err == nil && len(raw) == k.encLen+48 {
				tc.Enc, tc.Ciphertext = raw[:k.encLen], raw[k.encLen:]
			}
			if flag != "" {
				tc.Flags = []string{flag}
			}
			if errClass == "" {
				tc.VaultKey, tc.Outcome = vk, Outcome{Result: "valid"}
			} else {
				tc.Outcome = Outcome{"invalid", errClass}
			}
			g2.Tests = append(g2.Tests, tc)
		}
		k := newKey()
		vault, user, vk := newUUID(r), newUUID(r), read(r, 32)
		seal := func(k recipient, gen uint64) string {
			s, got, err := grant.SealVaultKeyV2(k.sk.PublicKey(), vault, user, gen, vk)
			if err != nil || got != kem {
				t.Fatalf("SealVaultKeyV2: %v, %v", got, err)
			}
			return s
		}
		sealed := seal(k, 2)
		add2("valid, generation 2", "", k, vault, user, 2, sealed, vk, "")
		add2("valid, generation 2^64-1", "", k, vault, user, ^uint64(0), seal(k, ^uint64(0)), vk, "")
		k2 := newKey()
		add2("valid, another recipient, generation 1", "", k2, vault, user, 1, seal(k2, 1), vk, "")
		add2("generation 3 in the info (a key of one generation presented as another's)", "WrongInfo", k, vault, user, 3, sealed, nil, "does_not_open")
		add2("generation 1 in the info", "WrongInfo", k, vault, user, 1, sealed, nil, "does_not_open")
		other := newUUID(r)
		add2("another user id in the info", "WrongInfo", k, vault, other, 2, sealed, nil, "does_not_open")
		add2("another vault id in the info", "WrongInfo", k, other, user, 2, sealed, nil, "does_not_open")
		add2("another recipient key", "WrongKey", k2, vault, user, 2, sealed, nil, "does_not_open")
		raw := must[[]byte](t)(base64.StdEncoding.DecodeString(sealed))
		flipped := func(i int) string { b := bytes.Clone(raw); b[i] ^= 1; return base64.StdEncoding.EncodeToString(b) }
		add2("first enc byte flipped", "ModifiedEnc", k, vault, user, 2, flipped(0), nil, "does_not_open")
		if kem == grant.KEMXWing {
			add2("enc byte flipped in the X25519 half (byte 1088)", "ModifiedEnc", k, vault, user, 2, flipped(1088), nil, "does_not_open")
		}
		add2("tag byte flipped", "ModifiedTag", k, vault, user, 2, flipped(len(raw)-1), nil, "does_not_open")
		add2("one byte short", "Malformed", k, vault, user, 2, base64.StdEncoding.EncodeToString(raw[:len(raw)-1]), nil, "malformed")
		add2("one byte long", "Malformed", k, vault, user, 2, base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 0)), nil, "malformed")
		if kem == grant.KEMXWing {
			add2("an 80-byte X25519 sealed key given to an X-Wing key", "Malformed", k, vault, user, 2, base64.StdEncoding.EncodeToString(read(r, 80)), nil, "malformed")
		} else {
			v1 := must[string](t)(grant.SealVaultKey(must[*ecdh.PrivateKey](t)(ecdh.X25519().NewPrivateKey(k.skR)).PublicKey(), vault, user, vk))
			add2("a version 1 sealed key (v1 info) opened as version 2, generation 1", "WrongInfo", k, vault, user, 1, v1, nil, "does_not_open")
			add2("a 1168-byte X-Wing sealed key given to an X25519 key", "Malformed", k, vault, user, 2, base64.StdEncoding.EncodeToString(read(r, 1168)), nil, "malformed")
		}
		groups2 = append(groups2, g2)
	}
	return encode(t, File[HPKEGroup]{
		Algorithm: "ZSM-V1-HPKE-VAULT-KEY", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/crypto.md §4. HPKE (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256) (0x0020), HKDF-SHA256 (0x0001), ChaCha20-Poly1305 (0x0003), single-shot, empty aad.",
			"info = \"zsm v1 vault-key\" || 0x00 || vault_id (16) || recipient user_id (16). sealed = base64(enc (32) || ciphertext (48)); enc and ciphertext repeat it in hex.",
			"Decrypt direction: Open(skR, info, enc, ciphertext) must give vaultKey, or fail: does_not_open (HPKE failure) or malformed (sealed is not canonical base64 of exactly 80 bytes).",
			"Groups open_v2 (docs/crypto.md §8): info = \"zsm v2 vault-key\" || 0x00 || vault_id (16) || recipient user_id (16) || u64be(generation). kemId 0x647a is X-Wing (MLKEM768-X25519, draft-ietf-hpke-pq): skR is the 32-byte seed, pkR the 1216-byte public key derived from it (check the derivation), enc 1120 bytes (ML-KEM-768 ciphertext 1088 || X25519 ephemeral 32); kemId 0x0020 is DHKEM(X25519) as above with the v2 info. sealed = base64(enc || ciphertext (48)): 1168 bytes for X-Wing, 80 for X25519; another size for the group's KEM is malformed.",
			"The encapsulation randomness is drawn inside crypto/hpke and is not part of the vectors; the encrypt direction is checked by sealing with an implementation and opening with the other.",
		},
		Notes: map[string]Note{
			"WrongInfo":          {"AUTH_BYPASS", "a sealed key used for another vault or user"},
			"WrongKey":           {"AUTH_BYPASS", "another recipient"},
			"ModifiedEnc":        {"AUTH_BYPASS", "encapsulated key modified"},
			"ModifiedTag":        {"AUTH_BYPASS", "tag bit flipped"},
			"ModifiedCiphertext": {"AUTH_BYPASS", "ciphertext bit flipped"},
			"Malformed":          {"EDGE_CASE", "wrong size or encoding"},
		},
		TestGroups: append([]HPKEGroup{g}, groups2...),
	})
}

func vaultKeyInfoV2(vault, user uuid.UUID, gen uint64) []byte {
	return binary.BigEndian.AppendUint64(slices.Concat([]byte("zsm v2 vault-key\x00"), vault[:], user[:]), gen)
}

// -------------------------------------------------------------- grant.json

func genGrant(t *testing.T) []byte {
	r := seeded("grant")
	next := counter()
	seed := read(r, 32)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	g := GrantGroup{Type: "verify", SignerSeed: seed, SignerPublic: Hex(pub)}
	vault, user, granter := newUUID(r), newUUID(r), newUUID(r)
	sealed := base64.StdEncoding.EncodeToString(read(r, 80))
	mk := func(gr grant.Grant, sig string, pubOverride []byte, comment, flag, errClass string) {
		tc := GrantTest{Case: Case{next(), comment, []string{}}, VaultID: gr.VaultID.String(), UserID: gr.UserID.String(),
			GrantedBy: gr.GrantedBy.String(), Role: gr.Role, SealedKey: gr.SealedKey, Public: Hex(pubOverride), Signature: sig}
		if raw, err := base64.StdEncoding.Strict().DecodeString(gr.SealedKey); err == nil {
			h := sha256.Sum256(raw)
			tc.SealedKeySHA256 = h[:]
		}
		if m, err := gr.Message(); err == nil {
			tc.Message = m
		}
		if raw, err := base64.StdEncoding.Strict().DecodeString(sig); err == nil {
			tc.SignatureHex = raw
		}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if errClass == "" {
			tc.Outcome = Outcome{Result: "valid"}
		} else {
			tc.Outcome = Outcome{"invalid", errClass}
		}
		g.Tests = append(g.Tests, tc)
	}
	base := grant.Grant{VaultID: vault, UserID: user, GrantedBy: granter, Role: "editor", SealedKey: sealed}
	for _, role := range grant.Roles {
		gr := base
		gr.Role = role
		mk(gr, must[string](t)(grant.Sign(gr, priv)), nil, "valid, role "+role, "", "")
	}
	self := base
	self.UserID, self.GrantedBy, self.Role = granter, granter, "owner"
	mk(self, must[string](t)(grant.Sign(self, priv)), nil, "valid, the vault's creator granting itself owner", "", "")
	sig := must[string](t)(grant.Sign(base, priv))
	change := func(f func(*grant.Grant)) grant.Grant { c := base; f(&c); return c }
	flipU := func(u uuid.UUID) uuid.UUID { u[15] ^= 1; return u }
	mk(change(func(c *grant.Grant) { c.VaultID = flipU(c.VaultID) }), sig, nil, "vault id changed", "ModifiedField", "bad_signature")
	mk(change(func(c *grant.Grant) { c.UserID = flipU(c.UserID) }), sig, nil, "user id changed", "ModifiedField", "bad_signature")
	mk(change(func(c *grant.Grant) { c.GrantedBy = flipU(c.GrantedBy) }), sig, nil, "granted_by changed", "ModifiedField", "bad_signature")
	mk(change(func(c *grant.Grant) { c.Role = "owner" }), sig, nil, "role raised editor -> owner", "ModifiedField", "bad_signature")
	mk(change(func(c *grant.Grant) { c.SealedKey = base64.StdEncoding.EncodeToString(read(r, 80)) }), sig, nil, "sealed key substituted", "ModifiedField", "bad_signature")
	mk(change(func(c *grant.Grant) { c.Role = "root" }), sig, nil, "unknown role", "UnknownRole", "bad_signature")
	mk(change(func(c *grant.Grant) { c.Role = "Editor" }), sig, nil, "role in another case", "UnknownRole", "bad_signature")
	otherPub := ed25519.NewKeyFromSeed(read(r, 32)).Public().(ed25519.PublicKey)
	mk(base, sig, otherPub, "signed by someone else (another public key)", "WrongKey", "bad_signature")
	raw := must[[]byte](t)(base64.StdEncoding.DecodeString(sig))
	flipped := bytes.Clone(raw)
	flipped[0] ^= 1
	mk(base, base64.StdEncoding.EncodeToString(flipped), nil, "R flipped", "ModifiedSignature", "bad_signature")
	flipped = bytes.Clone(raw)
	flipped[63] ^= 0x10
	mk(base, base64.StdEncoding.EncodeToString(flipped), nil, "S flipped", "ModifiedSignature", "bad_signature")
	mk(base, base64.StdEncoding.EncodeToString(raw[:63]), nil, "63-byte signature", "ModifiedSignature", "bad_signature")
	mk(base, base64.RawStdEncoding.EncodeToString(raw), nil, "signature without base64 padding", "ModifiedSignature", "bad_signature")
	mk(change(func(c *grant.Grant) { c.SealedKey = base64.StdEncoding.EncodeToString(read(r, 79)) }), sig, nil, "sealed key of 79 bytes", "UnknownRole", "bad_signature")
	g2 := genGrantV2(t, r, next, priv)
	gc, gk := genKeyChain(t, r, next)
	return encode(t, File[GrantGroup]{
		Algorithm: "ZSM-V1-GRANT-ED25519", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/crypto.md §4. message = \"zsm v1 grant\" || 0x00 || vault_id (16) || user_id (16) || granted_by (16) || u8(len(role)) || role || SHA-256(sealed key bytes), where the sealed key bytes are base64-decoded (80 bytes).",
			"signature = base64(Ed25519(signer, message)), canonical standard base64 of 64 bytes. Verify with the group's signerPublic unless a test gives public.",
			"role is one of owner, admin, editor, viewer; a grant with any other role, or a sealed key that is not canonical base64 of 80 bytes, cannot be encoded and does not verify (bad_signature).",
			"Group verify_v2 (docs/crypto.md §8): message = \"zsm v2 grant\" || 0x00 || vault_id || user_id || granted_by || u8(len(role)) || role || u64be(generation) || u16be(kem_id) || SHA-256(sealed key bytes); generation >= 1; kem_id 0x647a (X-Wing, sealed key 1168 bytes) or 0x0020 (X25519, 80 bytes); anything else cannot be encoded (bad_signature). After the signature, the KEM is checked against the recipient's key record: kemId 0x0020 when recipientHasXwing is true is a downgrade (error downgrade).",
			"Group key_commitment: commitment = HMAC-SHA256(key, \"zsm v1 vault-key-commitment\" || 0x00 || vault_id (16) || u64be(generation)); a key is accepted as that generation only if the commitment matches (compare in constant time), else key_commitment.",
			"Group key_chain: wrapped[g] is envelope type 8 (vault id, object id = vault id, revision g) holding the key of g under the key of g+1. Check newestKey against its commitment, then open g = newest-1 down to oldestGeneration, checking each key against its commitment; expect keys, or key_commitment (a key does not match) or chain (a link is missing or does not open).",
		},
		Notes: map[string]Note{
			"ModifiedField":     {"AUTH_BYPASS", "one field of the grant changed after signing"},
			"UnknownRole":       {"EDGE_CASE", "a grant that cannot be encoded"},
			"WrongKey":          {"AUTH_BYPASS", "verified under another key"},
			"ModifiedSignature": {"AUTH_BYPASS", "signature modified or mis-encoded"},
			"Downgrade":         {"DOWNGRADE", "a vault key sealed with X25519 only to a member whose key record has an X-Wing key"},
			"DomainSeparation":  {"AUTH_BYPASS", "a signature of one format presented as another"},
			"KeySubstitution":   {"KEY_SUBSTITUTION", "a vault key other than the one the members committed to"},
			"BrokenChain":       {"EDGE_CASE", "a link of the key chain missing or moved"},
		},
		TestGroups: []GrantGroup{g, g2, gc, gk},
	})
}

func genGrantV2(t *testing.T, r io.Reader, next func() int, priv ed25519.PrivateKey) GrantGroup {
	g := GrantGroup{Type: "verify_v2", SignerSeed: priv.Seed(), SignerPublic: Hex(priv.Public().(ed25519.PublicKey))}
	vault, user, granter := newUUID(r), newUUID(r), newUUID(r)
	xw := base64.StdEncoding.EncodeToString(read(r, 1168))
	x := base64.StdEncoding.EncodeToString(read(r, 80))
	yes, no := true, false
	mk := func(gr grant.GrantV2, sig string, pub []byte, hasXWing bool, comment, flag, errClass string) {
		tc := GrantTest{Case: Case{next(), comment, []string{}}, VaultID: gr.VaultID.String(), UserID: gr.UserID.String(),
			GrantedBy: gr.GrantedBy.String(), Role: gr.Role, Generation: strconv.FormatUint(gr.Generation, 10), KEMID: uint16(gr.KEM),
			SealedKey: gr.SealedKey, Public: Hex(pub), Signature: sig, RecipientHasXWing: &no}
		if hasXWing {
			tc.RecipientHasXWing = &yes
		}
		if raw, err := base64.StdEncoding.Strict().DecodeString(gr.SealedKey); err == nil {
			h := sha256.Sum256(raw)
			tc.SealedKeySHA256 = h[:]
		}
		if m, err := gr.Message(); err == nil {
			tc.Message = m
		}
		if raw, err := base64.StdEncoding.Strict().DecodeString(sig); err == nil {
			tc.SignatureHex = raw
		}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		tc.Outcome = Outcome{Result: "valid"}
		if errClass != "" {
			tc.Outcome = Outcome{"invalid", errClass}
		}
		g.Tests = append(g.Tests, tc)
	}
	sign := func(gr grant.GrantV2) string { return must[string](t)(grant.SignV2(gr, priv)) }
	base := grant.GrantV2{VaultID: vault, UserID: user, GrantedBy: granter, Role: "editor", Generation: 3, KEM: grant.KEMXWing, SealedKey: xw}
	for _, role := range grant.Roles {
		gr := base
		gr.Role = role
		mk(gr, sign(gr), nil, true, "valid, X-Wing, role "+role, "", "")
	}
	old := base
	old.KEM, old.SealedKey, old.Generation = grant.KEMX25519, x, 1
	mk(old, sign(old), nil, false, "valid, X25519 for a member whose record has no X-Wing key", "", "")
	last := base
	last.Generation = ^uint64(0)
	mk(last, sign(last), nil, true, "valid, generation 2^64-1", "", "")
	sig := sign(base)
	change := func(f func(*grant.GrantV2)) grant.GrantV2 { c := base; f(&c); return c }
	mk(change(func(c *grant.GrantV2) { c.Generation = 4 }), sig, nil, true, "generation changed 3 -> 4", "ModifiedField", "bad_signature")
	mk(change(func(c *grant.GrantV2) { c.Generation = 2 }), sig, nil, true, "generation changed 3 -> 2", "ModifiedField", "bad_signature")
	mk(change(func(c *grant.GrantV2) { c.Role = "admin" }), sig, nil, true, "role raised editor -> admin", "ModifiedField", "bad_signature")
	mk(change(func(c *grant.GrantV2) { c.UserID[15] ^= 1 }), sig, nil, true, "user id changed", "ModifiedField", "bad_signature")
	mk(change(func(c *grant.GrantV2) { c.SealedKey = base64.StdEncoding.EncodeToString(read(r, 1168)) }), sig, nil, true, "sealed key substituted", "ModifiedField", "bad_signature")
	mk(change(func(c *grant.GrantV2) { c.KEM, c.SealedKey = grant.KEMX25519, x }), sig, nil, true, "KEM and sealed key swapped for an X25519 one", "ModifiedField", "bad_signature")
	mk(change(func(c *grant.GrantV2) { c.KEM = grant.KEMX25519 }), sig, nil, true, "kem_id 0x0020 with a 1168-byte sealed key", "UnknownRole", "bad_signature")
	mk(change(func(c *grant.GrantV2) { c.KEM = 0x0010 }), sig, nil, true, "kem_id 0x0010 (P-256)", "UnknownRole", "bad_signature")
	mk(change(func(c *grant.GrantV2) { c.Generation = 0 }), sign(change(func(c *grant.GrantV2) { c.Generation = 1 })), nil, true, "generation 0", "UnknownRole", "bad_signature")
	mk(change(func(c *grant.GrantV2) { c.Role = "root" }), sig, nil, true, "unknown role", "UnknownRole", "bad_signature")
	otherPub := ed25519.NewKeyFromSeed(read(r, 32)).Public().(ed25519.PublicKey)
	mk(base, sig, otherPub, true, "signed by someone else", "WrongKey", "bad_signature")
	// Downgrade: a correctly signed X25519-only grant for a member whose
	// key record has an X-Wing key.
	down := base
	down.KEM, down.SealedKey = grant.KEMX25519, x
	mk(down, sign(down), nil, true, "X25519 grant to a member with an X-Wing key (downgrade), signature valid", "Downgrade", "downgrade")
	// A version 1 signature over the same vault, user, granter, role and
	// sealed key does not verify as version 2.
	v1 := grant.Grant{VaultID: vault, UserID: user, GrantedBy: granter, Role: "editor", SealedKey: x}
	mk(old, must[string](t)(grant.Sign(v1, priv)), nil, false, "a version 1 signature presented as version 2, generation 1", "DomainSeparation", "bad_signature")
	return g
}

func genKeyChain(t *testing.T, r io.Reader, next func() int) (GrantGroup, GrantGroup) {
	gc := GrantGroup{Type: "key_commitment"}
	gk := GrantGroup{Type: "key_chain"}
	vault := newUUID(r)
	const n = 4
	ks := map[uint64][]byte{}
	commit := map[string]Hex{}
	for g := uint64(1); g <= n; g++ {
		ks[g] = read(r, 32)
		c := must[[32]byte](t)(grant.KeyCommitment(ks[g], vault, g))
		commit[strconv.FormatUint(g, 10)] = c[:]
	}
	ctc := func(comment, flag string, key []byte, v uuid.UUID, g uint64, c []byte, errClass string) {
		tc := GrantTest{Case: Case{next(), comment, []string{}}, VaultID: v.String(), Generation: strconv.FormatUint(g, 10), Key: key, Commitment: c, Outcome: Outcome{Result: "valid"}}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if errClass != "" {
			tc.Outcome = Outcome{"invalid", errClass}
		}
		gc.Tests = append(gc.Tests, tc)
	}
	ctc("valid, generation 1", "", ks[1], vault, 1, commit["1"], "")
	ctc("valid, generation 4", "", ks[4], vault, 4, commit["4"], "")
	ctc("the key of generation 3 as generation 4", "KeySubstitution", ks[3], vault, 4, commit["4"], "key_commitment")
	ctc("the right key, the commitment of another generation", "KeySubstitution", ks[4], vault, 4, commit["3"], "key_commitment")
	other := vault
	other[0] ^= 1
	ctc("another vault", "KeySubstitution", ks[1], other, 1, commit["1"], "key_commitment")
	ctc("a key the server chose", "KeySubstitution", read(r, 32), vault, 2, commit["2"], "key_commitment")

	wrapped := map[string]string{}
	for g := uint64(1); g < n; g++ {
		wrapped[strconv.FormatUint(g, 10)] = must[string](t)(grant.WrapPrevious(ks[g+1], vault, g, ks[g], r))
	}
	all := map[string]Hex{}
	for g, k := range ks {
		all[strconv.FormatUint(g, 10)] = k
	}
	ktc := func(comment, flag string, newest uint64, oldest uint64, w map[string]string, c map[string]Hex, keys map[string]Hex, errClass string) {
		tc := GrantTest{Case: Case{next(), comment, []string{}}, VaultID: vault.String(), NewestGeneration: strconv.FormatUint(newest, 10),
			NewestKey: ks[newest], OldestGeneration: strconv.FormatUint(oldest, 10), Wrapped: w, Commitments: c, Keys: keys, Outcome: Outcome{Result: "valid"}}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if errClass != "" {
			tc.Outcome, tc.Keys = Outcome{"invalid", errClass}, nil
		}
		gk.Tests = append(gk.Tests, tc)
	}
	ktc("walk from generation 4 to 1", "", n, 1, wrapped, commit, all, "")
	ktc("walk from generation 4 to 3", "", n, 3, wrapped, commit, map[string]Hex{"3": ks[3], "4": ks[4]}, "")
	without := func(m map[string]string, k string) map[string]string {
		c := maps.Clone(m)
		delete(c, k)
		return c
	}
	ktc("link of generation 2 missing", "BrokenChain", n, 1, without(wrapped, "2"), commit, nil, "chain")
	moved := maps.Clone(wrapped)
	moved["1"] = wrapped["2"]
	ktc("the link of generation 2 stored as generation 1 (revision is in the AD)", "BrokenChain", n, 1, moved, commit, nil, "chain")
	forged := maps.Clone(wrapped)
	forged["2"] = must[string](t)(grant.WrapPrevious(ks[3], vault, 2, read(r, 32), r))
	ktc("a key of someone's choosing wrapped as generation 2", "KeySubstitution", n, 1, forged, commit, nil, "key_commitment")
	badC := maps.Clone(commit)
	badC["4"] = commit["3"]
	ktc("the newest key does not match its commitment", "KeySubstitution", n, 1, wrapped, badC, nil, "key_commitment")
	return gc, gk
}

// -------------------------------------------------------- key_record.json

func genKeyRecord(t *testing.T) []byte {
	r := seeded("key-record")
	next := counter()
	b64 := base64.StdEncoding.EncodeToString
	g := KeyRecordGroup{Type: "verify"}
	type account struct {
		seed []byte
		priv ed25519.PrivateKey
		rec  keyrecord.Record
	}
	newAccount := func(identity string) account {
		seed, xs := read(r, 32), read(r, 32)
		priv := ed25519.NewKeyFromSeed(seed)
		x := must[*ecdh.PrivateKey](t)(ecdh.X25519().NewPrivateKey(xs))
		return account{seed, priv, keyrecord.Record{UserID: newUUID(r), Identity: identity,
			X25519: x.PublicKey().Bytes(), Ed25519: priv.Public().(ed25519.PublicKey)}}
	}
	mk := func(rec keyrecord.Record, seed []byte, sig, comment, flag, errClass string) {
		tc := KeyRecordTest{Case: Case{next(), comment, []string{}}, SignerSeed: seed, UserID: rec.UserID.String(),
			Identity: rec.Identity, X25519Public: b64(rec.X25519), Ed25519Public: b64(rec.Ed25519), Signature: sig}
		if m, err := rec.Message(); err == nil {
			tc.Message = m
		}
		if raw, err := base64.StdEncoding.Strict().DecodeString(sig); err == nil {
			tc.SignatureHex = raw
		}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if errClass == "" {
			tc.Outcome = Outcome{Result: "valid"}
		} else {
			tc.Outcome = Outcome{"invalid", errClass}
		}
		g.Tests = append(g.Tests, tc)
	}
	var alice account
	for i, identity := range []string{"alice@example.com", "j\u00fcrgen@example.com", "bob", strings.Repeat("a", 242) + "@example.com"} {
		a := newAccount(identity)
		if i == 0 {
			alice = a
		}
		mk(a.rec, a.seed, must[string](t)(keyrecord.Sign(a.rec, a.priv)), fmt.Sprintf("valid, identity of %d bytes", len(identity)), "", "")
	}
	sig := must[string](t)(keyrecord.Sign(alice.rec, alice.priv))
	other := newAccount("mallory@example.com")
	change := func(f func(*keyrecord.Record)) keyrecord.Record {
		c := alice.rec
		c.X25519, c.Ed25519 = bytes.Clone(c.X25519), bytes.Clone(c.Ed25519)
		f(&c)
		return c
	}
	mk(change(func(c *keyrecord.Record) { c.UserID[15] ^= 1 }), nil, sig, "user id changed", "ModifiedField", "bad_signature")
	mk(change(func(c *keyrecord.Record) { c.Identity = "mallory@example.com" }), nil, sig, "identity changed", "ModifiedField", "bad_signature")
	mk(change(func(c *keyrecord.Record) { c.X25519 = other.rec.X25519 }), nil, sig, "X25519 key substituted", "ModifiedField", "bad_signature")
	// Another account publishes alice's keys under its own user id and
	// identity, with alice's signature: the signature covers both.
	mk(change(func(c *keyrecord.Record) { c.UserID, c.Identity = other.rec.UserID, other.rec.Identity }), nil, sig,
		"alice's keys and signature claimed by another account", "ClaimedKeys", "bad_signature")
	// Another account signs a record naming alice's keys with its own key:
	// the record is checked under the Ed25519 key it publishes.
	claimed := change(func(c *keyrecord.Record) { c.UserID, c.Identity = other.rec.UserID, other.rec.Identity })
	cm, _ := claimed.Message()
	mk(claimed, nil, b64(ed25519.Sign(other.priv, cm)), "alice's keys signed by another account's key", "ClaimedKeys", "bad_signature")
	mk(change(func(c *keyrecord.Record) { c.Ed25519 = other.rec.Ed25519 }), nil, sig, "Ed25519 key substituted (verified under the substitute)", "WrongKey", "bad_signature")
	mk(change(func(c *keyrecord.Record) { c.Identity = "Alice@example.com" }), nil, sig, "identity not normalized (upper case)", "Unencodable", "bad_signature")
	raw := must[[]byte](t)(base64.StdEncoding.DecodeString(sig))
	flipped := bytes.Clone(raw)
	flipped[0] ^= 1
	mk(alice.rec, nil, b64(flipped), "R flipped", "ModifiedSignature", "bad_signature")
	flipped = bytes.Clone(raw)
	flipped[63] ^= 0x10
	mk(alice.rec, nil, b64(flipped), "S flipped", "ModifiedSignature", "bad_signature")
	mk(alice.rec, nil, b64(raw[:63]), "63-byte signature", "ModifiedSignature", "bad_signature")
	mk(alice.rec, nil, base64.RawStdEncoding.EncodeToString(raw), "signature without base64 padding", "ModifiedSignature", "bad_signature")
	// A key of small order, under which plain Ed25519 accepts R = identity,
	// S = 0 for every message: anybody could sign as this account.
	weak := alice.rec
	weak.Ed25519 = append([]byte{1}, make([]byte, 31)...)
	forged := make([]byte, 64)
	forged[0] = 1
	mk(weak, nil, b64(forged), "Ed25519 key of small order (the identity point) with R = identity, S = 0, which plain Ed25519 verification accepts for any message", "WeakKey", "bad_signature")
	weak.Ed25519 = must[[]byte](t)(hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"))
	mk(weak, nil, b64(forged), "Ed25519 key of order 8 (sign bit set)", "WeakKey", "bad_signature")
	// A grant signature is not a key record signature (domain separation).
	gm := must[[]byte](t)(grant.Grant{VaultID: alice.rec.UserID, UserID: alice.rec.UserID, GrantedBy: alice.rec.UserID, Role: "owner",
		SealedKey: b64(read(r, grant.SealedKeySize))}.Message())
	mk(alice.rec, nil, b64(ed25519.Sign(alice.priv, gm)), "a grant signature by the same key", "ModifiedSignature", "bad_signature")

	// Version 2: the same record with the X-Wing key of bundle version 2,
	// under the label "zsm v2 key-record". Its own reader, so the tests
	// above keep their bytes.
	r2 := seeded("key-record-v2")
	mk2 := func(rec keyrecord.Record, version int, xwing string, seed []byte, sig, comment, flag, errClass string) {
		mk(rec, seed, sig, comment, flag, errClass)
		tc := &g.Tests[len(g.Tests)-1]
		tc.Version, tc.XWingPublic, tc.XWingSeed = version, xwing, nil
		if m, err := rec.Message(); err == nil {
			tc.Message = m
		} else {
			tc.Message = nil
		}
	}
	newV2 := func(identity string) (account, []byte) {
		seed, xs, ws := read(r2, 32), read(r2, 32), read(r2, 32)
		priv := ed25519.NewKeyFromSeed(seed)
		x := must[*ecdh.PrivateKey](t)(ecdh.X25519().NewPrivateKey(xs))
		w := must[hpke.PrivateKey](t)(keys.NewXWingKey(bytes.NewReader(ws)))
		return account{seed, priv, keyrecord.Record{UserID: newUUID(r2), Identity: identity,
			X25519: x.PublicKey().Bytes(), Ed25519: priv.Public().(ed25519.PublicKey), XWing: w.PublicKey().Bytes()}}, ws
	}
	var carol account
	for i, identity := range []string{"carol@example.com", "zo\u00eb@example.com"} {
		a, ws := newV2(identity)
		if i == 0 {
			carol = a
		}
		mk2(a.rec, 2, b64(a.rec.XWing), a.seed, must[string](t)(keyrecord.Sign(a.rec, a.priv)), fmt.Sprintf("valid version 2, identity of %d bytes", len(identity)), "", "")
		g.Tests[len(g.Tests)-1].XWingSeed = ws
	}
	sig2 := must[string](t)(keyrecord.Sign(carol.rec, carol.priv))
	dave, _ := newV2("dave@example.com")
	asV1 := carol.rec
	asV1.XWing = nil
	mk2(asV1, 1, "", nil, sig2, "version 2 signature presented as a version 1 record (the X-Wing key dropped)", "Downgrade", "bad_signature")
	v1sig := must[string](t)(keyrecord.Sign(asV1, carol.priv))
	mk2(carol.rec, 2, b64(carol.rec.XWing), nil, v1sig, "version 1 signature of the same keys presented with an X-Wing key", "ModifiedField", "bad_signature")
	swapped := carol.rec
	swapped.XWing = dave.rec.XWing
	mk2(swapped, 2, b64(dave.rec.XWing), nil, sig2, "X-Wing key substituted", "ModifiedField", "bad_signature")
	flippedX := carol.rec
	flippedX.XWing = bytes.Clone(carol.rec.XWing)
	flippedX.XWing[keyrecord.XWingSize-1] ^= 1
	mk2(flippedX, 2, b64(flippedX.XWing), nil, sig2, "last byte of the X-Wing key (its X25519 half) flipped", "ModifiedField", "bad_signature")
	badX := carol.rec
	badX.XWing = bytes.Repeat([]byte{0xff}, keyrecord.XWingSize)
	mk2(badX, 2, b64(badX.XWing), nil, sig2, "X-Wing key that is not an ML-KEM-768 key (coefficients above q)", "Unencodable", "bad_signature")
	short := carol.rec
	short.XWing = carol.rec.XWing[:keyrecord.XWingSize-1]
	mk2(short, 2, b64(short.XWing), nil, sig2, "X-Wing key of 1215 bytes", "Unencodable", "bad_signature")
	mk2(carol.rec, 1, b64(carol.rec.XWing), nil, sig2, "version 1 with an X-Wing key", "Unencodable", "bad_signature")
	return encode(t, File[KeyRecordGroup]{
		Algorithm: "ZSM-V1-KEY-RECORD-ED25519", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/crypto.md §3. message = \"zsm v1 key-record\" || 0x00 || user_id (16) || u8(len(identity)) || identity || x25519_public (32) || ed25519_public (32), where identity is the normalized identity (UTF-8) and the keys are the 32 decoded bytes.",
			"signature = base64(Ed25519(account's Ed25519 seed, message)), canonical standard base64 of 64 bytes, verified under ed25519Public of the same record (a record is signed by the key it publishes).",
			"An identity that is not normalized, a key that is not canonical base64 of 32 bytes, or an Ed25519 key of small order (y, with the sign bit cleared, one of 0, 1, p-1, p, p+1 or the two points of order 8; the list libsodium refuses), cannot be encoded and does not verify (bad_signature). Valid tests give signerSeed: signing again must give the same signature.",
			"Version 2 (tests with version 2): message = \"zsm v2 key-record\" || 0x00 || user_id (16) || u8(len(identity)) || identity || x25519_public (32) || ed25519_public (32) || xwing_public (1216), xwingPublic canonical standard base64 of 1216 bytes whose first 1184 are a valid ML-KEM-768 encapsulation key. Tests without version are version 1, whose record has no X-Wing key (a version 1 test with xwingPublic cannot be encoded). Valid version 2 tests also give xwingSeed, the X-Wing seed that yields xwingPublic.",
		},
		Notes: map[string]Note{
			"ModifiedField":     {"AUTH_BYPASS", "one field of the record changed after signing"},
			"ClaimedKeys":       {"AUTH_BYPASS", "another account presents someone else's public keys as its own"},
			"WrongKey":          {"AUTH_BYPASS", "verified under another key"},
			"Unencodable":       {"EDGE_CASE", "a record that cannot be encoded"},
			"WeakKey":           {"AUTH_BYPASS", "an Ed25519 key of small order, under which signatures can be made without the private key"},
			"ModifiedSignature": {"AUTH_BYPASS", "signature modified, mis-encoded, or made for another message"},
			"Downgrade":         {"AUTH_BYPASS", "a version 2 record presented without its X-Wing key"},
		},
		TestGroups: []KeyRecordGroup{g},
	})
}

// -------------------------------------------------------- srp_blake2b_3072.json

func genSRP(t *testing.T) []byte {
	r := seeded("srp")
	next := counter()
	N := srpgroup.N
	reg := SRPGroup{Type: "registration", N: N.Bytes(), G: []byte{srpgroup.G}, Hash: "BLAKE2b-256"}
	login := SRPGroup{Type: "login", N: N.Bytes(), G: []byte{srpgroup.G}, Hash: "BLAKE2b-256"}
	type account struct {
		identity     string
		secret, salt []byte
		v            *big.Int
	}
	var accounts []account
	for i, identity := range []string{"alice@example.com", "j\u00fcrgen@example.com"} {
		secret := read(r, 32)
		// go-srp draws the salt from crypto/rand: make it deterministic.
		cryptotest.SetGlobalRandom(t, uint64(100+i))
		real := must[srpgroup.Registration](t)(srpgroup.Register(identity, secret))
		m := srpRegister(identity, secret, real.Salt)
		if !bytes.Equal(m.v.Bytes(), real.Verifier) {
			t.Fatalf("mirror verifier differs from go-srp's for %q", identity)
		}
		reg.Tests = append(reg.Tests, SRPTest{
			Case:     Case{next(), "go-srp Verifier for " + identity, []string{}},
			Identity: identity, SRPSecret: secret, Salt: real.Salt,
			IdentityHash: m.identityHash, SecretHash: m.secretHash, X: m.x.Bytes(), V: real.Verifier,
			Outcome: Outcome{Result: "valid"},
		})
		accounts = append(accounts, account{identity, secret, real.Salt, m.v})
	}
	var good SRPTest
	for i, acc := range accounts {
		a := new(big.Int).SetBytes(read(r, srpgroup.FieldBytes))
		A := new(big.Int).Exp(gInt, a, N)
		ver := must[*srpVerifier](t)(srpgroup.Verifier(acc.identity, acc.salt, acc.v.Bytes()))
		cryptotest.SetGlobalRandom(t, uint64(200+i))
		srv := must[*srpServer](t)(srpgroup.Env().NewServer(ver, A))
		creds := srv.Credentials()
		Bhex := creds[strings.IndexByte(creds, ':')+1:]
		B := must[*big.Int](t)(srpgroup.ParsePublic(Bhex))
		c := srpClient(acc.identity, acc.secret, acc.salt, a, B)
		proof, ok := srv.ClientOk(hex.EncodeToString(c.M))
		if !ok || proof != hex.EncodeToString(c.Z) {
			t.Fatalf("go-srp Server refuses the mirror's M, or its proof differs (ok=%v)", ok)
		}
		if !bytes.Equal(c.A.Bytes(), A.Bytes()) {
			t.Fatal("mirror A differs")
		}
		m := srpRegister(acc.identity, acc.secret, acc.salt)
		tc := SRPTest{
			Case:     Case{next(), "login of " + acc.identity + " against a real go-srp Server", []string{}},
			Identity: acc.identity, SRPSecret: acc.secret, Salt: acc.salt, IdentityHash: m.identityHash, X: m.x.Bytes(), V: acc.v.Bytes(),
			A: a.Bytes(), APub: A.Bytes(), BHex: Bhex, U: c.u.Bytes(), K: c.k.Bytes(), S: c.S.Bytes(), SessionKey: c.K, M: c.M, ServerProof: c.Z,
			Outcome: Outcome{Result: "valid"},
		}
		login.Tests = append(login.Tests, tc)
		if i == 0 {
			good = tc
		}
	}
	bad := func(comment, flag, Bhex, errClass string, proof []byte) {
		tc := good
		tc.Case = Case{next(), comment, []string{flag}}
		tc.BHex = Bhex
		tc.U, tc.S, tc.SessionKey, tc.M = nil, nil, nil, nil
		tc.ServerProof = proof
		tc.Outcome = Outcome{"invalid", errClass}
		login.Tests = append(login.Tests, tc)
	}
	one := big.NewInt(1)
	Bgood := must[*big.Int](t)(srpgroup.ParsePublic(good.BHex))
	bad("B = 0", "BadB", "0", "bad_b", nil)
	bad("B = 1", "BadB", "1", "bad_b", nil)
	bad("B = N - 1", "BadB", new(big.Int).Sub(N, one).Text(16), "bad_b", nil)
	bad("B = N (≡ 0 mod N)", "BadB", N.Text(16), "bad_b", nil)
	bad("B = 2N", "BadB", new(big.Int).Lsh(N, 1).Text(16), "bad_b", nil)
	bad("B + N (≥ N; go-srp would reduce it, the zsm client refuses it)", "BadB", new(big.Int).Add(Bgood, N).Text(16), "bad_b", nil)
	bad("B with a leading zero", "BadEncoding", "0"+good.BHex, "bad_b", nil)
	bad("B in upper case", "BadEncoding", strings.ToUpper(good.BHex), "bad_b", nil)
	wrongProof := bytes.Clone(good.ServerProof)
	wrongProof[0] ^= 1
	tc := good
	tc.Case = Case{next(), "server proof flipped: the server does not know v; the session must be refused", []string{"BadServerProof"}}
	tc.ServerProof = wrongProof
	tc.Outcome = Outcome{"invalid", "bad_server_proof"}
	login.Tests = append(login.Tests, tc)

	return encode(t, File[SRPGroup]{
		Algorithm: "ZSM-V1-SRP6A-GOSRP-BLAKE2B256-3072", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/auth.md and srpgroup: go-srp v0.6.7's SRP-6a with BLAKE2b-256 (H hashes the concatenation of its arguments) and the RFC 5054 3072-bit group, g = 5. N and g are in the groups; big integers are minimal big-endian hex.",
			"identityHash = H(I), secretHash = H(p) with p the SRP secret of kdf.json; x = H(identityHash || secretHash || salt); v = g^x mod N. The salt is 384 bytes.",
			"k = H(N || pad(g)); A = g^a mod N; u = H(pad(A) || pad(B)); S = (B - k·v)^(a + u·x) mod N; K = H(S); M = H(K || A || B || identityHash || salt || N || g); serverProof = H(K || M). pad() left-pads to 384 bytes; everything else is minimal big-endian.",
			"B is as sent on the wire (lower-case hex, no leading zeros). The zsm client refuses B unless it is canonical and 1 < B < N-1 (bad_b), before computing anything, and refuses the session if serverProof differs from H(K || M) (bad_server_proof).",
			"Login vectors were checked against a real go-srp Server: it accepted M and answered serverProof.",
		},
		Notes: map[string]Note{
			"BadB":           {"AUTH_BYPASS", "B outside 1 < B < N-1: B ≡ 0 makes S predictable"},
			"BadEncoding":    {"EDGE_CASE", "B not in canonical lower-case hex"},
			"BadServerProof": {"AUTH_BYPASS", "the server's proof does not match: it does not know the verifier"},
		},
		TestGroups: []SRPGroup{reg, login},
	})
}

// ------------------------------------------------------------- flow.json

func genFlow(t *testing.T) []byte {
	cryptotest.SetGlobalRandom(t, 3)
	r := seeded("flow")
	next := counter()
	password, identity := "correct horse battery staple", "alice@example.com"
	sk := must[keys.SecretKey](t)(keys.NewSecretKey(r))
	p := must[keys.KDFParams](t)(keys.DefaultKDF(r))
	userID, vaultID, secretID := newUUID(r), newUUID(r), newUUID(r)
	d := must[keys.Derived](t)(keys.Derive(password, sk, identity, p))
	a := must[*keys.AccountKeys](t)(keys.NewAccountKeys(r))
	b := must[keys.Bundle](t)(a.Bundle(d.UnlockKey, userID, r))
	vk := must[[]byte](t)(grant.NewVaultKey(r))
	sealed := must[string](t)(grant.SealVaultKey(a.X25519.PublicKey(), vaultID, userID, vk))
	gr := grant.Grant{VaultID: vaultID, UserID: userID, GrantedBy: userID, Role: "owner", SealedKey: sealed}
	sig := must[string](t)(grant.Sign(gr, a.Ed25519))
	pt := []byte(`{"name":"STRIPE_KEY","value":"sk_live_0123456789"}`)
	ctx := envelope.Context{Type: envelope.Secret, VaultID: vaultID, ObjectID: secretID, Revision: 2}
	env := must[string](t)(envelope.SealString(vk, ctx, pt, r))
	g := FlowGroup{Type: "flow", Tests: []FlowTest{{
		Case:     Case{next(), "sign-up state of one account, then everything a login opens", []string{"Slow"}},
		Password: password, SecretKeyText: sk.Text(), Identity: identity, KDF: *kdfJSON(p), UserID: userID.String(),
		SRPSecret: d.SRPSecret, UnlockKey: d.UnlockKey, Bundle: bundleJSON(t, b), AccountKey: a.AccountKey,
		VaultID: vaultID.String(), SealedKey: sealed, VaultKey: vk, GrantRole: gr.Role, GrantSig: sig,
		SecretID: secretID.String(), Revision: strconv.FormatUint(ctx.Revision, 10), SecretEnv: env, Plaintext: pt,
		Outcome: Outcome{Result: "valid"},
	}}}
	return encode(t, File[FlowGroup]{
		Algorithm: "ZSM-V1-FLOW", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"End to end (docs/crypto.md §1-§4): Derive(password, ParseSecretKey(secretKeyText), identity, kdf) -> srpSecret, unlockKey; OpenBundle(bundle, unlockKey, userId) -> accountKey and the key pairs;",
			"OpenVaultKey(X25519 private key, vaultId, userId, sealedKey) -> vaultKey; the grant {vaultId, userId, granted_by = userId, grantRole, sealedKey} verifies under the bundle's Ed25519 public key with grantSignature;",
			"Open(vaultKey, {type 5, vaultId, secretId, revision}, secretEnvelope) -> plaintext.",
		},
		Notes:      map[string]Note{"Slow": slowNote},
		TestGroups: []FlowGroup{g},
	})
}

// ----------------------------------------------------------- identity.json

// The expected outcomes below are written out by hand from the Unicode 15.0
// tables (NFKC, CaseFolding.txt, White_Space, the General_Category and the
// Script property), not computed: the generator fails if srpgroup
// disagrees with any of them, so the file pins the rule rather than
// whatever the code happens to do.
func genIdentity(t *testing.T) []byte {
	next := counter()
	ng := IdentityGroup{Type: "normalize", UnicodeVersion: identityUnicode}
	normCase := func(comment, input, want string, flags ...string) {
		t.Helper()
		got, err := srpgroup.NormalizeIdentity(input)
		tc := IdentityTest{Case: Case{next(), comment, orEmpty(flags)}, Input: []byte(input)}
		if want == "" {
			if err == nil {
				t.Fatalf("identity vector %q: srpgroup accepts %+q as %+q, the vector says refused", comment, input, got)
			}
			tc.Outcome = Outcome{"invalid", "bad_identity"}
		} else {
			if err != nil || got != want {
				t.Fatalf("identity vector %q: srpgroup gives %+q (%v) for %+q, the vector says %+q", comment, got, err, input, want)
			}
			tc.Normalized, tc.Outcome = want, Outcome{Result: "valid"}
		}
		ng.Tests = append(ng.Tests, tc)
	}

	// What normalizes, and to what.
	normCase("ASCII, already normal", "alice@example.com", "alice@example.com")
	normCase("ASCII upper case folds to lower case", "Alice@Example.COM", "alice@example.com", "CaseFolding")
	normCase("surrounding ASCII white space is trimmed", " \talice@example.com\r\n", "alice@example.com", "Whitespace")
	normCase("surrounding no-break spaces (U+00A0) are trimmed before NFKC", "\u00a0alice@example.com\u00a0", "alice@example.com", "Whitespace")
	normCase("surrounding ideographic spaces (U+3000) are trimmed", "\u3000bob\u3000", "bob", "Whitespace")
	normCase("sharp s (U+00DF) folds to ss: full case folding, not simple", "Stra\u00dfe@example.com", "strasse@example.com", "CaseFolding")
	normCase("capital sharp s (U+1E9E) folds to ss", "STRA\u1e9eE@EXAMPLE.COM", "strasse@example.com", "CaseFolding")
	normCase("Kelvin sign (U+212A): NFKC gives K, folding gives k", "\u212aelvin@example.com", "kelvin@example.com", "Compatibility")
	normCase("Angstrom sign (U+212B): NFKC gives U+00C5, folding gives U+00E5", "\u212bngstr\u00f6m", "\u00e5ngstr\u00f6m", "Compatibility")
	normCase("ligature fi (U+FB01) becomes f i", "\ufb01le@example.com", "file@example.com", "Compatibility")
	normCase("ligature ffi (U+FB03) becomes f f i", "o\ufb03ce@example.com", "office@example.com", "Compatibility")
	normCase("fullwidth letters and punctuation (U+FF21...) become ASCII", "\uff21\uff2c\uff29\uff23\uff25\uff20\uff25\uff38\uff0e\uff23\uff2f\uff2d", "alice@ex.com", "Compatibility")
	normCase("halfwidth katakana with a halfwidth sound mark compose to U+30D1", "\uff8a\uff9f@example.jp", "\u30d1@example.jp", "Compatibility", "Composition")
	normCase("superscript two becomes 2", "x\u00b2y@example.com", "x2y@example.com", "Compatibility")
	normCase("roman numeral twelve (U+216B) becomes xii", "\u216b@example.com", "xii@example.com", "Compatibility", "CaseFolding")
	normCase("e and a combining acute (U+0301) compose to U+00E9", "e\u0301lise@example.com", "\u00e9lise@example.com", "Composition")
	normCase("capital E with a combining acute: folded, then composed", "E\u0301LISE@example.com", "\u00e9lise@example.com", "Composition", "CaseFolding")
	normCase("precomposed capital E acute (U+00C9) folds to U+00E9", "\u00c9LISE@example.com", "\u00e9lise@example.com", "CaseFolding")
	normCase("dotted capital I (U+0130) folds to i and a combining dot above (U+0307): no Turkic mapping", "\u0130stanbul", "i\u0307stanbul", "CaseFolding", "Turkic")
	normCase("dotless small i (U+0131) stays as it is", "\u0131stanbul", "\u0131stanbul", "Turkic")
	normCase("capital I folds to i, never to dotless i", "ISTANBUL", "istanbul", "Turkic")
	normCase("Greek capital and final sigma both fold to U+03C3", "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03c2", "\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c3", "CaseFolding")
	normCase("Cyrillic folds to lower case", "\u0418\u0432\u0430\u043d@\u041f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444", "\u0438\u0432\u0430\u043d@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444", "CaseFolding")
	normCase("title-case digraph dz with caron (U+01C5): folded to U+01C6, then NFKC gives d and U+017E", "\u01c5emal", "d\u017eemal", "CaseFolding", "Compatibility")
	normCase("micro sign (U+00B5) becomes Greek mu (U+03BC); allowed here, refused at sign-up", "\u00b5s@example.com", "\u03bcs@example.com", "Compatibility")
	normCase("U+FFFD normalizes; only sign-up refuses it", "abc\ufffd@example.com", "abc\ufffd@example.com", "Replacement")
	normCase("a variation selector (U+FE0F, a mark) is printable", "a\ufe0fbc", "a\ufe0fbc")
	normCase("exactly 3 bytes", "bob", "bob", "Length")
	normCase("exactly 254 bytes", strings.Repeat("a", 254), strings.Repeat("a", 254), "Length")
	normCase("127 two-byte letters: 254 bytes", strings.Repeat("\u00e9", 127), strings.Repeat("\u00e9", 127), "Length")
	normCase("300 bytes as sent, 200 after composition: length counts the normal form", strings.Repeat("e\u0301", 100), strings.Repeat("\u00e9", 100), "Length", "Composition")

	// What is refused.
	normCase("empty", "", "", "Length")
	normCase("two bytes", "ab", "", "Length")
	normCase("two bytes after trimming", "  ab  ", "", "Length", "Whitespace")
	normCase("255 bytes", strings.Repeat("a", 255), "", "Length")
	normCase("128 two-byte letters: 256 bytes", strings.Repeat("\u00e9", 128), "", "Length")
	normCase("66 bytes as sent, 264 after NFKC (U+337F becomes four Han letters)", strings.Repeat("\u337f", 22), "", "Length", "Compatibility")
	normCase("a space inside", "al ice@example.com", "", "Whitespace")
	normCase("a no-break space inside: NFKC makes it a space", "al\u00a0ice@example.com", "", "Whitespace")
	normCase("an en space (U+2002) inside", "al\u2002ice@example.com", "", "Whitespace")
	normCase("a diaeresis (U+00A8): NFKC gives a space and a combining mark", "\u00a8abc", "", "Whitespace", "Compatibility")
	normCase("a tab inside", "al\tice@example.com", "", "Control")
	normCase("NUL inside", "al\x00ice@example.com", "", "Control")
	normCase("DEL inside", "al\x7fice@example.com", "", "Control")
	normCase("next line (U+0085) inside", "al\u0085ice@example.com", "", "Control", "Whitespace")
	normCase("line separator (U+2028) inside", "al\u2028ice@example.com", "", "Whitespace")
	normCase("zero width joiner (U+200D)", "a\u200db@example.com", "", "Invisible")
	normCase("zero width non-joiner (U+200C)", "a\u200cb@example.com", "", "Invisible")
	normCase("zero width space (U+200B)", "a\u200bb@example.com", "", "Invisible")
	normCase("soft hyphen (U+00AD)", "al\u00adice@example.com", "", "Invisible")
	normCase("byte order mark (U+FEFF) in front: not white space, so not trimmed", "\ufeffalice@example.com", "", "Invisible")
	normCase("right-to-left override (U+202E)", "alice\u202emoc.elpmaxe@", "", "Invisible")
	normCase("left-to-right mark (U+200E)", "alice\u200e@example.com", "", "Invisible")
	normCase("tag letter A (U+E0041)", "alice\U000e0041@example.com", "", "Invisible")
	normCase("private use (U+E000)", "alice\ue000@example.com", "", "Control")
	normCase("unassigned in Unicode 15.0 (U+0378)", "alice\u0378@example.com", "", "UnicodeVersion")
	normCase("U+1C89, unassigned in 15.0 (a Cyrillic capital since 16.0)", "\u1c89abc", "", "UnicodeVersion")
	normCase("Cherokee capitals: folding is not stable, so refused", "\u13e3\u13b3\u13a9", "", "Unstable")
	normCase("Cherokee small letters: folding is not stable, so refused", "\uabb3\uab83\uab79", "", "Unstable")
	normCase("not UTF-8 (a lone 0xff)", "ali\xffce@example.com", "", "Encoding")
	normCase("not UTF-8 (overlong encoding of /)", "alice\xc0\xafexample.com", "", "Encoding")
	normCase("not UTF-8 (an encoded surrogate, U+D800)", "alice\xed\xa0\x80@example.com", "", "Encoding")
	normCase("not UTF-8 (truncated sequence at the end)", "alice@example.com\xe2\x82", "", "Encoding")

	ig := IdentityGroup{Type: "new_identity", UnicodeVersion: identityUnicode}
	newID := func(comment, id, wantErr string, flags ...string) {
		t.Helper()
		if n, err := srpgroup.NormalizeIdentity(id); err != nil || n != id {
			t.Fatalf("identity vector %q: %+q is not in normal form", comment, id)
		}
		err := srpgroup.CheckNewIdentity(id)
		if got := newIdentityClass(err); got != wantErr {
			t.Fatalf("identity vector %q: srpgroup says %q (%v) for %+q, the vector says %q", comment, got, err, id, wantErr)
		}
		tc := IdentityTest{Case: Case{next(), comment, orEmpty(flags)}, Identity: id, Outcome: Outcome{Result: "valid"}}
		if wantErr != "" {
			tc.Outcome = Outcome{"invalid", wantErr}
		}
		ig.Tests = append(ig.Tests, tc)
	}
	newID("Latin", "alice@example.com", "")
	newID("digits, hyphen, underscore, plus are common to all scripts", "user_01+tag-x@example.com", "")
	newID("a user name without @", "strasse", "")
	newID("Latin with a combining mark (inherited script)", "i\u0307stanbul", "")
	newID("dotless i is Latin", "\u0131stanbul", "")
	newID("Cyrillic throughout", "\u0438\u0432\u0430\u043d@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444", "")
	newID("each part in one script: Latin, then Cyrillic", "ivan@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444", "", "Script")
	newID("Greek throughout", "\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c3", "")
	newID("Japanese: Han, Hiragana and Katakana with Latin", "\u3084\u307e\u3060\u592a\u90ce\u30bf\u30ed\u30a6taro@example.jp", "", "Script")
	newID("Chinese: Han with Bopomofo and Latin", "\u738b\u3105wang@example.cn", "", "Script")
	newID("Korean: Hangul with Han and Latin", "\uae40\u91d1kim@example.kr", "", "Script")
	newID("Latin a in a Cyrillic part", "\u0438\u0432a\u043d@example.com", "mixed_scripts", "Script")
	newID("Cyrillic a (U+0430) in a Latin part", "p\u0430ypal", "mixed_scripts", "Script")
	newID("Cyrillic a in the domain", "alice@ex\u0430mple.com", "mixed_scripts", "Script")
	newID("Greek mu (from the micro sign) next to Latin", "\u03bcs@example.com", "mixed_scripts", "Script")
	newID("Greek omicron in a Latin part", "micr\u03bfsoft.com", "mixed_scripts", "Script")
	newID("Katakana with Hangul: not one of the allowed combinations", "\u30bf\ud55c@example.com", "mixed_scripts", "Script")
	newID("Han with Cyrillic", "\u738b\u0438@example.com", "mixed_scripts", "Script")
	newID("U+FFFD, the mark of text that was not UTF-8", "abc\ufffd@example.com", "replacement_character", "Replacement")

	return encode(t, File[IdentityGroup]{
		Algorithm: "ZSM-V1-IDENTITY", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/auth.md, Identity rules. normalize: decode input as UTF-8 (refuse if it is not); trim leading and trailing White_Space; NFKC; full case folding (CaseFolding.txt statuses C and F, no Turkic T); NFKC again. Refuse unless normalizing the result again gives it back unchanged, it is 3 to 254 bytes of UTF-8, and every character is printable (General_Category L, M, N, P or S) and not White_Space.",
			"Case folding deviates from CaseFolding.txt in one place, as golang.org/x/text/cases does: the Cherokee capitals U+13A0-U+13F5 fold to their small letters (U+AB70-U+ABBF, U+13F8-U+13FD), which fold back; an identity with any Cherokee letter is therefore never stable and always refused.",
			"new_identity (sign-up only, on the normal form): refuse U+FFFD (replacement_character); split at '@' and '.', and refuse (mixed_scripts) a part whose characters come from more than one script (the Script property, not Script_Extensions), ignoring Common and Inherited characters, unless the scripts are within {Latin, Han, Hiragana, Katakana}, {Latin, Han, Bopomofo} or {Latin, Han, Hangul}.",
			"Every outcome follows the Unicode version named in the group (unicodeVersion). input is the bytes as sent, in hex; an absent input is the empty string. Invalid normalize tests name bad_identity.",
		},
		Notes: map[string]Note{
			"CaseFolding":    {"FUNCTIONALITY", "full case folding: a character may fold to several (U+00DF to ss)"},
			"Compatibility":  {"FUNCTIONALITY", "NFKC compatibility mappings (ligatures, width, the Kelvin sign)"},
			"Composition":    {"FUNCTIONALITY", "canonical composition of a base letter and combining marks"},
			"Whitespace":     {"EDGE_CASE", "White_Space is trimmed at the ends (before NFKC) and refused inside"},
			"Turkic":         {"EDGE_CASE", "no language-specific mapping: I folds to i, U+0130 to i and U+0307, U+0131 stays"},
			"Length":         {"EDGE_CASE", "3 to 254 bytes, counted on the normal form"},
			"Control":        {"EDGE_CASE", "a control, private-use or other non-printable character"},
			"Invisible":      {"EDGE_CASE", "a format character (General_Category Cf) that renders as nothing"},
			"Unstable":       {"EDGE_CASE", "normalizing the normal form again changes it"},
			"Encoding":       {"MALFORMED_INPUT", "the bytes are not UTF-8"},
			"UnicodeVersion": {"EDGE_CASE", "the outcome changes with the Unicode version: this file follows the group's unicodeVersion"},
			"Replacement":    {"EDGE_CASE", "U+FFFD stands in for bytes that were not UTF-8; refused at sign-up"},
			"Script":         {"CONFUSABLE", "scripts mixed within one part (UTS #39, highly restrictive)"},
		},
		TestGroups: []IdentityGroup{ng, ig},
	})
}

// identityUnicode is the Unicode version of the identity rules.
const identityUnicode = "15.0.0"

func newIdentityClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, srpgroup.ErrReplacementChar):
		return "replacement_character"
	case errors.Is(err, srpgroup.ErrMixedScripts):
		return "mixed_scripts"
	}
	return "other"
}
