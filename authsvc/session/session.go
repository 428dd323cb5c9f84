// Package session opens, refreshes and ends login sessions, and mints the
// tokens that go with them.
//
// A session has one live refresh token at a time. Refresh tokens are opaque:
// "zsmrt_" followed by 256 random bits in base64url. Only their SHA-256 is
// stored. Each refresh spends the presented token and returns a new one; a
// spent token presented again revokes the whole session (whoever holds the
// newest token is then logged out too, which is the point: one of the two
// holders is a thief).
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
)

// Store is what sessions need from storage.
type Store interface {
	CreateSession(ctx context.Context, n store.NewSession) (string, error)
	RotateRefresh(ctx context.Context, oldHash, newHash []byte, now time.Time) (store.Session, error)
	RevokeSessionByRefresh(ctx context.Context, hash []byte, reason string, now time.Time) error
}

// Tokens are what a successful login or refresh hands the client.
type Tokens struct {
	UserID       string
	SessionID    string
	AccessToken  string
	ExpiresAt    time.Time
	RefreshToken string
}

// Manager runs sessions.
type Manager struct {
	store    Store
	accounts Accounts
	signer   *signer.Signer
	ttl      time.Duration // absolute session lifetime
	log      *slog.Logger
	Now      func() time.Time
	// OnReuse, if set, is called when a spent refresh token comes back
	// (metrics).
	OnReuse func()
}

// New returns a Manager. Every dependency is required (*store.Store is
// both st and accounts).
func New(st Store, accounts Accounts, sg *signer.Signer, sessionTTL time.Duration, log *slog.Logger) (*Manager, error) {
	if st == nil || accounts == nil || sg == nil || log == nil {
		return nil, errors.New("session: store, accounts, signer and log are all required")
	}
	return &Manager{store: st, accounts: accounts, signer: sg, ttl: sessionTTL, log: log, Now: time.Now}, nil
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

const refreshPrefix = "zsmrt_"

// newRefresh returns a new refresh token and its hash.
func newRefresh() (string, []byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	tok := refreshPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(tok))
	return tok, h[:], nil
}

// hashRefresh checks the token's shape and returns its hash.
func hashRefresh(tok string) ([]byte, bool) {
	body, ok := strings.CutPrefix(tok, refreshPrefix)
	if !ok || len(body) != 43 {
		return nil, false
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(body); err != nil || len(b) != 32 {
		return nil, false
	}
	h := sha256.Sum256([]byte(tok))
	return h[:], true
}

// Open starts a session for a user who just proved their password.
func (m *Manager) Open(ctx context.Context, userID string, addr netip.Addr, userAgent string) (Tokens, error) {
	now := m.Now()
	rt, h, err := newRefresh()
	if err != nil {
		return Tokens{}, err
	}
	sid, err := m.store.CreateSession(ctx, store.NewSession{
		UserID: userID, RefreshHash: h, ExpiresAt: now.Add(m.ttl), ClientAddr: addr, UserAgent: userAgent,
	})
	if err != nil {
		return Tokens{}, err
	}
	at, exp, err := m.signer.Issue(userID, sid, now)
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{UserID: userID, SessionID: sid, AccessToken: at, ExpiresAt: exp, RefreshToken: rt}, nil
}

// Refresh spends a refresh token and returns new tokens for its session.
func (m *Manager) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	old, ok := hashRefresh(refreshToken)
	if !ok {
		return Tokens{}, ErrInvalidRefresh
	}
	now := m.Now()
	rt, h, err := newRefresh()
	if err != nil {
		return Tokens{}, err
	}
	sess, err := m.store.RotateRefresh(ctx, old, h, now)
	if errors.Is(err, store.ErrRefreshReused) {
		// Logged without the token: the session id is enough to investigate.
		m.log.WarnContext(ctx, "refresh token reused; session revoked", "reason", "refresh_token_reuse")
		if m.OnReuse != nil {
			m.OnReuse()
		}
	}
	if err != nil {
		return Tokens{}, fromStore(err, nil)
	}
	at, exp, err := m.signer.Issue(sess.UserID, sess.ID, now)
	if err != nil {
		return Tokens{}, fmt.Errorf("session: %w", err)
	}
	return Tokens{UserID: sess.UserID, SessionID: sess.ID, AccessToken: at, ExpiresAt: exp, RefreshToken: rt}, nil
}

// Logout ends the session the refresh token belongs to. Its access tokens
// stop working at once: the database checks the session on every request.
func (m *Manager) Logout(ctx context.Context, refreshToken string) error {
	h, ok := hashRefresh(refreshToken)
	if !ok {
		return ErrInvalidRefresh
	}
	return fromStore(m.store.RevokeSessionByRefresh(ctx, h, "logout", m.Now()), ErrInvalidRefresh)
}
