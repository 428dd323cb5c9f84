package spec

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/manifest"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
)

// Generators of the vector files of sharing (docs/crypto.md §6-§10).

func mkIdent(u uuid.UUID, identity string, pub ed25519.PublicKey) trust.Identity {
	return trust.Identity{UserID: u, Identity: identity, Ed25519Public: pub}
}

func dec(v uint64) string { return strconv.FormatUint(v, 10) }

func identJSON(i trust.Identity) IdentityJSON {
	return IdentityJSON{UserID: i.UserID.String(), Identity: i.Identity, Ed25519Public: Hex(i.Ed25519Public)}
}

// member is an account of the generated logs: its Ed25519 key (from the
// stream) and what its key record says.
type member struct {
	id    uuid.UUID
	priv  ed25519.PrivateKey
	ident trust.Identity
	fp    trust.Fingerprint
}

func newMember(t *testing.T, r io.Reader, name string) member {
	priv := ed25519.NewKeyFromSeed(read(r, 32))
	id := newUUID(r)
	ident := trust.Identity{UserID: id, Identity: name + "@example.com", Ed25519Public: priv.Public().(ed25519.PublicKey)}
	return member{id, priv, ident, must[trust.Fingerprint](t)(ident.Fingerprint())}
}

// ---------------------------------------------------------- fingerprint.json

func genFingerprint(t *testing.T) []byte {
	r := seeded("fingerprint")
	next := counter()
	fg := FingerprintGroup{Type: "fingerprint"}
	var idents []trust.Identity
	for _, c := range []struct{ comment, identity string }{
		{"an e-mail address", "alice@example.com"},
		{"non-ASCII identity in normal form", "j\u00fcrgen@example.com"},
		{"a user name of 3 characters (the shortest)", "bob"},
		{"an identity of 254 bytes (the longest)", strings.Repeat("a", 242) + "@example.com"},
	} {
		i := trust.Identity{UserID: newUUID(r), Identity: c.identity, Ed25519Public: ed25519.NewKeyFromSeed(read(r, 32)).Public().(ed25519.PublicKey)}
		d := must[trust.Digest](t)(i.Digest())
		// The input is written out here, not taken from the implementation.
		in := slices.Concat([]byte("zsm v1 fingerprint\x00"), i.UserID[:], []byte{byte(len(i.Identity))}, []byte(i.Identity), i.Ed25519Public)
		if sha512.Sum512(in) != d {
			t.Fatal("fingerprint input differs")
		}
		fp := d.Fingerprint()
		fg.Tests = append(fg.Tests, FingerprintTest{Case: Case{next(), c.comment, []string{}}, IdentityJSON: identJSON(i),
			Input: Hex(in), Digest: d[:], Fingerprint: fp[:], SafetyNumber: d.SafetyNumber(), QR: d.QR(), Outcome: Outcome{Result: "valid"}})
		idents = append(idents, i)
	}
	a := idents[0]
	for _, c := range []struct {
		comment string
		i       trust.Identity
	}{
		{"identity not in normal form (upper case)", mkIdent(a.UserID, "Alice@example.com", a.Ed25519Public)},
		{"identity not in normal form (surrounding space)", mkIdent(a.UserID, "alice@example.com ", a.Ed25519Public)},
		{"empty identity", mkIdent(a.UserID, "", a.Ed25519Public)},
		{"identity of 255 bytes", mkIdent(a.UserID, strings.Repeat("a", 243)+"@example.com", a.Ed25519Public)},
		{"Ed25519 key of 31 bytes", mkIdent(a.UserID, a.Identity, a.Ed25519Public[:31])},
	} {
		fg.Tests = append(fg.Tests, FingerprintTest{Case: Case{next(), c.comment, []string{"BadIdentity"}}, IdentityJSON: identJSON(c.i), Outcome: Outcome{"invalid", "bad_identity"}})
	}

	qg := FingerprintGroup{Type: "qr"}
	da := must[trust.Digest](t)(a.Digest())
	qr := da.QR()
	fpA := da.Fingerprint()
	qtest := func(comment, flag, s string, i trust.Identity, errClass string) {
		tc := FingerprintTest{Case: Case{next(), comment, []string{}}, IdentityJSON: identJSON(i), QR: s, Outcome: Outcome{Result: "valid"}}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if errClass == "" {
			tc.Fingerprint = fpA[:]
		} else {
			tc.Outcome = Outcome{"invalid", errClass}
		}
		qg.Tests = append(qg.Tests, tc)
	}
	qtest("the QR string of the key held", "", qr, a, "")
	server := mkIdent(a.UserID, a.Identity, ed25519.NewKeyFromSeed(read(r, 32)).Public().(ed25519.PublicKey))
	qtest("the QR string scanned from alice's device, the key the server sent", "KeySubstitution", qr, server, "mismatch")
	qtest("the QR string of another account", "KeySubstitution", must[trust.Digest](t)(idents[1].Digest()).QR(), a, "mismatch")
	last := qr[len(qr)-1]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, c := range []struct{ comment, s string }{
		{"no prefix", qr[7:]},
		{"prefix zsmfp2", "zsmfp2:" + qr[7:]},
		{"prefix in upper case", "ZSMFP1:" + qr[7:]},
		{"with padding", qr + "="},
		{"42 characters", qr[:len(qr)-1]},
		{"44 characters", qr + "A"},
		{"non-zero unused bits in the last character", qr[:len(qr)-1] + string(alphabet[strings.IndexByte(alphabet, last)^1])},
		{"a line break", qr[:20] + "\n" + qr[20:len(qr)-1]},
		{"standard base64 alphabet", "zsmfp1:" + base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))},
	} {
		qtest(c.comment, "BadQR", c.s, a, "bad_qr")
	}
	return encode(t, File[FingerprintGroup]{
		Algorithm: "ZSM-V1-FINGERPRINT-SHA512", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/crypto.md §6. input = \"zsm v1 fingerprint\" || 0x00 || user_id (16) || u8(len(identity)) || identity || ed25519_public (32); digest = SHA-512(input); fingerprint = digest[0:32].",
			"identity must be in srpgroup.NormalizeIdentity's normal form (NFKC, case-folded, trimmed, 3 to 254 bytes); otherwise bad_identity.",
			"safetyNumber: for i = 0..11, uint40be(digest[5i:5i+5]) mod 100000 as 5 digits, joined by single spaces. qr = \"zsmfp1:\" || base64url without padding (digest[0:32]).",
			"Group qr: parse qr strictly (the prefix, exactly 43 characters of base64url without padding that re-encode to themselves; else bad_qr) and compare it with the fingerprint of the identity given, the key the client holds (mismatch if it differs).",
		},
		Notes: map[string]Note{
			"BadIdentity":     {"EDGE_CASE", "an identity that has no fingerprint"},
			"KeySubstitution": {"KEY_SUBSTITUTION", "the fingerprint compared out of band is not the key's"},
			"BadQR":           {"EDGE_CASE", "not a QR string of this format"},
		},
		TestGroups: []FingerprintGroup{fg, qg},
	})
}

