package trust

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
)

// Status says how a pin was made.
type Status string

// The two ways to pin an identity.
const (
	// Verified: the user compared the safety number out of band and
	// confirmed it.
	Verified Status = "verified"
	// TOFU: the user explicitly chose to trust the key on first use; shown
	// as unverified.
	TOFU Status = "tofu"
)

// Pin is this account's decision to trust one identity's key
// (docs/crypto.md §7).
type Pin struct {
	Identity      string
	UserID        uuid.UUID
	Ed25519Public ed25519.PublicKey
	Status        Status
	// RecordVersion is the highest key record version seen for this key:
	// 1, or 2 once a record with an X-Wing key was seen.
	RecordVersion int
	// XWingSHA256 is the SHA-256 of the X-Wing public key of that record
	// when RecordVersion is 2, nil otherwise.
	XWingSHA256 []byte
	PinnedAt    time.Time // millisecond precision
}

// Fingerprint returns the fingerprint of the pinned key.
func (p Pin) Fingerprint() (Fingerprint, error) {
	return Identity{p.UserID, p.Identity, p.Ed25519Public}.Fingerprint()
}

// sameKey reports whether p and q pin the same account key (user id and
// Ed25519 key), whatever their status or record version.
func (p Pin) sameKey(q Pin) bool {
	return p.UserID == q.UserID && bytes.Equal(p.Ed25519Public, q.Ed25519Public)
}

// Record is what a key record says about an account, after the caller
// checked the record's own signature and that its identity is the one it
// asked for.
type Record struct {
	Identity
	Version     int    // 1 or 2
	XWingPublic []byte // version 2: 1216 bytes; version 1: nil
}

// Errors of pins.
var (
	// ErrMalformedPins means a pin set does not parse.
	ErrMalformedPins = errors.New("trust: malformed pin set")
	// ErrNotPinned means there is no pin for the identity: the user must
	// verify it (or explicitly trust it on first use) first.
	ErrNotPinned = errors.New("trust: identity not verified")
	// ErrKeyChanged means an identity shows another key than the one
	// pinned: refused until the user compares safety numbers again and
	// confirms.
	ErrKeyChanged = errors.New("trust: the identity has new keys; compare safety numbers and confirm again")
	// ErrDowngrade means a version 1 key record was shown for a key whose
	// version 2 record (with an X-Wing key) this account has seen.
	ErrDowngrade = errors.New("trust: an older key record without the hybrid key was shown (downgrade)")
	// ErrRollback means the server returned an older revision of the pin
	// set than this device has seen.
	ErrRollback = errors.New("trust: older pin set than this device has seen")
)

// PinSet is an account's pins, one per identity. The zero value is empty.
type PinSet struct {
	pins []Pin // sorted by Identity, unique
}

// Pins returns the pins in identity order.
func (s *PinSet) Pins() []Pin { return slices.Clone(s.pins) }

// Len is the number of pins.
func (s *PinSet) Len() int { return len(s.pins) }

func (s *PinSet) find(identity string) (int, bool) {
	return slices.BinarySearchFunc(s.pins, identity, func(p Pin, id string) int { return strings.Compare(p.Identity, id) })
}

// Lookup returns the pin of identity.
func (s *PinSet) Lookup(identity string) (Pin, bool) {
	i, ok := s.find(identity)
	if !ok {
		return Pin{}, false
	}
	return s.pins[i], true
}

func (s *PinSet) put(p Pin) {
	i, ok := s.find(p.Identity)
	if ok {
		s.pins[i] = p
		return
	}
	s.pins = slices.Insert(s.pins, i, p)
}

// Vouches returns the pin whose key has fingerprint fp for user userID, if
// any. The membership log names members by fingerprint; this is how a
// client asks whether the member who invited it is someone it pinned.
func (s *PinSet) Vouches(userID uuid.UUID, fp Fingerprint) (Pin, bool) {
	for _, p := range s.pins {
		if p.UserID != userID {
			continue
		}
		if f, err := p.Fingerprint(); err == nil && f.Equal(fp) {
			return p, true
		}
	}
	return Pin{}, false
}

