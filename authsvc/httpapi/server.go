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

	"zsm.dev/zsm/api"
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

// Server holds the handlers' dependencies; each is required.
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
	e.GET(api.PathJWKS, s.jwks)

	e.GET(api.PathOpenAPI, s.openapi)
	e.POST(api.PathSignup, s.signup)
	e.POST(api.PathLoginParams, s.loginParams)
	e.POST(api.PathLoginInit, s.loginInit)
	e.POST(api.PathLoginVerify, s.loginVerify)
	e.POST(api.PathTokenRefresh, s.refresh)
	e.POST(api.PathLogout, s.logout)
	s.sessionRoutes(e)
	s.keyRoutes(e)
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
		return badRequest(api.CodeMalformedRequest, errors.New("the request body could not be read"))
	}
	if err := DecodeStrict(body, v); err != nil {
		return badRequest(api.CodeMalformedRequest, err)
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
	return c.JSON(http.StatusOK, api.Health{Status: "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	status := api.Readiness{}
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

func (s *Server) signup(c echo.Context) error {
	var req api.SignupRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.limit(c, "signup", s.Limits.SignupPerIP); err != nil {
		return err
	}
	reg, err := srplogin.ParseSignup(req)
	if err != nil {
		return err
	}
	// A sign-up that publishes public keys must prove it holds them.
	if err := srplogin.VerifyKeyRecord(reg); err != nil {
		return err
	}
	id, err := s.Login.Register(c.Request().Context(), reg)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, api.SignupResponse{UserID: id, Identity: reg.Identity.String()})
}

func (s *Server) loginParams(c echo.Context) error {
	var req api.ParamsRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.limit(c, "params", 4*s.Limits.LoginPerIP); err != nil {
		return err
	}
	id, err := parseIdentity(req.Identity)
	if err != nil {
		return err
	}
	k, err := s.Login.Params(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.ParamsResponse{KDF: k})
}

func (s *Server) loginInit(c echo.Context) error {
	var req api.InitRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	id, err := parseIdentity(req.Identity)
	if err != nil {
		return err
	}
	return s.startSRP(c, id, req.A)
}

// parseIdentity is the edge where an identity from a request is
// normalized, once; past it, srplogin takes the srpgroup.Identity.
func parseIdentity(s string) (srpgroup.Identity, error) {
	id, err := srpgroup.ParseIdentity(s)
	if err != nil {
		return srpgroup.Identity{}, badRequest(api.CodeMalformedRequest, fmt.Errorf("identity: %w", err))
	}
	return id, nil
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
func (s *Server) startSRP(c echo.Context, identity srpgroup.Identity, a string) error {
	if err := s.limit(c, "login", s.Limits.LoginPerIP); err != nil {
		return err
	}
	// A malformed A is refused before it counts as an attempt.
	if _, err := srpgroup.ParsePublic(a); err != nil {
		return badRequest(api.CodeMalformedRequest, fmt.Errorf("a: %w", err))
	}
	d, err := s.Attempts.Begin(c.Request().Context(), identity.String(), s.addrPrefix(c))
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
		return err
	}
	return c.JSON(http.StatusOK, api.Challenge{
		HandshakeID: ch.HandshakeID,
		SRPSalt:     srplogin.EncodeSalt(ch.Salt),
		B:           srpgroup.FormatPublic(ch.B),
		KDF:         ch.KDF,
	})
}

func (s *Server) loginVerify(c echo.Context) error {
	var req api.VerifyRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	v, err := s.Login.Verify(ctx, req.HandshakeID, req.M)
	if err != nil {
		return err
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
	bundle := json.RawMessage("null") // an account without a bundle
	if len(v.KeyBundle) > 0 {
		bundle = v.KeyBundle
	}
	return c.JSON(http.StatusOK, api.LoginResponse{Tokens: tokenBody(t), ServerProof: v.Proof, KeyBundle: bundle})
}

// tokenBody is the wire form of a session's tokens; expires_at is whole
// seconds in UTC.
func tokenBody(t session.Tokens) api.Tokens {
	return api.Tokens{
		UserID:       t.UserID,
		SessionID:    t.SessionID,
		AccessToken:  t.AccessToken,
		TokenType:    api.TokenType,
		ExpiresIn:    int(time.Until(t.ExpiresAt).Round(time.Second) / time.Second),
		ExpiresAt:    t.ExpiresAt.UTC().Truncate(time.Second),
		RefreshToken: t.RefreshToken,
	}
}

func (s *Server) refresh(c echo.Context) error {
	var req api.RefreshRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.limit(c, "refresh", 4*s.Limits.LoginPerIP); err != nil {
		return err
	}
	t, err := s.Sessions.Refresh(c.Request().Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokenBody(t))
}

// logout is limited per address prefix like refresh: each call costs a
// hash and a database lookup, whatever token it names.
func (s *Server) logout(c echo.Context) error {
	var req api.RefreshRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.limit(c, "logout", 4*s.Limits.LoginPerIP); err != nil {
		return err
	}
	if err := s.Sessions.Logout(c.Request().Context(), req.RefreshToken); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
