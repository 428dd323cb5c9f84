// Package srplogin is the server side of zsm's SRP-6a sign-up and login.
//
// The exchange has three steps, because the client needs its KDF salt before
// it can derive the SRP secret and go-srp needs the client's A before it can
// answer with B:
//
// Identities arrive as srpgroup.Identity, normalized once where the request
// came in.
//
//  1. Params(identity) → the account's KDF parameters.
//  2. Init(identity, A) → handshake id, SRP salt, B.
//  3. Verify(handshake id, M) → the server's proof and the user id.
//
// For an identity that does not exist, steps 1 and 2 answer in the same shape
// with values derived from the server secret (so repeated calls agree) and
// step 3 fails exactly like a wrong password: nobody learns from these
// endpoints whether an identity is registered.
package srplogin

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"
	srp "github.com/opencoff/go-srp"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/authsvc/handshake"
	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/srpgroup"
)

// Users is what sign-up and login need from storage.
type Users interface {
	UserByIdentity(ctx context.Context, identity string) (store.User, error)
	CreateUser(ctx context.Context, n store.NewUser) (string, error)
	// PublishedKeysOf and AddKeyRecord serve PublishKeyRecord;
	// PublishedKeysOf, KeyBundleOf and UpgradeKeys serve UpgradeKeys.
	PublishedKeysOf(ctx context.Context, userID string) (store.PublishedKeys, error)
	AddKeyRecord(ctx context.Context, k store.PublishedKeys) (bool, error)
	KeyBundleOf(ctx context.Context, userID string) (json.RawMessage, error)
	UpgradeKeys(ctx context.Context, u store.KeyUpgrade) error
}

// Auditor records failed proofs in the authentication audit.
type Auditor interface {
	Audit(ctx context.Context, e store.AuditEvent) error
}

// Handshakes keeps state between Init and Verify.
type Handshakes interface {
	Put(ctx context.Context, st handshake.State) (string, error)
	Take(ctx context.Context, id string) (handshake.State, error)
}

// Service runs sign-up and login.
type Service struct {
	users Users
	audit Auditor
	hs    Handshakes
	faker // made-up answers about unknown identities
}

// New returns a Service. serverSecret is the operator's server secret; a key
// for the made-up answers is derived from it. Every dependency is
// required: a Service that could not record failed proofs would hide
// password guessing from the audit.
func New(users Users, audit Auditor, hs Handshakes, serverSecret []byte) (*Service, error) {
	if users == nil || audit == nil || hs == nil {
		return nil, errors.New("srplogin: users, auditor and handshake store are all required")
	}
	f, err := newFaker(serverSecret)
	if err != nil {
		return nil, err
	}
	return &Service{users: users, audit: audit, hs: hs, faker: f}, nil
}

// HandshakeKey derives the key that seals handshake state from the server
// secret.
func HandshakeKey(serverSecret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, serverSecret, nil, "zsm authsvc handshake-seal v1", 32)
}

