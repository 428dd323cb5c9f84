package httpapi

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"time"

	"github.com/labstack/echo/v4"
)

// ClientAddrHeader carries the client's address from nginx. nginx always
// overwrites it with $remote_addr; authsvc believes it only when the TCP peer
// is a trusted proxy, so a client talking to authsvc directly cannot choose
// the address its rate limits are counted against.
const ClientAddrHeader = "X-Zsm-Client-Ip"

const requestIDHeader = "X-Request-Id"

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{8,128}$`)

// ipExtractor returns the client address for echo's c.RealIP().
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	return func(r *http.Request) string {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return ""
		}
		peer, err := netip.ParseAddr(host)
		if err != nil {
			return ""
		}
		peer = peer.Unmap()
		for _, p := range trusted {
			if p.Contains(peer) {
				if fwd, err := netip.ParseAddr(r.Header.Get(ClientAddrHeader)); err == nil {
					return fwd.Unmap().String()
				}
				break
			}
		}
		return peer.String()
	}
}

func clientAddr(c echo.Context) netip.Addr {
	a, _ := netip.ParseAddr(c.RealIP())
	return a
}

// withRequestID keeps the request id nginx assigned (or a well-formed one
// the caller sent) and makes one up otherwise; it is echoed back and put in
// every log line and error body.
func withRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(requestIDHeader)
		if !requestIDPattern.MatchString(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = base64.RawURLEncoding.EncodeToString(b[:])
		}
		c.Set(requestIDHeader, id)
		c.Response().Header().Set(requestIDHeader, id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(requestIDHeader).(string)
	return id
}

// logRequests writes one line per request: never a body, header value or
// query string, since those carry passwords' derivatives and tokens.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		r := c.Request()
		s.log.InfoContext(r.Context(), "request",
			"request_id", requestID(c), "method", r.Method, "path", r.URL.Path,
			"status", c.Response().Status, "duration_ms", float64(time.Since(start).Microseconds())/1000,
			"client", c.RealIP())
		return nil
	}
}

// recoverPanics turns a panic into a 500 with the usual body; the stack goes
// to the log, never to the client.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.ErrorContext(c.Request().Context(), "panic", "request_id", requestID(c), "panic", fmt.Sprint(r))
				err = errInternal
			}
		}()
		return next(c)
	}
}
