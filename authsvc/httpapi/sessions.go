package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/authsvc/session"
	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/authsvc/store"
)

// sessionRoutes registers the endpoints with which users see and end their
// sessions and change their password. Each takes an access token
// (Authorization: Bearer) whose session must be live.
func (s *Server) sessionRoutes(e *echo.Echo) {
	e.GET(api.PathSessions, s.listSessions, s.requireSession)
	e.DELETE(api.PathSessions+"/:id", s.revokeSession, s.requireSession)
	e.POST(api.PathPasswordInit, s.passwordInit, s.requireSession)
	e.POST(api.PathPasswordChange, s.passwordChange, s.requireSession)
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
		if errors.Is(err, session.ErrInvalidAccess) || errors.Is(err, session.ErrSessionEnded) {
			// The challenge of RFC 6750 §3.1; the body says which.
			c.Response().Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		}
		if err != nil {
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
	out := api.SessionsResponse{Sessions: make([]api.SessionInfo, 0, len(list))}
	for _, i := range list {
		v := api.SessionInfo{
			ID: i.ID, DeviceLabel: orNull(i.DeviceLabel), ClientAddr: orNull(i.ClientAddr),
			CreatedAt: i.CreatedAt.UTC(), LastUsedAt: i.LastUsedAt.UTC(), ExpiresAt: i.ExpiresAt.UTC(),
			Current: i.ID == caller.SessionID,
		}
		if !i.IdleUntil.IsZero() {
			idle := i.IdleUntil.UTC()
			v.IdleExpiresAt = &idle
		}
		out.Sessions = append(out.Sessions, v)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) revokeSession(c echo.Context) error {
	if err := s.Sessions.Revoke(c.Request().Context(), callerOf(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// passwordInit starts an SRP exchange for the caller's own identity, exactly
// like login/init (and counted against the same rate limits): a password
// change needs a fresh proof of the old password.
func (s *Server) passwordInit(c echo.Context) error {
	var req api.PasswordInitRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id, err := s.Sessions.Identity(ctx, callerOf(c))
	if err != nil {
		return err
	}
	return s.startSRP(c, id, req.A)
}

func (s *Server) passwordChange(c echo.Context) error {
	var req api.PasswordChangeRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	caller := callerOf(c)
	id, err := s.Sessions.Identity(ctx, caller)
	if err != nil {
		return err
	}
	// The new registration is checked as a sign-up's is, before the
	// handshake is spent.
	reg, err := srplogin.ParseNewPassword(id, req)
	if err != nil {
		return err
	}
	v, err := s.Login.VerifyFor(ctx, caller.UserID, req.HandshakeID, req.M, store.EventPasswordChangeFailed)
	if err != nil {
		return err
	}
	if err := s.Attempts.Succeeded(ctx, v.Identity, s.addrPrefix(c)); err != nil {
		s.log.WarnContext(ctx, "recording a successful proof for the rate limits failed", "request_id", requestID(c), "err", err)
	}
	n, err := s.Sessions.ChangePassword(ctx, caller, reg)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.PasswordChangeResponse{ServerProof: v.Proof, SessionsRevoked: n})
}