// Registration is a parsed sign-up request.
type Registration struct {
	UserID    string // optional: the client may choose the id its key bundle is bound to
	Identity  srpgroup.Identity
	Salt      []byte
	Verifier  []byte
	KDF       json.RawMessage
	KeyBundle json.RawMessage // optional
	// Public halves of the bundle, published for sharing. XWingPublic is
	// set for a version 2 bundle only.
	X25519Public, Ed25519Public, XWingPublic string
	// KeyRecordSignature is the account's signature over its key record
	// (docs/crypto.md §3), checked by VerifyKeyRecord.
	KeyRecordSignature string
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// ParseRegistration checks a registration for identity (parsed already,
// where the request came in; req.Identity is not read): a salt of the
// group's size, 1 < v < N-1 in canonical hex, KDF parameters at or above
// the floor, a random (version 4) user id if one is given, and a key
// bundle whose public keys are well-formed if one is given. The server
// keeps the bundle's envelopes as they are: it cannot open them. Every
// refusal wraps ErrBadRegistration.
func ParseRegistration(identity srpgroup.Identity, req api.SignupRequest) (Registration, error) {
	if identity.IsZero() {
		return Registration{}, fmt.Errorf("%w: identity: %w", ErrBadRegistration, srpgroup.ErrIdentity)
	}
	salt, err := srpgroup.ParseSalt(req.SRPSalt)
	if err != nil {
		return Registration{}, fmt.Errorf("%w: srp_salt: %w", ErrBadRegistration, err)
	}
	v, err := srpgroup.ParsePublic(req.SRPVerifier)
	if err != nil {
		return Registration{}, fmt.Errorf("%w: srp_verifier: %w", ErrBadRegistration, err)
	}
	k, err := ParseKDF(req.KDF)
	if err != nil {
		return Registration{}, fmt.Errorf("%w: %w", ErrBadRegistration, err)
	}
	if req.UserID != "" && !uuidPattern.MatchString(req.UserID) {
		return Registration{}, fmt.Errorf("%w: user_id must be a random (version 4) uuid in lower case", ErrBadRegistration)
	}
	canon, _ := json.Marshal(k)
	r := Registration{UserID: req.UserID, Identity: identity, Salt: salt, Verifier: v.Bytes(), KDF: canon}
	if string(req.KeyBundle) == "null" {
		return Registration{}, fmt.Errorf("%w: key_bundle must be an object; leave it out to publish no keys", ErrBadRegistration)
	}
	if len(req.KeyBundle) > 0 {
		if r.X25519Public, r.Ed25519Public, r.XWingPublic, err = BundlePublicKeys(req.KeyBundle); err != nil {
			return Registration{}, fmt.Errorf("%w: key_bundle: %w", ErrBadRegistration, err)
		}
		r.KeyBundle = req.KeyBundle
	}
	r.KeyRecordSignature = req.KeyRecordSignature
	return r, nil
}

// ParseNewPassword checks the new password's registration in a password
// change of the account identity, as a sign-up's is checked, except that
// the identity is the account's (the rules a new identity meets at sign-up
// may be newer than the account).
func ParseNewPassword(identity srpgroup.Identity, req api.PasswordChangeRequest) (Registration, error) {
	return ParseRegistration(identity, api.SignupRequest{
		SRPSalt: req.SRPSalt, SRPVerifier: req.SRPVerifier, KDF: req.KDF, KeyBundle: req.KeyBundle,
	})
}

// VerifyKeyRecord checks that a sign-up which publishes public keys proves
// possession of them: its key record (user id, identity and the public
// keys; version 2 with the X-Wing key of a version 2 bundle, which must be
// a valid X-Wing key for the record to have a message) must be signed by
// the Ed25519 key it publishes. Without this,
// anybody could publish another account's public keys as their own. A
// sign-up without a key bundle publishes nothing and must not send a
// signature either. Every failure wraps ErrBadKeyRecord.
func VerifyKeyRecord(r Registration) error {
	if r.KeyBundle == nil {
		if r.KeyRecordSignature != "" {
			return fmt.Errorf("%w: key_record_signature without a key_bundle", ErrBadKeyRecord)
		}
		return nil
	}
	if r.KeyRecordSignature == "" {
		return fmt.Errorf("%w: a sign-up with a key_bundle needs its key_record_signature", ErrBadKeyRecord)
	}
	if r.UserID == "" {
		return fmt.Errorf("%w: a sign-up with a key_bundle needs the user_id its key record binds", ErrBadKeyRecord)
	}
	uid, err := uuid.Parse(r.UserID)
	if err != nil {
		return fmt.Errorf("%w: user_id", ErrBadKeyRecord)
	}
	version := keyrecord.V1
	if r.XWingPublic != "" {
		version = keyrecord.V2
	}
	rec, err := keyrecord.FromPublished(version, uid, r.Identity.String(), r.X25519Public, r.Ed25519Public, r.XWingPublic)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadKeyRecord, err)
	}
	if err := keyrecord.Verify(rec, r.KeyRecordSignature); err != nil {
		return fmt.Errorf("%w: %w", ErrBadKeyRecord, err)
	}
	return nil
}

