package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/authsvc/store/memstore"
)

// ---------------------------------------------------------------- fakes

// sessions is an in-memory session.Store. rotateErr, when set, is what
// RotateRefresh answers.
type sessions struct {
	mu        sync.Mutex
	calls     int
	created   []store.NewSession
	rotated   [][2][]byte
	revoked   [][]byte
	rotateErr error
	revokeErr error
	live      map[string]store.Session // by hex hash
}

func (s *sessions) CreateSession(_ context.Context, n store.NewSession) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.created = append(s.created, n)
	sid := "sess-" + string(rune('a'+len(s.created)))
	if s.live == nil {
		s.live = map[string]store.Session{}
	}
	s.live[string(n.RefreshHash)] = store.Session{ID: sid, UserID: n.UserID, ExpiresAt: n.ExpiresAt}
	return sid, nil
}

func (s *sessions) RotateRefresh(_ context.Context, oldHash, newHash []byte, now time.Time) (store.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.rotated = append(s.rotated, [2][]byte{oldHash, newHash})
	if s.rotateErr != nil {
		return store.Session{}, s.rotateErr
	}
	sess, ok := s.live[string(oldHash)]
	if !ok {
		return store.Session{}, store.ErrRefreshInvalid
	}
	delete(s.live, string(oldHash))
	s.live[string(newHash)] = sess
	return sess, nil
}

func (s *sessions) RevokeSessionByRefresh(_ context.Context, hash []byte, reason string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.revoked = append(s.revoked, hash)
	return s.revokeErr
}

const ttl = 15 * time.Minute

func newManager(t *testing.T) (*Manager, *sessions, *signer.Signer, *bytes.Buffer) {
	t.Helper()
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	sg := signer.New("http://127.0.0.1:8080", "zsm-api", ttl, kek)
	rot := &signer.Rotator{Keys: &memstore.Keys{}, KEK: kek, Issuer: "http://127.0.0.1:8080", Audience: "zsm-api", AccessTTL: ttl}
	if err := rot.Load(context.Background(), sg); err != nil {
		t.Fatal(err)
	}
	st := &sessions{}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := New(st, &accounts{}, sg, 30*24*time.Hour, log)
	if err != nil {
		t.Fatal(err)
	}
	return m, st, sg, &logs
}

