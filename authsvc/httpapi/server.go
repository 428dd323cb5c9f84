// Package httpapi is authsvc's HTTP interface: thin echo handlers that parse
// a request, call the login, session or signing code, and return either a
// JSON answer or an *Error for the single error renderer.
package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"zsm.dev/zsm/authsvc/ratelimit"
	"zsm.dev/zsm/authsvc/session"
	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/srpgroup"
)

// OpenAPI is the description of every endpoint below, served at
// /auth/v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Limits are the rate limits per client address prefix, per minute, and
// how long an address prefix is.
type Limits struct {
	LoginPerIP  int // login/init and password/init; params, refresh and logout get 4x
	SignupPerIP int
	IPv4Prefix  int // 0 means 32
	IPv6Prefix  int // 0 means 64
}

// Limiter is what the handlers need from the rate limiter.
type Limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (ratelimit.Decision, error)
}

// Attempts counts login attempts without a correct proof, per identity and
// per identity and address prefix (ratelimit.Attempts).
type Attempts interface {
	Begin(ctx context.Context, identity, prefix string) (ratelimit.Decision, error)
	Succeeded(ctx context.Context, identity, prefix string) error
}

// Checker reports whether a dependency is usable, for /readyz.
type Checker func(ctx context.Context) error

// Server holds the handlers' dependencies.
type Server struct {
	Login    *srplogin.Service
	Sessions *session.Manager
	Signer   *signer.Signer
	Limiter  Limiter
	Attempts Attempts
	Limits   Limits
	Ready    map[string]Checker
	// Middleware runs around every request (metrics).
	Middleware []echo.MiddlewareFunc
	// JWKSMaxAge is how long caches may keep the JWKS; it must be shorter
	// than the time a next key is published before it signs.
	JWKSMaxAge time.Duration
	log        *slog.Logger

	// Keys publishes late key records (keys.go); nil answers 503 there.
	Keys KeyRecords
}

// Handler builds the echo instance.
func (s *Server) Handler(log *slog.Logger, trusted []netip.Prefix) *echo.Echo {
	s.log = log
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.renderError
	e.IPExtractor = ipExtractor(trusted)
	e.Use(withRequestID, withAuditRequest, s.logRequests)
	e.Use(s.Middleware...)
	e.Use(s.recoverPanics)
	// nginx limits bodies too; this is the same limit where nginx is absent.
	e.Use(middleware.BodyLimit("64K"))

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/.well-known/jwks.json", s.jwks)

	v1 := e.Group("/auth/v1")
	v1.GET("/openapi.yaml", s.openapi)
	v1.POST("/signup", s.signup)
	v1.POST("/login/params", s.loginParams)
	v1.POST("/login/init", s.loginInit)
	v1.POST("/login/verify", s.loginVerify)
	v1.POST("/token/refresh", s.refresh)
	v1.POST("/logout", s.logout)
	s.sessionRoutes(v1)
	s.keyRoutes(v1)
	return e
}

// decode reads a JSON body strictly: one object, no unknown members.
func decode(c echo.Context, v any) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var tooLarge *echo.HTTPError
		if errors.As(err, &tooLarge) {
			return errTooLarge
		}
		return badRequest("malformed_request", errors.New("the request body could not be read"))
	}
	if err := DecodeStrict(body, v); err != nil {
		return badRequest("malformed_request", err)
	}
	return nil
}

// DecodeStrict parses a request body: exactly one JSON object, in valid
// UTF-8, whose members are all known to v. It is what every endpoint's
// parser starts with (and what the fuzz tests feed).
//
// encoding/json would quietly turn a byte that is not UTF-8, and a \u
// escape of half a surrogate pair, into U+FFFD: a sign-up with the identity
// "a\xffb" would register "a\ufffdb", which its owner never typed. Such
// bodies are refused instead.
func DecodeStrict(body []byte, v any) error {
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New("the request body is not a JSON object")
	}
	if !utf8.Valid(body) {
		return errors.New("the request body is not valid UTF-8")
	}
	if lonelySurrogate(body) {
		return errors.New("the request body escapes half of a UTF-16 surrogate pair")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("the request body is not a JSON object")
		case errors.As(err, &typ):
			return fmt.Errorf("member %q has the wrong type", typ.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return fmt.Errorf("unknown member %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return errors.New("the request body is not valid JSON for this endpoint")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("the request body has data after the JSON object")
	}
	return nil
}

// lonelySurrogate reports whether a JSON text has a \uD800–\uDFFF escape
// that is not half of a high-low pair. It reads strings only; what is
// outside them is left to the decoder.
func lonelySurrogate(b []byte) bool {
	hex4 := func(i int) (rune, bool) {
		if i+4 > len(b) {
			return 0, false
		}
		var r rune
		for _, c := range b[i : i+4] {
			switch {
			case '0' <= c && c <= '9':
				r = r<<4 | rune(c-'0')
			case 'a' <= c && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case 'A' <= c && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	inString := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(b):
			if b[i+1] != 'u' {
				i++ // a one-character escape, \" and \\ included
				continue
			}
			r, ok := hex4(i + 2)
			if !ok {
				i++
				continue
			}
			i += 5
			switch {
			case 0xDC00 <= r && r <= 0xDFFF:
				return true
			case 0xD800 <= r && r <= 0xDBFF:
				if i+2 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
					return true
				}
				lo, ok := hex4(i + 3)
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return true
				}
				i += 6
			}
		}
	}
	return false
}