// ParseSignup checks a sign-up request, the edge where its identity is
// normalized (srpgroup.ParseIdentity), then the registration
// (ParseRegistration). A new identity must also meet
// srpgroup.CheckNewIdentity (no U+FFFD, no confusable mix of scripts); a
// password change re-registers an existing identity (ParseNewPassword), so
// an account made under older rules keeps working.
func ParseSignup(req api.SignupRequest) (Registration, error) {
	id, err := srpgroup.ParseIdentity(req.Identity)
	if err != nil {
		return Registration{}, fmt.Errorf("%w: identity: %w", ErrBadRegistration, err)
	}
	r, err := ParseRegistration(id, req)
	if err != nil {
		return Registration{}, err
	}
	if err := srpgroup.CheckNewIdentity(id.String()); err != nil {
		return Registration{}, fmt.Errorf("%w: identity: %w", ErrBadRegistration, err)
	}
	// The shape of the key fields; whether the signature verifies is
	// VerifyKeyRecord's question (403 when it does not). A bundle comes with
	// the user id its envelopes and record bind and with the record's
	// signature; a signature never comes alone.
	switch {
	case r.KeyBundle != nil && r.KeyRecordSignature == "":
		return Registration{}, fmt.Errorf("%w: a sign-up with a key_bundle needs its key_record_signature", ErrBadRegistration)
	case r.KeyBundle != nil && r.UserID == "":
		return Registration{}, fmt.Errorf("%w: a sign-up with a key_bundle needs the user_id its key record binds", ErrBadRegistration)
	case r.KeyBundle == nil && r.KeyRecordSignature != "":
		return Registration{}, fmt.Errorf("%w: key_record_signature without a key_bundle", ErrBadRegistration)
	case r.KeyRecordSignature != "" && !keyrecord.WellFormedSignature(r.KeyRecordSignature):
		return Registration{}, fmt.Errorf("%w: key_record_signature is not 64 bytes in canonical base64", ErrBadRegistration)
	}
	return r, nil
}

// MaxBundleBytes bounds a key bundle.
const MaxBundleBytes = 8192

// BundlePublicKeys reads the public keys out of a key bundle (ParseBundleShape).
func BundlePublicKeys(raw json.RawMessage) (x25519, ed25519, xwing string, err error) {
	b, err := ParseBundleShape(raw)
	if err != nil {
		return "", "", "", err
	}
	return b.X25519Public, b.Ed25519Public, b.XWingPublic, nil
}

