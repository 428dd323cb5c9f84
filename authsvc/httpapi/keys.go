package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/sdk/keys"
)

// KeyRecords is what the key-record endpoints need from storage.
type KeyRecords interface {
	PublishedKeysOf(ctx context.Context, userID string) (store.PublishedKeys, error)
	AddKeyRecord(ctx context.Context, k store.PublishedKeys) (bool, error)
	KeyBundleOf(ctx context.Context, userID string) (json.RawMessage, error)
	UpgradeKeys(ctx context.Context, u store.KeyUpgrade) error
}

// Errors of the key record (sign-up and POST /auth/v1/keys/record).
var (
	errKeysTaken     = apiError(http.StatusConflict, "public_key_in_use", "these public keys are published by another account; a public key belongs to one account only")
	errNoPublicKeys  = apiError(http.StatusConflict, "no_public_keys", "this account has published no public keys, so it has no key record to publish")
	errRecordUnknown = apiError(http.StatusServiceUnavailable, "service_unavailable", "key records cannot be published on this server")
	errUpgradeRaced  = apiError(http.StatusConflict, "keys_changed", "the account's keys changed meanwhile (upgraded or re-wrapped on another device); log in again")
)

// badUpgrade refuses a key upgrade whose bundle is not a version 2 bundle
// (400: the shape of the request).
func badUpgrade(cause error) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_key_upgrade", Message: cause.Error(), cause: cause}
}

// refusedUpgrade refuses a well-formed version 2 bundle that is not the
// account's stored bundle plus an X-Wing key. 403, like invalid_key_record:
// the request is understood, and what it would change is not allowed.
func refusedUpgrade(cause error) *Error {
	return &Error{Status: http.StatusForbidden, Code: "key_change_refused", Message: cause.Error(), cause: cause}
}

// badKeyRecord refuses a key record that does not prove possession of the
// keys it publishes. 403, like a wrong SRP proof (proof_failed): the request
// is well formed (its shape is refused earlier, with 400), but what it
// proves is not accepted.
func badKeyRecord(cause error) *Error {
	return &Error{Status: http.StatusForbidden, Code: "invalid_key_record", Message: cause.Error(), cause: cause}
}

// keyRoutes registers the endpoint through which an account made before
// key records existed publishes its record (docs/auth.md, "Key records").
func (s *Server) keyRoutes(v1 *echo.Group) {
	v1.POST("/keys/record", s.publishKeyRecord, s.requireSession)
	v1.POST("/keys/upgrade", s.upgradeKeys, s.requireSession)
}

// KeyUpgradeRequest is the body of POST /auth/v1/keys/upgrade: the
// account's key bundle version 2 and its version 2 key record's signature.
type KeyUpgradeRequest struct {
	KeyBundle          json.RawMessage `json:"key_bundle"`
	KeyRecordSignature string          `json:"key_record_signature"`
}

