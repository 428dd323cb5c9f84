package memberlog_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
)

func TestEntryLayout(t *testing.T) {
	e := memberlog.Entry{
		VaultID: vaultID, Seq: 2, Prev: [32]byte{1}, Op: memberlog.OpAdd, Subject: bob.id, Role: "editor",
		SubjectFP: bob.fp, Generation: 1, Signer: alice.id, UnixMilli: 1764400000000,
	}
	m, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	want = append(want, "zsm v1 vault-log\x00"...)
	want = append(want, vaultID[:]...)
	want = binary.BigEndian.AppendUint64(want, 2)
	want = append(want, e.Prev[:]...)
	want = append(want, 2)
	want = append(want, bob.id[:]...)
	want = append(want, 6)
	want = append(want, "editor"...)
	want = append(want, bob.fp[:]...)
	want = binary.BigEndian.AppendUint64(want, 1)
	want = append(want, make([]byte, 32)...)
	want = append(want, alice.id[:]...)
	want = binary.BigEndian.AppendUint64(want, 1764400000000)
	if !bytes.Equal(m, want) {
		t.Fatalf("Marshal =\n%x\nwant\n%x", m, want)
	}
	got, err := memberlog.Parse(m)
	if err != nil || got != e {
		t.Fatalf("Parse = %+v, %v", got, err)
	}
	r := sign(t, e, alice)
	h := sha256.Sum256(append(bytes.Clone(r.Message), r.Signature...))
	if r.Hash() != h {
		t.Fatal("hash is not SHA-256(message || signature)")
	}
	es, ss := r.Row()
	back, err := memberlog.ParseRow(es, ss)
	if err != nil || back.Entry != e || !bytes.Equal(back.Signature, r.Signature) {
		t.Fatalf("ParseRow: %v", err)
	}
	if got := e.Time(); !got.Equal(t0) {
		t.Fatalf("Time = %v", got)
	}
}

// TestParseStrict: every shape rule of docs/crypto.md §9 is refused as
// ErrMalformed, which is a kind of ErrTampered.
func TestParseStrict(t *testing.T) {
	l := team(t)
	base := l.rows[1].Entry // an add
	rem := l.entry(alice, memberlog.OpRemove, bob, "")
	// Bad shapes are made by editing the bytes of a good entry, since
	// Marshal refuses to write them.
	good, err := base.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	const (
		offSeq    = 17 + 16
		offPrev   = offSeq + 8
		offOp     = offPrev + 32
		offRoleN  = offOp + 1 + 16
		offRole   = offRoleN + 1
		offFP     = offRole + 6 // "editor"
		offGen    = offFP + 32
		offCommit = offGen + 8
	)
	cases := map[string][]byte{
		"empty":                nil,
		"label only":           []byte("zsm v1 vault-log\x00"),
		"other label":          edit(func(b []byte) []byte { b[4] = '2'; return b }),
		"no NUL after label":   edit(func(b []byte) []byte { b[16] = ' '; return b }),
		"truncated":            good[:len(good)-1],
		"trailing byte":        append(bytes.Clone(good), 0),
		"role length too long": edit(func(b []byte) []byte { b[offRoleN] = 7; return b }),
		"role length short":    edit(func(b []byte) []byte { b[offRoleN] = 5; return b }),
		"seq 0":                edit(func(b []byte) []byte { clear(b[offSeq : offSeq+8]); return b }),
		"seq 1 with a prev": edit(func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[offSeq:], 1)
			return b
		}),
		"op 0":                 edit(func(b []byte) []byte { b[offOp] = 0; return b }),
		"op 7":                 edit(func(b []byte) []byte { b[offOp] = 7; return b }),
		"role unknown":         edit(func(b []byte) []byte { copy(b[offRole:], "editer"); return b }),
		"role upper case":      edit(func(b []byte) []byte { copy(b[offRole:], "Editor"); return b }),
		"add with zero fp":     edit(func(b []byte) []byte { clear(b[offFP : offFP+32]); return b }),
		"add with commitment":  edit(func(b []byte) []byte { b[offCommit] = 1; return b }),
		"generation 0":         edit(func(b []byte) []byte { clear(b[offGen : offGen+8]); return b }),
		"add relabelled leave": edit(func(b []byte) []byte { b[offOp] = byte(memberlog.OpLeave); return b }),
	}
	// A remove: no role, no fingerprint, a commitment.
	rm, _ := rem.Marshal()
	rOffGen := offRole + 32
	cases["remove with a fingerprint"] = func() []byte { b := bytes.Clone(rm); b[offRole] = 1; return b }()
	cases["remove without commitment"] = func() []byte { b := bytes.Clone(rm); clear(b[rOffGen+8 : rOffGen+40]); return b }()
	for name, m := range cases {
		if _, err := memberlog.Parse(m); !errors.Is(err, memberlog.ErrMalformed) || !errors.Is(err, memberlog.ErrTampered) {
			t.Errorf("%s: Parse err = %v", name, err)
		}
	}
	// Marshal refuses the same shapes.
	for name, e := range map[string]memberlog.Entry{
		"remove with role":     func() memberlog.Entry { e := rem; e.Role = "viewer"; return e }(),
		"add without role":     func() memberlog.Entry { e := base; e.Role = ""; return e }(),
		"add without fp":       func() memberlog.Entry { e := base; e.SubjectFP = trust.Fingerprint{}; return e }(),
		"rotate without c":     func() memberlog.Entry { e := rem; e.Op = memberlog.OpRotate; e.Commitment = [32]byte{}; return e }(),
		"role of 256 bytes":    func() memberlog.Entry { e := base; e.Role = string(make([]byte, 256)); return e }(),
		"seq 1 with prev hash": func() memberlog.Entry { e := base; e.Seq = 1; return e }(),
	} {
		if _, err := e.Marshal(); !errors.Is(err, memberlog.ErrMalformed) {
			t.Errorf("Marshal %s: %v", name, err)
		}
	}
	es, ss := l.rows[1].Row()
	for name, row := range map[string][2]string{
		"entry unpadded":      {base64.RawStdEncoding.EncodeToString(l.rows[1].Message), ss},
		"entry with newline":  {es[:10] + "\n" + es[10:], ss},
		"empty entry":         {"", ss},
		"signature 63 bytes":  {es, base64.StdEncoding.EncodeToString(l.rows[1].Signature[:63])},
		"signature url":       {es, base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 64))},
		"signature not given": {es, ""},
	} {
		if _, err := memberlog.ParseRow(row[0], row[1]); !errors.Is(err, memberlog.ErrMalformed) {
			t.Errorf("ParseRow %s: %v", name, err)
		}
	}
}