// Check checks a key record against the pins (docs/crypto.md §7) and
// returns the pin it matches. It refuses an identity without a pin
// ([ErrNotPinned]), another user id, Ed25519 key, or X-Wing key than the
// pinned ones ([ErrKeyChanged]), and a version 1 record for a key whose
// version 2 record was seen ([ErrDowngrade]). A version 2 record for a key
// pinned at version 1 is the upgrade of docs/crypto.md §3: the returned pin
// is raised to version 2 with the X-Wing hash and raised reports it, so the
// caller stores it (the set is not changed here).
func (s *PinSet) Check(r Record) (p Pin, raised bool, err error) {
	if err := r.check(); err != nil {
		return Pin{}, false, err
	}
	p, ok := s.Lookup(r.Identity.Identity)
	if !ok {
		return Pin{}, false, fmt.Errorf("%w: %s", ErrNotPinned, r.Identity.Identity)
	}
	if p.UserID != r.UserID || subtle.ConstantTimeCompare(p.Ed25519Public, r.Ed25519Public) != 1 {
		return Pin{}, false, fmt.Errorf("%w: %s", ErrKeyChanged, r.Identity.Identity)
	}
	switch {
	case r.Version == 1 && p.RecordVersion == 2:
		return Pin{}, false, fmt.Errorf("%w: %s", ErrDowngrade, r.Identity.Identity)
	case r.Version == 2 && p.RecordVersion == 2:
		h := sha256.Sum256(r.XWingPublic)
		if subtle.ConstantTimeCompare(h[:], p.XWingSHA256) != 1 {
			// The X-Wing key never changes without the signing key; a new
			// one under the same Ed25519 key is unexplained, so the user
			// decides.
			return Pin{}, false, fmt.Errorf("%w: %s (X-Wing key)", ErrKeyChanged, r.Identity.Identity)
		}
	case r.Version == 2 && p.RecordVersion == 1:
		h := sha256.Sum256(r.XWingPublic)
		p.RecordVersion, p.XWingSHA256 = 2, h[:]
		return p, true, nil
	}
	return p, false, nil
}

func (r Record) check() error {
	if err := r.Identity.check(); err != nil {
		return err
	}
	switch {
	case r.Version == 1 && r.XWingPublic == nil:
	case r.Version == 2 && len(r.XWingPublic) == 1216:
	default:
		return fmt.Errorf("%w: key record version %d with an X-Wing key of %d bytes", ErrBadIdentity, r.Version, len(r.XWingPublic))
	}
	return nil
}

// Confirm pins r's key for its identity with status, at now, after the user
// asked for it: Verified after comparing safety numbers (this replaces any
// pin, the user has decided), TOFU when trusting on first use. TOFU never
// replaces a pin of another key ([ErrKeyChanged]: a changed key needs a
// comparison), nor demotes a verified pin of the same key (which stays
// verified). Confirming the same key again never lowers the record version
// seen, so a downgrade cannot be confirmed away.
func (s *PinSet) Confirm(r Record, status Status, now time.Time) (Pin, error) {
	if err := r.check(); err != nil {
		return Pin{}, err
	}
	if status != Verified && status != TOFU {
		return Pin{}, fmt.Errorf("trust: unknown pin status %q", status)
	}
	p := Pin{
		Identity: r.Identity.Identity, UserID: r.UserID, Ed25519Public: bytes.Clone(r.Ed25519Public),
		Status: status, RecordVersion: r.Version, PinnedAt: now.UTC().Truncate(time.Millisecond),
	}
	if r.Version == 2 {
		h := sha256.Sum256(r.XWingPublic)
		p.XWingSHA256 = h[:]
	}
	if old, ok := s.Lookup(p.Identity); ok {
		if status == TOFU && !old.sameKey(p) {
			return Pin{}, fmt.Errorf("%w: %s", ErrKeyChanged, p.Identity)
		}
		if status == TOFU && old.Status == Verified {
			p.Status, p.PinnedAt = Verified, old.PinnedAt
		}
		// Confirming the same key never lowers the record version seen: a
		// version 1 record shown after version 2 stays a downgrade.
		if old.sameKey(p) && old.RecordVersion > p.RecordVersion {
			p.RecordVersion, p.XWingSHA256 = old.RecordVersion, old.XWingSHA256
		}
	}
	s.put(p)
	return p, nil
}

// Remove deletes the pin of identity, if any.
func (s *PinSet) Remove(identity string) {
	if i, ok := s.find(identity); ok {
		s.pins = slices.Delete(s.pins, i, i+1)
	}
}

// Conflict is one identity two pin sets pin with different keys.
type Conflict struct {
	Identity      string
	Local, Remote Pin
}

