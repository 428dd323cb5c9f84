// Package machine runs machine tokens on the server (docs/auth.md "Machine
// tokens"): a signed-in person registers a token the client made, revokes
// it, and the token logs in by signing a fresh nonce, without SRP.
//
// The server never sees a token's secret. It stores the token's public keys
// with the key record the token signed over them (verified here before
// anything is stored), and checks each login signature under the token's
// Ed25519 key. A login gets a short access token of a person's shape,
// marked as a machine's (signer.IssueMachine), and no refresh token.
package machine

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/authsvc/handshake"
	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/sdk/machinetoken"
)

// Errors of machine tokens; authsvc/httpapi answers each with one code.
var (
	// ErrBadRequest: a field has the wrong shape (400 malformed_request).
	ErrBadRequest = errors.New("machine: malformed request")
	// ErrBadKeyRecord: the token's key record does not verify (403
	// invalid_key_record).
	ErrBadKeyRecord = errors.New("machine: the token's key record does not verify")
	// ErrNameTaken: the owner has a live token of that name (409).
	ErrNameTaken = errors.New("machine: a live token of that name exists")
	// ErrIDTaken: the token id is another token's or an account's (409
	// identity_unavailable).
	ErrIDTaken = errors.New("machine: the token id is taken")
	// ErrKeysTaken: another token published these keys (409).
	ErrKeysTaken = errors.New("machine: these public keys are another token's")
	// ErrNotFound: no token of the caller's with that id (404).
	ErrNotFound = errors.New("machine: no such token")
	// ErrLoginFailed is the one answer to a machine login that does not
	// succeed: unknown, revoked or expired token, a nonce never issued,
	// expired or spent, a signature that does not verify. It does not say
	// which (401 login_failed).
	ErrLoginFailed = errors.New("machine: login failed")
)

// Store is what machine tokens need from storage; *store.Store has it.
type Store interface {
	CreateMachineToken(ctx context.Context, n store.NewMachineToken) error
	RevokeMachineToken(ctx context.Context, owner, id string, now time.Time) error
	MachineTokenByID(ctx context.Context, id string) (store.MachineToken, error)
	MachineTokenUsed(ctx context.Context, t store.MachineToken, now time.Time) error
	Audit(ctx context.Context, e store.AuditEvent) error
}

// Nonces keeps login challenges (handshake.Nonces).
type Nonces interface {
	Issue(ctx context.Context, tokenID string) ([]byte, error)
	Take(ctx context.Context, tokenID string, nonce []byte) error
	TTL() time.Duration
}

// Service runs machine tokens.
type Service struct {
	store    Store
	nonces   Nonces
	signer   *signer.Signer
	audience string
	log      *slog.Logger
	Now      func() time.Time
}

// New returns a Service; every dependency is required. audience is the
// JWT audience, which every login signature covers.
func New(st Store, nonces Nonces, sg *signer.Signer, audience string, log *slog.Logger) (*Service, error) {
	if st == nil || nonces == nil || sg == nil || audience == "" || log == nil {
		return nil, errors.New("machine: store, nonces, signer, audience and log are all required")
	}
	if len(audience) > 255 {
		return nil, errors.New("machine: the audience is longer than 255 bytes")
	}
	return &Service{store: st, nonces: nonces, signer: sg, audience: audience, log: log, Now: time.Now}, nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// b64 decodes canonical standard base64 of exactly n bytes.
func b64(s string, n int) ([]byte, bool) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != n || base64.StdEncoding.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// parseCreate checks a registration's shape and then its key record: the
// shape first (400), the signature after (403), as at sign-up.
func parseCreate(owner string, req api.TokenCreateRequest, now time.Time) (store.NewMachineToken, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, a...))
	}
	id, err := machinetoken.ParseID(req.TokenID)
	if err != nil {
		return store.NewMachineToken{}, bad("token_id must be a version 4 uuid in lower case")
	}
	if !namePattern.MatchString(req.Name) {
		return store.NewMachineToken{}, bad("name must be 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit")
	}
	x, ok1 := b64(req.X25519Public, 32)
	e, ok2 := b64(req.Ed25519Public, ed25519.PublicKeySize)
	xw, ok3 := b64(req.XWingPublic, 1216)
	if !ok1 || !ok2 || !ok3 {
		return store.NewMachineToken{}, bad("x25519_public, ed25519_public and xwing_public must be canonical base64 of 32, 32 and 1216 bytes")
	}
	if _, ok := b64(req.Anchor, 32); !ok {
		return store.NewMachineToken{}, bad("anchor must be canonical base64 of 32 bytes")
	}
	if _, ok := b64(req.KeyRecordSignature, ed25519.SignatureSize); !ok {
		return store.NewMachineToken{}, bad("key_record_signature must be canonical base64 of 64 bytes")
	}
	now = now.Truncate(time.Second)
	life := time.Duration(req.LifetimeSeconds) * time.Second
	if req.LifetimeSeconds < int64(api.TokenMinLifetime/time.Second) || req.LifetimeSeconds > int64(api.TokenMaxLifetime/time.Second) {
		return store.NewMachineToken{}, bad("lifetime_seconds must be from %d to %d (366 days)", int64(api.TokenMinLifetime/time.Second), int64(api.TokenMaxLifetime/time.Second))
	}
	exp := now.Add(life)
	// Only the holder of the token's secret can sign its record: nobody can
	// register a token with another token's (or a person's) Ed25519 key.
	if err := machinetoken.VerifyRecord(machinetoken.Public{TokenID: id, X25519: x, Ed25519: e, XWing: xw}, req.KeyRecordSignature); err != nil {
		return store.NewMachineToken{}, fmt.Errorf("%w: %w", ErrBadKeyRecord, err)
	}
	return store.NewMachineToken{
		ID: id.String(), OwnerID: owner, Name: req.Name,
		X25519Public: req.X25519Public, Ed25519Public: req.Ed25519Public, XWingPublic: req.XWingPublic,
		KeyRecordSignature: req.KeyRecordSignature, Anchor: req.Anchor, CreatedAt: now, ExpiresAt: exp,
	}, nil
}