// TestReplay replays a log with every operation and checks what it derives.
func TestReplay(t *testing.T) {
	l := team(t)                                             // 1 create alice, 2 add bob editor, 3 add carol viewer, 4 add dave admin
	l.append(dave, memberlog.OpAdd, erin, "viewer")          // 5
	l.append(alice, memberlog.OpChangeRole, carol, "editor") // 6
	l.append(alice, memberlog.OpRemove, bob, "")             // 7: generation 2
	l.append(dave, memberlog.OpRotate, dave, "")             // 8: generation 3
	l.append(erin, memberlog.OpLeave, erin, "")              // 9
	s, err := memberlog.Replay(vaultID, l.rows, allKeys)
	if err != nil {
		t.Fatal(err)
	}
	type m struct {
		id   uuid.UUID
		role string
	}
	var got []m
	for _, x := range s.Members() {
		got = append(got, m{x.UserID, x.Role})
	}
	want := []m{{alice.id, "owner"}, {carol.id, "editor"}, {dave.id, "admin"}}
	if !slices.Equal(got, want) {
		t.Fatalf("members = %v, want %v", got, want)
	}
	c, _ := s.Member(carol.id)
	if c.Fingerprint != carol.fp || c.AddedBy != alice.id || c.AddedSeq != 3 || !bytes.Equal(c.Ed25519Public, carol.ident.Ed25519Public) {
		t.Fatalf("carol = %+v", c)
	}
	if s.Generation() != 3 || s.LastCut() != 9 || !s.RotationDue() {
		t.Fatalf("generation %d, last cut %d, rotation due %v", s.Generation(), s.LastCut(), s.RotationDue())
	}
	for g := uint64(1); g <= 3; g++ {
		if err := s.CheckVaultKey(g, vaultKey(g)); err != nil {
			t.Errorf("generation %d: %v", g, err)
		}
	}
	if err := s.CheckVaultKey(3, vaultKey(2)); !errors.Is(err, grant.ErrKeyCommitment) {
		t.Errorf("key of 2 as 3: %v", err)
	}
	if err := s.CheckVaultKey(4, vaultKey(4)); !errors.Is(err, grant.ErrKeyCommitment) {
		t.Errorf("generation 4: %v", err)
	}
	if len(s.Commitments()) != 3 {
		t.Fatal("commitments")
	}
	// History: roles and generations at each point.
	for _, c := range []struct {
		user uuid.UUID
		seq  uint64
		role string
	}{
		{bob.id, 1, ""}, {bob.id, 2, "editor"}, {bob.id, 6, "editor"}, {bob.id, 7, ""}, {bob.id, 9, ""},
		{carol.id, 5, "viewer"}, {carol.id, 6, "editor"}, {erin.id, 8, "viewer"}, {erin.id, 9, ""},
		{alice.id, 1, "owner"}, {alice.id, 10, ""},
	} {
		role, _, ok := s.RoleAt(c.user, c.seq)
		if role != c.role || ok != (c.role != "") {
			t.Errorf("RoleAt(%v, %d) = %q, %v; want %q", c.user, c.seq, role, ok, c.role)
		}
	}
	for seq, g := range []uint64{1, 1, 1, 1, 1, 1, 2, 3, 3} {
		if got, _ := s.GenerationAt(uint64(seq + 1)); got != g {
			t.Errorf("GenerationAt(%d) = %d, want %d", seq+1, got, g)
		}
	}
	if k, role, err := s.KeyAt(bob.id, 6); err != nil || role != "editor" || !bytes.Equal(k, bob.ident.Ed25519Public) {
		t.Errorf("KeyAt(bob, 6) = %v, %v", role, err)
	}
	if _, _, err := s.KeyAt(bob.id, 7); !errors.Is(err, memberlog.ErrNotMember) {
		t.Errorf("KeyAt(bob, 7): %v", err)
	}
	h := s.Head()
	if h.Seq != 9 || h.Hash != l.rows[8].Hash() {
		t.Fatalf("head = %+v", h)
	}
	if hh, ok := s.HashAt(4); !ok || hh != l.rows[3].Hash() {
		t.Fatal("HashAt(4)")
	}
	if _, ok := s.HashAt(10); ok {
		t.Fatal("HashAt(10)")
	}
	// Rows round-trip through their stored text form.
	var parsed []memberlog.Signed
	for _, r := range l.rows {
		e, sg := r.Row()
		p, err := memberlog.ParseRow(e, sg)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, p)
	}
	if s2, err := memberlog.Replay(vaultID, parsed, allKeys); err != nil || s2.Head() != h {
		t.Fatalf("replay of parsed rows: %v", err)
	}
	// A rotate after the leave clears the due rotation.
	l.append(alice, memberlog.OpRotate, alice, "")
	if l.s.RotationDue() || l.s.Generation() != 4 {
		t.Fatal("rotation still due")
	}
}

