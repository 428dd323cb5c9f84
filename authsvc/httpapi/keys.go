package httpapi

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/sdk/keyrecord"
)

// keyRoutes registers the endpoints through which an account made before
// key records existed publishes its record, and one made before key bundle
// version 2 upgrades (docs/auth.md, "Key records").
func (s *Server) keyRoutes(e *echo.Echo) {
	e.POST(api.PathKeyRecord, s.publishKeyRecord, s.requireSession)
	e.POST(api.PathKeyUpgrade, s.upgradeKeys, s.requireSession)
}

// upgradeKeys moves the caller's account to key bundle version 2
// (srplogin.Service.UpgradeKeys).
func (s *Server) upgradeKeys(c echo.Context) error {
	var req api.KeyUpgradeRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	// Its shape first (400); the rest is UpgradeKeys' question.
	if !keyrecord.WellFormedSignature(req.KeyRecordSignature) {
		return fmt.Errorf("%w: key_record_signature is not 64 bytes in canonical base64", srplogin.ErrBadRequest)
	}
	if err := s.Login.UpgradeKeys(c.Request().Context(), callerOf(c).UserID, req.KeyBundle, req.KeyRecordSignature); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// publishKeyRecord verifies the caller's signature over the key record of
// the keys the account already published (its user id, its identity, both
// public keys) and stores it when the account has none yet. A record
// already there is kept: the answer is 204 either way once the signature
// verifies, so a client may send it after every login.
func (s *Server) publishKeyRecord(c echo.Context) error {
	var req api.KeyRecordRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	// Its shape first (400); whether it verifies is PublishKeyRecord's
	// question (403 when it does not).
	if !keyrecord.WellFormedSignature(req.KeyRecordSignature) {
		return fmt.Errorf("%w: key_record_signature is not 64 bytes in canonical base64", srplogin.ErrBadRequest)
	}
	if err := s.Login.PublishKeyRecord(c.Request().Context(), callerOf(c).UserID, req.KeyRecordSignature); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