// ----------------------------------------------------------------- pins.json

func genPins(t *testing.T) []byte {
	r := seeded("pins")
	next := counter()
	t0 := time.UnixMilli(1764400000000)
	bob := newMember(t, r, "bob")
	carol := newMember(t, r, "carol")
	dave := newMember(t, r, "dave")
	xA, xB := read(r, 1216), read(r, 1216)
	rec := func(i trust.Identity, v int, x []byte) trust.Record {
		return trust.Record{Identity: i, Version: v, XWingPublic: x}
	}
	recJSON := func(rc trust.Record) *RecordJSON {
		return &RecordJSON{IdentityJSON: identJSON(rc.Identity), Version: rc.Version, XWingPublic: rc.XWingPublic}
	}
	var set trust.PinSet
	must[trust.Pin](t)(set.Confirm(rec(bob.ident, 1, nil), trust.Verified, t0))
	must[trust.Pin](t)(set.Confirm(rec(carol.ident, 2, xA), trust.TOFU, t0.Add(time.Hour)))
	doc := string(must[[]byte](t)(set.Marshal()))

	pg := PinsGroup{Type: "parse"}
	ptest := func(comment, flag, d, canonical, errClass string) {
		tc := PinsTest{Case: Case{next(), comment, []string{}}, Pins: d, Canonical: canonical, Outcome: Outcome{Result: "valid"}}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if errClass != "" {
			tc.Outcome = Outcome{"invalid", errClass}
		}
		pg.Tests = append(pg.Tests, tc)
	}
	ptest("empty set", "", `{"version":1,"pins":[]}`, `{"version":1,"pins":[]}`, "")
	ptest("two pins, canonical", "", doc, doc, "")
	var m any
	json.Unmarshal([]byte(doc), &m)
	ptest("two pins, indented, members reordered", "", string(must[[]byte](t)(json.MarshalIndent(m, "", "  "))), doc, "")
	bobPub := base64.StdEncoding.EncodeToString(bob.ident.Ed25519Public)
	for _, c := range []struct{ comment, d string }{
		{"version 2", strings.Replace(doc, `"version":1`, `"version":2`, 1)},
		{"unknown member", strings.Replace(doc, `{"version":1`, `{"extra":0,"version":1`, 1)},
		{"member repeated", strings.Replace(doc, `{"version":1`, `{"version":1,"version":1`, 1)},
		{"member name in another case", strings.Replace(doc, `"pins"`, `"Pins"`, 1)},
		{"pins out of order", strings.Replace(doc, "bob@example.com", "zed@example.com", 1)},
		{"an identity twice", strings.Replace(doc, "carol@example.com", "bob@example.com", 1)},
		{"identity not in normal form", strings.Replace(doc, "bob@example.com", "Bob@example.com", 1)},
		{"user id in upper case", strings.Replace(doc, bob.id.String(), strings.ToUpper(bob.id.String()), 1)},
		{"unknown status", strings.Replace(doc, `"verified"`, `"trusted"`, 1)},
		{"Ed25519 key without padding", strings.Replace(doc, bobPub, strings.TrimRight(bobPub, "="), 1)},
		{"record version 2 without the X-Wing hash", strings.Replace(doc, `"record_version":1`, `"record_version":2`, 1)},
		{"record version 1 with an X-Wing hash", strings.Replace(doc, `"record_version":2`, `"record_version":1`, 1)},
		{"pinned_at with a fraction", strings.Replace(doc, "1764400000000", "1764400000000.0", 1)},
		{"pinned_at negative", strings.Replace(doc, "1764400000000", "-1", 1)},
		{"pinned_at 2^53", strings.Replace(doc, "1764400000000", "9007199254740992", 1)},
		{"data after the object", doc + " {}"},
	} {
		ptest(c.comment, "Malformed", c.d, "", "malformed")
	}

	cg := PinsGroup{Type: "check"}
	yes, no := true, false
	ctest := func(comment, flag string, rc trust.Record, raised *bool, errClass string) {
		tc := PinsTest{Case: Case{next(), comment, []string{}}, Pins: doc, Record: recJSON(rc), Raised: raised, Outcome: Outcome{Result: "valid"}}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if errClass != "" {
			tc.Outcome = Outcome{"invalid", errClass}
		}
		cg.Tests = append(cg.Tests, tc)
	}
	ctest("the pinned key, version 1", "", rec(bob.ident, 1, nil), &no, "")
	ctest("the pinned key's version 2 record: the pin is raised", "", rec(bob.ident, 2, xA), &yes, "")
	ctest("the pinned key, version 2 with the pinned X-Wing key", "", rec(carol.ident, 2, xA), &no, "")
	otherKey := bob.ident
	otherKey.Ed25519Public = dave.ident.Ed25519Public
	ctest("another Ed25519 key for a pinned identity", "KeyChanged", rec(otherKey, 1, nil), nil, "key_changed")
	otherUser := bob.ident
	otherUser.UserID = dave.id
	ctest("another user id for a pinned identity", "KeyChanged", rec(otherUser, 1, nil), nil, "key_changed")
	ctest("another X-Wing key under the pinned Ed25519 key", "KeyChanged", rec(carol.ident, 2, xB), nil, "key_changed")
	ctest("a version 1 record after version 2 was seen", "Downgrade", rec(carol.ident, 1, nil), nil, "downgrade")
	ctest("an identity without a pin", "NotPinned", rec(dave.ident, 1, nil), nil, "not_pinned")
	ctest("a version 2 record without an X-Wing key", "BadRecord", rec(bob.ident, 2, nil), nil, "bad_record")

	mg := PinsGroup{Type: "merge"}
	mtest := func(comment string, local, remote *trust.PinSet, conflicts []string) {
		merged, _ := trust.Merge(local, remote)
		mg.Tests = append(mg.Tests, PinsTest{Case: Case{next(), comment, []string{}}, Pins: string(must[[]byte](t)(local.Marshal())),
			Remote: string(must[[]byte](t)(remote.Marshal())), Canonical: string(must[[]byte](t)(merged.Marshal())), Conflicts: conflicts, Outcome: Outcome{Result: "valid"}})
	}
	var remote trust.PinSet
	must[trust.Pin](t)(remote.Confirm(rec(bob.ident, 2, xA), trust.TOFU, t0.Add(-time.Hour)))
	must[trust.Pin](t)(remote.Confirm(rec(carol.ident, 2, xA), trust.Verified, t0.Add(2*time.Hour)))
	must[trust.Pin](t)(remote.Confirm(rec(dave.ident, 1, nil), trust.TOFU, t0))
	mtest("union; verified wins over tofu with its pinned_at; the higher record version wins", &set, &remote, nil)
	var conflict trust.PinSet
	must[trust.Pin](t)(conflict.Confirm(rec(otherKey, 1, nil), trust.Verified, t0))
	must[trust.Pin](t)(conflict.Confirm(rec(carol.ident, 2, xB), trust.Verified, t0))
	mtest("two keys for one identity, two X-Wing keys for another: conflicts, the local pins stay", &set, &conflict, []string{bob.ident.Identity, carol.ident.Identity})

	sg := PinsGroup{Type: "sealed"}
	ak := read(r, 32)
	owner := newUUID(r)
	sealed := must[string](t)(set.Seal(ak, owner, 7, r))
	stest := func(comment, flag string, key []byte, user uuid.UUID, rev uint64, s, canonical, errClass string) {
		tc := PinsTest{Case: Case{next(), comment, []string{}}, AccountKey: key, UserID: user.String(), Revision: dec(rev), Sealed: s, Canonical: canonical, Outcome: Outcome{Result: "valid"}}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if errClass != "" {
			tc.Outcome = Outcome{"invalid", errClass}
		}
		sg.Tests = append(sg.Tests, tc)
	}
	stest("valid, revision 7", "", ak, owner, 7, sealed, doc, "")
	stest("revision 7 presented as revision 8", "WrongAD", ak, owner, 8, sealed, "", "tampered")
	otherOwner := owner
	otherOwner[0] ^= 1
	stest("another account's row", "WrongAD", ak, otherOwner, 7, sealed, "", "tampered")
	planted := must[string](t)(set.Seal(read(r, 32), owner, 7, r))
	stest("a pin set sealed under a key the server knows", "WrongKey", ak, owner, 7, planted, "", "tampered")
	junk := must[string](t)(envelope.SealString(ak, envelope.Context{Type: envelope.PinSet, ObjectID: owner, Revision: 7}, []byte(`{"version":1}`), r))
	stest("a sealed plaintext that is not a pin set", "Malformed", ak, owner, 7, junk, "", "malformed")

	return encode(t, File[PinsGroup]{
		Algorithm: "ZSM-V1-PINS", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/crypto.md §7. A pin set is {\"version\":1,\"pins\":[pin, ...]}, pins in strictly ascending byte order of identity; a pin has exactly identity, user_id (canonical lower-case uuid), ed25519_public (base64, 32 bytes), status (verified | tofu), record_version (1 | 2), xwing_public_sha256 (base64 of SHA-256 of the X-Wing public key, present exactly at record_version 2) and pinned_at (unix ms, integer in [0, 2^53)).",
			"Group parse: parse strictly (members each once, names exact, nothing after the object; else malformed) and re-encode canonically (compact, members in the order above) to canonical.",
			"Group check: check the verified key record against the pin set: not_pinned (no pin for the identity), key_changed (another user id or Ed25519 key, or another X-Wing key at version 2), downgrade (version 1 when version 2 was pinned), bad_record (a version 2 record without a 1216-byte X-Wing key, or the reverse); valid with raised = true when a version 1 pin meets a version 2 record.",
			"Group merge: merge remote into pins (local): union by identity; for the same user id and Ed25519 key verified wins over tofu (with its pinned_at; the earlier if the status is the same) and the higher record version wins with its hash; different keys are conflicts (identities listed), the local pin stays. canonical is the merged set.",
			"Group sealed: envelope type 7 under the account key, object id userId, revision the row revision; open it (tampered if it does not open) and parse the plaintext (malformed).",
		},
		Notes: map[string]Note{
			"Malformed":  {"EDGE_CASE", "not a pin set"},
			"KeyChanged": {"KEY_SUBSTITUTION", "a key other than the pinned one"},
			"Downgrade":  {"DOWNGRADE", "an older key record without the hybrid key"},
			"NotPinned":  {"EDGE_CASE", "nothing vouches for the key"},
			"BadRecord":  {"EDGE_CASE", "a record whose version and X-Wing key disagree"},
			"WrongAD":    {"AUTH_BYPASS", "a pin row moved to another account or revision"},
			"WrongKey":   {"AUTH_BYPASS", "a pin set the account did not seal"},
		},
		TestGroups: []PinsGroup{pg, cg, mg, sg},
	})
}