// refuse replays rows and checks the exact refusal.
func refuse(t *testing.T, name string, rows []memberlog.Signed, keys []trust.Identity, want error) {
	t.Helper()
	_, err := memberlog.Replay(vaultID, rows, keys)
	if !errors.Is(err, want) {
		t.Errorf("%s: Replay err = %v, want %v", name, err, want)
		return
	}
	if !errors.Is(err, memberlog.ErrTampered) {
		t.Errorf("%s: %v is not ErrTampered", name, err)
	}
}

// with returns l's rows followed by one more entry, built by edit from the
// entry a correct client would write and signed by signer.
func with(l *log, signer user, op memberlog.Op, subject user, role string, edit func(*memberlog.Entry)) []memberlog.Signed {
	e := l.entry(signer, op, subject, role)
	if edit != nil {
		edit(&e)
	}
	return append(slices.Clone(l.rows), sign(l.t, e, signer))
}

// TestChainRules: the server reorders, drops, inserts or moves entries.
func TestChainRules(t *testing.T) {
	l := team(t)
	rows := l.rows
	refuse(t, "entries reordered", []memberlog.Signed{rows[0], rows[2], rows[1], rows[3]}, allKeys, memberlog.ErrBrokenChain)
	refuse(t, "an entry dropped", []memberlog.Signed{rows[0], rows[1], rows[3]}, allKeys, memberlog.ErrBrokenChain)
	refuse(t, "an entry repeated", []memberlog.Signed{rows[0], rows[1], rows[1]}, allKeys, memberlog.ErrBrokenChain)
	refuse(t, "seq skips one", with(l, alice, memberlog.OpAdd, erin, "viewer", func(e *memberlog.Entry) { e.Seq++ }), allKeys, memberlog.ErrBrokenChain)
	refuse(t, "prev hash of another entry", with(l, alice, memberlog.OpAdd, erin, "viewer", func(e *memberlog.Entry) { e.Prev = rows[2].Hash() }), allKeys, memberlog.ErrBrokenChain)
	refuse(t, "entry of another vault", with(l, alice, memberlog.OpAdd, erin, "viewer", func(e *memberlog.Entry) { e.VaultID[0] ^= 1 }), allKeys, memberlog.ErrWrongVault)
	// An entry of another vault's log, inserted whole.
	other := newLogIn(t, uuid.MustParse("0190a3b4-0000-7000-8000-00000000000b"), alice)
	refuse(t, "first entry of another vault", other.rows, allKeys, memberlog.ErrWrongVault)
	// A signature changed: the hash changes, so the next entry no longer
	// chains (and the entry itself does not verify).
	bad := slices.Clone(rows)
	bad[1].Signature = bytes.Clone(bad[1].Signature)
	bad[1].Signature[0] ^= 1
	refuse(t, "signature flipped", bad, allKeys, memberlog.ErrBadSignature)
	// The server edits a signed entry: bob raised to owner.
	bad = slices.Clone(rows)
	e := bad[1].Entry
	e.Role = "owner"
	m, _ := e.Marshal()
	bad[1] = memberlog.Signed{Entry: e, Message: m, Signature: rows[1].Signature}
	refuse(t, "role raised after signing", bad, allKeys, memberlog.ErrBadSignature)
	// Message and fields that disagree (a hand-built row).
	bad = slices.Clone(rows)
	bad[2].Entry.Role = "admin"
	refuse(t, "fields differ from the message", bad, allKeys, memberlog.ErrMalformed)
}