// Merge merges remote (another device's pins) into local and returns the
// result and the conflicts (docs/crypto.md §7). For one identity with the
// same user id and Ed25519 key: verified wins over tofu, the higher record
// version wins with its X-Wing hash, pinned_at is that of the winning
// status (the earlier if both have it). Different keys for one identity,
// or different X-Wing keys at version 2, are a conflict: never merged, the
// local pin stays and the conflict is reported for the user to decide.
func Merge(local, remote *PinSet) (*PinSet, []Conflict) {
	out := &PinSet{pins: slices.Clone(local.pins)}
	var conflicts []Conflict
	for _, r := range remote.pins {
		l, ok := out.Lookup(r.Identity)
		if !ok {
			out.put(r)
			continue
		}
		if !l.sameKey(r) || (l.RecordVersion == 2 && r.RecordVersion == 2 && !bytes.Equal(l.XWingSHA256, r.XWingSHA256)) {
			conflicts = append(conflicts, Conflict{Identity: r.Identity, Local: l, Remote: r})
			continue
		}
		m := l
		switch {
		case l.Status == r.Status:
			if r.PinnedAt.Before(l.PinnedAt) {
				m.PinnedAt = r.PinnedAt
			}
		case r.Status == Verified:
			m.Status, m.PinnedAt = Verified, r.PinnedAt
		}
		if r.RecordVersion > l.RecordVersion {
			m.RecordVersion, m.XWingSHA256 = r.RecordVersion, r.XWingSHA256
		}
		out.put(m)
	}
	return out, conflicts
}

// The JSON form of a pin set, docs/crypto.md §7.
type pinJSON struct {
	Identity      string  `json:"identity"`
	UserID        string  `json:"user_id"`
	Ed25519Public string  `json:"ed25519_public"`
	Status        Status  `json:"status"`
	RecordVersion int     `json:"record_version"`
	XWingSHA256   *string `json:"xwing_public_sha256,omitempty"`
	PinnedAt      int64   `json:"pinned_at"`
}

type pinSetJSON struct {
	Version int       `json:"version"`
	Pins    []pinJSON `json:"pins"`
}

// Limits of a pin set.
const (
	MaxPins        = 10000
	maxPinSetBytes = 4 << 20
	maxPinnedAt    = 1<<53 - 1
)

// Marshal returns the canonical JSON of s: {"version":1,"pins":[…]} with the
// pins in ascending identity order.
func (s *PinSet) Marshal() ([]byte, error) {
	out := pinSetJSON{Version: 1, Pins: make([]pinJSON, 0, len(s.pins))}
	for _, p := range s.pins {
		if err := p.valid(); err != nil {
			return nil, err
		}
		j := pinJSON{
			Identity: p.Identity, UserID: p.UserID.String(), Ed25519Public: base64.StdEncoding.EncodeToString(p.Ed25519Public),
			Status: p.Status, RecordVersion: p.RecordVersion, PinnedAt: p.PinnedAt.UnixMilli(),
		}
		if p.RecordVersion == 2 {
			h := base64.StdEncoding.EncodeToString(p.XWingSHA256)
			j.XWingSHA256 = &h
		}
		out.Pins = append(out.Pins, j)
	}
	return json.Marshal(out)
}

// valid checks the shape ParsePinSet requires of one pin.
func (p Pin) valid() error {
	if err := (Identity{p.UserID, p.Identity, p.Ed25519Public}).check(); err != nil {
		return err
	}
	if p.Status != Verified && p.Status != TOFU {
		return fmt.Errorf("status %q", p.Status)
	}
	switch {
	case p.RecordVersion == 1 && p.XWingSHA256 == nil:
	case p.RecordVersion == 2 && len(p.XWingSHA256) == sha256.Size:
	default:
		return fmt.Errorf("record_version %d with an X-Wing hash of %d bytes", p.RecordVersion, len(p.XWingSHA256))
	}
	if ms := p.PinnedAt.UnixMilli(); ms < 0 || ms > maxPinnedAt || !p.PinnedAt.Equal(time.UnixMilli(ms)) {
		return errors.New("pinned_at out of range or finer than a millisecond")
	}
	return nil
}