// ParseBundleShape checks the shape of a key bundle: a JSON object of
// version 1 with exactly its six members, or of version 2 with exactly its
// eight; the envelopes canonical base64 (the server cannot open them and
// keeps them as they are), the X25519 and Ed25519 public keys canonical
// base64 of 32 bytes, and version 2's X-Wing public key canonical base64 of
// 1216 bytes. Whether the X-Wing key is a valid ML-KEM-768 key is checked
// with the key record, which has no message otherwise (VerifyKeyRecord).
func ParseBundleShape(raw json.RawMessage) (keys.Bundle, error) {
	var b keys.Bundle
	if len(raw) > MaxBundleBytes {
		return b, errors.New("too large")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || dec.More() {
		return b, errors.New("not a key bundle object")
	}
	envelopes := map[string]string{"account_key": b.AccountKey, "x25519_private": b.X25519Private, "ed25519_private": b.Ed25519Private}
	switch b.Version {
	case keys.BundleV1:
		if b.XWingPublic != "" || b.XWingPrivate != "" {
			return b, errors.New("a version 1 bundle has no X-Wing members")
		}
	case keys.BundleV2:
		envelopes["xwing_private"] = b.XWingPrivate
		if k, err := base64.StdEncoding.Strict().DecodeString(b.XWingPublic); err != nil || len(k) != keyrecord.XWingSize ||
			base64.StdEncoding.EncodeToString(k) != b.XWingPublic {
			return b, fmt.Errorf("xwing_public is not a %d-byte key in canonical base64", keyrecord.XWingSize)
		}
	default:
		return b, errors.New("version must be 1 or 2")
	}
	for name, v := range envelopes {
		// Canonical: the decoder skips line breaks, and a second spelling
		// of the same bytes is refused here as the client refuses it.
		if b, err := base64.StdEncoding.Strict().DecodeString(v); err != nil || v == "" || base64.StdEncoding.EncodeToString(b) != v {
			return keys.Bundle{}, fmt.Errorf("%s is not canonical base64", name)
		}
	}
	for name, v := range map[string]string{"x25519_public": b.X25519Public, "ed25519_public": b.Ed25519Public} {
		k, err := base64.StdEncoding.Strict().DecodeString(v)
		if err != nil || len(k) != 32 || base64.StdEncoding.EncodeToString(k) != v {
			return keys.Bundle{}, fmt.Errorf("%s is not a 32-byte key in canonical base64", name)
		}
	}
	return b, nil
}

// Register stores a parsed registration and returns the new user id.
func (s *Service) Register(ctx context.Context, r Registration) (string, error) {
	id, err := s.users.CreateUser(ctx, store.NewUser{
		ID: r.UserID, Identity: r.Identity.String(), SRPSalt: r.Salt, Verifier: r.Verifier, KDF: r.KDF,
		KeyBundle: r.KeyBundle, X25519Public: r.X25519Public, Ed25519Public: r.Ed25519Public, XWingPublic: r.XWingPublic,
		KeyRecordSignature: r.KeyRecordSignature,
	})
	return id, fromStore(err, nil)
}

// PublishKeyRecord publishes the signed key record of an account made
// before key records existed: signature must verify over the account's
// user id, identity and the public keys it published. A record already
// there is kept, and that is not an error (a client may send its record
// after every login). An account without public keys is ErrNoPublicKeys;
// a signature that does not verify wraps ErrBadKeyRecord.
func (s *Service) PublishKeyRecord(ctx context.Context, userID, signature string) error {
	k, err := s.users.PublishedKeysOf(ctx, userID)
	if err != nil {
		return fromStore(err, ErrNoPublicKeys)
	}
	uid, err := uuid.Parse(k.UserID)
	if err != nil {
		return fmt.Errorf("srplogin: key record: user id %q: %w", k.UserID, err)
	}
	rec, err := keyrecord.FromBase64(uid, k.Identity, k.X25519Public, k.Ed25519Public)
	if err != nil {
		return fmt.Errorf("srplogin: key record: stored keys: %w", err)
	}
	if err := keyrecord.Verify(rec, signature); err != nil {
		return fmt.Errorf("%w: %w", ErrBadKeyRecord, err)
	}
	if k.KeyRecordSignature != "" {
		return nil
	}
	k.KeyRecordSignature = signature
	_, err = s.users.AddKeyRecord(ctx, k)
	return err
}

// UpgradeKeys moves an account from key bundle version 1 to version 2
// (docs/crypto.md §3, "Upgrade"): bundle must be the stored one with the
// two X-Wing members added, the five others byte for byte (so the account
// key, the X25519 and the Ed25519 keys stay: a stolen access token cannot
// replace the account's keys), and signature the version 2 key record over
// the account's user id, identity, published keys and the new X-Wing key,
// verified under the account's own Ed25519 key. Both are stored in one
// transaction. An account already at version 2 is left as it is: nil when
// bundle is its stored bundle (a client may send it after every login),
// ErrKeysChanged otherwise. Refusals: ErrBadUpgrade (not a version 2
// bundle), ErrKeyChangeRefused, ErrBadKeyRecord, ErrKeysTaken (another
// account's X-Wing key), ErrKeysChanged (a race), ErrNoPublicKeys.
func (s *Service) UpgradeKeys(ctx context.Context, userID string, bundle json.RawMessage, signature string) error {
	nb, err := ParseBundleShape(bundle)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadUpgrade, err)
	}
	if nb.Version != keys.BundleV2 {
		return fmt.Errorf("%w: version %d", ErrBadUpgrade, nb.Version)
	}
	k, err := s.users.PublishedKeysOf(ctx, userID)
	if err != nil {
		return fromStore(err, ErrNoPublicKeys)
	}
	old, err := s.users.KeyBundleOf(ctx, userID)
	if err != nil {
		return fromStore(err, ErrNoPublicKeys)
	}
	var ob keys.Bundle
	if len(old) == 0 || json.Unmarshal(old, &ob) != nil {
		return ErrNoPublicKeys
	}
	if ob.Version == keys.BundleV2 {
		if ob == nb && k.KeyRecordVersion == keyrecord.V2 {
			return nil
		}
		return ErrKeysChanged
	}
	if ob.Version != keys.BundleV1 || ob.AccountKey != nb.AccountKey || ob.X25519Public != nb.X25519Public ||
		ob.X25519Private != nb.X25519Private || ob.Ed25519Public != nb.Ed25519Public || ob.Ed25519Private != nb.Ed25519Private {
		return fmt.Errorf("%w: the five members of the stored version 1 bundle must stay unchanged", ErrKeyChangeRefused)
	}
	if nb.X25519Public != k.X25519Public || nb.Ed25519Public != k.Ed25519Public {
		return fmt.Errorf("%w: the bundle's public keys are not the published ones", ErrKeyChangeRefused)
	}
	uid, err := uuid.Parse(k.UserID)
	if err != nil {
		return fmt.Errorf("srplogin: key upgrade: user id %q: %w", k.UserID, err)
	}
	rec, err := keyrecord.FromPublished(keyrecord.V2, uid, k.Identity, k.X25519Public, k.Ed25519Public, nb.XWingPublic)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadKeyRecord, err)
	}
	if err := keyrecord.Verify(rec, signature); err != nil {
		return fmt.Errorf("%w: %w", ErrBadKeyRecord, err)
	}
	canon, err := json.Marshal(nb)
	if err != nil {
		return err
	}
	return fromStore(s.users.UpgradeKeys(ctx, store.KeyUpgrade{UserID: k.UserID, OldBundle: old, NewBundle: canon,
		XWingPublic: nb.XWingPublic, KeyRecordSignature: signature}), ErrNoPublicKeys)
}

