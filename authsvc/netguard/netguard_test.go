package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	refused := map[string]string{
		"127.0.0.1":              "loopback",
		"127.255.255.254":        "loopback",
		"::1":                    "loopback",
		"10.0.0.1":               "private",
		"10.255.255.255":         "private",
		"172.16.0.1":             "private",
		"172.31.255.255":         "private",
		"192.168.1.1":            "private",
		"fc00::1":                "private",
		"fd12:3456::1":           "private",
		"169.254.169.254":        "link-local",
		"fe80::1":                "link-local",
		"fe80::1%eth0":           "link-local",
		"0.0.0.0":                "unspecified",
		"::":                     "unspecified",
		"100.64.0.1":             "shared (CGNAT)",
		"100.127.255.255":        "shared (CGNAT)",
		"224.0.0.1":              "multicast",
		"ff02::1":                "multicast",
		"255.255.255.255":        "broadcast",
		"240.0.0.1":              "reserved",
		"198.18.0.1":             "benchmarking",
		"::ffff:127.0.0.1":       "loopback (IPv4-mapped)",
		"::ffff:10.1.2.3":        "private (IPv4-mapped)",
		"::ffff:169.254.169.254": "link-local (IPv4-mapped)",
		// Every IANA special-purpose range, the translation prefixes
		// whatever address they embed.
		"0.1.2.3":             "this network",
		"192.0.0.9":           "IETF protocol assignments",
		"192.0.2.1":           "documentation",
		"198.51.100.7":        "documentation",
		"203.0.113.200":       "documentation",
		"192.31.196.1":        "AS112",
		"192.175.48.6":        "AS112",
		"192.52.193.1":        "AMT",
		"192.88.99.1":         "6to4 relay anycast",
		"198.19.255.255":      "benchmarking",
		"::ffff:0:a00:1":      "IPv4-translated (SIIT)",
		"::ffff:0:808:808":    "IPv4-translated (SIIT)",
		"::a00:1":             "IPv4-compatible",
		"64:ff9b::a00:1":      "NAT64",
		"64:ff9b::808:808":    "NAT64",
		"64:ff9b:1::a00:1":    "local-use NAT64",
		"64:ff9b:1:ffff::1":   "local-use NAT64",
		"100::1":              "discard-only",
		"100:0:0:1::1":        "dummy prefix",
		"2001::1":             "Teredo",
		"2001:0:4136:e378::1": "Teredo",
		"2001:1::1":           "PCP and TURN anycast",
		"2001:2::1":           "benchmarking",
		"2001:3::1":           "AMT",
		"2001:4:112::1":       "AS112",
		"2620:4f:8000::1":     "AS112",
		"2001:10::1":          "ORCHID",
		"2001:20::1":          "ORCHID",
		"2001:30::1":          "drone remote ID",
		"2001:100::1":         "IETF protocol assignments",
		"2001:db8::1":         "documentation",
		"3fff::1":             "documentation",
		"2002:c0a8:0101::1":   "6to4",
		"2002:0808:0808::1":   "6to4",
		"5f00::1":             "segment routing",
		"fec0::1":             "site-local",
		"4000::1":             "reserved (outside 2000::/3)",
		"::2:1":               "IPv4-compatible",
		"1::1":                "reserved (outside 2000::/3)",
		"e000::1":             "reserved (outside 2000::/3)",
		"::ffff:192.0.2.1":    "documentation (IPv4-mapped)",
		"::ffff:198.18.0.1":   "benchmarking (IPv4-mapped)",
	}
	for s, want := range refused {
		if got := Classify(netip.MustParseAddr(s)); got != want {
			t.Errorf("Classify(%s) = %q, want %q", s, got, want)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255", "192.169.0.1", "100.128.0.1",
		"11.0.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "169.253.0.1", "2001:200::1", "2a00:1450::1", "3ffe::1",
		"192.0.1.255", "192.0.3.0", "198.17.255.255", "198.20.0.0", "223.255.255.255", "2001:4860:4860::8888", "2400:cb00::1"} {
		if got := Classify(netip.MustParseAddr(s)); got != "" {
			t.Errorf("Classify(%s) = %q, want public", s, got)
		}
	}
}

