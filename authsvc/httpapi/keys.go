package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/sdk/keyrecord"
)

// KeyRecords is what the key-record endpoint needs from storage.
type KeyRecords interface {
	PublishedKeysOf(ctx context.Context, userID string) (store.PublishedKeys, error)
	AddKeyRecord(ctx context.Context, k store.PublishedKeys) (bool, error)
}

// Errors of the key record (sign-up and POST /auth/v1/keys/record).
var (
	errKeysTaken     = apiError(http.StatusConflict, "public_key_in_use", "these public keys are published by another account; a public key belongs to one account only")
	errNoPublicKeys  = apiError(http.StatusConflict, "no_public_keys", "this account has published no public keys, so it has no key record to publish")
	errRecordUnknown = apiError(http.StatusServiceUnavailable, "service_unavailable", "key records cannot be published on this server")
)

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
