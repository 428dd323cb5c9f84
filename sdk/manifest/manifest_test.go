package manifest_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/manifest"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
)

var vaultID = uuid.MustParse("0190a3b4-0000-7000-8000-00000000000a")

type user struct {
	id    uuid.UUID
	priv  ed25519.PrivateKey
	ident trust.Identity
	fp    trust.Fingerprint
}

func newUser(name string, n byte) user {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, 32))
	id := uuid.UUID{0x01, 0x90, 15: n}
	ident := trust.Identity{UserID: id, Identity: name + "@example.com", Ed25519Public: priv.Public().(ed25519.PublicKey)}
	fp, _ := ident.Fingerprint()
	return user{id, priv, ident, fp}
}

var (
	alice   = newUser("alice", 0xa1)
	bob     = newUser("bob", 0xb0)
	carol   = newUser("carol", 0xc0)
	dave    = newUser("dave", 0xd0)
	mallory = newUser("mallory", 0x66)
	keys    = []trust.Identity{alice.ident, bob.ident, carol.ident, dave.ident, mallory.ident}
)

// vault is a replayed log that grows as entries are appended.
type vault struct {
	t    testing.TB
	s    *memberlog.State
	rows []memberlog.Signed
	n    int
}

func newVault(t testing.TB) *vault {
	s, err := memberlog.New(vaultID, keys...)
	if err != nil {
		t.Fatal(err)
	}
	v := &vault{t: t, s: s}
	v.append(alice, memberlog.OpCreate, alice, "owner")
	v.append(alice, memberlog.OpAdd, bob, "editor")
	v.append(alice, memberlog.OpAdd, carol, "viewer")
	v.append(alice, memberlog.OpAdd, dave, "admin")
	return v
}

func (v *vault) append(signer user, op memberlog.Op, subject user, role string) {
	v.t.Helper()
	var fp trust.Fingerprint
	if op == memberlog.OpCreate || op == memberlog.OpAdd {
		fp = subject.fp
	}
	var c [32]byte
	if op == memberlog.OpCreate || op == memberlog.OpRemove || op == memberlog.OpRotate {
		g := v.s.Generation() + 1
		c, _ = grant.KeyCommitment(bytes.Repeat([]byte{byte(g)}, 32), vaultID, g)
	}
	v.n++
	e := v.s.Next(op, subject.id, role, fp, c, signer.id, time.UnixMilli(1764400000000+int64(v.n)))
	r, err := memberlog.Sign(e, signer.priv)
	if err != nil {
		v.t.Fatal(err)
	}
	if err := v.s.Apply(r); err != nil {
		v.t.Fatal(err)
	}
	v.rows = append(v.rows, r)
}

func items(n int, gen uint64) []manifest.Item {
	out := make([]manifest.Item, n)
	for i := range out {
		out[i] = manifest.Item{ID: uuid.UUID{0x01, 0x90, 8: byte(i >> 8), 15: byte(i)}, Revision: uint64(i%5 + 1), Generation: gen}
	}
	return out
}

