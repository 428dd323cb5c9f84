package memberlog_test

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
)

var (
	vaultID = uuid.MustParse("0190a3b4-0000-7000-8000-00000000000a")
	t0      = time.UnixMilli(1764400000000).UTC()
)

// user is an account with its signing key and what its key record says.
type user struct {
	id    uuid.UUID
	priv  ed25519.PrivateKey
	ident trust.Identity
	fp    trust.Fingerprint
}

func newUser(name string, n byte) user {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, 32))
	id := uuid.MustParse("0190a3b4-0000-7000-8000-0000000000" + string("0123456789abcdef"[n>>4]) + string("0123456789abcdef"[n&15]))
	ident := trust.Identity{UserID: id, Identity: name + "@example.com", Ed25519Public: priv.Public().(ed25519.PublicKey)}
	fp, err := ident.Fingerprint()
	if err != nil {
		panic(err)
	}
	return user{id, priv, ident, fp}
}

var (
	alice   = newUser("alice", 0xa1)
	bob     = newUser("bob", 0xb0)
	carol   = newUser("carol", 0xc0)
	dave    = newUser("dave", 0xd0)
	erin    = newUser("erin", 0xe0)
	mallory = newUser("mallory", 0x66) // the server's own account
	allKeys = []trust.Identity{alice.ident, bob.ident, carol.ident, dave.ident, erin.ident, mallory.ident}
)

// vaultKey is the key of generation g in these tests.
func vaultKey(g uint64) []byte { return bytes.Repeat([]byte{byte(g)}, 32) }

func commitment(t testing.TB, g uint64) [32]byte {
	c, err := grant.KeyCommitment(vaultKey(g), vaultID, g)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// log builds a valid log entry by entry, checking each with Apply.
type log struct {
	t    testing.TB
	s    *memberlog.State
	rows []memberlog.Signed
	now  time.Time
}

func newLog(t testing.TB, creator user) *log {
	s, err := memberlog.New(vaultID, allKeys...)
	if err != nil {
		t.Fatal(err)
	}
	l := &log{t: t, s: s, now: t0}
	l.append(creator, memberlog.OpCreate, creator, "owner")
	return l
}

// entry returns the next entry for op, filled in as a correct client would.
func (l *log) entry(signer user, op memberlog.Op, subject user, role string) memberlog.Entry {
	var fp trust.Fingerprint
	if op == memberlog.OpCreate || op == memberlog.OpAdd {
		fp = subject.fp
	}
	var c [32]byte
	switch op {
	case memberlog.OpCreate:
		c = commitment(l.t, 1)
	case memberlog.OpRemove, memberlog.OpRotate:
		c = commitment(l.t, l.s.Generation()+1)
	}
	l.now = l.now.Add(time.Minute)
	return l.s.Next(op, subject.id, role, fp, c, signer.id, l.now)
}

func sign(t testing.TB, e memberlog.Entry, signer user) memberlog.Signed {
	t.Helper()
	r, err := memberlog.Sign(e, signer.priv)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (l *log) append(signer user, op memberlog.Op, subject user, role string) memberlog.Signed {
	l.t.Helper()
	r := sign(l.t, l.entry(signer, op, subject, role), signer)
	l.push(r)
	return r
}

func (l *log) push(r memberlog.Signed) {
	l.t.Helper()
	if err := l.s.Apply(r); err != nil {
		l.t.Fatalf("building the log: %v", err)
	}
	l.rows = append(l.rows, r)
}

// team is a typical shared vault: alice owner, bob editor, carol viewer,
// dave admin.
func team(t testing.TB) *log {
	l := newLog(t, alice)
	l.append(alice, memberlog.OpAdd, bob, "editor")
	l.append(alice, memberlog.OpAdd, carol, "viewer")
	l.append(alice, memberlog.OpAdd, dave, "admin")
	return l
}
