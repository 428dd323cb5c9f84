package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
)

// Accounts is what session management and password change need from
// storage beyond Store. *store.Store has it; New picks it up from the Store
// it is given.
type Accounts interface {
	SessionLive(ctx context.Context, uid, sid string, now time.Time) (bool, error)
	ListSessions(ctx context.Context, uid string, now time.Time) ([]store.SessionInfo, error)
	RevokeSession(ctx context.Context, uid, sid, bySID string, now time.Time) error
	UserByID(ctx context.Context, id string) (store.User, error)
	ChangePassword(ctx context.Context, c store.PasswordChange, now time.Time) (int, error)
	Audit(ctx context.Context, e store.AuditEvent) error
}

// Errors of the authenticated endpoints.
var (
	// ErrInvalidAccess: the access token is missing, malformed, expired,
	// not signed by a published key, or not ours.
	ErrInvalidAccess = errors.New("access token is not valid")
	// ErrSessionEnded: the token is fine but its session is revoked,
	// expired or idle.
	ErrSessionEnded = errors.New("the session has ended")
	// ErrNotFound: no live session with that id belongs to the caller.
	ErrNotFound = errors.New("no such session")
	// ErrKeysDiffer: a password change's key bundle does not carry the
	// account's public keys.
	ErrKeysDiffer = errors.New("the key bundle's public keys are not the account's")
	// ErrUnsupported: the Store given to New cannot manage sessions.
	ErrUnsupported = errors.New("session: the store cannot manage sessions")
)

// Caller is the verified owner of an access token with a live session.
type Caller struct {
	UserID    string
	SessionID string
}

func (m *Manager) accountsOrErr() (Accounts, error) {
	if m.accounts == nil {
		return nil, ErrUnsupported
	}
	return m.accounts, nil
}

// Authenticate checks an access token as gate.check_request() does for
// PostgREST: the signature and claims (signer.Verify), then that its
// session is live in the database, so a revoked session's tokens are
// refused at once.
func (m *Manager) Authenticate(ctx context.Context, accessToken string) (Caller, error) {
	a, err := m.accountsOrErr()
	if err != nil {
		return Caller{}, err
	}
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
	live, err := a.SessionLive(ctx, cl.Subject, cl.SessionID, now)
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
	a, err := m.accountsOrErr()
	if err != nil {
		return nil, err
	}
	return a.ListSessions(ctx, c.UserID, m.Now())
}

// Revoke ends the caller's live session sid (which may be the caller's own).
// Any other id, another user's session included, is ErrNotFound.
func (m *Manager) Revoke(ctx context.Context, c Caller, sid string) error {
	a, err := m.accountsOrErr()
	if err != nil {
		return err
	}
	if !uuidPattern.MatchString(sid) {
		return ErrNotFound
	}
	err = a.RevokeSession(ctx, c.UserID, sid, c.SessionID, m.Now())
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// Account returns the caller's account.
func (m *Manager) Account(ctx context.Context, c Caller) (store.User, error) {
	a, err := m.accountsOrErr()
	if err != nil {
		return store.User{}, err
	}
	u, err := a.UserByID(ctx, c.UserID)
	if errors.Is(err, store.ErrNotFound) {
		// The account is gone but a token of it is still live: treat it
		// like an ended session.
		return store.User{}, ErrSessionEnded
	}
	return u, err
}

// ChangePassword stores a new password's verifier, salt, KDF parameters
// and re-wrapped key bundle for the caller, and ends every other session of
// theirs. The caller must have proved the old password already. It returns
// how many sessions were ended.
func (m *Manager) ChangePassword(ctx context.Context, c Caller, pc store.PasswordChange) (int, error) {
	a, err := m.accountsOrErr()
	if err != nil {
		return 0, err
	}
	pc.UserID, pc.SessionID = c.UserID, c.SessionID
	n, err := a.ChangePassword(ctx, pc, m.Now())
	switch {
	case errors.Is(err, store.ErrKeysDiffer):
		m.auditFailure(ctx, a, c, "key_bundle_mismatch")
		return 0, ErrKeysDiffer
	case errors.Is(err, store.ErrSessionEnded), errors.Is(err, store.ErrNotFound):
		return 0, ErrSessionEnded
	}
	return n, err
}

func (m *Manager) auditFailure(ctx context.Context, a Accounts, c Caller, reason string) {
	err := a.Audit(ctx, store.AuditEvent{Type: store.EventPasswordChangeFailed, UserID: c.UserID, SessionID: c.SessionID,
		Detail: map[string]any{"reason": reason}})
	if err != nil {
		m.log.ErrorContext(ctx, "recording a refused password change in the audit log failed", "err", err)
	}
}
