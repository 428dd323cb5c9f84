package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
)

// Error is the one error shape authsvc answers with:
//
//	{"code": "snake_case", "message": "…", "request_id": "…"}
//
// The HTTP status is the class, code the precise reason a program can branch
// on, message a sentence for people. Nothing internal (SQL, stack traces,
// wrapped errors) is ever put into message.
type Error struct {
	Status     int           `json:"-"`
	Code       string        `json:"code"`
	Message    string        `json:"message"`
	RequestID  string        `json:"request_id"`
	RetryAfter time.Duration `json:"-"`
	cause      error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %v", e.Code, e.cause)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.cause }

func apiError(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

func badRequest(code string, cause error) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: cause.Error(), cause: cause}
}

// Errors every handler may return.
var (
	errLoginFailed   = apiError(http.StatusUnauthorized, "login_failed", "the identity or password is wrong, or the login attempt expired; start again")
	errInvalidGrant  = apiError(http.StatusUnauthorized, "invalid_refresh_token", "the refresh token is not valid; log in again")
	errUnavailable   = apiError(http.StatusServiceUnavailable, "service_unavailable", "a service authsvc depends on is unavailable; try again shortly")
	errInternal      = apiError(http.StatusInternalServerError, "internal_error", "something went wrong on the server; the request id identifies it in the logs")
	errNotFound      = apiError(http.StatusNotFound, "not_found", "no such endpoint")
	errMethod        = apiError(http.StatusMethodNotAllowed, "method_not_allowed", "this endpoint does not accept that method")
	errTooLarge      = apiError(http.StatusRequestEntityTooLarge, "request_too_large", "the request body is too large")
	errIdentityTaken = apiError(http.StatusConflict, "identity_unavailable", "this identity cannot be registered")
)

func rateLimited(retry time.Duration) *Error {
	e := apiError(http.StatusTooManyRequests, "rate_limited", "too many attempts; wait before trying again")
	e.RetryAfter = retry
	return e
}

// tooManyFailures refuses a login attempt for an identity that has used up
// its unproven attempts for now, from an address prefix it has not logged
// in from recently. Unknown identities are counted alike, so this says
// nothing about whether one is registered.
func tooManyFailures(retry time.Duration) *Error {
	e := apiError(http.StatusTooManyRequests, "rate_limited",
		"too many failed logins for this identity; wait, or log in from a network you logged in from before")
	e.RetryAfter = retry
	return e
}

// renderError is echo's HTTPErrorHandler: every error a handler returns, or
// echo raises, is turned into the JSON shape above here and only here.
func (s *Server) renderError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var out *Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &out):
		cp := *out
		out = &cp
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusNotFound:
			out = errNotFound
		case http.StatusMethodNotAllowed:
			out = errMethod
		case http.StatusRequestEntityTooLarge:
			out = errTooLarge
		default:
			out = apiError(he.Code, "http_error", http.StatusText(he.Code))
		}
		cp := *out
		out = &cp
	case store.IsUnavailable(err), errors.Is(err, signer.ErrNotLoaded):
		cp := *errUnavailable
		out = &cp
	default:
		cp := *errInternal
		out = &cp
	}
	out.RequestID = requestID(c)
	ctx := c.Request().Context()
	if out.Status >= 500 {
		s.log.ErrorContext(ctx, "request failed", "request_id", out.RequestID, "code", out.Code, "err", err)
	} else if out.cause != nil {
		s.log.DebugContext(ctx, "request refused", "request_id", out.RequestID, "code", out.Code, "err", out.cause)
	}
	if out.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(out.RetryAfter.Round(time.Second)/time.Second)+1))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(out.Status)
		return
	}
	if err := c.JSON(out.Status, out); err != nil {
		s.log.Error("writing error response", slog.Any("err", err))
	}
}
