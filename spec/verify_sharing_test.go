package spec

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/manifest"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
)

// Verifiers of the vector files of sharing. Where a value can be computed
// without the implementation (fingerprint input and safety number, entry
// and manifest layouts, hashes, digests), it is, and compared with both the
// vector and the implementation.

func toIdent(i IdentityJSON) trust.Identity {
	return trust.Identity{UserID: uuid.MustParse(i.UserID), Identity: i.Identity, Ed25519Public: ed25519.PublicKey(i.Ed25519Public)}
}

func toIdents(is []IdentityJSON) []trust.Identity {
	var out []trust.Identity
	for _, i := range is {
		out = append(out, toIdent(i))
	}
	return out
}

func verifyFingerprint(t *testing.T, data []byte) {
	f := load(t, data, func(g FingerprintGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			i := toIdent(tc.IdentityJSON)
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				switch g.Type {
				case "fingerprint":
					d, err := i.Digest()
					if err != nil {
						if errors.Is(err, trust.ErrBadIdentity) {
							return "bad_identity", err
						}
						return "other", err
					}
					in := slices.Concat([]byte("zsm v1 fingerprint\x00"), i.UserID[:], []byte{byte(len(i.Identity))}, []byte(i.Identity), i.Ed25519Public)
					want := sha512.Sum512(in)
					var groups []string
					for k := range 12 {
						var x [8]byte
						copy(x[3:], want[5*k:5*k+5])
						groups = append(groups, fmt.Sprintf("%05d", binary.BigEndian.Uint64(x[:])%100000))
					}
					fp := d.Fingerprint()
					return "", errors.Join(eq(in, tc.Input), eq(want[:], tc.Digest), eq(d[:], tc.Digest), eq(fp[:], tc.Fingerprint),
						eq([]byte(d.SafetyNumber()), []byte(tc.SafetyNumber)), eq([]byte(strings.Join(groups, " ")), []byte(tc.SafetyNumber)),
						eq([]byte(d.QR()), []byte(tc.QR)), eq([]byte("zsmfp1:"+base64.RawURLEncoding.EncodeToString(want[:32])), []byte(tc.QR)))
				case "qr":
					if err := trust.MatchQR(tc.QR, i); err != nil {
						switch {
						case errors.Is(err, trust.ErrBadQR):
							return "bad_qr", err
						case errors.Is(err, trust.ErrMismatch):
							return "mismatch", err
						}
						return "other", err
					}
					fp, err := trust.ParseQR(tc.QR)
					if err != nil {
						return "bad_qr", err
					}
					return "", eq(fp[:], tc.Fingerprint)
				}
				t.Fatalf("unknown group type %q", g.Type)
				return "", nil
			})
		}
	}
}

func pinClass(err error) (string, error) {
	for class, e := range map[string]error{
		"malformed": trust.ErrMalformedPins, "not_pinned": trust.ErrNotPinned, "key_changed": trust.ErrKeyChanged,
		"downgrade": trust.ErrDowngrade, "bad_record": trust.ErrBadIdentity,
	} {
		if errors.Is(err, e) {
			return class, err
		}
	}
	return "other", err
}

func verifyPins(t *testing.T, data []byte) {
	f := load(t, data, func(g PinsGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				switch g.Type {
				case "parse":
					s, err := trust.ParsePinSet([]byte(tc.Pins))
					if err != nil {
						return pinClass(err)
					}
					j, err := s.Marshal()
					if err != nil {
						return "other", err
					}
					return "", eq(j, []byte(tc.Canonical))
				case "check":
					s, err := trust.ParsePinSet([]byte(tc.Pins))
					if err != nil {
						return "other", err
					}
					rec := trust.Record{Identity: toIdent(tc.Record.IdentityJSON), Version: tc.Record.Version, XWingPublic: tc.Record.XWingPublic}
					p, raised, err := s.Check(rec)
					if err != nil {
						return pinClass(err)
					}
					if tc.Raised == nil || raised != *tc.Raised || p.RecordVersion != rec.Version {
						return "", errMismatch
					}
					if rec.Version == 2 {
						h := sha256.Sum256(rec.XWingPublic)
						return "", eq(p.XWingSHA256, h[:])
					}
					return "", nil
				case "merge":
					l, err1 := trust.ParsePinSet([]byte(tc.Pins))
					r, err2 := trust.ParsePinSet([]byte(tc.Remote))
					if err := errors.Join(err1, err2); err != nil {
						return "other", err
					}
					m, conflicts := trust.Merge(l, r)
					j, err := m.Marshal()
					if err != nil {
						return "other", err
					}
					var ids []string
					for _, c := range conflicts {
						ids = append(ids, c.Identity)
					}
					if !slices.Equal(ids, tc.Conflicts) {
						return "", fmt.Errorf("conflicts %v, want %v", ids, tc.Conflicts)
					}
					return "", eq(j, []byte(tc.Canonical))
				case "sealed":
					s, err := trust.OpenPinSet(tc.AccountKey, uuid.MustParse(tc.UserID), u64(t, tc.Revision), tc.Sealed)
					if err != nil {
						if errors.Is(err, trust.ErrMalformedPins) {
							return "malformed", err
						}
						return envClass(err), err
					}
					j, _ := s.Marshal()
					return "", eq(j, []byte(tc.Canonical))
				}
				t.Fatalf("unknown group type %q", g.Type)
				return "", nil
			})
		}
	}
}

