package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Errors of session management and password change.
var (
	// ErrSessionEnded: the caller's session is revoked, expired or idle.
	ErrSessionEnded = errors.New("store: the session has ended")
	// ErrKeysDiffer: a new key bundle does not carry the account's public
	// keys (or the account has none and one was given, or the reverse).
	ErrKeysDiffer = errors.New("store: the key bundle's public keys differ from the account's")
)

// SetSessionIdleTTL sets the idle lifetime of sessions: one not used (logged
// into or refreshed) for this long is dead. authsvc refuses its refresh
// token, and KeyTx.Publish writes the value into auth.token_policy, where
// gate.check_request() refuses its access tokens. Zero leaves the idle
// check to the database's policy alone. Call it before the Store is used.
func (s *Store) SetSessionIdleTTL(d time.Duration) { s.idleTTL = d }

// idleSeconds is the idle TTL as the SQL below takes it (0: no check).
func (s *Store) idleSeconds() int64 { return int64(s.idleTTL / time.Second) }

// idle reports whether a session last used at lastUsed is dead at now.
func (s *Store) idle(lastUsed, now time.Time) bool {
	return s.idleTTL > 0 && !now.Before(lastUsed.Add(s.idleTTL))
}

// liveSession is the SQL condition for a live session of user $1 at $now,
// given the idle TTL in seconds at $idle.
const liveSession = `s.revoked_at IS NULL AND s.expires_at > @now
	AND (@idle::bigint = 0 OR s.last_used_at > @now::timestamptz - make_interval(secs => @idle::bigint))`

// NewSession describes a session to open.
type NewSession struct {
	UserID      string
	RefreshHash []byte
	ExpiresAt   time.Time
	ClientAddr  netip.Addr // zero when unknown
	UserAgent   string     // the device label the client gave, or its User-Agent
}