func TestCheckAllow(t *testing.T) {
	g := &Guard{}
	for _, s := range []string{"127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.0.10", "fd00::1", "169.254.169.254", "fe80::1"} {
		err := g.Check(netip.MustParseAddr(s))
		var re *RefusedError
		if !errors.Is(err, ErrRefused) || !errors.As(err, &re) || re.Addr.String() != netip.MustParseAddr(s).WithZone("").String() {
			t.Errorf("Check(%s) = %v, want a refusal", s, err)
		}
	}
	if err := g.Check(netip.MustParseAddr("93.184.216.34")); err != nil {
		t.Errorf("public address refused: %v", err)
	}
	g.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	if err := g.Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("allowed loopback refused: %v", err)
	}
	if err := g.Check(netip.MustParseAddr("::ffff:127.0.0.1")); err != nil {
		t.Errorf("allowed loopback (mapped) refused: %v", err)
	}
	if err := g.Check(netip.MustParseAddr("10.0.0.1")); err == nil {
		t.Error("allowing loopback allowed a private address")
	}
	if err := g.Check(netip.MustParseAddr("::1")); err == nil {
		t.Error("allowing 127/8 allowed ::1")
	}
}

// An operator may allow a translation prefix to reach public IPv4
// receivers through a NAT64 gateway; the IPv4 address inside is still
// checked, so the gateway cannot reach a private network.
func TestCheckAllowTranslationPrefix(t *testing.T) {
	g := &Guard{}
	for _, s := range []string{"64:ff9b::808:808", "::ffff:0:808:808", "2002:0808:0808::1", "2001::1", "64:ff9b:1::808:808"} {
		if err := g.Check(netip.MustParseAddr(s)); !errors.Is(err, ErrRefused) {
			t.Errorf("Check(%s) without an allowance = %v, want a refusal", s, err)
		}
	}
	g.Allow = []netip.Prefix{netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("::ffff:0:0:0/96"), netip.MustParsePrefix("2002::/16")}
	for _, s := range []string{"64:ff9b::808:808", "::ffff:0:808:808", "2002:0808:0808::1"} {
		if err := g.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("Check(%s) with its prefix allowed: %v", s, err)
		}
	}
	for s, want := range map[string]string{
		"64:ff9b::a00:1":     "private (inside NAT64)",
		"64:ff9b::7f00:1":    "loopback (inside NAT64)",
		"64:ff9b::a9fe:a9fe": "link-local (inside NAT64)",
		"::ffff:0:c0a8:101":  "private (inside IPv4-translated (SIIT))",
		"2002:7f00:1::1":     "loopback (inside 6to4)",
	} {
		var re *RefusedError
		if err := g.Check(netip.MustParseAddr(s)); !errors.As(err, &re) || re.Reason != want {
			t.Errorf("Check(%s) = %v, want the reason %q", s, err, want)
		}
	}
	// Allowing the embedded IPv4 network as well lets it through.
	g.Allow = append(g.Allow, netip.MustParsePrefix("10.0.0.0/8"))
	if err := g.Check(netip.MustParseAddr("64:ff9b::a00:1")); err != nil {
		t.Errorf("NAT64 to an allowed IPv4 network: %v", err)
	}
	// Other translation prefixes are not affected by the allowance.
	if err := g.Check(netip.MustParseAddr("64:ff9b:1::808:808")); !errors.Is(err, ErrRefused) {
		t.Errorf("local-use NAT64 allowed by the well-known prefix's allowance: %v", err)
	}
}