// addrPrefix is the client's address as rate limits count it: the network
// of the configured prefix length around it (an IPv6 /64 by default, since
// one subscriber gets a whole /64 and can use any address in it).
func (s *Server) addrPrefix(c echo.Context) string {
	a, err := netip.ParseAddr(c.RealIP())
	if err != nil {
		return "unknown"
	}
	bits := s.Limits.IPv6Prefix
	if a.Is4() {
		bits = s.Limits.IPv4Prefix
	}
	if bits <= 0 || bits > a.BitLen() {
		bits = map[bool]int{true: 32, false: 64}[a.Is4()]
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return "unknown"
	}
	return p.String()
}

// limit counts one request of kind against the client's address prefix
// (limit per minute); Redis trouble means 503, not a free pass.
func (s *Server) limit(c echo.Context, kind string, limit int) error {
	d, err := s.Limiter.Allow(c.Request().Context(), kind+":ip:"+s.addrPrefix(c), limit, time.Minute)
	if err != nil {
		return unavailable(err)
	}
	if !d.Allowed {
		return rateLimited(d.RetryAfter)
	}
	return nil
}

func unavailable(cause error) *Error {
	cp := *errUnavailable
	cp.cause = cause
	return &cp
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	status := map[string]string{}
	ok := true
	for name, check := range s.Ready {
		if err := check(ctx); err != nil {
			status[name] = "unavailable"
			ok = false
			s.log.WarnContext(ctx, "not ready", "dependency", name, "err", err)
		} else {
			status[name] = "ok"
		}
	}
	if !ok {
		return c.JSON(http.StatusServiceUnavailable, status)
	}
	return c.JSON(http.StatusOK, status)
}

func (s *Server) jwks(c echo.Context) error {
	b := s.Signer.JWKS()
	if b == nil {
		return errUnavailable
	}
	// Short enough that a key published as "next" reaches every cache well
	// before it signs anything (the maximum age is half the publish delay).
	c.Response().Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(s.JWKSMaxAge/time.Second)))
	return c.Blob(http.StatusOK, "application/jwk-set+json", b)
}

func (s *Server) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", OpenAPI)
}

// SignupRequest is the body of POST /auth/v1/signup.
type SignupRequest struct {
	UserID      string          `json:"user_id,omitempty"`
	Identity    string          `json:"identity"`
	SRPSalt     string          `json:"srp_salt"`
	SRPVerifier string          `json:"srp_verifier"`
	KDF         json.RawMessage `json:"kdf"`
	KeyBundle   json.RawMessage `json:"key_bundle,omitempty"`

	// KeyRecordSignature proves possession of the bundle's public keys
	// (docs/crypto.md §3); required with a key bundle.
	KeyRecordSignature string `json:"key_record_signature,omitempty"`
}

func (s *Server) signup(c echo.Context) error {
	var req SignupRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.limit(c, "signup", s.Limits.SignupPerIP); err != nil {
		return err
	}
	reg, err := srplogin.ParseSignup(srplogin.SignupInput{
		UserID: req.UserID, Identity: req.Identity, SaltHex: req.SRPSalt, VerifierHex: req.SRPVerifier,
		KDF: req.KDF, KeyBundle: req.KeyBundle, KeyRecordSignature: req.KeyRecordSignature,
	})
	if err != nil {
		return badRequest("invalid_registration", err)
	}
	// A sign-up that publishes public keys must prove it holds them.
	if err := srplogin.VerifyKeyRecord(reg); err != nil {
		return badKeyRecord(err)
	}
	id, err := s.Login.Register(c.Request().Context(), reg)
	if errors.Is(err, srplogin.ErrTaken) {
		return errIdentityTaken
	}
	if errors.Is(err, srplogin.ErrKeysTaken) {
		return errKeysTaken
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"user_id": id, "identity": reg.Identity})
}

// ParamsRequest is the body of POST /auth/v1/login/params.
type ParamsRequest struct {
	Identity string `json:"identity"`
}

func (s *Server) loginParams(c echo.Context) error {
	var req ParamsRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.limit(c, "params", 4*s.Limits.LoginPerIP); err != nil {
		return err
	}
	k, err := s.Login.Params(c.Request().Context(), req.Identity)
	if err != nil {
		return loginError(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"kdf": k})
}

// InitRequest is the body of POST /auth/v1/login/init.
type InitRequest struct {
	Identity string `json:"identity"`
	A        string `json:"a"`
}