// upgradeKeys moves an account from key bundle version 1 to version 2
// (docs/crypto.md §3, "Upgrade"): the new bundle must be the stored one
// with the two X-Wing members added, the five others byte for byte (so the
// account key, the X25519 and the Ed25519 keys stay: a stolen access token
// cannot replace the account's keys), and the version 2 record over the
// account's user id, identity, published keys and the new X-Wing key must
// verify under the account's own Ed25519 key. Anything else is refused and
// changes nothing. An account already at version 2 answers 204 when the
// request names its stored bundle (a client may send it after every login)
// and keys_changed otherwise.
func (s *Server) upgradeKeys(c echo.Context) error {
	var req KeyUpgradeRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if s.Keys == nil {
		return errRecordUnknown
	}
	ctx := c.Request().Context()
	caller := callerOf(c)
	nb, err := srplogin.ParseBundleShape(req.KeyBundle)
	if err != nil {
		return badUpgrade(err)
	}
	if nb.Version != keys.BundleV2 {
		return badUpgrade(errors.New("the key bundle must be version 2"))
	}
	k, err := s.Keys.PublishedKeysOf(ctx, caller.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return errNoPublicKeys
	}
	if err != nil {
		return err
	}
	old, err := s.Keys.KeyBundleOf(ctx, caller.UserID)
	if err != nil {
		return err
	}
	var ob keys.Bundle
	if len(old) == 0 || json.Unmarshal(old, &ob) != nil {
		return errNoPublicKeys
	}
	if ob.Version == keys.BundleV2 {
		if ob == nb && k.KeyRecordVersion == keyrecord.V2 {
			return c.NoContent(http.StatusNoContent)
		}
		return errUpgradeRaced
	}
	if ob.Version != keys.BundleV1 || ob.AccountKey != nb.AccountKey || ob.X25519Public != nb.X25519Public ||
		ob.X25519Private != nb.X25519Private || ob.Ed25519Public != nb.Ed25519Public || ob.Ed25519Private != nb.Ed25519Private {
		return refusedUpgrade(errors.New("the version 2 bundle must keep the five members of the stored version 1 bundle unchanged"))
	}
	if nb.X25519Public != k.X25519Public || nb.Ed25519Public != k.Ed25519Public {
		return refusedUpgrade(errors.New("the bundle's public keys are not the published ones"))
	}
	uid, err := uuid.Parse(k.UserID)
	if err != nil {
		return fmt.Errorf("key upgrade: user id %q: %w", k.UserID, err)
	}
	rec, err := keyrecord.FromPublished(keyrecord.V2, uid, k.Identity, k.X25519Public, k.Ed25519Public, nb.XWingPublic)
	if err != nil {
		return badUpgrade(err)
	}
	if err := keyrecord.Verify(rec, req.KeyRecordSignature); err != nil {
		return badKeyRecord(err)
	}
	canon, err := json.Marshal(nb)
	if err != nil {
		return err
	}
	err = s.Keys.UpgradeKeys(ctx, store.KeyUpgrade{UserID: k.UserID, OldBundle: old, NewBundle: canon,
		XWingPublic: nb.XWingPublic, KeyRecordSignature: req.KeyRecordSignature})
	switch {
	case errors.Is(err, store.ErrKeysTaken):
		return errKeysTaken
	case errors.Is(err, store.ErrBundleChanged):
		return errUpgradeRaced
	case err != nil:
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// KeyRecordRequest is the body of POST /auth/v1/keys/record.
type KeyRecordRequest struct {
	KeyRecordSignature string `json:"key_record_signature"`
}

// publishKeyRecord verifies the caller's signature over the key record of
// the keys the account already published (its user id, its identity, both
// public keys) and stores it when the account has none yet. A record
// already there is kept: the answer is 204 either way once the signature
// verifies, so a client may send it after every login.
func (s *Server) publishKeyRecord(c echo.Context) error {
	var req KeyRecordRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if !keyrecord.WellFormedSignature(req.KeyRecordSignature) {
		return badRequest("malformed_request", errors.New("key_record_signature is not 64 bytes in canonical base64"))
	}
	if s.Keys == nil {
		return errRecordUnknown
	}
	ctx := c.Request().Context()
	caller := callerOf(c)
	k, err := s.Keys.PublishedKeysOf(ctx, caller.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return errNoPublicKeys
	}
	if err != nil {
		return err
	}
	uid, err := uuid.Parse(k.UserID)
	if err != nil {
		return fmt.Errorf("key record: user id %q: %w", k.UserID, err)
	}
	rec, err := keyrecord.FromBase64(uid, k.Identity, k.X25519Public, k.Ed25519Public)
	if err != nil {
		return fmt.Errorf("key record: stored keys: %w", err)
	}
	if err := keyrecord.Verify(rec, req.KeyRecordSignature); err != nil {
		return badKeyRecord(err)
	}
	if k.KeyRecordSignature != "" {
		return c.NoContent(http.StatusNoContent)
	}
	k.KeyRecordSignature = req.KeyRecordSignature
	if _, err := s.Keys.AddKeyRecord(ctx, k); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
