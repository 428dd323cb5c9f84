package zsm

// Other accounts' public keys, their fingerprints and safety numbers, and
// this account's own (docs/crypto.md §3, §6).

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"fmt"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/sdk/trust"
	"zsm.dev/zsm/srpgroup"
)

// PublicKeys are an account's published public keys, checked here.
type PublicKeys struct {
	UserID   uuid.UUID
	Identity string
	X25519   *ecdh.PublicKey
	Ed25519  ed25519.PublicKey
	// XWing is the X-Wing (ML-KEM-768 + X25519) public key of a version 2
	// key record, nil otherwise.
	XWing []byte
	// RecordVersion is the version of the key record the keys came with:
	// 2 (with the X-Wing key) or 1, or 0 for an account made before key
	// records existed that has not logged in since.
	RecordVersion int
	// Signed reports that the keys come with the account's key record,
	// verified here: the account itself vouched that these keys are its own
	// under this identity and user id. Neither says that the server did not
	// make the account up; comparing safety numbers out of band does
	// (CheckIdentity, ConfirmIdentity).
	Signed bool
}

// record is what pins and fingerprints are computed from.
func (p PublicKeys) record() trust.Record {
	r := trust.Record{Identity: trust.Identity{UserID: p.UserID, Identity: p.Identity, Ed25519Public: p.Ed25519}, Version: 1}
	if p.XWing != nil {
		r.Version, r.XWingPublic = 2, p.XWing
	}
	return r
}

// Digest is the fingerprint digest of the keys (docs/crypto.md §6).
func (p PublicKeys) Digest() (trust.Digest, error) {
	return trust.Identity{UserID: p.UserID, Identity: p.Identity, Ed25519Public: p.Ed25519}.Digest()
}

// fingerprint is the 32-byte fingerprint the membership log records.
func (p PublicKeys) fingerprint() (trust.Fingerprint, error) {
	d, err := p.Digest()
	return d.Fingerprint(), err
}

// keyRow is a published key row as api.lookup_identity and
// api.vault_member_keys return it.
type keyRow struct {
	UserID             uuid.UUID `json:"user_id"`
	Identity           string    `json:"identity"`
	X25519Public       string    `json:"x25519_public"`
	Ed25519Public      string    `json:"ed25519_public"`
	KeyRecordVersion   *int      `json:"key_record_version"`
	KeyRecordSignature *string   `json:"key_record_signature"`
	XWingPublic        *string   `json:"xwing_public"`
}

// checkKeys checks a published key row for identity (normalized): the keys
// well-formed, and its key record, if any, signed by its own Ed25519 key
// over exactly these keys, this user id and this identity. Any failure is
// ErrTampered.
func checkKeys(r keyRow, identity string) (PublicKeys, error) {
	xwing := ""
	if r.XWingPublic != nil {
		xwing = *r.XWingPublic
	}
	version := keyrecord.V1
	if r.KeyRecordVersion != nil {
		version = *r.KeyRecordVersion
	}
	if r.KeyRecordSignature == nil && (r.KeyRecordVersion != nil || xwing != "") {
		return PublicKeys{}, tamper(fmt.Sprintf("identity %q: keys without their key record", identity), nil)
	}
	rec, err := keyrecord.FromPublished(version, r.UserID, identity, r.X25519Public, r.Ed25519Public, xwing)
	if err != nil {
		return PublicKeys{}, tamper(fmt.Sprintf("identity %q: public keys", identity), err)
	}
	x, err := ecdh.X25519().NewPublicKey(rec.X25519)
	if err != nil {
		return PublicKeys{}, tamper(fmt.Sprintf("identity %q: X25519 key", identity), err)
	}
	pk := PublicKeys{UserID: r.UserID, Identity: identity, X25519: x, Ed25519: ed25519.PublicKey(rec.Ed25519), XWing: rec.XWing}
	if r.KeyRecordSignature != nil {
		if err := keyrecord.Verify(rec, *r.KeyRecordSignature); err != nil {
			return PublicKeys{}, tamper(fmt.Sprintf("identity %q: key record", identity), err)
		}
		pk.Signed, pk.RecordVersion = true, rec.Version()
	}
	return pk, nil
}

// LookupIdentity finds the account with exactly this identity (after
// normalization) and its public keys. The server answers one exact identity
// at a time and lists nobody. A key record that does not verify, or that
// names another identity or user id, is ErrTampered; no account is
// ErrNotFound.
func (c *Client) LookupIdentity(ctx context.Context, identity string) (PublicKeys, error) {
	ident, err := srpgroup.ParseIdentity(identity) // the SDK's edge: normalized here, once
	if err != nil {
		return PublicKeys{}, fmt.Errorf("identity: %w", err)
	}
	id := ident.String()
	var rows []keyRow
	if err := c.rest(ctx, "POST", "/rpc/lookup_identity", map[string]string{"identity": id}, &rows); err != nil {
		return PublicKeys{}, err
	}
	switch len(rows) {
	case 0:
		return PublicKeys{}, fmt.Errorf("identity %q: %w", id, ErrNotFound)
	case 1:
	default:
		return PublicKeys{}, tamper(fmt.Sprintf("identity %q: the server named %d accounts", id, len(rows)), nil)
	}
	return checkKeys(rows[0], id)
}

// Fingerprint is an account's fingerprint in the forms people compare.
type Fingerprint struct {
	Identity string
	UserID   uuid.UUID
	// SafetyNumber is 12 groups of 5 digits, to read aloud.
	SafetyNumber string
	// QR is the string a QR code carries ("zsmfp1:…"), to scan.
	QR string
}

func fingerprintOf(p PublicKeys) (Fingerprint, error) {
	d, err := p.Digest()
	if err != nil {
		return Fingerprint{}, err
	}
	return Fingerprint{Identity: p.Identity, UserID: p.UserID, SafetyNumber: d.SafetyNumber(), QR: d.QR()}, nil
}

// OwnFingerprint is this account's fingerprint, computed from its own keys
// (never from anything the server says), for others to compare with what
// their client shows for this account.
func (c *Client) OwnFingerprint() (Fingerprint, error) {
	s := c.Session()
	return fingerprintOf(PublicKeys{UserID: s.UserID, Identity: s.Identity, Ed25519: s.Keys.Ed25519.Public().(ed25519.PublicKey)})
}

// ownFP is this account's 32-byte fingerprint.
func (c *Client) ownFP() (trust.Fingerprint, error) {
	s := c.Session()
	return trust.Identity{UserID: s.UserID, Identity: s.Identity, Ed25519Public: s.Keys.Ed25519.Public().(ed25519.PublicKey)}.Fingerprint()
}