func sum(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// ---------------------------------------------------------------- token shape

func TestRefreshTokenShape(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 64; i++ {
		tok, h, err := newRefresh()
		if err != nil {
			t.Fatal(err)
		}
		body, ok := strings.CutPrefix(tok, "zsmrt_")
		if !ok {
			t.Fatalf("token %q lacks the zsmrt_ prefix", tok)
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
		if err != nil || len(raw) != 32 {
			t.Fatalf("token body is not 256 bits of base64url: %d bytes, %v", len(raw), err)
		}
		if !bytes.Equal(h, sum(tok)) {
			t.Fatal("stored hash is not SHA-256 of the whole token")
		}
		if bytes.Equal(h, sum(body)) {
			t.Fatal("hash covers only the body")
		}
		back, ok := hashRefresh(tok)
		if !ok || !bytes.Equal(back, h) {
			t.Fatal("hashRefresh disagrees with newRefresh")
		}
		if seen[tok] {
			t.Fatal("token repeated")
		}
		seen[tok] = true
	}
}

func malformedTokens() map[string]string {
	tok, _, _ := newRefresh()
	body := strings.TrimPrefix(tok, "zsmrt_")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, body[42])
	return map[string]string{
		"empty":             "",
		"prefix only":       "zsmrt_",
		"no prefix":         body,
		"wrong prefix":      "zsmRT_" + body,
		"other prefix":      "zsmat_" + body,
		"bearer":            "Bearer " + tok,
		"42 chars":          tok[:len(tok)-1],
		"44 chars":          tok + "A",
		"padded":            tok + "=",
		"std alphabet":      "zsmrt_" + strings.Repeat("+", 42) + "A",
		"space inside":      tok[:20] + " " + tok[21:],
		"newline inside":    tok[:20] + "\n" + tok[21:],
		"trailing newline":  tok + "\n",
		"leading space":     " " + tok,
		"non-canonical end": tok[:len(tok)-1] + string(alphabet[last^1]), // low bits unused by 32 bytes
		"non-ascii":         "zsmrt_" + strings.Repeat("é", 21) + "A",
		"huge":              "zsmrt_" + strings.Repeat("A", 1<<20),
		"jwt":               "eyJhbGciOiJFZERTQSJ9.e30.c2ln",
	}
}

func TestMalformedTokensNeverReachTheStore(t *testing.T) {
	m, st, _, _ := newManager(t)
	for name, tok := range malformedTokens() {
		if _, ok := hashRefresh(tok); ok {
			t.Errorf("%s: hashRefresh accepted %.30q", name, tok)
		}
		if _, err := m.Refresh(context.Background(), tok); !errors.Is(err, ErrInvalidRefresh) {
			t.Errorf("%s: Refresh = %v; want ErrInvalidRefresh", name, err)
		}
		if err := m.Logout(context.Background(), tok); !errors.Is(err, ErrInvalidRefresh) {
			t.Errorf("%s: Logout = %v; want ErrInvalidRefresh", name, err)
		}
	}
	if st.calls != 0 {
		t.Fatalf("malformed tokens made %d store calls", st.calls)
	}
}

// The non-canonical case differs from a real token only in bits a lax
// decoder ignores: two spellings of one token would have two hashes.
func TestNonCanonicalSpellingIsReallyTheSameBytes(t *testing.T) {
	tok, _, _ := newRefresh()
	body := strings.TrimPrefix(tok, "zsmrt_")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	alt := body[:42] + string(alphabet[strings.IndexByte(alphabet, body[42])^1])
	a, err1 := base64.RawURLEncoding.DecodeString(body)
	b, err2 := base64.RawURLEncoding.DecodeString(alt)
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		t.Fatalf("lax decoding: %v %v equal=%v", err1, err2, bytes.Equal(a, b))
	}
	if _, ok := hashRefresh("zsmrt_" + alt); ok {
		t.Fatal("a second spelling of a valid token is accepted")
	}
}

// ---------------------------------------------------------------- Open / Refresh / Logout

func TestOpenIssuesVerifiableTokens(t *testing.T) {
	m, st, sg, _ := newManager(t)
	now := time.Now().Truncate(time.Second)
	m.Now = func() time.Time { return now }
	addr := netip.MustParseAddr("203.0.113.7")
	tk, err := m.Open(context.Background(), "user-1", addr, "zsm-cli/1.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.created) != 1 {
		t.Fatalf("%d sessions created", len(st.created))
	}
	n := st.created[0]
	if n.UserID != "user-1" || n.ClientAddr != addr || n.UserAgent != "zsm-cli/1.0" {
		t.Fatalf("session row %+v", n)
	}
	if !n.ExpiresAt.Equal(now.Add(30 * 24 * time.Hour)) {
		t.Fatalf("session expires %v, want now + session TTL", n.ExpiresAt)
	}
	if !bytes.Equal(n.RefreshHash, sum(tk.RefreshToken)) {
		t.Fatal("the store got another hash than SHA-256 of the token handed out")
	}
	if bytes.Contains(n.RefreshHash, []byte(tk.RefreshToken)) {
		t.Fatal("the token itself reached the store")
	}
	if tk.UserID != "user-1" || tk.SessionID != "sess-b" {
		t.Fatalf("tokens %+v", tk)
	}
	c, err := sg.Verify(tk.AccessToken, now)
	if err != nil {
		t.Fatalf("access token from Open does not verify: %v", err)
	}
	if c.Subject != "user-1" || c.SessionID != tk.SessionID || !c.Expiry.Equal(tk.ExpiresAt) {
		t.Fatalf("claims %+v vs tokens %+v", c, tk)
	}
	if tk.ExpiresAt.Sub(now) != ttl {
		t.Fatalf("access token lives %v, want %v", tk.ExpiresAt.Sub(now), ttl)
	}
}