// ------------------------------------------------------------ vault_log.json

// logBuilder builds a valid log entry by entry; vault keys of new
// generations come from the stream.
type logBuilder struct {
	t    *testing.T
	r    io.Reader
	s    *memberlog.State
	rows []memberlog.Signed
	ms   int64
}

func newLogBuilder(t *testing.T, r io.Reader, vault uuid.UUID, keys []trust.Identity, creator member) *logBuilder {
	b := &logBuilder{t: t, r: r, s: must[*memberlog.State](t)(memberlog.New(vault, keys...)), ms: 1764400000000}
	b.add(creator, memberlog.OpCreate, creator, "owner")
	return b
}

func (b *logBuilder) entry(signer member, op memberlog.Op, subject member, role string) memberlog.Entry {
	var fp trust.Fingerprint
	if op == memberlog.OpCreate || op == memberlog.OpAdd {
		fp = subject.fp
	}
	var c [32]byte
	if op == memberlog.OpCreate || op == memberlog.OpRemove || op == memberlog.OpRotate {
		g := b.s.Generation() + 1
		c = must[[32]byte](b.t)(grant.KeyCommitment(read(b.r, 32), b.s.VaultID(), g))
	}
	b.ms += 60000
	return b.s.Next(op, subject.id, role, fp, c, signer.id, time.UnixMilli(b.ms))
}

func (b *logBuilder) sign(e memberlog.Entry, key member) memberlog.Signed {
	return must[memberlog.Signed](b.t)(memberlog.Sign(e, key.priv))
}

func (b *logBuilder) add(signer member, op memberlog.Op, subject member, role string) {
	r := b.sign(b.entry(signer, op, subject, role), signer)
	if err := b.s.Apply(r); err != nil {
		b.t.Fatalf("building a log: %v", err)
	}
	b.rows = append(b.rows, r)
}

// with returns the rows and one more entry, edited and signed by key.
func (b *logBuilder) with(signer member, op memberlog.Op, subject member, role string, edit func(*memberlog.Entry), key member) []memberlog.Signed {
	e := b.entry(signer, op, subject, role)
	if edit != nil {
		edit(&e)
	}
	return append(slices.Clone(b.rows), b.sign(e, key))
}