// logClass names the memberlog refusal; the specific reasons first, then
// the classes.
func logClass(err error) (string, error) {
	for _, c := range []struct {
		class string
		err   error
	}{
		{"malformed", memberlog.ErrMalformed}, {"wrong_vault", memberlog.ErrWrongVault}, {"broken_chain", memberlog.ErrBrokenChain},
		{"bad_create", memberlog.ErrBadCreate}, {"unknown_signer", memberlog.ErrUnknownSigner}, {"key_mismatch", memberlog.ErrKeyMismatch},
		{"bad_signature", memberlog.ErrBadSignature}, {"not_member", memberlog.ErrNotMember}, {"already_member", memberlog.ErrAlreadyMember},
		{"bad_subject", memberlog.ErrBadSubject}, {"no_authority", memberlog.ErrNoAuthority}, {"last_owner", memberlog.ErrLastOwner},
		{"generation", memberlog.ErrGeneration}, {"fork", memberlog.ErrFork}, {"rollback", memberlog.ErrRollback},
		{"invitation", memberlog.ErrInvitation}, {"not_a_member", memberlog.ErrNotAMember},
	} {
		if errors.Is(err, c.err) {
			return c.class, err
		}
	}
	return "other", err
}

func parseRows(rows []RowJSON) ([]memberlog.Signed, error) {
	var out []memberlog.Signed
	for _, r := range rows {
		s, err := memberlog.ParseRow(r.Message, r.Signature)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func hash32(t *testing.T, h Hex) [32]byte {
	if len(h) != 32 {
		t.Fatalf("hash of %d bytes", len(h))
	}
	return [32]byte(h)
}

func verifyVaultLog(t *testing.T, data []byte) {
	f := load(t, data, func(g LogGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			keys := toIdents(g.Keys)
			if tc.Keys != nil {
				keys = toIdents(tc.Keys)
			}
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				switch g.Type {
				case "entry":
					return verifyEntry(t, tc.Entry, keys)
				case "parse":
					if _, err := memberlog.Parse(tc.Message); err != nil {
						return logClass(err)
					}
					return "", nil
				case "replay":
					rows, err := parseRows(tc.Rows)
					if err != nil {
						return logClass(err)
					}
					s, err := memberlog.Replay(uuid.MustParse(g.VaultID), rows, keys)
					if err != nil {
						return logClass(err)
					}
					return "", checkReplay(t, s, tc)
				case "open":
					rows, err := parseRows(tc.Rows)
					if err != nil {
						return logClass(err)
					}
					var remembered memberlog.Head
					if tc.Remembered != nil {
						remembered = memberlog.Head{Seq: u64(t, tc.Remembered.Seq), Hash: hash32(t, tc.Remembered.Hash)}
					}
					pinned := func(u uuid.UUID, fp trust.Fingerprint) bool {
						for _, p := range tc.Pinned {
							if p.UserID == u.String() && bytes.Equal(p.Fingerprint, fp[:]) {
								return true
							}
						}
						return false
					}
					_, inv, err := memberlog.Open(uuid.MustParse(g.VaultID), rows, keys, remembered,
						uuid.MustParse(tc.Self.UserID), trust.Fingerprint(tc.Self.Fingerprint), pinned)
					if err == nil || errors.Is(err, memberlog.ErrInvitation) {
						// Who invited (and when) is part of the result either way.
						if tc.Creator == nil || inv.By.String() != tc.InvitedBy || dec(inv.Seq) != tc.InvitedBySeq || inv.Creator != *tc.Creator {
							return "", fmt.Errorf("invitation %+v differs", inv)
						}
					}
					if err != nil {
						return logClass(err)
					}
					return "", nil
				}
				t.Fatalf("unknown group type %q", g.Type)
				return "", nil
			})
		}
	}
}