// Create registers the token req describes for owner, a person whose
// session authsvc has checked.
func (s *Service) Create(ctx context.Context, owner string, req api.TokenCreateRequest) (store.NewMachineToken, error) {
	n, err := parseCreate(owner, req, s.Now())
	if err != nil {
		return store.NewMachineToken{}, err
	}
	if err := fromStore(s.store.CreateMachineToken(ctx, n)); err != nil {
		return store.NewMachineToken{}, err
	}
	return n, nil
}

// Revoke revokes owner's token id: it logs in no more, and its access
// tokens are refused on their next request (gate.check_request()).
func (s *Service) Revoke(ctx context.Context, owner, id string) error {
	if _, err := machinetoken.ParseID(id); err != nil {
		return ErrNotFound
	}
	return fromStore(s.store.RevokeMachineToken(ctx, owner, id, s.Now()))
}

// Challenge issues a nonce for tokenID. It does not look the token up: an
// unknown, revoked or expired token gets a nonce of the same shape, in the
// same time, and its login fails like any other.
func (s *Service) Challenge(ctx context.Context, tokenID string) ([]byte, time.Duration, error) {
	if _, err := machinetoken.ParseID(tokenID); err != nil {
		return nil, 0, fmt.Errorf("%w: token_id must be a version 4 uuid in lower case", ErrBadRequest)
	}
	n, err := s.nonces.Issue(ctx, tokenID)
	if err != nil {
		return nil, 0, err
	}
	return n, s.nonces.TTL(), nil
}

// Login checks a signed challenge and issues an access token. The nonce is
// spent first, whatever follows, so a nonce answers one attempt.
func (s *Service) Login(ctx context.Context, req api.MachineLoginRequest) (api.MachineTokens, error) {
	id, err := machinetoken.ParseID(req.TokenID)
	if err != nil {
		return api.MachineTokens{}, fmt.Errorf("%w: token_id must be a version 4 uuid in lower case", ErrBadRequest)
	}
	nonce, err := base64.RawURLEncoding.Strict().DecodeString(req.Nonce)
	if err != nil || len(nonce) != machinetoken.NonceSize {
		return api.MachineTokens{}, fmt.Errorf("%w: nonce must be the challenge's 32 bytes in base64url", ErrBadRequest)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(req.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return api.MachineTokens{}, fmt.Errorf("%w: signature must be 64 bytes in base64url", ErrBadRequest)
	}
	tid := id.String()
	if err := s.nonces.Take(ctx, tid, nonce); err != nil {
		if errors.Is(err, handshake.ErrUnknown) {
			return api.MachineTokens{}, s.failed(ctx, tid, "", "nonce")
		}
		return api.MachineTokens{}, err
	}
	now := s.Now()
	t, err := s.store.MachineTokenByID(ctx, tid)
	if errors.Is(err, store.ErrNotFound) {
		return api.MachineTokens{}, s.failed(ctx, tid, "", "unknown")
	}
	if err != nil {
		return api.MachineTokens{}, err
	}
	switch {
	case t.RevokedAt != nil:
		return api.MachineTokens{}, s.failed(ctx, tid, t.OwnerID, "revoked")
	case !now.Before(t.ExpiresAt):
		return api.MachineTokens{}, s.failed(ctx, tid, t.OwnerID, "expired")
	}
	pub, ok := b64(t.Ed25519Public, ed25519.PublicKeySize)
	if !ok || !machinetoken.VerifyLogin(id, pub, nonce, s.audience, sig) {
		return api.MachineTokens{}, s.failed(ctx, tid, t.OwnerID, "bad_signature")
	}
	// Revoked or expired since the lookup: no token is issued.
	if err := s.store.MachineTokenUsed(ctx, t, now); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.MachineTokens{}, s.failed(ctx, tid, t.OwnerID, "revoked")
		}
		return api.MachineTokens{}, err
	}
	at, exp, err := s.signer.IssueMachine(tid, now)
	if err != nil {
		return api.MachineTokens{}, err
	}
	// The access token may outlive the machine token by minutes; the gate
	// refuses it from the machine token's end on (every request checks
	// the row).
	return api.MachineTokens{
		TokenID: tid, OwnerID: t.OwnerID, Anchor: t.Anchor, AccessToken: at, TokenType: api.TokenType,
		ExpiresIn: int(exp.Sub(now).Round(time.Second) / time.Second), ExpiresAt: exp.UTC(),
	}, nil
}

// failed records a refused login for operators (and the token's owner,
// when the token is known) and returns the one answer for all of them.
func (s *Service) failed(ctx context.Context, tokenID, owner, reason string) error {
	err := s.store.Audit(ctx, store.AuditEvent{Type: store.EventMachineLoginFailed, UserID: owner,
		Detail: map[string]any{"token_id": tokenID, "reason": reason}})
	if err != nil {
		s.log.ErrorContext(ctx, "recording a refused machine login in the audit log failed", "err", err)
	}
	return ErrLoginFailed
}

// fromStore maps the store's errors to this package's.
func fromStore(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNameTaken):
		return ErrNameTaken
	case errors.Is(err, store.ErrTokenIDTaken):
		return ErrIDTaken
	case errors.Is(err, store.ErrKeysTaken):
		return ErrKeysTaken
	case errors.Is(err, store.ErrNotFound):
		return ErrNotFound
	}
	return err
}