func (s *Server) loginInit(c echo.Context) error {
	var req InitRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	id, err := srpgroup.NormalizeIdentity(req.Identity)
	if err != nil {
		return badRequest("malformed_request", fmt.Errorf("identity: %w", err))
	}
	return s.startSRP(c, id, req.A)
}

// startSRP runs the server's half of an SRP init for identity (login and
// password change alike) and answers with the challenge. First the request
// is counted against the client's address prefix (init is where the server
// spends its CPU, before the client has proved anything), then as an
// attempt for identity from that prefix, which a correct proof forgives.
//
// Nothing here is limited per identity alone: a per-identity limit on
// starts let anyone without the password lock its owner out from anywhere.
// The identity-wide limit is on unproven attempts, and a prefix the
// identity logged in from recently is exempt from it (docs/auth.md).
func (s *Server) startSRP(c echo.Context, identity, a string) error {
	if err := s.limit(c, "login", s.Limits.LoginPerIP); err != nil {
		return err
	}
	// A malformed A is refused before it counts as an attempt.
	if _, err := srpgroup.ParsePublic(a); err != nil {
		return badRequest("malformed_request", fmt.Errorf("a: %w", err))
	}
	d, err := s.Attempts.Begin(c.Request().Context(), identity, s.addrPrefix(c))
	if err != nil {
		return unavailable(err)
	}
	if !d.Allowed {
		if d.Reason == ratelimit.ReasonIdentity {
			return tooManyFailures(d.RetryAfter)
		}
		return rateLimited(d.RetryAfter)
	}
	ch, err := s.Login.Init(c.Request().Context(), identity, a)
	if err != nil {
		return loginError(err)
	}
	return c.JSON(http.StatusOK, map[string]any{
		"handshake_id": ch.HandshakeID,
		"srp_salt":     srplogin.EncodeSalt(ch.Salt),
		"b":            srpgroup.FormatPublic(ch.B),
		"kdf":          ch.KDF,
	})
}

// VerifyRequest is the body of POST /auth/v1/login/verify.
type VerifyRequest struct {
	HandshakeID string `json:"handshake_id"`
	M           string `json:"m"`
	DeviceLabel string `json:"device_label,omitempty"`
}

func (s *Server) loginVerify(c echo.Context) error {
	var req VerifyRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	v, err := s.Login.Verify(ctx, req.HandshakeID, req.M)
	if err != nil {
		return loginError(err)
	}
	if err := s.Attempts.Succeeded(ctx, v.Identity, s.addrPrefix(c)); err != nil {
		// The login is good; only its forgiveness is lost.
		s.log.WarnContext(ctx, "recording a successful login for the rate limits failed", "request_id", requestID(c), "err", err)
	}
	label := req.DeviceLabel
	if label == "" {
		label = c.Request().UserAgent()
	}
	t, err := s.Sessions.Open(ctx, v.UserID, clientAddr(c), label)
	if err != nil {
		return err
	}
	bundle := json.RawMessage("null")
	if len(v.KeyBundle) > 0 {
		bundle = v.KeyBundle
	}
	return c.JSON(http.StatusOK, tokenBody(t, map[string]any{"server_proof": v.Proof, "key_bundle": bundle}))
}

func tokenBody(t session.Tokens, extra map[string]any) map[string]any {
	m := map[string]any{
		"user_id":       t.UserID,
		"session_id":    t.SessionID,
		"access_token":  t.AccessToken,
		"token_type":    "Bearer",
		"expires_in":    int(time.Until(t.ExpiresAt).Round(time.Second) / time.Second),
		"expires_at":    t.ExpiresAt.UTC().Format(time.RFC3339),
		"refresh_token": t.RefreshToken,
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func loginError(err error) error {
	switch {
	case errors.Is(err, srplogin.ErrLoginFailed):
		return errLoginFailed
	case errors.Is(err, srplogin.ErrBadRequest):
		return badRequest("malformed_request", err)
	}
	return err
}

// RefreshRequest is the body of POST /auth/v1/token/refresh and /logout.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (s *Server) refresh(c echo.Context) error {
	var req RefreshRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.limit(c, "refresh", 4*s.Limits.LoginPerIP); err != nil {
		return err
	}
	t, err := s.Sessions.Refresh(c.Request().Context(), req.RefreshToken)
	if errors.Is(err, session.ErrInvalidRefresh) {
		return errInvalidGrant
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokenBody(t, nil))
}

// logout is limited per address prefix like refresh: each call costs a
// hash and a database lookup, whatever token it names.
func (s *Server) logout(c echo.Context) error {
	var req RefreshRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.limit(c, "logout", 4*s.Limits.LoginPerIP); err != nil {
		return err
	}
	err := s.Sessions.Logout(c.Request().Context(), req.RefreshToken)
	if errors.Is(err, session.ErrInvalidRefresh) {
		return errInvalidGrant
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