func newLogIn(t *testing.T, vault uuid.UUID, creator user) *log {
	s, _ := memberlog.New(vault, allKeys...)
	l := &log{t: t, s: s, now: t0}
	var fp = creator.fp
	c, _ := grant.KeyCommitment(vaultKey(1), vault, 1)
	l.push(sign(t, s.Next(memberlog.OpCreate, creator.id, "owner", fp, c, creator.id, t0), creator))
	return l
}

func TestCreateRules(t *testing.T) {
	empty := &log{t: t}
	empty.s, _ = memberlog.New(vaultID, allKeys...)
	refuse(t, "empty log", nil, allKeys, memberlog.ErrBadCreate)
	refuse(t, "first entry is an add", []memberlog.Signed{sign(t, func() memberlog.Entry {
		e := empty.entry(alice, memberlog.OpAdd, bob, "editor")
		return e
	}(), alice)}, allKeys, memberlog.ErrBadCreate)
	for name, edit := range map[string]func(*memberlog.Entry){
		"create by another than its subject": func(e *memberlog.Entry) { e.Subject = bob.id; e.SubjectFP = bob.fp },
		"create as admin":                    func(e *memberlog.Entry) { e.Role = "admin" },
		"create at generation 2":             func(e *memberlog.Entry) { e.Generation = 2 },
	} {
		refuse(t, name, with(empty, alice, memberlog.OpCreate, alice, "owner", edit), allKeys, memberlog.ErrBadCreate)
	}
	l := team(t)
	refuse(t, "a second create", with(l, bob, memberlog.OpCreate, bob, "owner", nil), allKeys, memberlog.ErrBadCreate)
	// The creator's key record is not among the verified ones, or the
	// server gives another record for the creator.
	refuse(t, "creator without a key record", l.rows, []trust.Identity{bob.ident}, memberlog.ErrUnknownSigner)
	forged := alice.ident
	forged.Ed25519Public = mallory.ident.Ed25519Public
	refuse(t, "creator's record substituted", l.rows, []trust.Identity{forged, bob.ident}, memberlog.ErrKeyMismatch)
}

// forge returns l's rows and one entry that names claimed as its signer but
// is signed with key's key: the server writing an entry in a member's name.
func forge(l *log, claimed, key user, op memberlog.Op, subject user, role string) []memberlog.Signed {
	e := l.entry(claimed, op, subject, role)
	return append(slices.Clone(l.rows), sign(l.t, e, key))
}