func rowsJSON(rows []memberlog.Signed) []RowJSON {
	out := make([]RowJSON, len(rows))
	for i, r := range rows {
		out[i].Message, out[i].Signature = r.Row()
	}
	return out
}

func entryJSON(e memberlog.Entry) *EntryJSON {
	return &EntryJSON{VaultID: e.VaultID.String(), Seq: dec(e.Seq), Prev: e.Prev[:], Op: uint8(e.Op), Subject: e.Subject.String(), Role: e.Role,
		SubjectFP: e.SubjectFP[:], Generation: dec(e.Generation), Commitment: e.Commitment[:], Signer: e.Signer.String(), UnixMilli: dec(e.UnixMilli)}
}

func genVaultLog(t *testing.T) []byte {
	r := seeded("vault_log")
	next := counter()
	vault := newUUID(r)
	alice, bob, carol, dave, erin, mallory := newMember(t, r, "alice"), newMember(t, r, "bob"), newMember(t, r, "carol"),
		newMember(t, r, "dave"), newMember(t, r, "erin"), newMember(t, r, "mallory")
	var keys []IdentityJSON
	var idents []trust.Identity
	for _, m := range []member{alice, bob, carol, dave, erin, mallory} {
		keys = append(keys, identJSON(m.ident))
		idents = append(idents, m.ident)
	}

	// A log with every operation.
	full := newLogBuilder(t, r, vault, idents, alice)        // 1 create
	full.add(alice, memberlog.OpAdd, bob, "editor")          // 2
	full.add(alice, memberlog.OpAdd, carol, "viewer")        // 3
	full.add(alice, memberlog.OpAdd, dave, "admin")          // 4
	full.add(dave, memberlog.OpAdd, erin, "viewer")          // 5
	full.add(alice, memberlog.OpChangeRole, carol, "editor") // 6
	full.add(alice, memberlog.OpRemove, bob, "")             // 7: generation 2
	full.add(dave, memberlog.OpRotate, dave, "")             // 8: generation 3
	full.add(erin, memberlog.OpLeave, erin, "")              // 9

	eg := LogGroup{Type: "entry", VaultID: vault.String(), Keys: keys}
	for _, row := range full.rows {
		e := entryJSON(row.Entry)
		e.MessageHex, e.SignatureHx = row.Message, row.Signature
		h := row.Hash()
		e.Hash = h[:]
		eg.Tests = append(eg.Tests, LogTest{Case: Case{next(), "entry " + dec(row.Entry.Seq) + ": " + row.Entry.Op.String(), []string{}}, Entry: e, Outcome: Outcome{Result: "valid"}})
	}
	// A leave may name the hash of the newest manifest the member who
	// leaves verified (docs/crypto.md §9): entry 9 again, with one.
	{
		le := full.rows[8].Entry
		le.Commitment = sha256.Sum256([]byte("zsm vectors: the manifest the leaver verified last"))
		row := full.sign(le, erin)
		e := entryJSON(row.Entry)
		e.MessageHex, e.SignatureHx = row.Message, row.Signature
		h := row.Hash()
		e.Hash = h[:]
		eg.Tests = append(eg.Tests, LogTest{Case: Case{next(), "entry 9 as a leave naming the hash of the manifest the leaver verified last", []string{}}, Entry: e, Outcome: Outcome{Result: "valid"}})
	}

	pg := LogGroup{Type: "parse"}
	add := full.rows[1].Message // seq 2, add, role "editor"
	rm := full.rows[6].Message  // seq 7, remove
	edit := func(m []byte, f func([]byte)) []byte { b := bytes.Clone(m); f(b); return b }
	const offSeq = 17 + 16
	const offPrev, offOp = offSeq + 8, offSeq + 8 + 32
	const offRoleN = offOp + 1 + 16
	const offRole = offRoleN + 1
	for _, c := range []struct {
		comment string
		m       []byte
	}{
		{"truncated by one byte", add[:len(add)-1]},
		{"one byte appended", append(bytes.Clone(add), 0)},
		{"another label", edit(add, func(b []byte) { b[4] = '2' })},
		{"role length one too long", edit(add, func(b []byte) { b[offRoleN]++ })},
		{"seq 0", edit(add, func(b []byte) { clear(b[offSeq : offSeq+8]) })},
		{"seq 1 with a previous hash", edit(add, func(b []byte) { binary.BigEndian.PutUint64(b[offSeq:], 1) })},
		{"op 0", edit(add, func(b []byte) { b[offOp] = 0 })},
		{"op 7", edit(add, func(b []byte) { b[offOp] = 7 })},
		{"unknown role", edit(add, func(b []byte) { copy(b[offRole:], "Editor") })},
		{"add without a fingerprint", edit(add, func(b []byte) { clear(b[offRole+6 : offRole+6+32]) })},
		{"add with a key commitment", edit(add, func(b []byte) { b[offRole+6+32+8] = 1 })},
		{"add relabelled leave (a leave has no role)", edit(add, func(b []byte) { b[offOp] = 6 })},
		{"generation 0", edit(add, func(b []byte) { clear(b[offRole+6+32 : offRole+6+40]) })},
		{"remove with a fingerprint", edit(rm, func(b []byte) { b[offRole] = 1 })},
		{"remove without a key commitment", edit(rm, func(b []byte) { clear(b[offRole+40 : offRole+72]) })},
		{"change_role with a key commitment", edit(full.rows[5].Message, func(b []byte) { b[offRole+6+32+8] = 1 })},
	} {
		if _, err := memberlog.Parse(c.m); err == nil {
			t.Fatalf("parse vector %q parses", c.comment)
		}
		pg.Tests = append(pg.Tests, LogTest{Case: Case{next(), c.comment, []string{"Malformed"}}, Message: c.m, Outcome: Outcome{"invalid", "malformed"}})
	}

	rg := LogGroup{Type: "replay", VaultID: vault.String(), Keys: keys}
	s := full.s
	var members []MemberJSON
	for _, m := range s.Members() {
		members = append(members, MemberJSON{UserID: m.UserID.String(), Role: m.Role, Fingerprint: m.Fingerprint[:], AddedBy: m.AddedBy.String(), AddedSeq: dec(m.AddedSeq)})
	}
	commitments := map[string]Hex{}
	for g, c := range s.Commitments() {
		commitments[dec(g)] = Hex(bytes.Clone(c[:]))
	}
	head := s.Head()
	due := s.RotationDue()
	rg.Tests = append(rg.Tests, LogTest{Case: Case{next(), "every operation: create, add, change_role, remove, rotate, leave", []string{}}, Rows: rowsJSON(full.rows),
		Members: members, Generation: dec(s.Generation()), Commitments: commitments, Head: &HeadJSON{dec(head.Seq), head.Hash[:]},
		LastCut: dec(s.LastCut()), RotationDue: &due, Outcome: Outcome{Result: "valid"}})

	refuse := func(comment, flag string, rows []memberlog.Signed, k []trust.Identity, errClass string) {
		tc := LogTest{Case: Case{next(), comment, []string{flag}}, Rows: rowsJSON(rows), Outcome: Outcome{"invalid", errClass}}
		for _, i := range k {
			tc.Keys = append(tc.Keys, identJSON(i))
		}
		rg.Tests = append(rg.Tests, tc)
	}
	team := newLogBuilder(t, r, vault, idents, alice)
	team.add(alice, memberlog.OpAdd, bob, "editor")
	team.add(alice, memberlog.OpAdd, carol, "viewer")
	team.add(alice, memberlog.OpAdd, dave, "admin")
	tr := team.rows
	const (
		create, addOp, change, remove, rotate, leave = memberlog.OpCreate, memberlog.OpAdd, memberlog.OpChangeRole, memberlog.OpRemove, memberlog.OpRotate, memberlog.OpLeave
	)
	refuse("empty log", "BadCreate", nil, nil, "bad_create")
	refuse("entries reordered", "BrokenChain", []memberlog.Signed{tr[0], tr[2], tr[1], tr[3]}, nil, "broken_chain")
	refuse("an entry dropped", "BrokenChain", []memberlog.Signed{tr[0], tr[1], tr[3]}, nil, "broken_chain")
	refuse("seq skips one", "BrokenChain", team.with(alice, addOp, erin, "viewer", func(e *memberlog.Entry) { e.Seq++ }, alice), nil, "broken_chain")
	refuse("previous hash of another entry", "BrokenChain", team.with(alice, addOp, erin, "viewer", func(e *memberlog.Entry) { e.Prev = tr[1].Hash() }, alice), nil, "broken_chain")
	refuse("an entry of another vault", "WrongVault", team.with(alice, addOp, erin, "viewer", func(e *memberlog.Entry) { e.VaultID[0] ^= 1 }, alice), nil, "wrong_vault")
	refuse("signature flipped", "BadSignature", func() []memberlog.Signed {
		x := slices.Clone(tr)
		x[1].Signature = bytes.Clone(x[1].Signature)
		x[1].Signature[0] ^= 1
		return x
	}(), nil, "bad_signature")
	refuse("the server signs an add in alice's name", "BadSignature", team.with(alice, addOp, mallory, "owner", nil, mallory), nil, "bad_signature")
	refuse("a non-member adds itself", "NotMember", team.with(mallory, addOp, mallory, "viewer", nil, mallory), nil, "not_member")
	refuse("the first entry is an add", "BadCreate", []memberlog.Signed{team.sign(func() memberlog.Entry {
		e := tr[1].Entry
		e.Seq, e.Prev = 1, [32]byte{}
		return e
	}(), alice)}, nil, "bad_create")
	refuse("a second create", "BadCreate", team.with(bob, create, bob, "owner", nil, bob), nil, "bad_create")
	refuse("create naming another subject", "BadCreate", []memberlog.Signed{team.sign(func() memberlog.Entry {
		e := tr[0].Entry
		e.Subject, e.SubjectFP = bob.id, bob.fp
		return e
	}(), alice)}, nil, "bad_create")
	refuse("no key record for the creator", "UnknownSigner", tr, []trust.Identity{bob.ident}, "unknown_signer")
	forgedAlice := alice.ident
	forgedAlice.Ed25519Public = mallory.ident.Ed25519Public
	refuse("the creator's key record substituted", "KeyMismatch", tr, []trust.Identity{forgedAlice, bob.ident}, "key_mismatch")
	forgedBob := bob.ident
	forgedBob.Ed25519Public = mallory.ident.Ed25519Public
	refuse("bob's key record substituted, bob signs", "KeyMismatch", team.with(bob, leave, bob, "", nil, bob), []trust.Identity{alice.ident, forgedBob}, "key_mismatch")
	refuse("add a member twice", "AlreadyMember", team.with(alice, addOp, bob, "viewer", nil, alice), nil, "already_member")
	refuse("remove a non-member", "NotMember", team.with(alice, remove, erin, "", nil, alice), nil, "not_member")
	refuse("rotate naming another subject", "BadSubject", team.with(alice, rotate, bob, "", nil, alice), nil, "bad_subject")
	refuse("leave on someone else's behalf", "BadSubject", team.with(dave, leave, bob, "", nil, dave), nil, "bad_subject")
	for _, c := range []struct {
		comment         string
		signer, subject member
		op              memberlog.Op
		role            string
	}{
		{"an editor adds a member", bob, mallory, addOp, "viewer"},
		{"a viewer adds a member", carol, mallory, addOp, "viewer"},
		{"an admin adds an owner", dave, mallory, addOp, "owner"},
		{"an admin adds an admin", dave, mallory, addOp, "admin"},
		{"an admin promotes itself to owner", dave, dave, change, "owner"},
		{"an admin removes an owner", dave, alice, remove, ""},
		{"an editor rotates", bob, bob, rotate, ""},
	} {
		refuse(c.comment, "NoAuthority", team.with(c.signer, c.op, c.subject, c.role, nil, c.signer), nil, "no_authority")
	}
	refuse("the last owner leaves", "LastOwner", team.with(alice, leave, alice, "", nil, alice), nil, "last_owner")
	refuse("the last owner demotes itself", "LastOwner", team.with(alice, change, alice, "admin", nil, alice), nil, "last_owner")
	plus := func(e *memberlog.Entry) { e.Generation++ }
	refuse("an add raises the generation", "Generation", team.with(alice, addOp, erin, "viewer", plus, alice), nil, "generation")
	refuse("a remove skips a generation", "Generation", team.with(alice, remove, bob, "", plus, alice), nil, "generation")
	refuse("a remove keeps the generation", "Generation", team.with(alice, remove, bob, "", func(e *memberlog.Entry) { e.Generation-- }, alice), nil, "generation")
	team.add(alice, remove, bob, "")
	refuse("removed bob adds himself back", "NotMember", team.with(bob, addOp, bob, "editor", nil, bob), nil, "not_member")

	og := LogGroup{Type: "open", VaultID: vault.String(), Keys: keys}
	// The team log: alice created it, added bob (now removed), carol and
	// dave; dave adds erin.
	team.add(dave, addOp, erin, "viewer") // seq 6
	seen := team.s.Head()
	mj := func(m member) *MemberJSON { return &MemberJSON{UserID: m.id.String(), Fingerprint: m.fp[:]} }
	pins := func(ms ...member) []MemberJSON {
		var out []MemberJSON
		for _, m := range ms {
			out = append(out, *mj(m))
		}
		return out
	}
	otest := func(comment, flag string, rows []memberlog.Signed, remembered *memberlog.Head, self member, pinned []MemberJSON, inviter *member, inviteSeq uint64, errClass string) {
		tc := LogTest{Case: Case{next(), comment, []string{}}, Rows: rowsJSON(rows), Self: mj(self), Pinned: pinned, Outcome: Outcome{Result: "valid"}}
		if remembered != nil {
			tc.Remembered = &HeadJSON{dec(remembered.Seq), bytes.Clone(remembered.Hash[:])}
		}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if inviter != nil {
			creator := inviteSeq == 1
			tc.InvitedBy, tc.InvitedBySeq, tc.Creator = inviter.id.String(), dec(inviteSeq), &creator
		}
		if errClass != "" {
			tc.Outcome = Outcome{"invalid", errClass}
		}
		og.Tests = append(og.Tests, tc)
	}
	rows := team.rows
	otest("the creator opens its vault", "", rows, nil, alice, nil, &alice, 1, "")
	otest("carol, added by alice whom she pinned", "", rows, &seen, carol, pins(alice), &alice, 3, "")
	otest("erin, added by dave whom she pinned", "", rows, nil, erin, pins(dave), &dave, 6, "")
	otest("erin has pinned alice, not dave who added her: an invitation", "Invitation", rows, nil, erin, pins(alice), &dave, 6, "invitation")
	wrongDave := member{id: dave.id, fp: mallory.fp}
	otest("erin pinned dave's identity with another key: an invitation", "Invitation", rows, nil, erin, pins(wrongDave), &dave, 6, "invitation")
	otest("mallory is not a member", "NotAMember", rows, nil, mallory, pins(alice), nil, 0, "not_a_member")
	otest("bob was removed", "NotAMember", rows, nil, bob, pins(alice), nil, 0, "not_a_member")
	selfOther := carol
	selfOther.fp = mallory.fp
	otest("carol with another key than the log records", "NotAMember", rows, nil, selfOther, pins(alice), nil, 0, "not_a_member")
	otest("a log shorter than the one seen", "Rollback", rows[:5], &seen, carol, pins(alice), nil, 0, "rollback")
	fork := newLogBuilder(t, r, vault, idents, alice)
	fork.add(alice, addOp, bob, "editor")
	fork.add(alice, addOp, carol, "viewer")
	fork.add(alice, addOp, dave, "admin")
	fork.add(alice, remove, bob, "")
	fork.add(alice, addOp, mallory, "viewer") // seq 6: another entry than the one seen
	fork.add(alice, addOp, erin, "viewer")
	otest("a log that forks from the one seen (longer)", "Fork", fork.rows, &seen, carol, pins(alice), nil, 0, "fork")
	planted := newLogBuilder(t, r, vault, idents, mallory)
	planted.add(mallory, addOp, carol, "editor")
	otest("a vault the server made, inviting carol", "Invitation", planted.rows, nil, carol, pins(alice), &mallory, 2, "invitation")

	return encode(t, File[LogGroup]{
		Algorithm: "ZSM-V1-VAULT-LOG-ED25519-SHA256", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/crypto.md §9. message = \"zsm v1 vault-log\" || 0x00 || vault_id (16) || u64be(seq) || prev (32) || u8(op) || subject (16) || u8(len(role)) || role || subject_fingerprint (32) || u64be(generation) || key_commitment (32) || signer (16) || u64be(unix_ms). op: 1 create, 2 add, 3 change_role, 4 remove, 5 rotate, 6 leave. signature = Ed25519(signer, message); hash = SHA-256(message || signature). Rows hold base64 of both.",
			"Group entry: the fields must encode to messageHex and parse back; the signature verifies under the signer's key (group keys); hash as given. Group parse: the message must be refused (malformed): length, label, seq >= 1, prev zero exactly at seq 1, a known op, a role of owner/admin/editor/viewer exactly for create/add/change_role, a non-zero fingerprint exactly for create/add, a non-zero commitment for create/remove/rotate and a zero one for add/change_role (a leave may carry the hash of the newest manifest its signer verified, or zero), generation >= 1.",
			"Group replay: replay rows with the verified key records (the test's keys, else the group's; a record is identified by (user id, fingerprint of docs/crypto.md §6)). Valid: members (current, in order of addedSeq), generation, commitments, head, lastCut (seq of the newest remove/leave/change_role/rotate), rotationDue (a leave since the last new generation). Invalid classes: malformed, wrong_vault, broken_chain (seq or prev), bad_create, unknown_signer (no record for the signer), key_mismatch (the records of that user have other fingerprints), bad_signature, not_member, already_member, bad_subject, no_authority, last_owner, generation.",
			"Authority: an owner adds/changes/removes anyone with any role; an admin only editors and viewers (and gives only those roles); owners and admins rotate; any member leaves; the last owner cannot be removed, leave or be demoted. remove and rotate raise the generation by 1; others keep it; create is generation 1.",
			"Group open: refuse a log shorter than remembered (rollback) before replaying; replay; refuse a log whose entry at remembered.seq has another hash (fork); then the trust anchor: self must be a current member with its fingerprint (else not_a_member); it opens if self is the creator, or if the signer of the create/add entry that last added self is pinned with the fingerprint the log held for that signer just before (else invitation). Valid tests give invitedBy/invitedBySeq/creator; invitation tests too.",
		},
		Notes: map[string]Note{
			"Malformed":     {"EDGE_CASE", "not an entry"},
			"BrokenChain":   {"AUTH_BYPASS", "entries reordered, dropped, inserted or re-linked"},
			"WrongVault":    {"AUTH_BYPASS", "an entry of another vault"},
			"BadSignature":  {"AUTH_BYPASS", "an entry the named signer did not sign"},
			"BadCreate":     {"AUTH_BYPASS", "the log does not start with a valid self-signed create"},
			"UnknownSigner": {"AUTH_BYPASS", "no verified key record for a signer"},
			"KeyMismatch":   {"KEY_SUBSTITUTION", "a key record other than the one whose fingerprint the log holds"},
			"NotMember":     {"AUTH_BYPASS", "a non-member signs, or a non-member is changed or removed"},
			"AlreadyMember": {"EDGE_CASE", "a member added twice"},
			"BadSubject":    {"AUTH_BYPASS", "a rotate or leave naming someone other than the signer"},
			"NoAuthority":   {"AUTH_BYPASS", "a member acting beyond its role"},
			"LastOwner":     {"EDGE_CASE", "the vault would be left without an owner"},
			"Generation":    {"AUTH_BYPASS", "a key generation out of step"},
			"Invitation":    {"AUTH_BYPASS", "nothing this account trusts vouches for the vault"},
			"NotAMember":    {"EDGE_CASE", "the log does not list this account with its key"},
			"Rollback":      {"ROLLBACK", "an older log than the one seen"},
			"Fork":          {"ROLLBACK", "a log that does not extend the one seen"},
		},
		TestGroups: []LogGroup{eg, pg, rg, og},
	})
}

