package store

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestSameKeys(t *testing.T) {
	x, e := "X", "E"
	bundle := json.RawMessage(`{"version":1}`)
	cases := []struct {
		name      string
		hasBundle bool
		x, e      *string
		c         PasswordChange
		want      bool
	}{
		{"neither has a bundle", false, nil, nil, PasswordChange{}, true},
		{"null bundle counts as none", false, nil, nil, PasswordChange{KeyBundle: json.RawMessage("null")}, true},
		{"adding a bundle", false, nil, nil, PasswordChange{KeyBundle: bundle, X25519Public: "X", Ed25519Public: "E"}, false},
		{"dropping the bundle", true, &x, &e, PasswordChange{}, false},
		{"same keys", true, &x, &e, PasswordChange{KeyBundle: bundle, X25519Public: "X", Ed25519Public: "E"}, true},
		{"other x25519", true, &x, &e, PasswordChange{KeyBundle: bundle, X25519Public: "Y", Ed25519Public: "E"}, false},
		{"other ed25519", true, &x, &e, PasswordChange{KeyBundle: bundle, X25519Public: "X", Ed25519Public: "F"}, false},
		{"stored bundle without keys", true, nil, nil, PasswordChange{KeyBundle: bundle}, false},
	}
	for _, tc := range cases {
		if got := sameKeys(tc.hasBundle, tc.x, tc.e, tc.c); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestIdle(t *testing.T) {
	s := &Store{}
	now := time.Now()
	if s.idle(now.Add(-1000*time.Hour), now) {
		t.Fatal("idle without an idle TTL")
	}
	s.SetSessionIdleTTL(time.Hour)
	if s.idle(now.Add(-time.Hour+time.Second), now) || !s.idle(now.Add(-time.Hour), now) {
		t.Fatal("idle boundary")
	}
	if s.idleSeconds() != 3600 {
		t.Fatal(s.idleSeconds())
	}
}

// Malformed events are refused before any database is touched (the nil
// execer would panic otherwise).
func TestAuditRefusesBadEvents(t *testing.T) {
	ctx := context.Background()
	for _, e := range []AuditEvent{
		{Type: ""}, {Type: "Login"}, {Type: "login failed"}, {Type: "x"},
		{Type: "login", Detail: map[string]any{"big": string(make([]byte, 3000))}},
		{Type: "login", Detail: map[string]any{"bad": func() {}}},
	} {
		if err := insertAudit(ctx, nil, e); err == nil {
			t.Errorf("%+v accepted", e.Type)
		}
	}
}

func TestRequestMetaRoundTrip(t *testing.T) {
	if _, ok := RequestFrom(context.Background()); ok {
		t.Fatal("meta from nowhere")
	}
	m := RequestMeta{RequestID: "abc12345"}
	got, ok := RequestFrom(WithRequest(context.Background(), m))
	if !ok || got != m {
		t.Fatal(got)
	}
}

// A device label is stored as PostgreSQL text: cut to 512 bytes at a
// character boundary, never holding bytes that are not UTF-8 or NUL (either
// made the session insert fail with a 500 before).
func TestTruncateLabel(t *testing.T) {
	long := strings.Repeat("a", 511) + "é" // 513 bytes; byte 512 is inside é
	for _, c := range []struct{ in, want string }{
		{"zsm CLI on host", "zsm CLI on host"},
		{long, strings.Repeat("a", 511)},
		{strings.Repeat("€", 200), strings.Repeat("€", 170)}, // 3-byte runes: 510 bytes
		{"curl\xff/8", "curl\uFFFD/8"},
		{"a\x00b", "a\uFFFDb"},
	} {
		got := truncateLabel(c.in, 512)
		if got != c.want || !utf8.ValidString(got) || len(got) > 512 || strings.ContainsRune(got, 0) {
			t.Errorf("truncateLabel(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
