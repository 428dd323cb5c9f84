// Package netguard keeps authsvc's outgoing webhook requests away from
// addresses they must never reach: loopback, private (RFC 1918, fc00::/7),
// link-local (169.254/16, fe80::/10, where cloud metadata services live),
// shared CGNAT space, unspecified, multicast and reserved ranges, also when
// written as IPv4-mapped, NAT64 or 6to4 IPv6 — unless the operator allows a
// network explicitly.
//
// A URL is checked when a webhook is made (by the database, for address
// literals) and again at every delivery: the name is resolved, every
// address it resolves to must pass, and the connection is made to an
// address that passed, not to whatever the name resolves to a moment later.
// The dialer's Control hook checks the address of each socket once more,
// before connect(2), so no packet leaves for a refused address whatever
// path led there (DNS rebinding included).
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrRefused is what every refusal wraps.
var ErrRefused = errors.New("netguard: destination refused")

// RefusedError says which address was refused and why.
type RefusedError struct {
	Addr   netip.Addr // invalid when the refusal is about the URL itself
	Reason string
}

func (e *RefusedError) Error() string {
	if e.Addr.IsValid() {
		return fmt.Sprintf("netguard: %s is refused: %s address", e.Addr, e.Reason)
	}
	return "netguard: " + e.Reason
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }

type rng struct {
	p      netip.Prefix
	reason string
}

func mustPrefixes(reason string, ps ...string) []rng {
	out := make([]rng, len(ps))
	for i, p := range ps {
		out[i] = rng{netip.MustParsePrefix(p), reason}
	}
	return out
}

var ranges = func() []rng {
	var r []rng
	r = append(r, mustPrefixes("unspecified", "0.0.0.0/8", "::/128")...)
	r = append(r, mustPrefixes("loopback", "127.0.0.0/8", "::1/128")...)
	r = append(r, mustPrefixes("private", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")...)
	r = append(r, mustPrefixes("link-local", "169.254.0.0/16", "fe80::/10")...)
	r = append(r, mustPrefixes("shared (CGNAT)", "100.64.0.0/10")...)
	r = append(r, mustPrefixes("multicast", "224.0.0.0/4", "ff00::/8")...)
	r = append(r, mustPrefixes("reserved", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "240.0.0.0/4", "::/96", "2001:db8::/32", "100::/64")...)
	return r
}()

var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

// Classify returns why ip must not be reached ("loopback", "private",
// "link-local", …), or "" for an ordinary public address. IPv6 forms that
// carry an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16)
// are judged by that address.
func Classify(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid"
	}
	ip = ip.WithZone("")
	if ip.Is4In6() {
		if r := Classify(ip.Unmap()); r != "" {
			return r + " (IPv4-mapped)"
		}
		return ""
	}
	if ip.Is6() {
		b := ip.As16()
		if nat64.Contains(ip) {
			if r := Classify(netip.AddrFrom4([4]byte(b[12:16]))); r != "" {
				return r + " (NAT64)"
			}
			return ""
		}
		if sixTo4.Contains(ip) {
			if r := Classify(netip.AddrFrom4([4]byte(b[2:6]))); r != "" {
				return r + " (6to4)"
			}
		}
	}
	for _, r := range ranges {
		if r.p.Contains(ip) {
			return r.reason
		}
	}
	if ip.Is4() && ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return "broadcast"
	}
	return ""
}

// Resolver looks names up (net.DefaultResolver has this method).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Guard decides which destinations may be reached.
type Guard struct {
	// Allow lists networks reachable despite Classify (an operator's
	// setting, e.g. 127.0.0.0/8 for a receiver on the same machine).
	Allow []netip.Prefix
	// Resolver is used for names; nil means net.DefaultResolver.
	Resolver Resolver
	// ConnectTimeout bounds each TCP connect (0: 5 s).
	ConnectTimeout time.Duration
	// Control, if set, runs after the guard's own check of each socket
	// (tests use it to see every connect that would happen).
	Control func(network, address string, c syscall.RawConn) error
}

// Check returns nil when ip may be reached, or a *RefusedError.
func (g *Guard) Check(ip netip.Addr) error {
	ip = ip.WithZone("")
	for _, p := range g.Allow {
		if p.Contains(ip) || (ip.Is4In6() && p.Contains(ip.Unmap())) {
			return nil
		}
	}
	if r := Classify(ip); r != "" {
		return &RefusedError{Addr: ip, Reason: r}
	}
	return nil
}

// control is a net.Dialer Control hook: it runs after the socket is made
// and before it connects, with the very address it will connect to.
func (g *Guard) control(network, address string, c syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Reason: fmt.Sprintf("cannot tell the address of %q", address)}
	}
	if err := g.Check(ap.Addr()); err != nil {
		return err
	}
	if g.Control != nil {
		return g.Control(network, address, c)
	}
	return nil
}

// Dialer returns a net.Dialer whose every connection passes the guard.
func (g *Guard) Dialer() *net.Dialer {
	t := g.ConnectTimeout
	if t <= 0 {
		t = 5 * time.Second
	}
	return &net.Dialer{Timeout: t, Control: g.control}
}

// DialContext resolves addr's host, refuses it unless every address it
// resolves to passes, and connects to those addresses in turn (each socket
// checked again before it connects). It never resolves the name twice.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		res := g.Resolver
		if res == nil {
			res = net.DefaultResolver
		}
		lookup := "ip"
		switch network {
		case "tcp4":
			lookup = "ip4"
		case "tcp6":
			lookup = "ip6"
		}
		if ips, err = res.LookupNetIP(ctx, lookup, host); err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("netguard: %s has no address", host)
		}
	}
	for _, ip := range ips {
		if err := g.Check(ip); err != nil {
			return nil, err
		}
	}
	d := g.Dialer()
	var errs []error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.WithZone("").String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// CheckURL parses a webhook URL: http or https (http only when allowHTTP),
// a host, no user information, no fragment. An address literal must pass
// the guard; names are checked when dialled.
func (g *Guard) CheckURL(raw string, allowHTTP bool) (*url.URL, error) {
	if len(raw) > 2048 {
		return nil, &RefusedError{Reason: "the URL is longer than 2048 bytes"}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, &RefusedError{Reason: "the URL cannot be parsed"}
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	case u.Scheme == "http":
		return nil, &RefusedError{Reason: "the URL must use https"}
	default:
		return nil, &RefusedError{Reason: "the URL must be http(s)"}
	}
	if u.User != nil || u.Host == "" || u.Opaque != "" {
		return nil, &RefusedError{Reason: "the URL must name a host, without credentials"}
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := g.Check(ip); err != nil {
			return nil, err
		}
	} else if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		if err := g.Check(netip.MustParseAddr("127.0.0.1")); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// Transport returns an http.Transport that connects only through the guard
// and never through a proxy from the environment (a proxy would connect on
// our behalf, past every check).
func (g *Guard) Transport() *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            g.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    5 * time.Second,
		ResponseHeaderTimeout:  10 * time.Second,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        30 * time.Second,
		MaxResponseHeaderBytes: 16 << 10,
	}
}