// CreateSession opens a session with its first refresh token and records
// the login.
func (s *Store) CreateSession(ctx context.Context, n NewSession) (string, error) {
	var addr *netip.Addr
	if n.ClientAddr.IsValid() {
		addr = &n.ClientAddr
	}
	ua := truncateLabel(n.UserAgent, 512)
	var sid string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `
			INSERT INTO auth.sessions (user_id, expires_at, client_addr, user_agent)
			VALUES ($1, $2, $3, nullif($4, '')) RETURNING id::text`,
			n.UserID, n.ExpiresAt, addr, ua).Scan(&sid); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO auth.refresh_tokens (token_hash, session_id) VALUES ($1, $2)`,
			n.RefreshHash, sid); err != nil {
			return err
		}
		return AuditTx(ctx, tx, AuditEvent{Type: EventLogin, UserID: n.UserID, SessionID: sid, ClientAddr: n.ClientAddr})
	})
	if err != nil {
		return "", fmt.Errorf("store: create session: %w", err)
	}
	return sid, nil
}

// Session identifies a live session.
type Session struct {
	ID        string
	UserID    string
	ExpiresAt time.Time
}

// RotateRefresh exchanges the refresh token with hash oldHash for newHash.
//
// A refresh token is single use. The row is locked for the exchange, so of
// two concurrent uses of one token exactly one succeeds; the other, like any
// later use, finds the token spent, which is what a stolen and replayed token
// looks like: the whole session is revoked and ErrRefreshReused returned.
// A session past its absolute end or idle for longer than the idle TTL is
// refused (ErrRefreshInvalid). Every outcome for a token that exists is
// audited.
func (s *Store) RotateRefresh(ctx context.Context, oldHash, newHash []byte, now time.Time) (Session, error) {
	var out Session
	var failed error // ErrRefreshInvalid or ErrRefreshReused, committed with its audit row
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var usedAt, revokedAt *time.Time
		var lastUsed time.Time
		err := tx.QueryRow(ctx, `
			SELECT s.id::text, s.user_id::text, s.expires_at, s.last_used_at, s.revoked_at, rt.used_at
			  FROM auth.refresh_tokens rt JOIN auth.sessions s ON s.id = rt.session_id
			 WHERE rt.token_hash = $1
			   FOR UPDATE`, oldHash).Scan(&out.ID, &out.UserID, &out.ExpiresAt, &lastUsed, &revokedAt, &usedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrRefreshInvalid // nobody to record it against
		}
		if err != nil {
			return err
		}
		fail := func(reason string) error {
			failed = ErrRefreshInvalid
			return AuditTx(ctx, tx, AuditEvent{Type: EventRefreshFailed, UserID: out.UserID, SessionID: out.ID,
				Detail: map[string]any{"reason": reason}})
		}
		switch {
		case revokedAt != nil:
			return fail("session_revoked")
		case !now.Before(out.ExpiresAt):
			return fail("session_expired")
		case s.idle(lastUsed, now):
			return fail("session_idle")
		}
		if usedAt != nil {
			failed = ErrRefreshReused
			if _, err := tx.Exec(ctx, `
				UPDATE auth.sessions SET revoked_at = $2, revoked_reason = 'refresh_token_reuse'
				 WHERE id = $1 AND revoked_at IS NULL`, out.ID, now); err != nil {
				return err
			}
			return AuditTx(ctx, tx, AuditEvent{Type: EventRefreshTokenReused, UserID: out.UserID, SessionID: out.ID,
				Detail: map[string]any{"session_revoked": true}})
		}
		if _, err := tx.Exec(ctx, `UPDATE auth.refresh_tokens SET used_at = $2 WHERE token_hash = $1`, oldHash, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO auth.refresh_tokens (token_hash, session_id, issued_at) VALUES ($1, $2, $3)`,
			newHash, out.ID, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE auth.sessions SET last_used_at = $2 WHERE id = $1`, out.ID, now); err != nil {
			return err
		}
		return AuditTx(ctx, tx, AuditEvent{Type: EventTokenRefreshed, UserID: out.UserID, SessionID: out.ID})
	})
	switch {
	case errors.Is(err, ErrRefreshInvalid):
		return Session{}, err
	case err != nil:
		return Session{}, fmt.Errorf("store: rotate refresh token: %w", err)
	case failed != nil:
		return Session{}, failed
	}
	return out, nil
}

// RevokeSessionByRefresh ends the session a refresh token (spent or not)
// belongs to. It reports ErrNotFound for an unknown token. reason "logout"
// is audited as a logout, anything else as a revocation.
func (s *Store) RevokeSessionByRefresh(ctx context.Context, hash []byte, reason string, now time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var sid, uid string
		var revokedAt *time.Time
		err := tx.QueryRow(ctx, `
			SELECT s.id::text, s.user_id::text, s.revoked_at
			  FROM auth.refresh_tokens rt JOIN auth.sessions s ON s.id = rt.session_id
			 WHERE rt.token_hash = $1
			   FOR UPDATE OF s`, hash).Scan(&sid, &uid, &revokedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil || revokedAt != nil {
			return err // an ended session stays ended, with its first reason
		}
		if _, err := tx.Exec(ctx, `UPDATE auth.sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1`,
			sid, now, reason); err != nil {
			return err
		}
		e := AuditEvent{Type: EventLogout, UserID: uid, SessionID: sid}
		if reason != "logout" {
			e = AuditEvent{Type: EventSessionRevoked, UserID: uid, SessionID: sid, Detail: map[string]any{"reason": reason}}
		}
		return AuditTx(ctx, tx, e)
	})
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: revoke session: %w", err)
	}
	return nil
}

// RevokeSession ends the live session sid of user uid, on behalf of
// session bySID of the same user, and records it. It reports ErrNotFound
// when that user has no such live session: a session of another user, one
// that never existed and one that has ended already all look the same.
func (s *Store) RevokeSession(ctx context.Context, uid, sid, bySID string, now time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE auth.sessions s SET revoked_at = @now, revoked_reason = 'revoked_by_user'
			 WHERE s.id = @sid::uuid AND s.user_id = @uid::uuid AND `+liveSession,
			pgx.NamedArgs{"uid": uid, "sid": sid, "now": now, "idle": s.idleSeconds()})
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return AuditTx(ctx, tx, AuditEvent{Type: EventSessionRevoked, UserID: uid, SessionID: sid,
			Detail: map[string]any{"reason": "revoked_by_user", "by_session": bySID}})
	})
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: revoke session: %w", err)
	}
	return nil
}

// SessionLive reports whether sid is a live session of user uid at now:
// not revoked, not past its absolute end, not idle.
func (s *Store) SessionLive(ctx context.Context, uid, sid string, now time.Time) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM auth.sessions s WHERE s.id = @sid::uuid AND s.user_id = @uid::uuid AND `+liveSession+`)`,
		pgx.NamedArgs{"uid": uid, "sid": sid, "now": now, "idle": s.idleSeconds()}).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("store: check session: %w", err)
	}
	return ok, nil
}

// SessionInfo is a live session as its owner sees it.
type SessionInfo struct {
	ID          string
	DeviceLabel string // "" when none
	ClientAddr  string // "" when unknown
	CreatedAt   time.Time
	LastUsedAt  time.Time
	ExpiresAt   time.Time
	IdleUntil   time.Time // when it dies unless used before; zero without an idle TTL
}

// ListSessions returns the live sessions of user uid, oldest first.
func (s *Store) ListSessions(ctx context.Context, uid string, now time.Time) ([]SessionInfo, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT s.id::text, coalesce(s.user_agent, ''), coalesce(host(s.client_addr), ''), s.created_at, s.last_used_at, s.expires_at
		  FROM auth.sessions s
		 WHERE s.user_id = @uid::uuid AND `+liveSession+`
		 ORDER BY s.created_at, s.id`,
		pgx.NamedArgs{"uid": uid, "now": now, "idle": s.idleSeconds()})
	if err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SessionInfo, error) {
		var i SessionInfo
		err := r.Scan(&i.ID, &i.DeviceLabel, &i.ClientAddr, &i.CreatedAt, &i.LastUsedAt, &i.ExpiresAt)
		if s.idleTTL > 0 {
			i.IdleUntil = i.LastUsedAt.Add(s.idleTTL)
		}
		return i, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	return out, nil
}