// ParsePinSet parses a pin set strictly (docs/crypto.md §7): one object with
// exactly "version" (the number 1) and "pins"; each pin exactly the members
// of its record version, each once, names matched exactly; identities in
// normal form and in strictly ascending order (so none twice); the user id
// canonical lower-case uuid text; base64 canonical and 32 bytes; pinned_at
// an integer in [0, 2^53) without fraction or exponent; at most [MaxPins]
// pins; nothing after the object. Anything else is [ErrMalformedPins].
func ParsePinSet(data []byte) (*PinSet, error) {
	bad := func(format string, a ...any) (*PinSet, error) {
		return nil, fmt.Errorf("%w: %s", ErrMalformedPins, fmt.Sprintf(format, a...))
	}
	if len(data) > maxPinSetBytes {
		return bad("%d bytes", len(data))
	}
	d := newStrictDecoder(data)
	s := &PinSet{}
	err := d.object(func(name string) error {
		switch name {
		case "version":
			n, err := d.integer()
			if err != nil || n != 1 {
				return errors.New("version must be 1")
			}
			return nil
		case "pins":
			return d.array(func() error {
				if len(s.pins) == MaxPins {
					return errors.New("too many pins")
				}
				p, err := d.pin()
				if err != nil {
					return err
				}
				if n := len(s.pins); n > 0 && s.pins[n-1].Identity >= p.Identity {
					return fmt.Errorf("pin %q out of order or repeated", p.Identity)
				}
				s.pins = append(s.pins, p)
				return nil
			})
		}
		return fmt.Errorf("unknown member %q", name)
	}, "version", "pins")
	if err != nil {
		return bad("%v", err)
	}
	if err := d.end(); err != nil {
		return bad("%v", err)
	}
	return s, nil
}

// pin reads one pin object.
func (d *strictDecoder) pin() (Pin, error) {
	var p Pin
	var xwing *string
	var ms int64
	var userID, edPub string
	err := d.object(func(name string) error {
		var err error
		switch name {
		case "identity":
			p.Identity, err = d.str()
		case "user_id":
			userID, err = d.str()
		case "ed25519_public":
			edPub, err = d.str()
		case "status":
			var st string
			st, err = d.str()
			p.Status = Status(st)
		case "record_version":
			var n int64
			n, err = d.integer()
			p.RecordVersion = int(n)
		case "xwing_public_sha256":
			var h string
			h, err = d.str()
			xwing = &h
		case "pinned_at":
			ms, err = d.integer()
		default:
			return fmt.Errorf("unknown member %q", name)
		}
		return err
	}, "identity", "user_id", "ed25519_public", "status", "record_version", "pinned_at")
	if err != nil {
		return Pin{}, err
	}
	u, err := uuid.Parse(userID)
	if err != nil || u.String() != userID {
		return Pin{}, fmt.Errorf("user_id %q is not a canonical uuid", userID)
	}
	p.UserID = u
	if p.Ed25519Public, err = decode32(edPub); err != nil {
		return Pin{}, fmt.Errorf("ed25519_public: %w", err)
	}
	if xwing != nil {
		if p.XWingSHA256, err = decode32(*xwing); err != nil {
			return Pin{}, fmt.Errorf("xwing_public_sha256: %w", err)
		}
	}
	if ms < 0 || ms > maxPinnedAt {
		return Pin{}, errors.New("pinned_at out of range")
	}
	p.PinnedAt = time.UnixMilli(ms).UTC()
	if err := p.valid(); err != nil {
		return Pin{}, err
	}
	return p, nil
}

func decode32(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 32 || strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("not canonical base64 of 32 bytes")
	}
	return b, nil
}

// pinContext is the envelope context of the pin set row of userID at
// revision: type 7, zero vault, object id the user id.
func pinContext(userID uuid.UUID, revision uint64) envelope.Context {
	return envelope.Context{Type: envelope.PinSet, ObjectID: userID, Revision: revision}
}

// Seal seals s under the account key as the pin row of userID at revision
// (envelope type 7) and returns its base64. A server cannot make such a row:
// it does not have the account key.
func (s *PinSet) Seal(accountKey []byte, userID uuid.UUID, revision uint64, rand io.Reader) (string, error) {
	pt, err := s.Marshal()
	if err != nil {
		return "", err
	}
	return envelope.SealString(accountKey, pinContext(userID, revision), pt, rand)
}

// OpenPinSet opens and parses the pin row of userID at revision. An
// envelope of another account, row revision or type fails as the envelope
// package says (envelope.ErrTampered, ErrWrongType, …); a plaintext that
// does not parse is [ErrMalformedPins].
func OpenPinSet(accountKey []byte, userID uuid.UUID, revision uint64, sealed string) (*PinSet, error) {
	pt, err := envelope.OpenString(accountKey, pinContext(userID, revision), sealed)
	if err != nil {
		return nil, fmt.Errorf("trust: pin set: %w", err)
	}
	return ParsePinSet(pt)
}

// CheckRevision refuses a pin row older than the newest this device has
// seen ([ErrRollback]): an old pin set could bring back a pin the user
// replaced.
func CheckRevision(remembered, got uint64) error {
	if got < remembered {
		return fmt.Errorf("%w: revision %d, seen %d", ErrRollback, got, remembered)
	}
	return nil
}