func signed(t testing.TB, m manifest.Manifest, u user) manifest.Signed {
	t.Helper()
	s, err := manifest.Sign(m, u.id, u.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func next(t testing.TB, prev *manifest.Signed, v *vault, meta uint64, it []manifest.Item) manifest.Manifest {
	t.Helper()
	m, err := manifest.Next(prev, v.s, meta, it)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLayout(t *testing.T) {
	m := manifest.Manifest{VaultID: vaultID, Version: 3, Prev: [32]byte{7}, KeyGeneration: 2, LogSeq: 9, LogHash: [32]byte{8},
		MetaRevision: 4, SecretCount: 12, ItemsDigest: [32]byte{9}}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	want = append(want, "zsm v1 vault-manifest\x00"...)
	want = append(want, vaultID[:]...)
	want = binary.BigEndian.AppendUint64(want, 3)
	want = append(want, m.Prev[:]...)
	want = binary.BigEndian.AppendUint64(want, 2)
	want = binary.BigEndian.AppendUint64(want, 9)
	want = append(want, m.LogHash[:]...)
	want = binary.BigEndian.AppendUint64(want, 4)
	want = binary.BigEndian.AppendUint64(want, 12)
	want = append(want, m.ItemsDigest[:]...)
	if !bytes.Equal(b, want) || len(b) != manifest.Size {
		t.Fatalf("Marshal =\n%x\nwant\n%x", b, want)
	}
	if got, err := manifest.Parse(b); err != nil || got != m {
		t.Fatalf("Parse: %+v, %v", got, err)
	}
	s := signed(t, m, alice)
	if h := sha256.Sum256(append(bytes.Clone(s.Message), s.Signature...)); s.Hash() != h {
		t.Fatal("hash is not SHA-256(message || signature)")
	}
	ms, ss := s.Row()
	back, err := manifest.ParseRow(ms, ss, alice.id)
	if err != nil || back.Manifest != m || back.Signer != alice.id || !bytes.Equal(back.Signature, s.Signature) {
		t.Fatalf("ParseRow: %v", err)
	}
}

func TestParseStrict(t *testing.T) {
	m := manifest.Manifest{VaultID: vaultID, Version: 2, Prev: [32]byte{7}, KeyGeneration: 1, LogSeq: 4, LogHash: [32]byte{8}}
	good, _ := m.Marshal()
	edit := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	const offVersion, offPrev = 22 + 16, 22 + 16 + 8
	offGen := offPrev + 32
	for name, b := range map[string][]byte{
		"empty":              nil,
		"one byte short":     good[:len(good)-1],
		"one byte long":      append(bytes.Clone(good), 0),
		"other label":        edit(func(b []byte) { b[4] = '2' }),
		"version 0":          edit(func(b []byte) { clear(b[offVersion : offVersion+8]) }),
		"version 1 and prev": edit(func(b []byte) { binary.BigEndian.PutUint64(b[offVersion:], 1) }),
		"version 2 no prev":  edit(func(b []byte) { clear(b[offPrev : offPrev+32]) }),
		"generation 0":       edit(func(b []byte) { clear(b[offGen : offGen+8]) }),
		"log seq 0":          edit(func(b []byte) { clear(b[offGen+8 : offGen+16]) }),
	} {
		if _, err := manifest.Parse(b); !errors.Is(err, manifest.ErrMalformed) || !errors.Is(err, manifest.ErrTampered) {
			t.Errorf("%s: %v", name, err)
		}
	}
	s := signed(t, m, alice)
	ms, ss := s.Row()
	for name, row := range map[string][2]string{
		"manifest padded":    {ms + "=", ss},
		"manifest newline":   {ms[:8] + "\n" + ms[8:], ss},
		"signature short":    {ms, base64.StdEncoding.EncodeToString(s.Signature[:63])},
		"signature empty":    {ms, ""},
		"manifest not b64":   {"!" + ms[1:], ss},
		"manifest too short": {base64.StdEncoding.EncodeToString(s.Message[:100]), ss},
	} {
		if _, err := manifest.ParseRow(row[0], row[1], alice.id); !errors.Is(err, manifest.ErrMalformed) {
			t.Errorf("ParseRow %s: %v", name, err)
		}
	}
}

func TestDigest(t *testing.T) {
	it := items(3, 2)
	d, err := manifest.Digest(it)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, x := range it { // already in id order
		h.Write(x.ID[:])
		h.Write(binary.BigEndian.AppendUint64(nil, x.Revision))
		h.Write(binary.BigEndian.AppendUint64(nil, x.Generation))
	}
	if !bytes.Equal(d[:], h.Sum(nil)) {
		t.Fatal("digest layout differs")
	}
	rev := slices.Clone(it)
	slices.Reverse(rev)
	if d2, _ := manifest.Digest(rev); d2 != d {
		t.Fatal("the digest depends on the listing's order")
	}
	if e, _ := manifest.Digest(nil); e != sha256.Sum256(nil) {
		t.Fatal("empty digest")
	}
	if _, err := manifest.Digest(append(slices.Clone(it), it[1])); err == nil {
		t.Fatal("a secret listed twice")
	}
}

func TestVerify(t *testing.T) {
	v := newVault(t) // alice owner, bob editor, carol viewer, dave admin; seq 4
	it := items(5, 1)
	m := next(t, nil, v, 1, it)
	for _, u := range []user{alice, bob, dave} {
		if err := manifest.Verify(signed(t, m, u), v.s); err != nil {
			t.Errorf("signed by %s: %v", u.ident.Identity, err)
		}
	}
	with := func(f func(*manifest.Manifest)) manifest.Manifest { c := m; f(&c); return c }
	otherLog := newVault(t)
	otherLog.append(alice, memberlog.OpAdd, mallory, "viewer")
	type c struct {
		name string
		s    manifest.Signed
		want error
	}
	cases := []c{
		{"viewer signs", signed(t, m, carol), manifest.ErrNoAuthority},
		{"non-member signs", signed(t, m, mallory), manifest.ErrNotMember},
		{"another vault", signed(t, with(func(m *manifest.Manifest) { m.VaultID[0] ^= 1 }), alice), manifest.ErrWrongVault},
		{"log seq beyond the head", signed(t, with(func(m *manifest.Manifest) { m.LogSeq = 5 }), alice), manifest.ErrLogMismatch},
		{"another log's hash", signed(t, with(func(m *manifest.Manifest) { m.LogHash = otherLog.s.Head().Hash }), alice), manifest.ErrLogMismatch},
		{"wrong generation", signed(t, with(func(m *manifest.Manifest) { m.KeyGeneration = 2 }), alice), manifest.ErrGeneration},
	}
	// The server signs with its own key, naming alice as the signer; or
	// names another member as the signer of alice's manifest.
	forged := signed(t, m, mallory)
	forged.Signer = alice.id
	cases = append(cases, c{"server's signature, alice named", forged, manifest.ErrBadSignature})
	swapped := signed(t, m, alice)
	swapped.Signer = bob.id
	cases = append(cases, c{"alice's signature, bob named", swapped, manifest.ErrBadSignature})
	edited := signed(t, m, alice)
	edited.Manifest.SecretCount++
	cases = append(cases, c{"fields edited after signing", edited, manifest.ErrMalformed})
	reenc := signed(t, m, alice)
	reenc.Manifest.SecretCount++
	reenc.Message, _ = reenc.Manifest.Marshal()
	cases = append(cases, c{"message edited after signing", reenc, manifest.ErrBadSignature})
	for _, c := range cases {
		err := manifest.Verify(c.s, v.s)
		if !errors.Is(err, c.want) || !errors.Is(err, manifest.ErrTampered) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Without bob's key record, his manifest cannot be checked.
	partial, _ := memberlog.Replay(vaultID, v.rows, []trust.Identity{alice.ident})
	if err := manifest.Verify(signed(t, m, bob), partial); !errors.Is(err, memberlog.ErrUnknownSigner) || !errors.Is(err, manifest.ErrTampered) {
		t.Errorf("no key record for bob: %v", err)
	}

	// Bob is removed at seq 5: his manifest written at seq 4 is now stale,
	// and one naming seq 5 is not his to sign. A manifest from before the
	// removal, by anyone, is stale too.
	v.append(alice, memberlog.OpRemove, bob, "")
	if err := manifest.Verify(signed(t, m, bob), v.s); !errors.Is(err, manifest.ErrStale) {
		t.Errorf("bob's manifest after his removal: %v", err)
	}
	if err := manifest.Verify(signed(t, m, alice), v.s); !errors.Is(err, manifest.ErrStale) {
		t.Errorf("alice's manifest from before the removal: %v", err)
	}
	m5 := next(t, nil, v, 1, items(5, 2))
	if err := manifest.Verify(signed(t, m5, bob), v.s); !errors.Is(err, manifest.ErrNotMember) {
		t.Errorf("removed bob signs at seq 5: %v", err)
	}
	if err := manifest.Verify(signed(t, m5, dave), v.s); err != nil {
		t.Errorf("dave at seq 5: %v", err)
	}
	if m5.KeyGeneration != 2 {
		t.Fatalf("Next wrote generation %d", m5.KeyGeneration)
	}
	// Adds do not cut: a manifest written before a later add still holds.
	v.append(alice, memberlog.OpAdd, mallory, "viewer")
	if err := manifest.Verify(signed(t, m5, dave), v.s); err != nil {
		t.Errorf("manifest at 5 after an add at 6: %v", err)
	}
	// A role change cuts: carol promoted, then demoted again.
	v.append(alice, memberlog.OpChangeRole, carol, "editor")
	if err := manifest.Verify(signed(t, m5, dave), v.s); !errors.Is(err, manifest.ErrStale) {
		t.Errorf("manifest at 5 after a role change at 7: %v", err)
	}
}

func TestCheckRollback(t *testing.T) {
	v := newVault(t)
	s1 := signed(t, next(t, nil, v, 1, items(2, 1)), alice)
	s2 := signed(t, next(t, &s1, v, 1, items(3, 1)), bob)
	s3 := signed(t, next(t, &s2, v, 2, items(3, 1)), alice)
	if err := manifest.CheckRollback(s1, manifest.Seen{}); err != nil {
		t.Errorf("nothing seen: %v", err)
	}
	if err := manifest.CheckRollback(s2, s1.Seen()); err != nil {
		t.Errorf("the next version: %v", err)
	}
	if err := manifest.CheckRollback(s3, s1.Seen()); err != nil {
		t.Errorf("two versions ahead: %v", err)
	}
	if err := manifest.CheckRollback(s2, s2.Seen()); err != nil {
		t.Errorf("the same: %v", err)
	}
	err := manifest.CheckRollback(s1, s2.Seen())
	if !errors.Is(err, manifest.ErrRollback) || errors.Is(err, manifest.ErrTampered) {
		t.Errorf("older version: %v", err)
	}
	// A fork: another device's version 2 (same version, another hash),
	// or a version 3 that does not follow the version 2 seen.
	other2 := signed(t, next(t, &s1, v, 1, items(4, 1)), dave)
	if err := manifest.CheckRollback(other2, s2.Seen()); !errors.Is(err, manifest.ErrFork) {
		t.Errorf("another version 2: %v", err)
	}
	other3 := signed(t, next(t, &other2, v, 1, items(4, 1)), dave)
	if err := manifest.CheckRollback(other3, s2.Seen()); !errors.Is(err, manifest.ErrFork) {
		t.Errorf("version 3 on another version 2: %v", err)
	}
}

// TestCheckListing: the server hides a secret, brings a deleted one back,
// serves an older revision, relabels a generation, or an older vault row.
func TestCheckListing(t *testing.T) {
	v := newVault(t)
	it := items(10, 1)
	m := next(t, nil, v, 3, it)
	if err := manifest.CheckListing(m, it, 3); err != nil {
		t.Fatal(err)
	}
	shuffled := slices.Clone(it)
	slices.Reverse(shuffled)
	if err := manifest.CheckListing(m, shuffled, 3); err != nil {
		t.Errorf("another order: %v", err)
	}
	older := slices.Clone(it)
	older[4].Revision--
	relabelled := slices.Clone(it)
	relabelled[2].Generation = 2
	swapped := slices.Clone(it)
	swapped[0].Revision, swapped[1].Revision = swapped[1].Revision, swapped[0].Revision
	deleted := manifest.Item{ID: uuid.UUID{0x01, 0x90, 15: 0xee}, Revision: 4, Generation: 1}
	for name, l := range map[string][]manifest.Item{
		"one secret hidden":                it[1:],
		"every secret hidden":              nil,
		"a deleted secret resurrected":     append(slices.Clone(it), deleted),
		"a deleted secret in place of one": append(slices.Clone(it[1:]), deleted),
		"an older revision":                older,
		"a generation relabelled":          relabelled,
		"revisions swapped":                swapped,
		"a secret listed twice":            append(slices.Clone(it[1:]), it[2]),
	} {
		if err := manifest.CheckListing(m, l, 3); !errors.Is(err, manifest.ErrListing) || !errors.Is(err, manifest.ErrTampered) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := manifest.CheckListing(m, it, 2); !errors.Is(err, manifest.ErrMetaRevision) {
		t.Errorf("older vault row: %v", err)
	}
}

func TestAccept(t *testing.T) {
	v := newVault(t)
	it := items(3, 1)
	s1 := signed(t, next(t, nil, v, 1, it), bob)
	seen, err := manifest.Accept(s1, v.s, manifest.Seen{}, it, 1)
	if err != nil || seen != s1.Seen() {
		t.Fatalf("Accept: %v", err)
	}
	it2 := append(slices.Clone(it), manifest.Item{ID: uuid.UUID{0x01, 0x90, 15: 0xff}, Revision: 1, Generation: 1})
	s2 := signed(t, next(t, &s1, v, 1, it2), dave)
	seen2, err := manifest.Accept(s2, v.s, seen, it2, 1)
	if err != nil || seen2 != s2.Seen() {
		t.Fatalf("Accept next: %v", err)
	}
	// Replaying version 1 with its listing to a device that saw version 2.
	if got, err := manifest.Accept(s1, v.s, seen2, it, 1); !errors.Is(err, manifest.ErrRollback) || got != seen2 {
		t.Errorf("rollback: %v", err)
	}
	// Version 2 with version 1's listing (the new secret hidden).
	if _, err := manifest.Accept(s2, v.s, seen2, it, 1); !errors.Is(err, manifest.ErrListing) {
		t.Errorf("hidden secret: %v", err)
	}
	if _, err := manifest.Accept(signed(t, next(t, &s1, v, 1, it2), carol), v.s, seen, it2, 1); !errors.Is(err, manifest.ErrNoAuthority) {
		t.Errorf("viewer's manifest: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	v := newVault(f)
	s1 := signed(f, next(f, nil, v, 1, items(2, 1)), alice)
	f.Add(s1.Message)
	f.Add(signed(f, next(f, &s1, v, 9, items(7, 1)), bob).Message)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := manifest.Parse(b)
		if err != nil {
			if !errors.Is(err, manifest.ErrMalformed) {
				t.Fatalf("error of no known class: %v", err)
			}
			return
		}
		back, err := m.Marshal()
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("Marshal(Parse(b)) = %x, %v", back, err)
		}
		// Without a valid signature it never verifies.
		if err := manifest.Verify(manifest.Signed{Manifest: m, Message: b, Signature: make([]byte, 64), Signer: alice.id}, v.s); err == nil {
			t.Fatal("a fuzzed manifest verified")
		}
	})
}

// BenchmarkAccept10000 measures what checking a listing of 10,000 secrets
// costs: parse the stored manifest, verify it against the replayed log,
// check it against the remembered version and the listing's digest.
func BenchmarkAccept10000(b *testing.B) {
	v := newVault(b)
	it := items(10000, 1)
	s1 := signed(b, next(b, nil, v, 1, it[:10]), alice)
	s := signed(b, next(b, &s1, v, 7, it), bob)
	ms, ss := s.Row()
	seen := s1.Seen()
	// The listing arrives in the server's order, not sorted.
	listing := slices.Clone(it)
	slices.Reverse(listing)
	b.ReportAllocs()
	for b.Loop() {
		got, err := manifest.ParseRow(ms, ss, bob.id)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := manifest.Accept(got, v.s, seen, listing, 7); err != nil {
			b.Fatal(err)
		}
	}
}
