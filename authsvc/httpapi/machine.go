package httpapi

import (
	"encoding/base64"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/machinetoken"
)

// machineRoutes registers machine tokens: a person creates and revokes
// them (with a live session), and a token logs in by signing a nonce.
func (s *Server) machineRoutes(e *echo.Echo) {
	e.POST(api.PathTokens, s.createToken, s.requireSession)
	e.DELETE(api.PathTokens+"/:id", s.revokeToken, s.requireSession)
	e.POST(api.PathMachineChallenge, s.machineChallenge)
	e.POST(api.PathMachineLogin, s.machineLogin)
}

func (s *Server) createToken(c echo.Context) error {
	var req api.TokenCreateRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	n, err := s.Machine.Create(c.Request().Context(), callerOf(c).UserID, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, api.TokenInfo{TokenID: n.ID, Name: n.Name, CreatedAt: n.CreatedAt.UTC(), ExpiresAt: n.ExpiresAt.UTC()})
}

// revokeToken answers 204 for a token of the caller's, revoked now or
// before, and 404 for any other id, another person's token included.
func (s *Server) revokeToken(c echo.Context) error {
	if err := s.Machine.Revoke(c.Request().Context(), callerOf(c).UserID, c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// limitMachine counts one request of kind against the client's address
// prefix and against the token id, per minute. Like login, it fails
// closed: without Redis, 503.
func (s *Server) limitMachine(c echo.Context, kind, tokenID string) error {
	if err := s.limit(c, kind, s.Limits.MachinePerIP); err != nil {
		return err
	}
	d, err := s.Limiter.Allow(c.Request().Context(), kind+":tok:"+tokenID, s.Limits.MachinePerToken, time.Minute)
	if err != nil {
		return unavailable(err)
	}
	if !d.Allowed {
		return rateLimited(d.RetryAfter)
	}
	return nil
}

// machineChallenge hands out a nonce for any well-formed token id.
func (s *Server) machineChallenge(c echo.Context) error {
	var req api.MachineChallengeRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	// A malformed id is refused before it is counted (it names no token).
	if _, err := machinetoken.ParseID(req.TokenID); err != nil {
		return badRequest(api.CodeMalformedRequest, err)
	}
	if err := s.limitMachine(c, "mchallenge", req.TokenID); err != nil {
		return err
	}
	nonce, ttl, err := s.Machine.Challenge(c.Request().Context(), req.TokenID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.MachineChallenge{Nonce: base64.RawURLEncoding.EncodeToString(nonce), ExpiresIn: int(ttl / time.Second)})
}

func (s *Server) machineLogin(c echo.Context) error {
	var req api.MachineLoginRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if _, err := machinetoken.ParseID(req.TokenID); err != nil {
		return badRequest(api.CodeMalformedRequest, err)
	}
	if err := s.limitMachine(c, "mlogin", req.TokenID); err != nil {
		return err
	}
	t, err := s.Machine.Login(c.Request().Context(), req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}