// ------------------------------------------------------------- manifest.json

func manifestJSON(m manifest.Manifest) *ManifestJSON {
	return &ManifestJSON{VaultID: m.VaultID.String(), Version: dec(m.Version), Prev: bytes.Clone(m.Prev[:]), KeyGeneration: dec(m.KeyGeneration),
		LogSeq: dec(m.LogSeq), LogHash: bytes.Clone(m.LogHash[:]), MetaRevision: dec(m.MetaRevision), SecretCount: dec(m.SecretCount), ItemsDigest: bytes.Clone(m.ItemsDigest[:])}
}

func itemsJSON(items []manifest.Item) []ItemJSON {
	var out []ItemJSON
	for _, it := range items {
		out = append(out, ItemJSON{it.ID.String(), dec(it.Revision), dec(it.Generation)})
	}
	return out
}

func genManifest(t *testing.T) []byte {
	r := seeded("manifest")
	next := counter()
	vault := newUUID(r)
	alice, bob, carol, dave, mallory := newMember(t, r, "alice"), newMember(t, r, "bob"), newMember(t, r, "carol"), newMember(t, r, "dave"), newMember(t, r, "mallory")
	var keys []IdentityJSON
	var idents []trust.Identity
	for _, m := range []member{alice, bob, carol, dave, mallory} {
		keys = append(keys, identJSON(m.ident))
		idents = append(idents, m.ident)
	}
	lb := newLogBuilder(t, r, vault, idents, alice)
	lb.add(alice, memberlog.OpAdd, bob, "editor")   // 2
	lb.add(alice, memberlog.OpAdd, carol, "viewer") // 3
	lb.add(alice, memberlog.OpAdd, dave, "admin")   // 4
	at4 := lb.s.Clone()
	lb.add(alice, memberlog.OpRemove, bob, "") // 5: generation 2
	at5 := lb.s.Clone()
	lb.add(alice, memberlog.OpAdd, mallory, "viewer") // 6
	at6 := lb.s

	items := func(n int, gen uint64) []manifest.Item {
		out := make([]manifest.Item, n)
		for i := range out {
			out[i] = manifest.Item{ID: newUUID(r), Revision: uint64(i%3 + 1), Generation: gen}
		}
		return out
	}
	sign := func(m manifest.Manifest, by member) manifest.Signed {
		return must[manifest.Signed](t)(manifest.Sign(m, by.id, by.priv))
	}
	nextM := func(prev *manifest.Signed, log *memberlog.State, meta uint64, it []manifest.Item) manifest.Manifest {
		return must[manifest.Manifest](t)(manifest.Next(prev, log, meta, it))
	}

	fg := ManifestGroup{Type: "manifest"}
	it1 := items(3, 1)
	m1 := nextM(nil, at4, 1, it1)
	s1 := sign(m1, bob)
	it2 := append(slices.Clone(it1), items(2, 1)...)
	m2 := nextM(&s1, at4, 2, it2)
	for _, c := range []struct {
		comment string
		m       manifest.Manifest
	}{{"version 1", m1}, {"version 2", m2}} {
		fg.Tests = append(fg.Tests, ManifestTest{Case: Case{next(), c.comment, []string{}}, Manifest: manifestJSON(c.m), Message: must[[]byte](t)(c.m.Marshal()), Outcome: Outcome{Result: "valid"}})
	}
	pg := ManifestGroup{Type: "parse"}
	good := must[[]byte](t)(m2.Marshal())
	edit := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	const offV = 22 + 16
	const offPrev, offGen = offV + 8, offV + 8 + 32
	for _, c := range []struct {
		comment string
		b       []byte
	}{
		{"one byte short", good[:len(good)-1]},
		{"one byte long", append(bytes.Clone(good), 0)},
		{"another label", edit(func(b []byte) { b[4] = '2' })},
		{"version 0", edit(func(b []byte) { clear(b[offV : offV+8]) })},
		{"version 1 with a previous hash", edit(func(b []byte) { binary.BigEndian.PutUint64(b[offV:], 1) })},
		{"version 2 without a previous hash", edit(func(b []byte) { clear(b[offPrev : offPrev+32]) })},
		{"key generation 0", edit(func(b []byte) { clear(b[offGen : offGen+8]) })},
		{"log seq 0", edit(func(b []byte) { clear(b[offGen+8 : offGen+16]) })},
	} {
		pg.Tests = append(pg.Tests, ManifestTest{Case: Case{next(), c.comment, []string{"Malformed"}}, Message: c.b, Outcome: Outcome{"invalid", "malformed"}})
	}

	dg := ManifestGroup{Type: "digest"}
	unsorted := items(5, 2)
	dtest := func(comment string, it []manifest.Item, errClass string) {
		tc := ManifestTest{Case: Case{next(), comment, []string{}}, Items: itemsJSON(it), Outcome: Outcome{Result: "valid"}}
		if errClass != "" {
			tc.Outcome = Outcome{"invalid", errClass}
		} else {
			d := must[[32]byte](t)(manifest.Digest(it))
			tc.Digest = d[:]
		}
		dg.Tests = append(dg.Tests, tc)
	}
	dtest("no secrets: SHA-256 of nothing", nil, "")
	dtest("one secret", unsorted[:1], "")
	dtest("five secrets, listed out of id order (sort by id bytes first)", unsorted, "")
	dtest("a secret listed twice", append(slices.Clone(unsorted), unsorted[2]), "duplicate")

	ag := ManifestGroup{Type: "accept", VaultID: vault.String(), Keys: keys}
	for _, row := range lb.rows {
		m, s := row.Row()
		ag.Log = append(ag.Log, RowJSON{Message: m, Signature: s})
	}
	atest := func(comment, flag string, logLen uint64, s manifest.Signed, seen *manifest.Seen, listing []manifest.Item, meta uint64, errClass string) {
		ms, ss := s.Row()
		tc := ManifestTest{Case: Case{next(), comment, []string{}}, LogLength: dec(logLen), Row: &RowJSON{ms, ss, s.Signer.String()},
			Listing: itemsJSON(listing), MetaRevision: dec(meta), Outcome: Outcome{Result: "valid"}}
		if seen != nil {
			tc.Seen = &SeenJSON{dec(seen.Version), bytes.Clone(seen.Hash[:])}
		}
		if flag != "" {
			tc.Flags = []string{flag}
		}
		if errClass != "" {
			tc.Outcome = Outcome{"invalid", errClass}
		} else {
			log := at4
			if logLen == 6 {
				log = at6
			}
			ns := must[manifest.Seen](t)(manifest.Accept(s, log, orZero(seen), listing, meta))
			tc.NewSeen = &SeenJSON{dec(ns.Version), bytes.Clone(ns.Hash[:])}
		}
		ag.Tests = append(ag.Tests, tc)
	}
	s2 := sign(m2, dave)
	seen1 := s1.Seen()
	seen2 := s2.Seen()
	atest("version 1 by an editor, nothing seen", "", 4, s1, nil, it1, 1, "")
	atest("version 2 by an admin after version 1", "", 4, s2, &seen1, it2, 2, "")
	atest("version 2 again, the listing in another order", "", 4, s2, &seen2, reversed(it2), 2, "")
	atest("version 1 after version 2 was seen", "Rollback", 4, s1, &seen2, it1, 1, "rollback")
	other2 := sign(nextM(&s1, at4, 2, it1), alice)
	atest("another version 2 than the one seen", "Fork", 4, other2, &seen2, it1, 2, "fork")
	other3 := sign(nextM(&other2, at4, 3, it1), alice)
	atest("a version 3 that does not follow the version 2 seen", "Fork", 4, other3, &seen2, it1, 3, "fork")
	atest("one secret hidden", "Listing", 4, s2, &seen1, it2[1:], 2, "listing")
	deleted := items(1, 1)
	atest("a deleted secret brought back", "Listing", 4, s2, &seen1, append(slices.Clone(it2), deleted...), 2, "listing")
	older := slices.Clone(it2)
	older[0].Revision--
	atest("an older revision of a secret", "Listing", 4, s2, &seen1, older, 2, "listing")
	relabel := slices.Clone(it2)
	relabel[1].Generation = 2
	atest("a secret relabelled with another generation", "Listing", 4, s2, &seen1, relabel, 2, "listing")
	atest("an older vault row revision", "Listing", 4, s2, &seen1, it2, 1, "meta_revision")
	atest("signed by a viewer", "NoAuthority", 4, sign(m2, carol), &seen1, it2, 2, "no_authority")
	atest("signed by a non-member", "NotMember", 4, sign(m2, mallory), &seen1, it2, 2, "not_member")
	forged := sign(m2, mallory)
	forged.Signer = dave.id
	atest("the server's signature, dave named as signer", "BadSignature", 4, forged, &seen1, it2, 2, "bad_signature")
	wrongV := m2
	wrongV.VaultID[0] ^= 1
	atest("a manifest of another vault", "WrongVault", 4, sign(wrongV, dave), &seen1, it2, 2, "wrong_vault")
	beyond := m2
	beyond.LogSeq = 5
	atest("a log seq beyond this client's log", "LogMismatch", 4, sign(beyond, dave), &seen1, it2, 2, "log_mismatch")
	otherHash := m2
	otherHash.LogHash = at5.Head().Hash
	atest("another log's hash at that seq", "LogMismatch", 4, sign(otherHash, dave), &seen1, it2, 2, "log_mismatch")
	wrongGen := m2
	wrongGen.KeyGeneration = 2
	atest("a key generation other than the log's", "Generation", 4, sign(wrongGen, dave), &seen1, it2, 2, "generation")
	// After bob's removal (seq 5) the manifests written at seq 4 are stale,
	// and removed bob cannot sign one at seq 5 or later.
	atest("version 2 written before bob's removal, read after it", "Stale", 6, s2, &seen1, it2, 2, "stale")
	it3 := items(2, 2)
	m3 := nextM(&s2, at6, 3, it3)
	atest("version 3 by removed bob, naming the log after his removal", "NotMember", 6, sign(m3, bob), &seen2, it3, 3, "not_member")
	atest("version 3 by dave after the removal (generation 2)", "", 6, sign(m3, dave), &seen2, it3, 3, "")
	atest("a manifest written before the removal by bob, while he was an editor", "Stale", 6, sign(m2, bob), &seen1, it2, 2, "stale")

	return encode(t, File[ManifestGroup]{
		Algorithm: "ZSM-V1-VAULT-MANIFEST-ED25519-SHA256", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/crypto.md §10. message = \"zsm v1 vault-manifest\" || 0x00 || vault_id (16) || u64be(version) || prev (32) || u64be(key_generation) || u64be(log_seq) || log_hash (32) || u64be(meta_revision) || u64be(secret_count) || items_digest (32), exactly 174 bytes; version >= 1 with prev zero exactly at version 1; key_generation, log_seq >= 1. signature = Ed25519(signer, message); hash = SHA-256(message || signature).",
			"Group manifest: the fields encode to message and parse back. Group parse: refuse (malformed). Group digest: items_digest = SHA-256 over the items sorted by id bytes of id (16) || u64be(revision) || u64be(generation); an id twice is refused (duplicate).",
			"Group accept: replay the group's log (the first logLength rows, keys as in vault_log.json), then, in order: verify the row (signer column; classes malformed, wrong_vault, log_mismatch (log_seq not in the log or another hash), not_member (signer not a member at entry log_seq), bad_signature, no_authority (a viewer then), stale (log_seq before the newest remove/leave/change_role/rotate), generation (not the generation at log_seq)); check it against seen (rollback: lower version; fork: same version and another hash, or version seen+1 whose prev is not seen.hash); check the listing (listing: count or digest differs; meta_revision: metaRevision differs). Valid tests give newSeen, what the device remembers after.",
		},
		Notes: map[string]Note{
			"Malformed":    {"EDGE_CASE", "not a manifest"},
			"Rollback":     {"ROLLBACK", "an older manifest than the one seen"},
			"Fork":         {"ROLLBACK", "a manifest that does not extend the one seen"},
			"Listing":      {"AUTH_BYPASS", "a listing that differs from the signed set: hidden, resurrected, older or relabelled secrets, or an older vault row"},
			"NoAuthority":  {"AUTH_BYPASS", "a member who may not write"},
			"NotMember":    {"AUTH_BYPASS", "a signer who was not a member"},
			"BadSignature": {"AUTH_BYPASS", "not signed by the named signer"},
			"WrongVault":   {"AUTH_BYPASS", "a manifest of another vault"},
			"LogMismatch":  {"AUTH_BYPASS", "a manifest of another membership history"},
			"Generation":   {"AUTH_BYPASS", "a key generation other than the log's"},
			"Stale":        {"ROLLBACK", "a manifest from before a membership change"},
		},
		TestGroups: []ManifestGroup{fg, pg, dg, ag},
	})
}

func reversed[T any](s []T) []T {
	c := slices.Clone(s)
	slices.Reverse(c)
	return c
}

func orZero(s *manifest.Seen) manifest.Seen {
	if s == nil {
		return manifest.Seen{}
	}
	return *s
}