// Params returns the KDF parameters for identity, made up for an unknown one.
func (s *Service) Params(ctx context.Context, identity srpgroup.Identity) (api.KDF, error) {
	if identity.IsZero() {
		return api.KDF{}, fmt.Errorf("%w: no identity", ErrBadRequest)
	}
	id := identity.String()
	u, err := s.users.UserByIdentity(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound): // nobody registered it: a made-up answer
		return s.fakeKDF(id), nil
	case err != nil:
		return api.KDF{}, err
	}
	var k api.KDF
	if err := json.Unmarshal(u.KDF, &k); err != nil {
		return api.KDF{}, fmt.Errorf("srplogin: stored kdf of %s: %w", u.ID, err)
	}
	return k, nil
}

// Challenge is Init's answer.
type Challenge struct {
	HandshakeID string
	Salt        []byte
	B           *big.Int
	KDF         api.KDF
}

// Init starts a login: it checks A, builds go-srp's server side against the
// stored verifier (or a made-up one) and keeps the state for Verify.
func (s *Service) Init(ctx context.Context, identity srpgroup.Identity, aHex string) (Challenge, error) {
	if identity.IsZero() {
		return Challenge{}, fmt.Errorf("%w: no identity", ErrBadRequest)
	}
	id := identity.String()
	// Bounds and canonical form before any arithmetic; rejects A ≡ 0, 1, N-1.
	A, err := srpgroup.ParsePublic(aHex)
	if err != nil {
		return Challenge{}, fmt.Errorf("%w: A: %w", ErrBadRequest, err)
	}
	var (
		userID  string
		salt, v []byte
		kdf     api.KDF
	)
	u, err := s.users.UserByIdentity(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound): // nobody registered it: made-up answers
		salt, v, kdf = s.fakeSalt(id), s.fakeVerifier(id), s.fakeKDF(id)
	case err != nil:
		return Challenge{}, err
	default:
		userID, salt, v = u.ID, u.SRPSalt, u.Verifier
		if err := json.Unmarshal(u.KDF, &kdf); err != nil {
			return Challenge{}, fmt.Errorf("srplogin: stored kdf of %s: %w", u.ID, err)
		}
	}
	ver, err := srpgroup.Verifier(id, salt, v)
	if err != nil {
		return Challenge{}, fmt.Errorf("srplogin: stored verifier of %q: %w", userID, err)
	}
	srv, err := srpgroup.Env().NewServer(ver, A)
	if err != nil {
		return Challenge{}, fmt.Errorf("%w: A: %w", ErrBadRequest, err)
	}
	B, err := serverB(srv)
	if err != nil {
		return Challenge{}, err
	}
	hid, err := s.hs.Put(ctx, handshake.State{UserID: userID, Identity: id, Server: srv.Marshal()})
	if err != nil {
		return Challenge{}, err
	}
	return Challenge{HandshakeID: hid, Salt: salt, B: B, KDF: kdf}, nil
}

