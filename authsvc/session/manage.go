package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/srpgroup"
)

// Accounts is what session management and password change need from
// storage beyond Store. *store.Store has it.
type Accounts interface {
	SessionLive(ctx context.Context, uid, sid string, now time.Time) (bool, error)
	ListSessions(ctx context.Context, uid string, now time.Time) ([]store.SessionInfo, error)
	RevokeSession(ctx context.Context, uid, sid, bySID string, now time.Time) error
	UserByID(ctx context.Context, id string) (store.User, error)
	ChangePassword(ctx context.Context, c store.PasswordChange, now time.Time) (int, error)
	Audit(ctx context.Context, e store.AuditEvent) error
}

// Caller is the verified owner of an access token with a live session.
type Caller struct {
	UserID    string
	SessionID string
}

// Authenticate checks an access token as gate.check_request() does for
// PostgREST: the signature and claims (signer.Verify), then that its
// session is live in the database, so a revoked session's tokens are
// refused at once.
func (m *Manager) Authenticate(ctx context.Context, accessToken string) (Caller, error) {
	now := m.Now()
	cl, err := m.signer.Verify(accessToken, now)
	switch {
	case errors.Is(err, signer.ErrNotLoaded):
		return Caller{}, err
	case err != nil:
		return Caller{}, fmt.Errorf("%w: %w", ErrInvalidAccess, err)
	}
	if !uuidPattern.MatchString(cl.Subject) || !uuidPattern.MatchString(cl.SessionID) {
		return Caller{}, fmt.Errorf("%w: sub or sid is not a uuid", ErrInvalidAccess)
	}
	live, err := m.accounts.SessionLive(ctx, cl.Subject, cl.SessionID, now)
	if err != nil {
		return Caller{}, err
	}
	if !live {
		return Caller{}, ErrSessionEnded
	}
	return Caller{UserID: cl.Subject, SessionID: cl.SessionID}, nil
}

// List returns the caller's live sessions.
func (m *Manager) List(ctx context.Context, c Caller) ([]store.SessionInfo, error) {
	return m.accounts.ListSessions(ctx, c.UserID, m.Now())
}

// Revoke ends the caller's live session sid (which may be the caller's own).
// Any other id, another user's session included, is ErrNotFound.
func (m *Manager) Revoke(ctx context.Context, c Caller, sid string) error {
	if !uuidPattern.MatchString(sid) {
		return ErrNotFound
	}
	return fromStore(m.accounts.RevokeSession(ctx, c.UserID, sid, c.SessionID, m.Now()), ErrNotFound)
}

// Identity returns the caller's identity as stored. An account that is
// gone while a token of it is still live is treated like an ended session.
func (m *Manager) Identity(ctx context.Context, c Caller) (srpgroup.Identity, error) {
	u, err := m.accounts.UserByID(ctx, c.UserID)
	if err != nil {
		return srpgroup.Identity{}, fromStore(err, ErrSessionEnded)
	}
	// Stored identities are in normal form (sign-up normalized them); one
	// that is not is refused, never normalized into another account's.
	id, err := srpgroup.ParseNormalIdentity(u.Identity)
	if err != nil {
		return srpgroup.Identity{}, fmt.Errorf("session: the stored identity of %s: %w", c.UserID, err)
	}
	return id, nil
}

// ChangePassword stores a new password's registration (verifier, salt,
// KDF parameters and re-wrapped key bundle, parsed as a sign-up's is) for
// the caller, and ends every other session of theirs. The caller must have
// proved the old password already. It returns how many sessions were
// ended.
func (m *Manager) ChangePassword(ctx context.Context, c Caller, r srplogin.Registration) (int, error) {
	n, err := m.accounts.ChangePassword(ctx, store.PasswordChange{
		UserID: c.UserID, SessionID: c.SessionID,
		SRPSalt: r.Salt, Verifier: r.Verifier, KDF: r.KDF,
		KeyBundle: r.KeyBundle, X25519Public: r.X25519Public, Ed25519Public: r.Ed25519Public, XWingPublic: r.XWingPublic,
	}, m.Now())
	err = fromStore(err, ErrSessionEnded)
	if errors.Is(err, ErrKeysDiffer) {
		m.auditFailure(ctx, c, "key_bundle_mismatch")
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (m *Manager) auditFailure(ctx context.Context, c Caller, reason string) {
	err := m.accounts.Audit(ctx, store.AuditEvent{Type: store.EventPasswordChangeFailed, UserID: c.UserID, SessionID: c.SessionID,
		Detail: map[string]any{"reason": reason}})
	if err != nil {
		m.log.ErrorContext(ctx, "recording a refused password change in the audit log failed", "err", err)
	}
}