// UserByID finds an account by its id.
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	u := User{ID: id}
	err := s.pool.QueryRow(ctx, `
		SELECT identity, srp_salt, srp_verifier, kdf, key_bundle FROM auth.users WHERE id = $1::uuid`,
		id).Scan(&u.Identity, &u.SRPSalt, &u.Verifier, &u.KDF, &u.KeyBundle)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("store: find user: %w", err)
	}
	return u, nil
}

// PasswordChange is a new password's registration data for an account.
type PasswordChange struct {
	UserID    string
	SessionID string // the session that changes it; it stays, every other one ends
	SRPSalt   []byte
	Verifier  []byte
	KDF       json.RawMessage
	// KeyBundle is the same account key wrapped under the new unlock key;
	// nil for an account without a bundle. Its public keys must be the
	// account's.
	KeyBundle                   json.RawMessage
	X25519Public, Ed25519Public string
	// XWingPublic is the X-Wing key of a version 2 bundle: a password
	// change keeps the bundle's version and its X-Wing key too.
	XWingPublic string
}

// ChangePassword replaces the account's verifier, salt, KDF parameters and
// key bundle, and revokes every other session of the user (reason
// password_change), in one transaction, provided the changing session is
// still live and the bundle carries the account's public keys
// (ErrSessionEnded, ErrKeysDiffer otherwise; nothing changes then). It
// returns how many sessions it revoked.
func (s *Store) ChangePassword(ctx context.Context, c PasswordChange, now time.Time) (int, error) {
	revoked := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var hasBundle bool
		var x, e, w *string
		err := tx.QueryRow(ctx, `
			SELECT key_bundle IS NOT NULL, key_bundle ->> 'x25519_public', key_bundle ->> 'ed25519_public', key_bundle ->> 'xwing_public'
			  FROM auth.users WHERE id = $1::uuid FOR UPDATE`, c.UserID).Scan(&hasBundle, &x, &e, &w)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var live bool
		if err := tx.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM auth.sessions s WHERE s.id = @sid::uuid AND s.user_id = @uid::uuid AND `+liveSession+`)`,
			pgx.NamedArgs{"uid": c.UserID, "sid": c.SessionID, "now": now, "idle": s.idleSeconds()}).Scan(&live); err != nil {
			return err
		}
		if !live {
			return ErrSessionEnded
		}
		if !sameKeys(hasBundle, x, e, c) || (hasBundle && (w == nil) != (c.XWingPublic == "")) || (w != nil && *w != c.XWingPublic) {
			return ErrKeysDiffer
		}
		if _, err := tx.Exec(ctx, `
			UPDATE auth.users SET srp_salt = $2, srp_verifier = $3, kdf = $4, key_bundle = $5, updated_at = $6
			 WHERE id = $1::uuid`, c.UserID, c.SRPSalt, c.Verifier, c.KDF, nullJSON(c.KeyBundle), now); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			UPDATE auth.sessions SET revoked_at = $3, revoked_reason = 'password_change'
			 WHERE user_id = $1::uuid AND id <> $2::uuid AND revoked_at IS NULL AND expires_at > $3`,
			c.UserID, c.SessionID, now)
		if err != nil {
			return err
		}
		revoked = int(tag.RowsAffected())
		return AuditTx(ctx, tx, AuditEvent{Type: EventPasswordChanged, UserID: c.UserID, SessionID: c.SessionID,
			Detail: map[string]any{"sessions_revoked": revoked}})
	})
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrSessionEnded), errors.Is(err, ErrKeysDiffer):
		return 0, err
	case err != nil:
		return 0, fmt.Errorf("store: change password: %w", err)
	}
	return revoked, nil
}

// sameKeys reports whether the new bundle's public keys are the stored
// bundle's (both absent counts as the same).
func sameKeys(hasBundle bool, x, e *string, c PasswordChange) bool {
	newBundle := len(c.KeyBundle) > 0 && string(c.KeyBundle) != "null"
	if !hasBundle || !newBundle {
		return hasBundle == newBundle
	}
	return x != nil && e != nil && *x == c.X25519Public && *e == c.Ed25519Public
}

// truncateLabel makes a device label storable: valid UTF-8 without NUL (a
// User-Agent header may carry any bytes, and PostgreSQL refuses text that
// is not UTF-8 or holds NUL), at most max bytes, cut at a character
// boundary.
func truncateLabel(s string, max int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