// TestSignerRules: the server adds a member in a member's name, has a
// non-member sign, or swaps a member's key record.
func TestSignerRules(t *testing.T) {
	l := team(t)
	refuse(t, "the server signs an add as alice", forge(l, alice, mallory, memberlog.OpAdd, mallory, "owner"), allKeys, memberlog.ErrBadSignature)
	refuse(t, "the server signs a role change as alice", forge(l, alice, mallory, memberlog.OpChangeRole, carol, "owner"), allKeys, memberlog.ErrBadSignature)
	refuse(t, "a non-member adds itself", with(l, mallory, memberlog.OpAdd, mallory, "viewer", nil), allKeys, memberlog.ErrNotMember)
	// Bob's key record is substituted by one with the server's key: the
	// logged fingerprint no longer matches, so bob's entries are refused
	// (and nothing signed by the server's key passes as bob's).
	withBob := with(l, bob, memberlog.OpLeave, bob, "", nil)
	forgedBob := bob.ident
	forgedBob.Ed25519Public = mallory.ident.Ed25519Public
	refuse(t, "bob's key record substituted", withBob, []trust.Identity{alice.ident, forgedBob}, memberlog.ErrKeyMismatch)
	refuse(t, "no key record for bob", withBob, []trust.Identity{alice.ident}, memberlog.ErrUnknownSigner)
	// The added member's key is not needed until they sign.
	if _, err := memberlog.Replay(vaultID, l.rows, []trust.Identity{alice.ident}); err != nil {
		t.Errorf("replay with only the signer's key: %v", err)
	}
	// A removed member cannot sign again, not even to add itself back.
	l.append(alice, memberlog.OpRemove, bob, "")
	refuse(t, "removed bob re-adds himself", with(l, bob, memberlog.OpAdd, bob, "editor", nil), allKeys, memberlog.ErrNotMember)
	refuse(t, "removed bob removes carol", with(l, bob, memberlog.OpRemove, carol, "", nil), allKeys, memberlog.ErrNotMember)
}

func TestMembershipRules(t *testing.T) {
	l := team(t)
	refuse(t, "add a member twice", with(l, alice, memberlog.OpAdd, bob, "viewer", nil), allKeys, memberlog.ErrAlreadyMember)
	refuse(t, "change the role of a non-member", with(l, alice, memberlog.OpChangeRole, erin, "viewer", nil), allKeys, memberlog.ErrNotMember)
	refuse(t, "remove a non-member", with(l, alice, memberlog.OpRemove, erin, "", nil), allKeys, memberlog.ErrNotMember)
	refuse(t, "rotate naming another subject", with(l, alice, memberlog.OpRotate, bob, "", nil), allKeys, memberlog.ErrBadSubject)
	refuse(t, "leave on someone else's behalf", with(l, dave, memberlog.OpLeave, bob, "", nil), allKeys, memberlog.ErrBadSubject)
	// Re-adding a removed member takes a new add entry by someone with
	// authority; that is allowed.
	l.append(alice, memberlog.OpRemove, bob, "")
	l.append(dave, memberlog.OpAdd, bob, "viewer")
	if m, ok := l.s.Member(bob.id); !ok || m.Role != "viewer" || m.AddedBy != dave.id {
		t.Fatalf("re-added bob = %+v", m)
	}
}