// serverB reads B from go-srp's "salt:B" credentials.
func serverB(srv *srp.Server) (*big.Int, error) {
	cred := srv.Credentials()
	i := strings.IndexByte(cred, ':')
	B, ok := new(big.Int).SetString(cred[i+1:], 16)
	if i < 0 || !ok {
		return nil, errors.New("srplogin: go-srp gave malformed credentials")
	}
	return B, nil
}

var proofPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Verified is Verify's answer.
type Verified struct {
	UserID    string
	Identity  string          // the identity the handshake was for
	Proof     string          // the server's proof, hex
	KeyBundle json.RawMessage // the account's key bundle, nil if it has none
}

// Verify checks the client's proof M for the handshake and returns the
// server's proof. Every failure is ErrLoginFailed (or an infrastructure
// error); the handshake is consumed whatever happens.
func (s *Service) Verify(ctx context.Context, handshakeID, mHex string) (Verified, error) {
	return s.verify(ctx, handshakeID, mHex, "", store.EventLoginFailed)
}

// VerifyFor is Verify for a user who is signed in already and proves the
// password again (before changing it): the handshake must have been started
// for userID's identity, or the proof is refused like a wrong one. A failure
// is recorded as failedEvent rather than as a failed login, and is
// ErrProofFailed (which wraps ErrLoginFailed).
func (s *Service) VerifyFor(ctx context.Context, userID, handshakeID, mHex, failedEvent string) (Verified, error) {
	if userID == "" {
		return Verified{}, ErrProofFailed
	}
	v, err := s.verify(ctx, handshakeID, mHex, userID, failedEvent)
	if errors.Is(err, ErrLoginFailed) {
		return Verified{}, ErrProofFailed
	}
	return v, err
}

func (s *Service) verify(ctx context.Context, handshakeID, mHex, wantUser, failedEvent string) (Verified, error) {
	if !handshake.ValidID(handshakeID) || !proofPattern.MatchString(mHex) {
		return Verified{}, fmt.Errorf("%w: handshake_id or proof is malformed", ErrBadRequest)
	}
	st, err := s.hs.Take(ctx, handshakeID)
	if errors.Is(err, handshake.ErrUnknown) {
		// Expired, replayed or made up: for a login there is nobody to
		// record it against.
		if wantUser != "" {
			return Verified{}, s.failed(ctx, failedEvent, wantUser, "", "handshake_unknown")
		}
		return Verified{}, ErrLoginFailed
	}
	if err != nil {
		return Verified{}, err
	}
	if wantUser != "" && st.UserID != wantUser {
		// Someone else's handshake (or one for an unknown identity): it is
		// spent now, and proves nothing about the caller.
		return Verified{}, s.failed(ctx, failedEvent, wantUser, "", "handshake_of_another_identity")
	}
	srv, err := RestoreServer(st.Server)
	if err != nil {
		return Verified{}, fmt.Errorf("srplogin: %w", err)
	}
	proof, ok := srv.ClientOk(mHex)
	if !ok || st.UserID == "" {
		if st.UserID == "" {
			return Verified{}, s.failed(ctx, failedEvent, "", st.Identity, "unknown_identity")
		}
		return Verified{}, s.failed(ctx, failedEvent, st.UserID, "", "wrong_proof")
	}
	u, err := s.users.UserByIdentity(ctx, st.Identity)
	if err != nil || u.ID != st.UserID {
		// The account vanished or changed hands between init and verify.
		return Verified{}, s.failed(ctx, failedEvent, st.UserID, "", "account_changed")
	}
	return Verified{UserID: st.UserID, Identity: st.Identity, Proof: proof, KeyBundle: u.KeyBundle}, nil
}