// verifyEntry encodes the entry by hand, compares it with the vector and
// the implementation, and checks signature and hash.
func verifyEntry(t *testing.T, e *EntryJSON, keys []trust.Identity) (string, error) {
	vault, subject, signer := uuid.MustParse(e.VaultID), uuid.MustParse(e.Subject), uuid.MustParse(e.Signer)
	var m []byte
	m = append(m, "zsm v1 vault-log\x00"...)
	m = append(m, vault[:]...)
	m = binary.BigEndian.AppendUint64(m, u64(t, e.Seq))
	m = append(m, e.Prev...)
	m = append(m, e.Op)
	m = append(m, subject[:]...)
	m = append(m, byte(len(e.Role)))
	m = append(m, e.Role...)
	m = append(m, e.SubjectFP...)
	m = binary.BigEndian.AppendUint64(m, u64(t, e.Generation))
	m = append(m, e.Commitment...)
	m = append(m, signer[:]...)
	m = binary.BigEndian.AppendUint64(m, u64(t, e.UnixMilli))
	if err := eq(m, e.MessageHex); err != nil {
		return "", err
	}
	parsed, err := memberlog.Parse(m)
	if err != nil {
		return logClass(err)
	}
	back, err := parsed.Marshal()
	if err != nil {
		return logClass(err)
	}
	h := sha256.Sum256(append(bytes.Clone(m), e.SignatureHx...))
	var pub ed25519.PublicKey
	for _, k := range keys {
		if k.UserID == signer {
			pub = k.Ed25519Public
		}
	}
	if pub == nil || !ed25519.Verify(pub, m, e.SignatureHx) {
		return "bad_signature", errors.New("signature does not verify")
	}
	return "", errors.Join(eq(back, m), eq(h[:], e.Hash), eq([]byte(parsed.Role), []byte(e.Role)))
}

func checkReplay(t *testing.T, s *memberlog.State, tc LogTest) error {
	var members []MemberJSON
	for _, m := range s.Members() {
		members = append(members, MemberJSON{UserID: m.UserID.String(), Role: m.Role, Fingerprint: m.Fingerprint[:], AddedBy: m.AddedBy.String(), AddedSeq: dec(m.AddedSeq)})
	}
	if len(members) != len(tc.Members) {
		return fmt.Errorf("%d members, want %d", len(members), len(tc.Members))
	}
	for i := range members {
		a, b := members[i], tc.Members[i]
		if a.UserID != b.UserID || a.Role != b.Role || !bytes.Equal(a.Fingerprint, b.Fingerprint) || a.AddedBy != b.AddedBy || a.AddedSeq != b.AddedSeq {
			return fmt.Errorf("member %d: %+v, want %+v", i, a, b)
		}
	}
	if len(tc.Commitments) != int(s.Generation()) || dec(s.Generation()) != tc.Generation {
		return errors.New("generation differs")
	}
	for g, c := range tc.Commitments {
		got, ok := s.Commitment(u64(t, g))
		if !ok || !bytes.Equal(got[:], c) {
			return fmt.Errorf("commitment of generation %s differs", g)
		}
	}
	h := s.Head()
	if dec(h.Seq) != tc.Head.Seq || !bytes.Equal(h.Hash[:], tc.Head.Hash) || dec(s.LastCut()) != tc.LastCut || s.RotationDue() != *tc.RotationDue {
		return errors.New("head, last cut or rotation due differs")
	}
	return nil
}

