package trust_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/trust"
)

var (
	t0       = time.UnixMilli(1764400000000).UTC()
	xwingA   = bytes.Repeat([]byte{0xa1}, 1216)
	xwingB   = bytes.Repeat([]byte{0xb2}, 1216)
	carolKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xc0}, 32)).Public().(ed25519.PublicKey)
	carol    = trust.Identity{UserID: uuid.MustParse("0190a3b4-0000-7000-8000-0000000000c0"), Identity: "carol@example.com", Ed25519Public: carolKey}
)

func v1(i trust.Identity) trust.Record { return trust.Record{Identity: i, Version: 1} }
func v2(i trust.Identity, x []byte) trust.Record {
	return trust.Record{Identity: i, Version: 2, XWingPublic: x}
}

func confirm(t *testing.T, s *trust.PinSet, r trust.Record, st trust.Status) trust.Pin {
	t.Helper()
	p, err := s.Confirm(r, st, t0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheck walks every row of the table in docs/crypto.md §7.
func TestCheck(t *testing.T) {
	var s trust.PinSet
	if _, _, err := s.Check(v1(bob)); !errors.Is(err, trust.ErrNotPinned) {
		t.Fatalf("no pin: %v", err)
	}
	confirm(t, &s, v1(bob), trust.Verified)
	if p, raised, err := s.Check(v1(bob)); err != nil || raised || p.Status != trust.Verified {
		t.Fatalf("pinned key: %v", err)
	}
	// The server substitutes its own key (another Ed25519 key), or claims
	// the identity belongs to another account.
	evil := bob
	evil.Ed25519Public = carolKey
	if _, _, err := s.Check(v1(evil)); !errors.Is(err, trust.ErrKeyChanged) {
		t.Errorf("another Ed25519 key: %v", err)
	}
	evil = bob
	evil.UserID = carol.UserID
	if _, _, err := s.Check(v1(evil)); !errors.Is(err, trust.ErrKeyChanged) {
		t.Errorf("another user id: %v", err)
	}
	// Version 1 pinned, version 2 seen: the upgrade raises the pin.
	p, raised, err := s.Check(v2(bob, xwingA))
	if err != nil || !raised || p.RecordVersion != 2 {
		t.Fatalf("upgrade: %v, raised %v", err, raised)
	}
	if h := sha256.Sum256(xwingA); !bytes.Equal(p.XWingSHA256, h[:]) {
		t.Fatal("raised pin has another X-Wing hash")
	}
	if got, _ := s.Lookup(bob.Identity); got.RecordVersion != 1 {
		t.Fatal("Check changed the set")
	}
	if _, err := s.Confirm(v2(bob, xwingA), trust.Verified, t0); err != nil {
		t.Fatal(err)
	}
	// Version 2 seen: version 1 is a downgrade; another X-Wing key is a
	// key change.
	if _, _, err := s.Check(v1(bob)); !errors.Is(err, trust.ErrDowngrade) {
		t.Errorf("v1 after v2: %v", err)
	}
	if _, _, err := s.Check(v2(bob, xwingB)); !errors.Is(err, trust.ErrKeyChanged) {
		t.Errorf("another X-Wing key: %v", err)
	}
	if _, raised, err := s.Check(v2(bob, xwingA)); err != nil || raised {
		t.Errorf("same v2: %v %v", err, raised)
	}
	// Malformed records are refused before any pin is looked at.
	for name, r := range map[string]trust.Record{
		"v1 with X-Wing":      {Identity: bob, Version: 1, XWingPublic: xwingA},
		"v2 without X-Wing":   {Identity: bob, Version: 2},
		"v2 short X-Wing":     {Identity: bob, Version: 2, XWingPublic: xwingA[:1215]},
		"version 3":           {Identity: bob, Version: 3, XWingPublic: xwingA},
		"identity not normal": {Identity: trust.Identity{UserID: bobID, Identity: "BOB@example.com", Ed25519Public: bobKey}, Version: 1},
	} {
		if _, _, err := s.Check(r); !errors.Is(err, trust.ErrBadIdentity) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestConfirm(t *testing.T) {
	var s trust.PinSet
	p := confirm(t, &s, v1(bob), trust.TOFU)
	if p.Status != trust.TOFU || !p.PinnedAt.Equal(t0) {
		t.Fatalf("pin = %+v", p)
	}
	// Trust on first use never replaces a pin of another key: a changed key
	// needs a comparison.
	evil := bob
	evil.Ed25519Public = carolKey
	if _, err := s.Confirm(v1(evil), trust.TOFU, t0); !errors.Is(err, trust.ErrKeyChanged) {
		t.Fatalf("TOFU over another key: %v", err)
	}
	// Verified replaces anything: the user compared safety numbers.
	confirm(t, &s, v1(bob), trust.Verified)
	later := t0.Add(time.Hour)
	// TOFU of the same key does not demote a verified pin.
	if p, err := s.Confirm(v1(bob), trust.TOFU, later); err != nil || p.Status != trust.Verified || !p.PinnedAt.Equal(t0) {
		t.Fatalf("TOFU over verified: %+v, %v", p, err)
	}
	if p := confirm(t, &s, v1(evil), trust.Verified); !bytes.Equal(p.Ed25519Public, carolKey) {
		t.Fatal("verified confirm did not replace the key")
	}
	// Confirming a version 1 record of a key pinned at version 2 keeps
	// version 2: the downgrade is still refused afterwards.
	var d trust.PinSet
	confirm(t, &d, v2(bob, xwingA), trust.Verified)
	if p := confirm(t, &d, v1(bob), trust.Verified); p.RecordVersion != 2 {
		t.Fatalf("confirm lowered the record version: %+v", p)
	}
	if _, _, err := d.Check(v1(bob)); !errors.Is(err, trust.ErrDowngrade) {
		t.Fatalf("downgrade after re-confirming: %v", err)
	}
	if _, err := s.Confirm(v1(bob), "maybe", t0); err == nil {
		t.Fatal("unknown status accepted")
	}
	s.Remove(bob.Identity)
	if _, ok := s.Lookup(bob.Identity); ok || s.Len() != 0 {
		t.Fatal("Remove left the pin")
	}
}

func TestVouches(t *testing.T) {
	var s trust.PinSet
	confirm(t, &s, v1(bob), trust.Verified)
	fp, _ := bob.Fingerprint()
	if p, ok := s.Vouches(bobID, fp); !ok || p.Identity != bob.Identity {
		t.Fatal("pinned fingerprint not found")
	}
	cfp, _ := carol.Fingerprint()
	if _, ok := s.Vouches(bobID, cfp); ok {
		t.Fatal("another fingerprint vouched for")
	}
	if _, ok := s.Vouches(carol.UserID, fp); ok {
		t.Fatal("Bob's fingerprint vouched for under another user id")
	}
}

func TestMerge(t *testing.T) {
	var local, remote trust.PinSet
	confirm(t, &local, v1(bob), trust.TOFU)
	remoteBob, _ := remote.Confirm(v2(bob, xwingA), trust.Verified, t0.Add(time.Minute))
	confirm(t, &remote, v1(carol), trust.TOFU)
	m, conflicts := trust.Merge(&local, &remote)
	if len(conflicts) != 0 || m.Len() != 2 {
		t.Fatalf("merge: %d pins, conflicts %v", m.Len(), conflicts)
	}
	b, _ := m.Lookup(bob.Identity)
	if b.Status != trust.Verified || b.RecordVersion != 2 || !bytes.Equal(b.XWingSHA256, remoteBob.XWingSHA256) || !b.PinnedAt.Equal(remoteBob.PinnedAt) {
		t.Fatalf("merged Bob = %+v", b)
	}
	// Merging is symmetric for agreeing pins.
	m2, _ := trust.Merge(&remote, &local)
	j1, _ := m.Marshal()
	j2, _ := m2.Marshal()
	if !bytes.Equal(j1, j2) {
		t.Fatalf("merge not symmetric:\n%s\n%s", j1, j2)
	}
	// Same status: the earlier pinned_at stays.
	var a, c trust.PinSet
	a.Confirm(v1(bob), trust.Verified, t0.Add(time.Hour))
	c.Confirm(v1(bob), trust.Verified, t0)
	m3, _ := trust.Merge(&a, &c)
	if p, _ := m3.Lookup(bob.Identity); !p.PinnedAt.Equal(t0) {
		t.Fatalf("pinned_at = %v", p.PinnedAt)
	}
	// Two keys for one identity: a conflict, never merged; local stays.
	var other trust.PinSet
	evil := bob
	evil.Ed25519Public = carolKey
	confirm(t, &other, v1(evil), trust.Verified)
	m4, conflicts := trust.Merge(&local, &other)
	if len(conflicts) != 1 || conflicts[0].Identity != bob.Identity {
		t.Fatalf("conflicts = %v", conflicts)
	}
	if p, _ := m4.Lookup(bob.Identity); !bytes.Equal(p.Ed25519Public, bobKey) || p.Status != trust.TOFU {
		t.Fatalf("local pin replaced: %+v", p)
	}
	// Two X-Wing keys at version 2 under one Ed25519 key: a conflict too.
	var x1, x2 trust.PinSet
	confirm(t, &x1, v2(bob, xwingA), trust.Verified)
	confirm(t, &x2, v2(bob, xwingB), trust.Verified)
	if _, conflicts := trust.Merge(&x1, &x2); len(conflicts) != 1 {
		t.Fatalf("X-Wing conflict not reported: %v", conflicts)
	}
}

func pinSetJSON(t *testing.T) (*trust.PinSet, []byte) {
	var s trust.PinSet
	confirm(t, &s, v2(bob, xwingA), trust.Verified)
	confirm(t, &s, v1(carol), trust.TOFU)
	j, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return &s, j
}

func TestPinSetRoundTrip(t *testing.T) {
	s, j := pinSetJSON(t)
	want := `{"version":1,"pins":[{"identity":"bob@example.com","user_id":"0190a3b4-0000-7000-8000-0000000000b0","ed25519_public":"` +
		base64.StdEncoding.EncodeToString(bobKey) + `","status":"verified","record_version":2,"xwing_public_sha256":"` +
		b64sha(xwingA) + `","pinned_at":1764400000000},{"identity":"carol@example.com","user_id":"0190a3b4-0000-7000-8000-0000000000c0","ed25519_public":"` +
		base64.StdEncoding.EncodeToString(carolKey) + `","status":"tofu","record_version":1,"pinned_at":1764400000000}]}`
	if string(j) != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", j, want)
	}
	p, err := trust.ParsePinSet(j)
	if err != nil {
		t.Fatal(err)
	}
	j2, _ := p.Marshal()
	if !bytes.Equal(j, j2) || p.Len() != s.Len() {
		t.Fatal("round trip differs")
	}
	empty, err := trust.ParsePinSet([]byte(`{"version":1,"pins":[]}`))
	if err != nil || empty.Len() != 0 {
		t.Fatalf("empty set: %v", err)
	}
}

func b64sha(b []byte) string {
	h := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(h[:])
}

func TestParsePinSetStrict(t *testing.T) {
	_, good := pinSetJSON(t)
	g := string(good)
	edit := func(f func(m map[string]any)) string {
		var m map[string]any
		json.Unmarshal(good, &m)
		f(m)
		out, _ := json.Marshal(m)
		return string(out)
	}
	pin := func(i int, f func(p map[string]any)) string {
		return edit(func(m map[string]any) { f(m["pins"].([]any)[i].(map[string]any)) })
	}
	bad := map[string]string{
		"empty":                         "",
		"null":                          "null",
		"array":                         "[]",
		"missing version":               `{"pins":[]}`,
		"missing pins":                  `{"version":1}`,
		"version 2":                     `{"version":2,"pins":[]}`,
		"version 1.0":                   `{"version":1.0,"pins":[]}`,
		"version string":                `{"version":"1","pins":[]}`,
		"pins null":                     `{"version":1,"pins":null}`,
		"unknown member":                `{"version":1,"pins":[],"x":1}`,
		"repeated member":               `{"version":1,"version":1,"pins":[]}`,
		"name in another case":          `{"Version":1,"pins":[]}`,
		"trailing data":                 g + "{}",
		"trailing garbage":              g + "x",
		"out of order":                  strings.Replace(g, "bob@example.com", "zed@example.com", 1),
		"repeated identity":             strings.Replace(g, "carol@example.com", "bob@example.com", 1),
		"identity not normal":           strings.Replace(g, "bob@example.com", "Bob@example.com", 1),
		"unknown pin member":            pin(0, func(p map[string]any) { p["note"] = "x" }),
		"missing pinned_at":             pin(0, func(p map[string]any) { delete(p, "pinned_at") }),
		"missing status":                pin(1, func(p map[string]any) { delete(p, "status") }),
		"unknown status":                pin(1, func(p map[string]any) { p["status"] = "trusted" }),
		"status upper case":             pin(1, func(p map[string]any) { p["status"] = "TOFU" }),
		"user id upper case":            pin(0, func(p map[string]any) { p["user_id"] = strings.ToUpper(bobID.String()) }),
		"user id braces":                pin(0, func(p map[string]any) { p["user_id"] = "{" + bobID.String() + "}" }),
		"key of 31 bytes":               pin(0, func(p map[string]any) { p["ed25519_public"] = base64.StdEncoding.EncodeToString(bobKey[:31]) }),
		"key unpadded":                  pin(0, func(p map[string]any) { p["ed25519_public"] = base64.RawStdEncoding.EncodeToString(bobKey) }),
		"v2 without X-Wing hash":        pin(0, func(p map[string]any) { delete(p, "xwing_public_sha256") }),
		"v1 with X-Wing hash":           pin(1, func(p map[string]any) { p["xwing_public_sha256"] = b64sha(xwingA) }),
		"X-Wing hash of 16 bytes":       pin(0, func(p map[string]any) { p["xwing_public_sha256"] = base64.StdEncoding.EncodeToString(make([]byte, 16)) }),
		"record version 3":              pin(0, func(p map[string]any) { p["record_version"] = 3 }),
		"record version 0":              pin(1, func(p map[string]any) { p["record_version"] = 0 }),
		"negative pinned_at":            pin(0, func(p map[string]any) { p["pinned_at"] = -1 }),
		"pinned_at above 2^53":          pin(0, func(p map[string]any) { p["pinned_at"] = int64(1) << 53 }),
		"pinned_at with a fraction":     strings.Replace(g, "1764400000000", "1764400000000.0", 1),
		"pinned_at with an exponent":    strings.Replace(g, "1764400000000", "1.7644e12", 1),
		"pinned_at with a leading zero": strings.Replace(g, "1764400000000", "01764400000000", 1),
		"pinned_at string":              strings.Replace(g, "1764400000000", `"1764400000000"`, 1),
		"pin not an object":             `{"version":1,"pins":[1]}`,
	}
	for name, data := range bad {
		if _, err := trust.ParsePinSet([]byte(data)); !errors.Is(err, trust.ErrMalformedPins) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// At most MaxPins pins: MaxPins parse, one more does not.
	var many strings.Builder
	many.WriteString(`{"version":1,"pins":[`)
	for i := range trust.MaxPins + 1 {
		if i > 0 {
			many.WriteByte(',')
		}
		fmt.Fprintf(&many, `{"identity":"u%05d@example.com","user_id":"%s","ed25519_public":"%s","status":"tofu","record_version":1,"pinned_at":0}`,
			i, bobID, base64.StdEncoding.EncodeToString(bobKey))
	}
	many.WriteString(`]}`)
	if _, err := trust.ParsePinSet([]byte(many.String())); !errors.Is(err, trust.ErrMalformedPins) || !strings.Contains(err.Error(), "too many") {
		t.Errorf("MaxPins+1 pins: %v", err)
	}
	last := strings.LastIndex(many.String(), `,{"identity"`)
	if s, err := trust.ParsePinSet([]byte(many.String()[:last] + `]}`)); err != nil || s.Len() != trust.MaxPins {
		t.Errorf("MaxPins pins: %v", err)
	}
	// Whitespace is free.
	var m any
	json.Unmarshal(good, &m)
	ind, _ := json.MarshalIndent(m, "", "  ")
	if _, err := trust.ParsePinSet(ind); err != nil {
		t.Errorf("indented: %v", err)
	}
}

// TestSealedPins: the pin set is sealed under the account key, bound to the
// user and the row revision. A server cannot plant a pin (it has no account
// key), move another account's pins in, or relabel an old revision as new.
func TestSealedPins(t *testing.T) {
	s, _ := pinSetJSON(t)
	ak := bytes.Repeat([]byte{0x77}, 32)
	me := uuid.MustParse("0190a3b4-0000-7000-8000-0000000000aa")
	sealed, err := s.Seal(ak, me, 5, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	got, err := trust.OpenPinSet(ak, me, 5, sealed)
	if err != nil || got.Len() != 2 {
		t.Fatalf("OpenPinSet: %v", err)
	}
	serverKey := bytes.Repeat([]byte{0x66}, 32)
	var planted trust.PinSet
	evil := bob
	evil.Ed25519Public = carolKey
	planted.Confirm(v1(evil), trust.Verified, t0)
	forged, _ := planted.Seal(serverKey, me, 6, rand.Reader)
	if _, err := trust.OpenPinSet(ak, me, 6, forged); !errors.Is(err, envelope.ErrTampered) {
		t.Errorf("pin set sealed by the server: %v", err)
	}
	if _, err := trust.OpenPinSet(ak, me, 6, sealed); !errors.Is(err, envelope.ErrTampered) {
		t.Errorf("revision 5 relabelled 6: %v", err)
	}
	other := me
	other[0] ^= 1
	if _, err := trust.OpenPinSet(ak, other, 5, sealed); !errors.Is(err, envelope.ErrTampered) {
		t.Errorf("another user's row: %v", err)
	}
	// A well-sealed envelope whose plaintext is not a pin set.
	junk, _ := envelope.SealString(ak, envelope.Context{Type: envelope.PinSet, ObjectID: me, Revision: 7}, []byte(`{"version":1}`), rand.Reader)
	if _, err := trust.OpenPinSet(ak, me, 7, junk); !errors.Is(err, trust.ErrMalformedPins) {
		t.Errorf("junk plaintext: %v", err)
	}
	if err := trust.CheckRevision(5, 4); !errors.Is(err, trust.ErrRollback) {
		t.Errorf("older revision: %v", err)
	}
	if err := trust.CheckRevision(5, 5); err != nil {
		t.Error(err)
	}
}

func FuzzParsePinSet(f *testing.F) {
	f.Add([]byte(`{"version":1,"pins":[]}`))
	f.Add([]byte(`{"version":1,"pins":[{"identity":"bob@example.com","user_id":"0190a3b4-0000-7000-8000-0000000000b0","ed25519_public":"` +
		base64.StdEncoding.EncodeToString(bobKey) + `","status":"tofu","record_version":1,"pinned_at":0}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := trust.ParsePinSet(data)
		if err != nil {
			if !errors.Is(err, trust.ErrMalformedPins) {
				t.Fatalf("error of no known class: %v", err)
			}
			return
		}
		// An accepted set re-encodes canonically, and that encoding parses
		// to the same set.
		j, err := s.Marshal()
		if err != nil {
			t.Fatalf("accepted set does not marshal: %v", err)
		}
		s2, err := trust.ParsePinSet(j)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v", err)
		}
		j2, _ := s2.Marshal()
		if !bytes.Equal(j, j2) {
			t.Fatal("canonical form not stable")
		}
	})
}