func TestRefreshRotates(t *testing.T) {
	m, st, sg, _ := newManager(t)
	first, err := m.Open(context.Background(), "user-1", netip.Addr{}, "")
	if err != nil {
		t.Fatal(err)
	}
	second, err := m.Refresh(context.Background(), first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.rotated) != 1 {
		t.Fatalf("%d rotations", len(st.rotated))
	}
	if !bytes.Equal(st.rotated[0][0], sum(first.RefreshToken)) {
		t.Fatal("rotation looked up another hash than the presented token's")
	}
	if !bytes.Equal(st.rotated[0][1], sum(second.RefreshToken)) {
		t.Fatal("rotation stored another hash than the new token's")
	}
	if second.RefreshToken == first.RefreshToken {
		t.Fatal("refresh returned the same token")
	}
	if second.SessionID != first.SessionID || second.UserID != "user-1" {
		t.Fatalf("refresh moved the session: %+v", second)
	}
	if c, err := sg.Verify(second.AccessToken, time.Now()); err != nil || c.SessionID != first.SessionID {
		t.Fatalf("refreshed access token: %+v, %v", c, err)
	}
	// The spent token, presented again, is refused.
	if _, err := m.Refresh(context.Background(), first.RefreshToken); !errors.Is(err, ErrInvalidRefresh) {
		t.Fatalf("spent token: %v", err)
	}
}

func TestRefreshReuseAndInvalid(t *testing.T) {
	tok, _, _ := newRefresh()
	for name, storeErr := range map[string]error{
		"reused":         store.ErrRefreshReused,
		"reused wrapped": errors.Join(errors.New("tx"), store.ErrRefreshReused),
		"invalid":        store.ErrRefreshInvalid,
	} {
		t.Run(name, func(t *testing.T) {
			m, st, _, logs := newManager(t)
			st.rotateErr = storeErr
			tk, err := m.Refresh(context.Background(), tok)
			if err != ErrInvalidRefresh {
				t.Fatalf("Refresh = %v; want exactly ErrInvalidRefresh", err)
			}
			if tk != (Tokens{}) {
				t.Fatalf("tokens handed out with the error: %+v", tk)
			}
			if strings.Contains(logs.String(), tok) || strings.Contains(logs.String(), strings.TrimPrefix(tok, "zsmrt_")) {
				t.Fatal("the refresh token was written to the log")
			}
			if errors.Is(storeErr, store.ErrRefreshReused) && !strings.Contains(logs.String(), "refresh_token_reuse") {
				t.Fatal("token reuse was not logged")
			}
		})
	}
	// Infrastructure errors are not disguised as a bad token (the client
	// should retry, not log in again).
	m, st, _, _ := newManager(t)
	boom := errors.New("connection refused")
	st.rotateErr = boom
	if _, err := m.Refresh(context.Background(), tok); !errors.Is(err, boom) || errors.Is(err, ErrInvalidRefresh) {
		t.Fatalf("store failure: %v", err)
	}
}

func TestRefreshWithoutSigningKey(t *testing.T) {
	kek := make([]byte, 32)
	sg := signer.New("i", "a", ttl, kek) // never loaded
	st := &sessions{}
	m, err := New(st, &accounts{}, sg, time.Hour, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Open(context.Background(), "u", netip.Addr{}, ""); !errors.Is(err, signer.ErrNotLoaded) {
		t.Fatalf("Open without keys: %v; want ErrNotLoaded (rendered as 503)", err)
	}
	st.live = map[string]store.Session{}
	tok, h, _ := newRefresh()
	st.live[string(h)] = store.Session{ID: "s", UserID: "u", ExpiresAt: time.Now().Add(time.Hour)}
	if _, err := m.Refresh(context.Background(), tok); !errors.Is(err, signer.ErrNotLoaded) {
		t.Fatalf("Refresh without keys: %v; want ErrNotLoaded", err)
	}
}

func TestLogout(t *testing.T) {
	m, st, _, _ := newManager(t)
	tok, h, _ := newRefresh()
	if err := m.Logout(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if len(st.revoked) != 1 || !bytes.Equal(st.revoked[0], h) {
		t.Fatal("logout revoked by another hash")
	}
	st.revokeErr = store.ErrNotFound
	if err := m.Logout(context.Background(), tok); err != ErrInvalidRefresh {
		t.Fatalf("unknown token: %v; want ErrInvalidRefresh", err)
	}
}