func manifestClass(err error) (string, error) {
	for _, c := range []struct {
		class string
		err   error
	}{
		{"malformed", manifest.ErrMalformed}, {"wrong_vault", manifest.ErrWrongVault}, {"log_mismatch", manifest.ErrLogMismatch},
		{"not_member", manifest.ErrNotMember}, {"no_authority", manifest.ErrNoAuthority}, {"bad_signature", manifest.ErrBadSignature},
		{"stale", manifest.ErrStale}, {"generation", manifest.ErrGeneration}, {"fork", manifest.ErrFork}, {"rollback", manifest.ErrRollback},
		{"listing", manifest.ErrListing}, {"meta_revision", manifest.ErrMetaRevision},
	} {
		if errors.Is(err, c.err) {
			return c.class, err
		}
	}
	return "other", err
}

func toItems(t *testing.T, js []ItemJSON) []manifest.Item {
	var out []manifest.Item
	for _, j := range js {
		out = append(out, manifest.Item{ID: uuid.MustParse(j.ID), Revision: u64(t, j.Revision), Generation: u64(t, j.Generation)})
	}
	return out
}

func verifyManifest(t *testing.T, data []byte) {
	f := load(t, data, func(g ManifestGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		var log []memberlog.Signed
		if g.Type == "accept" {
			var err error
			if log, err = parseRows(g.Log); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range g.Tests {
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				switch g.Type {
				case "manifest":
					mj := tc.Manifest
					vault := uuid.MustParse(mj.VaultID)
					var b []byte
					b = append(b, "zsm v1 vault-manifest\x00"...)
					b = append(b, vault[:]...)
					b = binary.BigEndian.AppendUint64(b, u64(t, mj.Version))
					b = append(b, mj.Prev...)
					b = binary.BigEndian.AppendUint64(b, u64(t, mj.KeyGeneration))
					b = binary.BigEndian.AppendUint64(b, u64(t, mj.LogSeq))
					b = append(b, mj.LogHash...)
					b = binary.BigEndian.AppendUint64(b, u64(t, mj.MetaRevision))
					b = binary.BigEndian.AppendUint64(b, u64(t, mj.SecretCount))
					b = append(b, mj.ItemsDigest...)
					m, err := manifest.Parse(tc.Message)
					if err != nil {
						return manifestClass(err)
					}
					back, err := m.Marshal()
					if err != nil {
						return manifestClass(err)
					}
					return "", errors.Join(eq(b, tc.Message), eq(back, tc.Message))
				case "parse":
					if _, err := manifest.Parse(tc.Message); err != nil {
						return manifestClass(err)
					}
					return "", nil
				case "digest":
					items := toItems(t, tc.Items)
					d, err := manifest.Digest(items)
					if err != nil {
						return "duplicate", err
					}
					sorted := slices.Clone(items)
					slices.SortFunc(sorted, func(a, b manifest.Item) int { return bytes.Compare(a.ID[:], b.ID[:]) })
					h := sha256.New()
					for _, it := range sorted {
						h.Write(it.ID[:])
						h.Write(binary.BigEndian.AppendUint64(nil, it.Revision))
						h.Write(binary.BigEndian.AppendUint64(nil, it.Generation))
					}
					return "", errors.Join(eq(d[:], tc.Digest), eq(h.Sum(nil), tc.Digest))
				case "accept":
					n := u64(t, tc.LogLength)
					s, err := memberlog.Replay(uuid.MustParse(g.VaultID), log[:n], toIdents(g.Keys))
					if err != nil {
						t.Fatalf("tcId %d: the group's log does not replay: %v", tc.TcID, err)
					}
					row, err := manifest.ParseRow(tc.Row.Message, tc.Row.Signature, uuid.MustParse(tc.Row.Signer))
					if err != nil {
						return manifestClass(err)
					}
					var seen manifest.Seen
					if tc.Seen != nil {
						seen = manifest.Seen{Version: u64(t, tc.Seen.Version), Hash: hash32(t, tc.Seen.Hash)}
					}
					ns, err := manifest.Accept(row, s, seen, toItems(t, tc.Listing), u64(t, tc.MetaRevision))
					if err != nil {
						return manifestClass(err)
					}
					if dec(ns.Version) != tc.NewSeen.Version || !bytes.Equal(ns.Hash[:], tc.NewSeen.Hash) {
						return "", errMismatch
					}
					return "", nil
				}
				t.Fatalf("unknown group type %q", g.Type)
				return "", nil
			})
		}
	}
}
