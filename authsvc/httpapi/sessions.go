package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"zsm.dev/zsm/authsvc/session"
	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/authsvc/store"
)

// Errors of the endpoints that take an access token.
var (
	errInvalidToken      = apiError(http.StatusUnauthorized, "invalid_token", "the access token is missing or not valid")
	errSessionRevoked    = apiError(http.StatusUnauthorized, "session_revoked", "the session has ended; log in again")
	errSessionNotFound   = apiError(http.StatusNotFound, "not_found", "no such session")
	errProofFailed       = apiError(http.StatusForbidden, "proof_failed", "the current password or Secret Key is wrong, or the attempt expired; start again")
	errKeyBundleMismatch = apiError(http.StatusBadRequest, "key_bundle_mismatch", "the key bundle must carry the account's public keys, unchanged")
)

// sessionRoutes registers the endpoints with which users see and end their
// sessions and change their password. Each takes an access token
// (Authorization: Bearer) whose session must be live.
func (s *Server) sessionRoutes(v1 *echo.Group) {
	v1.GET("/sessions", s.listSessions, s.requireSession)
	v1.DELETE("/sessions/:id", s.revokeSession, s.requireSession)
	v1.POST("/password/init", s.passwordInit, s.requireSession)
	v1.POST("/password/change", s.passwordChange, s.requireSession)
}

// withAuditRequest puts the client address and request id into the
// request's context, for the audit rows the request causes.
func withAuditRequest(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ctx := store.WithRequest(r.Context(), store.RequestMeta{ClientAddr: clientAddr(c), RequestID: requestID(c)})
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}

const callerKey = "zsm.caller"

// requireSession admits a request whose bearer token signer.Verify accepts
// and whose session is live in the database: revoked, expired and idle
// sessions are refused at once, as gate.check_request() refuses them.
func (s *Server) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		scheme, token, ok := strings.Cut(c.Request().Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="zsm"`)
			return errInvalidToken
		}
		caller, err := s.Sessions.Authenticate(c.Request().Context(), strings.TrimSpace(token))
		switch {
		case errors.Is(err, session.ErrInvalidAccess):
			c.Response().Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			cp := *errInvalidToken
			cp.cause = err
			return &cp
		case errors.Is(err, session.ErrSessionEnded):
			c.Response().Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			return errSessionRevoked
		case errors.Is(err, signer.ErrNotLoaded):
			return errUnavailable
		case err != nil:
			return err
		}
		c.Set(callerKey, caller)
		return next(c)
	}
}

func callerOf(c echo.Context) session.Caller {
	caller, _ := c.Get(callerKey).(session.Caller)
	return caller
}

// SessionView is one session in GET /auth/v1/sessions.
type SessionView struct {
	ID            string    `json:"id"`
	DeviceLabel   *string   `json:"device_label"`
	ClientAddr    *string   `json:"client_addr"`
	CreatedAt     time.Time `json:"created_at"`
	LastUsedAt    time.Time `json:"last_used_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	IdleExpiresAt *string   `json:"idle_expires_at"`
	Current       bool      `json:"current"`
}

func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Server) listSessions(c echo.Context) error {
	caller := callerOf(c)
	list, err := s.Sessions.List(c.Request().Context(), caller)
	if err != nil {
		return err
	}
	out := make([]SessionView, 0, len(list))
	for _, i := range list {
		v := SessionView{
			ID: i.ID, DeviceLabel: orNull(i.DeviceLabel), ClientAddr: orNull(i.ClientAddr),
			CreatedAt: i.CreatedAt.UTC(), LastUsedAt: i.LastUsedAt.UTC(), ExpiresAt: i.ExpiresAt.UTC(),
			Current: i.ID == caller.SessionID,
		}
		if !i.IdleUntil.IsZero() {
			v.IdleExpiresAt = orNull(i.IdleUntil.UTC().Format(time.RFC3339Nano))
		}
		out = append(out, v)
	}
	return c.JSON(http.StatusOK, map[string]any{"sessions": out})
}

func (s *Server) revokeSession(c echo.Context) error {
	err := s.Sessions.Revoke(c.Request().Context(), callerOf(c), c.Param("id"))
	if errors.Is(err, session.ErrNotFound) {
		return errSessionNotFound
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// PasswordInitRequest is the body of POST /auth/v1/password/init.
type PasswordInitRequest struct {
	A string `json:"a"`
}

// passwordInit starts an SRP exchange for the caller's own identity, exactly
// like login/init (and counted against the same rate limits): a password
// change needs a fresh proof of the old password.
func (s *Server) passwordInit(c echo.Context) error {
	var req PasswordInitRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	u, err := s.Sessions.Account(ctx, callerOf(c))
	if errors.Is(err, session.ErrSessionEnded) {
		return errSessionRevoked
	}
	if err != nil {
		return err
	}
	return s.startSRP(c, u.Identity, req.A)
}

// PasswordChangeRequest is the body of POST /auth/v1/password/change: the
// proof of the old password for a handshake from password/init, and the
// new password's registration data with the re-wrapped key bundle.
type PasswordChangeRequest struct {
	HandshakeID string          `json:"handshake_id"`
	M           string          `json:"m"`
	SRPSalt     string          `json:"srp_salt"`
	SRPVerifier string          `json:"srp_verifier"`
	KDF         json.RawMessage `json:"kdf"`
	KeyBundle   json.RawMessage `json:"key_bundle,omitempty"`
}

func (s *Server) passwordChange(c echo.Context) error {
	var req PasswordChangeRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	caller := callerOf(c)
	u, err := s.Sessions.Account(ctx, caller)
	if errors.Is(err, session.ErrSessionEnded) {
		return errSessionRevoked
	}
	if err != nil {
		return err
	}
	// The new registration is checked as a sign-up's is, before the
	// handshake is spent.
	reg, err := srplogin.ParseRegistration(srplogin.SignupInput{
		Identity: u.Identity, SaltHex: req.SRPSalt, VerifierHex: req.SRPVerifier, KDF: req.KDF, KeyBundle: req.KeyBundle,
	})
	if err != nil {
		return badRequest("invalid_registration", err)
	}
	v, err := s.Login.VerifyFor(ctx, caller.UserID, req.HandshakeID, req.M, store.EventPasswordChangeFailed)
	switch {
	case errors.Is(err, srplogin.ErrLoginFailed):
		return errProofFailed
	case errors.Is(err, srplogin.ErrBadRequest):
		return badRequest("malformed_request", err)
	case err != nil:
		return err
	}
	if err := s.Attempts.Succeeded(ctx, v.Identity, s.addrPrefix(c)); err != nil {
		s.log.WarnContext(ctx, "recording a successful proof for the rate limits failed", "request_id", requestID(c), "err", err)
	}
	n, err := s.Sessions.ChangePassword(ctx, caller, store.PasswordChange{
		SRPSalt: reg.Salt, Verifier: reg.Verifier, KDF: reg.KDF,
		KeyBundle: reg.KeyBundle, X25519Public: reg.X25519Public, Ed25519Public: reg.Ed25519Public,
	})
	switch {
	case errors.Is(err, session.ErrKeysDiffer):
		return errKeyBundleMismatch
	case errors.Is(err, session.ErrSessionEnded):
		return errSessionRevoked
	case err != nil:
		return fmt.Errorf("password change: %w", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"server_proof": v.Proof, "sessions_revoked": n})
}