// TestAuthority: owners manage anyone; admins only editors and viewers;
// editors and viewers manage nobody; owners and admins rotate.
func TestAuthority(t *testing.T) {
	l := team(t) // alice owner, bob editor, carol viewer, dave admin
	l.append(alice, memberlog.OpAdd, erin, "owner")
	for _, c := range []struct {
		name    string
		signer  user
		op      memberlog.Op
		subject user
		role    string
	}{
		{"an editor adds", bob, memberlog.OpAdd, mallory, "viewer"},
		{"a viewer adds", carol, memberlog.OpAdd, mallory, "viewer"},
		{"an admin adds an owner", dave, memberlog.OpAdd, mallory, "owner"},
		{"an admin adds an admin", dave, memberlog.OpAdd, mallory, "admin"},
		{"an admin promotes an editor to admin", dave, memberlog.OpChangeRole, bob, "admin"},
		{"an admin promotes itself to owner", dave, memberlog.OpChangeRole, dave, "owner"},
		{"an admin demotes an owner", dave, memberlog.OpChangeRole, erin, "viewer"},
		{"an admin removes an owner", dave, memberlog.OpRemove, alice, ""},
		{"an editor promotes itself", bob, memberlog.OpChangeRole, bob, "admin"},
		{"an editor removes a viewer", bob, memberlog.OpRemove, carol, ""},
		{"a viewer removes an editor", carol, memberlog.OpRemove, bob, ""},
		{"an editor rotates", bob, memberlog.OpRotate, bob, ""},
		{"a viewer rotates", carol, memberlog.OpRotate, carol, ""},
	} {
		refuse(t, c.name, with(l, c.signer, c.op, c.subject, c.role, nil), allKeys, memberlog.ErrNoAuthority)
	}
	// What each may do.
	for _, c := range []struct {
		name    string
		signer  user
		op      memberlog.Op
		subject user
		role    string
	}{
		{"an admin adds an editor", dave, memberlog.OpAdd, mallory, "editor"},
		{"an admin changes a viewer to editor", dave, memberlog.OpChangeRole, carol, "editor"},
		{"an admin removes an editor", dave, memberlog.OpRemove, bob, ""},
		{"an admin rotates", dave, memberlog.OpRotate, dave, ""},
		{"an owner removes an admin", alice, memberlog.OpRemove, dave, ""},
		{"an owner removes another owner", alice, memberlog.OpRemove, erin, ""},
		{"an owner promotes an admin to owner", erin, memberlog.OpChangeRole, dave, "owner"},
		{"an editor leaves", bob, memberlog.OpLeave, bob, ""},
		{"a viewer leaves", carol, memberlog.OpLeave, carol, ""},
		{"an owner leaves while another owner stays", erin, memberlog.OpLeave, erin, ""},
	} {
		if _, err := memberlog.Replay(vaultID, with(l, c.signer, c.op, c.subject, c.role, nil), allKeys); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestLastOwner(t *testing.T) {
	l := team(t)
	refuse(t, "the last owner leaves", with(l, alice, memberlog.OpLeave, alice, "", nil), allKeys, memberlog.ErrLastOwner)
	refuse(t, "the last owner removes itself", with(l, alice, memberlog.OpRemove, alice, "", nil), allKeys, memberlog.ErrLastOwner)
	refuse(t, "the last owner demotes itself", with(l, alice, memberlog.OpChangeRole, alice, "admin", nil), allKeys, memberlog.ErrLastOwner)
	l.append(alice, memberlog.OpAdd, erin, "owner")
	if _, err := memberlog.Replay(vaultID, with(l, alice, memberlog.OpLeave, alice, "", nil), allKeys); err != nil {
		t.Errorf("an owner leaves while another stays: %v", err)
	}
	l.append(erin, memberlog.OpRemove, alice, "")
	refuse(t, "the new last owner leaves", with(l, erin, memberlog.OpLeave, erin, "", nil), allKeys, memberlog.ErrLastOwner)
}

// TestGenerationRules: remove and rotate make exactly the next generation;
// every other entry keeps the current one.
func TestGenerationRules(t *testing.T) {
	l := team(t)
	plus := func(n int64) func(*memberlog.Entry) {
		return func(e *memberlog.Entry) { e.Generation = uint64(int64(e.Generation) + n) }
	}
	refuse(t, "an add raises the generation", with(l, alice, memberlog.OpAdd, erin, "viewer", plus(1)), allKeys, memberlog.ErrGeneration)
	refuse(t, "a role change raises the generation", with(l, alice, memberlog.OpChangeRole, bob, "viewer", plus(1)), allKeys, memberlog.ErrGeneration)
	refuse(t, "a leave raises the generation", with(l, bob, memberlog.OpLeave, bob, "", plus(1)), allKeys, memberlog.ErrGeneration)
	refuse(t, "a remove keeps the generation", with(l, alice, memberlog.OpRemove, bob, "", plus(-1)), allKeys, memberlog.ErrGeneration)
	refuse(t, "a remove skips a generation", with(l, alice, memberlog.OpRemove, bob, "", plus(1)), allKeys, memberlog.ErrGeneration)
	refuse(t, "a rotate skips a generation", with(l, alice, memberlog.OpRotate, alice, "", plus(1)), allKeys, memberlog.ErrGeneration)
}

// TestApplyLeavesStateOnError: a refused entry changes nothing.
func TestApplyLeavesStateOnError(t *testing.T) {
	l := team(t)
	before := l.s.Head()
	members := len(l.s.Members())
	bad := with(l, alice, memberlog.OpRemove, bob, "", func(e *memberlog.Entry) { e.Generation = 7 })
	if err := l.s.Apply(bad[len(bad)-1]); !errors.Is(err, memberlog.ErrGeneration) {
		t.Fatalf("Apply = %v", err)
	}
	if l.s.Head() != before || len(l.s.Members()) != members || l.s.Generation() != 1 {
		t.Fatal("a refused entry changed the state")
	}
	c := l.s.Clone()
	l.append(alice, memberlog.OpRemove, bob, "")
	if c.Head() != before || len(c.Members()) != members {
		t.Fatal("Clone shares state")
	}
}

// TestHead: the server shows this device an older log, or one that forks
// from the head it remembers.
func TestHead(t *testing.T) {
	l := team(t)
	seen := l.s.Head()
	l.append(alice, memberlog.OpRemove, bob, "")
	newer := slices.Clone(l.rows)
	s, err := memberlog.Replay(vaultID, newer, allKeys)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckHead(seen); err != nil {
		t.Errorf("a log extending the head: %v", err)
	}
	if err := s.CheckHead(s.Head()); err != nil {
		t.Errorf("the same log: %v", err)
	}
	if err := s.CheckHead(memberlog.Head{}); err != nil {
		t.Errorf("nothing remembered: %v", err)
	}
	// Rollback: the log before bob's removal, to a device that saw it.
	old, _ := memberlog.Replay(vaultID, newer[:4], allKeys)
	err = old.CheckHead(s.Head())
	if !errors.Is(err, memberlog.ErrRollback) || errors.Is(err, memberlog.ErrTampered) {
		t.Errorf("shorter log: %v", err)
	}
	// Fork: another valid fifth entry (alice removes carol instead).
	fork := team(t)
	fork.append(alice, memberlog.OpRemove, carol, "")
	f, err := memberlog.Replay(vaultID, fork.rows, allKeys)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CheckHead(s.Head()); !errors.Is(err, memberlog.ErrFork) || !errors.Is(err, memberlog.ErrTampered) {
		t.Errorf("forked log: %v", err)
	}
	// A fork that is longer than the remembered head.
	fork.append(alice, memberlog.OpAdd, erin, "viewer")
	f, _ = memberlog.Replay(vaultID, fork.rows, allKeys)
	if err := f.CheckHead(s.Head()); !errors.Is(err, memberlog.ErrFork) {
		t.Errorf("longer forked log: %v", err)
	}
}

func pins(vouched ...user) func(uuid.UUID, trust.Fingerprint) bool {
	return func(id uuid.UUID, fp trust.Fingerprint) bool {
		for _, u := range vouched {
			if u.id == id && u.fp == fp {
				return true
			}
		}
		return false
	}
}

// TestAnchor: a vault opens for its creator, or for a member added by a
// pinned member; otherwise it is an invitation.
func TestAnchor(t *testing.T) {
	l := team(t)
	l.append(dave, memberlog.OpAdd, erin, "viewer")
	if inv, err := l.s.Anchor(alice.id, alice.fp, nil); err != nil || !inv.Creator {
		t.Errorf("creator: %+v, %v", inv, err)
	}
	if inv, err := l.s.Anchor(bob.id, bob.fp, pins(alice)); err != nil || inv.By != alice.id {
		t.Errorf("bob added by pinned alice: %+v, %v", inv, err)
	}
	inv, err := l.s.Anchor(bob.id, bob.fp, pins(carol))
	if !errors.Is(err, memberlog.ErrInvitation) || inv.By != alice.id || inv.Fingerprint != alice.fp || inv.Seq != 2 {
		t.Errorf("bob, alice not pinned: %+v, %v", inv, err)
	}
	// Erin was added by dave: pinning alice is not enough; the anchor is
	// the member who added her.
	if _, err := l.s.Anchor(erin.id, erin.fp, pins(alice)); !errors.Is(err, memberlog.ErrInvitation) {
		t.Errorf("erin, dave not pinned: %v", err)
	}
	if _, err := l.s.Anchor(erin.id, erin.fp, pins(dave)); err != nil {
		t.Errorf("erin, dave pinned: %v", err)
	}
	// A pin of dave under another key does not vouch for the dave of the
	// log.
	otherDave := dave
	otherDave.fp = mallory.fp
	if _, err := l.s.Anchor(erin.id, erin.fp, pins(otherDave)); !errors.Is(err, memberlog.ErrInvitation) {
		t.Errorf("dave pinned with another key: %v", err)
	}
	// A vault the server made, "inviting" bob: mallory creates and adds
	// bob; bob has not pinned mallory.
	planted := newLog(t, mallory)
	planted.append(mallory, memberlog.OpAdd, bob, "editor")
	if _, err := planted.s.Anchor(bob.id, bob.fp, pins(alice)); !errors.Is(err, memberlog.ErrInvitation) {
		t.Errorf("planted vault: %v", err)
	}
	if _, err := l.s.Anchor(mallory.id, mallory.fp, pins(alice)); !errors.Is(err, memberlog.ErrNotAMember) {
		t.Errorf("not a member: %v", err)
	}
	if _, err := l.s.Anchor(bob.id, mallory.fp, pins(alice)); !errors.Is(err, memberlog.ErrNotAMember) {
		t.Errorf("bob with another key: %v", err)
	}
	l.append(alice, memberlog.OpRemove, bob, "")
	if _, err := l.s.Anchor(bob.id, bob.fp, pins(alice)); !errors.Is(err, memberlog.ErrNotAMember) {
		t.Errorf("removed bob: %v", err)
	}
}

func TestOpen(t *testing.T) {
	l := team(t)
	s, inv, err := memberlog.Open(vaultID, l.rows, allKeys, memberlog.Head{}, bob.id, bob.fp, pins(alice))
	if err != nil || inv.By != alice.id || s.Head().Seq != 4 {
		t.Fatalf("Open: %v", err)
	}
	seen := s.Head()
	// Rollback is reported before replaying.
	if _, _, err := memberlog.Open(vaultID, l.rows[:3], allKeys, seen, bob.id, bob.fp, pins(alice)); !errors.Is(err, memberlog.ErrRollback) {
		t.Errorf("shorter: %v", err)
	}
	fork := newLog(t, alice)
	fork.append(alice, memberlog.OpAdd, bob, "viewer")
	fork.append(alice, memberlog.OpAdd, carol, "viewer")
	fork.append(alice, memberlog.OpAdd, dave, "admin")
	if _, _, err := memberlog.Open(vaultID, fork.rows, allKeys, seen, bob.id, bob.fp, pins(alice)); !errors.Is(err, memberlog.ErrFork) {
		t.Errorf("fork: %v", err)
	}
	bad := slices.Clone(l.rows)
	bad[2], bad[3] = bad[3], bad[2]
	if _, _, err := memberlog.Open(vaultID, bad, allKeys, memberlog.Head{}, bob.id, bob.fp, pins(alice)); !errors.Is(err, memberlog.ErrBrokenChain) {
		t.Errorf("broken: %v", err)
	}
	s, inv, err = memberlog.Open(vaultID, l.rows, allKeys, memberlog.Head{}, bob.id, bob.fp, nil)
	if !errors.Is(err, memberlog.ErrInvitation) || s == nil || inv.By != alice.id {
		t.Errorf("invitation: %v", err)
	}
	if _, _, err := memberlog.Open(vaultID, l.rows, allKeys, memberlog.Head{}, erin.id, erin.fp, pins(alice)); !errors.Is(err, memberlog.ErrNotAMember) {
		t.Errorf("not a member: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	l := team(f)
	for _, r := range l.rows {
		f.Add(r.Message)
	}
	f.Add(sign(f, l.entry(alice, memberlog.OpRemove, bob, ""), alice).Message)
	f.Fuzz(func(t *testing.T, m []byte) {
		e, err := memberlog.Parse(m)
		if err != nil {
			if !errors.Is(err, memberlog.ErrMalformed) {
				t.Fatalf("error of no known class: %v", err)
			}
			return
		}
		back, err := e.Marshal()
		if err != nil || !bytes.Equal(back, m) {
			t.Fatalf("Marshal(Parse(m)) = %x, %v; want %x", back, err, m)
		}
		// A fuzzed entry never replays as a valid log by itself unless it is
		// a create self-signed by a known key, which fuzzing cannot sign.
		if _, err := memberlog.Replay(e.VaultID, []memberlog.Signed{{Entry: e, Message: m, Signature: make([]byte, ed25519.SignatureSize)}}, allKeys); err == nil {
			t.Fatal("a fuzzed entry with a zero signature replayed")
		}
	})
}