// failed records a failed proof and returns ErrLoginFailed, or the error of
// recording it. A failure for an identity nobody registered has no user id,
// so no user can ever read it; it names the identity for operators, who
// know every identity anyway. Nothing of the SRP exchange is recorded.
func (s *Service) failed(ctx context.Context, event, userID, identity, reason string) error {
	detail := map[string]any{"reason": reason}
	if userID == "" && identity != "" {
		detail["identity"] = identity
	}
	if err := s.audit.Audit(ctx, store.AuditEvent{Type: event, UserID: userID, Detail: detail}); err != nil {
		return fmt.Errorf("srplogin: recording a failed proof: %w", err)
	}
	return ErrLoginFailed
}

// maxDecimalDigits is the length of N-1 written in decimal (3072·log10 2 < 925).
const maxDecimalDigits = 925

// RestoreServer is go-srp's UnmarshalServer behind a guard. v0.6.7 parses two
// of the fields with a helper that panics on bad input (its recover() calls
// are not in a deferred function and do nothing), and it accepts any field
// size it knows and any hash. The state is sealed and authenticated before it
// gets here, so a bad value means a bug or a changed secret; either way it is
// an error, never a panic, and never another group.
func RestoreServer(s string) (srv *srp.Server, err error) {
	f := strings.Split(s, ":")
	if len(f) != 8 {
		return nil, errors.New("handshake state has the wrong number of fields")
	}
	if f[0] != strconv.Itoa(srpgroup.Bits) || f[1] != strconv.Itoa(int(srpgroup.Hash)) {
		return nil, errors.New("handshake state names another group or hash")
	}
	for _, i := range []int{4, 5} {
		if len(f[i]) == 0 || len(f[i]) > maxDecimalDigits || strings.Trim(f[i], "0123456789") != "" {
			return nil, errors.New("handshake state has a malformed number")
		}
	}
	defer func() {
		if r := recover(); r != nil {
			srv, err = nil, errors.New("handshake state could not be parsed")
		}
	}()
	srv, err = srp.UnmarshalServer(s)
	if err != nil {
		return nil, errors.New("handshake state could not be parsed")
	}
	return srv, nil
}

// faker makes up the answers for identities nobody registered. Each is a
// pure function of the server secret and the identity, so asking twice
// gives the same answer, as it would for a real account.
type faker struct {
	key []byte // derived from the server secret
}

func newFaker(serverSecret []byte) (faker, error) {
	key, err := hkdf.Key(sha256.New, serverSecret, nil, "zsm authsvc fake-identity v1", 32)
	if err != nil {
		return faker{}, err
	}
	return faker{key: key}, nil
}

func (s faker) derive(label, identity string, n int) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(identity))
	out, err := hkdf.Expand(sha256.New, m.Sum(nil), label, n)
	if err != nil {
		panic(err) // n is a constant well below HKDF's limit
	}
	return out
}

func (s faker) fakeKDF(identity string) api.KDF {
	return api.KDF{
		Alg:         api.KDFAlg,
		Salt:        base64.StdEncoding.EncodeToString(s.derive("kdf-salt", identity, api.KDFSaltBytes)),
		MemoryKiB:   api.KDFFloorMemoryKiB,
		Iterations:  api.KDFFloorIterations,
		Parallelism: api.KDFFloorParallelism,
	}
}

func (s faker) fakeSalt(identity string) []byte {
	return s.derive("srp-salt", identity, srpgroup.FieldBytes)
}

// fakeVerifier is a made-up verifier: a keyed hash of the identity,
// expanded to 32 bytes more than the group and reduced into 2..N-2, the
// range ParseRegistration accepts. A real verifier g^x is an element of the
// group that nobody without x can tell from any other (g = 5 generates the
// whole group), so B = k·v + g^b looks alike either way. It takes no
// modular exponentiation: computing g^x here made logins of unknown
// identities about 1.5 ms slower than those of real ones, which a client
// could measure.
func (s faker) fakeVerifier(identity string) []byte {
	v := new(big.Int).SetBytes(s.derive("srp-verifier", identity, srpgroup.FieldBytes+32))
	v.Mod(v, nMinus3)
	return v.Add(v, two).Bytes()
}

var (
	two     = big.NewInt(2)
	nMinus3 = new(big.Int).Sub(srpgroup.N, big.NewInt(3))
)

// EncodeSalt is the wire form of an SRP salt.
func EncodeSalt(b []byte) string { return hex.EncodeToString(b) }