func TestCheckURL(t *testing.T) {
	g := &Guard{}
	for _, u := range []string{
		"http://example.com/hook",        // http without allowHTTP
		"ftp://example.com/",             // scheme
		"https://user:pw@example.com/",   // credentials
		"https://127.0.0.1/",             // loopback literal
		"https://[::1]:8443/",            // loopback literal v6
		"https://10.0.0.1/",              // private literal
		"https://169.254.169.254/latest", // metadata
		"https://[fe80::1%25eth0]/",      // link-local with zone
		"https://localhost/",             // loopback name
		"https://[::ffff:0:a00:1]/",      // SIIT
		"https://[64:ff9b:1::a00:1]/",    // local-use NAT64
		"https://[2001::1]/",             // Teredo
		"https://192.88.99.1/",           // 6to4 relay anycast
		"https://a.localhost./",          // loopback name
		"https:///nohost",
		"//example.com/",
	} {
		if _, err := g.CheckURL(u, false); !errors.Is(err, ErrRefused) {
			t.Errorf("CheckURL(%q) = %v, want a refusal", u, err)
		}
	}
	for _, u := range []string{"https://example.com/hook", "https://93.184.216.34:8443/x?y=1"} {
		if _, err := g.CheckURL(u, false); err != nil {
			t.Errorf("CheckURL(%q): %v", u, err)
		}
	}
	if _, err := g.CheckURL("http://example.com/", true); err != nil {
		t.Errorf("http with allowHTTP: %v", err)
	}
}

// recorder is a Control hook that counts the sockets that would connect.
type recorder struct{ n atomic.Int32 }

func (r *recorder) control(string, string, syscall.RawConn) error { r.n.Add(1); return nil }

// A refused destination never gets a socket, let alone a connection: the
// address literal and the name that resolves to it are refused before the
// dialer runs. Nothing here sends a packet anywhere (the resolver is fake
// and the addresses are refused before any dial).
func TestDialRefusedBeforeConnect(t *testing.T) {
	rec := &recorder{}
	g := &Guard{Control: rec.control, Resolver: fakeResolver{
		"rebind.test": {netip.MustParseAddr("10.0.0.1")},
		"mixed.test":  {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("192.168.1.1")},
		"meta.test":   {netip.MustParseAddr("169.254.169.254")},
		"v6.test":     {netip.MustParseAddr("fd00::1")},
		"mapped.test": {netip.MustParseAddr("::ffff:10.0.0.1")},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, addr := range []string{"10.0.0.1:80", "172.16.0.1:443", "192.168.0.1:80", "169.254.169.254:80", "[fc00::1]:80",
		"[fe80::1]:80", "100.64.0.1:80", "0.0.0.0:80", "127.0.0.1:80", "rebind.test:80", "mixed.test:443", "meta.test:80",
		"v6.test:80", "mapped.test:80"} {
		start := time.Now()
		_, err := g.DialContext(ctx, "tcp", addr)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("dial %s: %v, want a refusal", addr, err)
		}
		if time.Since(start) > 100*time.Millisecond {
			t.Errorf("dial %s took %v: refusals must not wait for the network", addr, time.Since(start))
		}
	}
	if n := rec.n.Load(); n != 0 {
		t.Fatalf("%d sockets were about to connect", n)
	}
}

// The second line of defence: a dialer built by the guard refuses at
// Control time even when called with a refused address directly (as after
// a DNS answer that changed between check and dial). Control runs before
// connect(2), so the refused address is never contacted.
func TestControlRefusesBeforeConnect(t *testing.T) {
	rec := &recorder{}
	g := &Guard{Control: rec.control}
	_, err := g.Dialer().DialContext(context.Background(), "tcp", "10.0.0.1:80")
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("dial 10.0.0.1 through the guard's dialer: %v", err)
	}
	if rec.n.Load() != 0 {
		t.Fatal("the recorder saw a socket for a refused address")
	}
}

// Loopback is reachable only when allowed; then requests go through.
func TestTransportLoopbackOnlyWhenAllowed(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()

	rec := &recorder{}
	g := &Guard{Control: rec.control}
	c := &http.Client{Transport: g.Transport(), Timeout: 2 * time.Second}
	if _, err := c.Get(srv.URL); !errors.Is(err, ErrRefused) {
		t.Fatalf("GET loopback without allowing it: %v", err)
	}
	if hits.Load() != 0 || rec.n.Load() != 0 {
		t.Fatalf("the refused request reached the server (%d hits, %d sockets)", hits.Load(), rec.n.Load())
	}

	g.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	c = &http.Client{Transport: g.Transport(), Timeout: 2 * time.Second}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 || rec.n.Load() != 1 {
		t.Fatalf("allowed request: %d hits, %d sockets", hits.Load(), rec.n.Load())
	}
}

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}
