package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/authsvc/session"
	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/srplogin"
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
	Status int `json:"-"`
	errorBody
	RetryAfter time.Duration `json:"-"`
	cause      error
}

// errorBody is api.Error under another name: embedded as it is, its name
// would clash with the Error method.
type errorBody = api.Error

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %v", e.Code, e.cause)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.cause }

func apiError(status int, code, message string) *Error {
	return &Error{Status: status, errorBody: api.Error{Code: code, Message: message}}
}

func badRequest(code string, cause error) *Error {
	e := apiError(http.StatusBadRequest, code, cause.Error())
	e.cause = cause
	return e
}

// The answers. Handlers return domain errors, which errorTable maps to
// these; the few that only HTTP knows of (a body too large, a rate limit)
// they return as they are.
var (
	errLoginFailed       = apiError(http.StatusUnauthorized, api.CodeLoginFailed, "the identity or password is wrong, or the login attempt expired; start again")
	errProofFailed       = apiError(http.StatusForbidden, api.CodeProofFailed, "the current password or Secret Key is wrong, or the attempt expired; start again")
	errInvalidGrant      = apiError(http.StatusUnauthorized, api.CodeInvalidRefreshToken, "the refresh token is not valid; log in again")
	errInvalidToken      = apiError(http.StatusUnauthorized, api.CodeInvalidToken, "the access token is missing or not valid")
	errSessionRevoked    = apiError(http.StatusUnauthorized, api.CodeSessionRevoked, "the session has ended; log in again")
	errSessionNotFound   = apiError(http.StatusNotFound, api.CodeNotFound, "no such session")
	errKeyBundleMismatch = apiError(http.StatusBadRequest, api.CodeKeyBundleMismatch, "the key bundle must carry the account's public keys, unchanged")
	errIdentityTaken     = apiError(http.StatusConflict, api.CodeIdentityUnavailable, "this identity cannot be registered")
	errKeysTaken         = apiError(http.StatusConflict, api.CodePublicKeyInUse, "these public keys are published by another account; a public key belongs to one account only")
	errNoPublicKeys      = apiError(http.StatusConflict, api.CodeNoPublicKeys, "this account has published no public keys, so it has no key record to publish")
	errKeysChanged       = apiError(http.StatusConflict, api.CodeKeysChanged, "the account's keys changed meanwhile (upgraded or re-wrapped on another device); log in again")
	// The message of these three is the refusal itself, which describes
	// the client's own input.
	errMalformed       = apiError(http.StatusBadRequest, api.CodeMalformedRequest, "")
	errBadRegistration = apiError(http.StatusBadRequest, api.CodeInvalidRegistration, "")
	// 403, like a wrong SRP proof (proof_failed): the request is well
	// formed (its shape is refused earlier, with 400), but what it proves
	// is not accepted.
	errBadKeyRecord = apiError(http.StatusForbidden, api.CodeInvalidKeyRecord, "")
	// A key upgrade's refusals: its shape (400), and a bundle that would
	// change the account's keys (403, like a record that does not verify).
	errBadUpgrade       = apiError(http.StatusBadRequest, api.CodeInvalidKeyUpgrade, "")
	errKeyChangeRefused = apiError(http.StatusForbidden, api.CodeKeyChangeRefused, "")

	errUnavailable = apiError(http.StatusServiceUnavailable, api.CodeServiceUnavailable, "a service authsvc depends on is unavailable; try again shortly")
	errInternal    = apiError(http.StatusInternalServerError, api.CodeInternalError, "something went wrong on the server; the request id identifies it in the logs")
	errNotFound    = apiError(http.StatusNotFound, api.CodeNotFound, "no such endpoint")
	errMethod      = apiError(http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, "this endpoint does not accept that method")
	errTooLarge    = apiError(http.StatusRequestEntityTooLarge, api.CodeRequestTooLarge, "the request body is too large")
)

// errorTable is the one place where the domain's errors become answers.
// The first row whose error the returned one wraps (errors.Is) wins, so an
// error comes before the ones it wraps.
var errorTable = []struct {
	is     func(error) bool
	answer *Error
}{
	{is(srplogin.ErrProofFailed), errProofFailed}, // wraps ErrLoginFailed
	{is(srplogin.ErrLoginFailed), errLoginFailed},
	{is(srplogin.ErrBadRegistration), errBadRegistration}, // wraps ErrBadRequest
	{is(srplogin.ErrBadUpgrade), errBadUpgrade},           // wraps ErrBadRequest
	{is(srplogin.ErrBadRequest), errMalformed},
	{is(srplogin.ErrBadKeyRecord), errBadKeyRecord},
	{is(srplogin.ErrTaken), errIdentityTaken},
	{is(srplogin.ErrKeysTaken), errKeysTaken},
	{is(srplogin.ErrNoPublicKeys), errNoPublicKeys},
	{is(srplogin.ErrKeyChangeRefused), errKeyChangeRefused},
	{is(srplogin.ErrKeysChanged), errKeysChanged},
	{is(session.ErrInvalidRefresh), errInvalidGrant},
	{is(session.ErrInvalidAccess), errInvalidToken},
	{is(session.ErrSessionEnded), errSessionRevoked},
	{is(session.ErrNotFound), errSessionNotFound},
	{is(session.ErrKeysDiffer), errKeyBundleMismatch},
	// Login fails closed: without the database or the signing keys, 503.
	{is(signer.ErrNotLoaded), errUnavailable},
	{store.IsUnavailable, errUnavailable},
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

// answerFor is the answer to err, a copy the caller may change.
func answerFor(err error) *Error {
	var out *Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &out):
		cp := *out
		return &cp
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusNotFound:
			out = errNotFound
		case http.StatusMethodNotAllowed:
			out = errMethod
		case http.StatusRequestEntityTooLarge:
			out = errTooLarge
		default:
			out = apiError(he.Code, api.CodeHTTPError, http.StatusText(he.Code))
		}
		cp := *out
		return &cp
	}
	for _, row := range errorTable {
		if row.is(err) {
			cp := *row.answer
			cp.cause = err
			if cp.Message == "" {
				cp.Message = err.Error()
			}
			return &cp
		}
	}
	cp := *errInternal
	return &cp
}

func rateLimited(retry time.Duration) *Error {
	e := apiError(http.StatusTooManyRequests, api.CodeRateLimited, "too many attempts; wait before trying again")
	e.RetryAfter = retry
	return e
}

// tooManyFailures refuses a login attempt for an identity that has used up
// its unproven attempts for now, from an address prefix it has not logged
// in from recently. Unknown identities are counted alike, so this says
// nothing about whether one is registered.
func tooManyFailures(retry time.Duration) *Error {
	e := apiError(http.StatusTooManyRequests, api.CodeRateLimited,
		"too many failed logins for this identity; wait, or log in from a network you logged in from before")
	e.RetryAfter = retry
	return e
}

// renderError is echo's HTTPErrorHandler: every error a handler returns, or
// echo raises, is turned into the JSON shape above here and only here. The
// cause goes to the log, never into the body (except where the message is
// the client's own input refused).
func (s *Server) renderError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	out := answerFor(err)
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
