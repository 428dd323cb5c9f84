package events

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"zsm.dev/zsm/authsvc/netguard"
)

// The webhook address guard refuses every range of the IANA IPv4 and IPv6
// special-purpose registries, not only private and loopback space: an
// outside attack run got webhooks to ::ffff:0:0:0/96 (SIIT),
// 64:ff9b:1::/48 (local-use NAT64) and 2001::/32 (Teredo) accepted, and the
// worker tried to connect — with a local NAT64 that reaches internal IPv4
// addresses. Refused at creation by the database (400 22023) and at
// delivery by authsvc, even in this stack where 127.0.0.0/8 is allowed.
func TestWebhookSpecialPurposeAddressesRefused(t *testing.T) {
	ctx := context.Background()
	owner := newAccount(t)
	v, err := owner.c.CreateVault(ctx, "guard-"+randHex(3))
	if err != nil {
		t.Fatal(err)
	}
	// At creation.
	for _, host := range []string{
		"[::ffff:0:a00:1]", "[::ffff:0:7f00:1]", "[64:ff9b:1::a00:1]", "[2001::1]", "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
		"[64:ff9b::a00:1]", "[64:ff9b::808:808]", "[2002:a00:1::1]", "[2001:2::1]", "[2001:db8::1]", "[3fff::1]",
		"[5f00::1]", "[100::1]", "[fec0::1]", "[4000::1]", "[::a00:1]", "[2620:4f:8000::1]",
		"192.88.99.1", "192.31.196.1", "192.52.193.1", "192.175.48.1", "198.18.0.1", "192.0.2.1", "192.0.0.9",
		"198.51.100.1", "203.0.113.1", "255.255.255.255", "240.0.0.1",
	} {
		code, body := owner.rest(t, "POST", "/rpc/create_webhook", map[string]any{"vault_id": v.ID, "url": "https://" + host + "/hook"})
		refused(t, code, body, 400, "22023", "webhook URL https://"+host+"/hook")
	}

	// The database's list and authsvc's agree: the first and last address
	// of every refused range, and public addresses next to them.
	conn := db(t)
	check := func(a netip.Addr) {
		t.Helper()
		var sqlRefused bool
		if err := conn.QueryRow(ctx, `SELECT gate.address_refused($1::inet, '{}')`, a.String()).Scan(&sqlRefused); err != nil {
			t.Fatal(err)
		}
		if goReason := netguard.Classify(a); sqlRefused != (goReason != "") {
			t.Errorf("%s: database refuses %v, authsvc says %q", a, sqlRefused, goReason)
		}
	}
	for _, p := range netguard.Ranges() {
		first := p.Masked().Addr()
		last := lastAddr(p)
		check(first)
		check(last)
		if before := first.Prev(); before.IsValid() && !before.Is4In6() {
			check(before)
		}
		if after := last.Next(); after.IsValid() && !after.Is4In6() {
			check(after)
		}
	}
	for _, s := range []string{"8.8.8.8", "2606:4700::1111", "2001:4860:4860::8888", "1fff:ffff::1", "2000::1", "3fff:1000::1"} {
		check(netip.MustParseAddr(s))
	}

	// At delivery: webhook rows made before these rules (written here
	// behind the API's back) are refused by the worker before it opens a
	// socket. The receiver listens on 127.0.0.1, which this stack allows;
	// its SIIT and NAT64 spellings are refused all the same.
	rc := newReceiver(t, nil)
	port := rc.srv.URL[strings.LastIndexByte(rc.srv.URL, ':')+1:]
	urls := map[string]string{
		"http://[::ffff:0:7f00:1]:" + port + "/hook":   "IPv4-translated (SIIT)",
		"http://[64:ff9b:1::7f00:1]:" + port + "/hook": "local-use NAT64",
		"http://[2001::7f00:1]:" + port + "/hook":      "Teredo",
	}
	for u := range urls {
		if _, err := conn.Exec(ctx, `
			INSERT INTO api.webhooks (vault_id, url, signing_secret, created_by)
			VALUES ($1, $2, 'whsec_' || md5(random()::text) || md5(random()::text), $3)`, v.ID, u, owner.id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := owner.c.CreateSecret(ctx, v, "GUARDED", "value"); err != nil {
		t.Fatal(err)
	}
	errs := map[string]string{}
	waitUntil(t, 20*time.Second, "a refused attempt for each special-purpose webhook", func() bool {
		rows, err := conn.Query(ctx, `
			SELECT w.url, a.error FROM api.webhook_attempts a JOIN api.webhooks w ON w.id = a.webhook_id
			 WHERE w.vault_id = $1`, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var u string
			var e *string
			if err := rows.Scan(&u, &e); err != nil {
				t.Fatal(err)
			}
			if e != nil {
				errs[u] = *e
			}
		}
		return len(errs) == len(urls)
	})
	for u, reason := range urls {
		if want := "refused: " + reason + " address"; !strings.Contains(errs[u], want) {
			t.Errorf("delivery to %s: error %q, want it to say %q", u, errs[u], want)
		}
	}
	if got := rc.all(); len(got) != 0 {
		t.Fatalf("the receiver got %d requests through a translation prefix", len(got))
	}
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
