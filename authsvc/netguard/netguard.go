// Package netguard keeps authsvc's outgoing webhook requests away from
// addresses they must never reach: every range of the IANA IPv4 and IPv6
// Special-Purpose Address Registries (loopback, private, link-local where
// cloud metadata services live, shared CGNAT space, documentation,
// benchmarking, the translation prefixes NAT64, SIIT, 6to4 and Teredo, …),
// multicast, and every IPv6 address outside global unicast (2000::/3) —
// unless the operator allows a network explicitly.
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

// ranges are the refused networks, most specific first so that the reason
// names the narrowest registry entry. They follow the IANA IPv4 and IPv6
// Special-Purpose Address Registries (checked 2026-11), plus multicast,
// deprecated site-local and the SIIT prefix of RFC 2765 (::ffff:0:0:0/96),
// which translators still honour. Ranges the registries mark as globally
// reachable (AS112, AMT, PCP and TURN anycast, the well-known NAT64 prefix)
// are refused too: no webhook receiver lives there, and a translator reaches
// whatever IPv4 address the client embeds. IPv4-mapped addresses
// (::ffff:0:0/96) are not listed: they are the IPv4 address itself and are
// judged as that (Classify).
var ranges = func() []rng {
	var r []rng
	add := func(reason string, ps ...string) { r = append(r, mustPrefixes(reason, ps...)...) }
	// IPv4.
	add("unspecified", "0.0.0.0/32")
	add("this network", "0.0.0.0/8")
	add("loopback", "127.0.0.0/8")
	add("private", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
	add("link-local", "169.254.0.0/16")
	add("shared (CGNAT)", "100.64.0.0/10")
	add("IETF protocol assignments", "192.0.0.0/24")
	add("documentation", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
	add("AS112", "192.31.196.0/24", "192.175.48.0/24")
	add("AMT", "192.52.193.0/24")
	add("6to4 relay anycast", "192.88.99.0/24")
	add("benchmarking", "198.18.0.0/15")
	add("multicast", "224.0.0.0/4")
	add("broadcast", "255.255.255.255/32")
	add("reserved", "240.0.0.0/4")
	// IPv6.
	add("unspecified", "::/128")
	add("loopback", "::1/128")
	add("IPv4-compatible", "::/96")
	add("IPv4-translated (SIIT)", "::ffff:0:0:0/96")
	add("NAT64", "64:ff9b::/96")
	add("local-use NAT64", "64:ff9b:1::/48")
	add("discard-only", "100::/64")
	add("dummy prefix", "100:0:0:1::/64")
	add("Teredo", "2001::/32")
	add("PCP and TURN anycast", "2001:1::/48")
	add("benchmarking", "2001:2::/48")
	add("AMT", "2001:3::/32")
	add("AS112", "2001:4:112::/48", "2620:4f:8000::/48")
	add("ORCHID", "2001:10::/28", "2001:20::/28")
	add("drone remote ID", "2001:30::/28")
	add("IETF protocol assignments", "2001::/23")
	add("documentation", "2001:db8::/32", "3fff::/20")
	add("6to4", "2002::/16")
	add("segment routing", "5f00::/16")
	add("private", "fc00::/7")
	add("link-local", "fe80::/10")
	add("site-local", "fec0::/10")
	add("multicast", "ff00::/8")
	return r
}()

// Ranges returns the refused networks, for checks that must agree with
// them (the database's gate.address_refused).
func Ranges() []netip.Prefix {
	out := make([]netip.Prefix, len(ranges))
	for i, r := range ranges {
		out[i] = r.p
	}
	return out
}

// globalUnicast is the only part of the IPv6 space IANA hands out for
// ordinary addresses; everything outside it is special or unassigned.
var globalUnicast = netip.MustParsePrefix("2000::/3")

// Classify returns why ip must not be reached ("loopback", "private",
// "NAT64", …), or "" for an ordinary public address. An IPv4-mapped address
// is judged as the IPv4 address it denotes (connecting to it reaches that
// IPv4 address, nothing else).
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
	for _, r := range ranges {
		if r.p.Contains(ip) {
			return r.reason
		}
	}
	if ip.Is6() && !globalUnicast.Contains(ip) {
		return "reserved (outside 2000::/3)"
	}
	return ""
}

// embeddedIPv4 returns the IPv4 address a translation prefix with a fixed
// layout carries: the well-known NAT64 prefix and SIIT (last 32 bits) and
// 6to4 (bits 16–47). A translator or relay delivers to that address.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case nat64.Contains(ip), siit.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixTo4.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	siit   = netip.MustParsePrefix("::ffff:0:0:0/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

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

// Check returns nil when ip may be reached, or a *RefusedError. An
// allowed network is reachable whatever Classify says, with one exception:
// an operator who allows a translation prefix (NAT64 64:ff9b::/96, SIIT,
// 6to4) to reach public IPv4 receivers from an IPv6-only network still has
// the IPv4 address inside each address checked, so the translator cannot be
// used to reach a private IPv4 network.
func (g *Guard) Check(ip netip.Addr) error {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		if err := g.Check(ip.Unmap()); err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				return &RefusedError{Addr: ip, Reason: re.Reason + " (IPv4-mapped)"}
			}
			return err
		}
		return nil
	}
	for _, p := range g.Allow {
		if !p.Contains(ip) {
			continue
		}
		if v4, ok := embeddedIPv4(ip); ok {
			if err := g.Check(v4); err != nil {
				var re *RefusedError
				if errors.As(err, &re) {
					return &RefusedError{Addr: ip, Reason: re.Reason + " (inside " + Classify(ip) + ")"}
				}
				return err
			}
		}
		return nil
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
