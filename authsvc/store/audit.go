package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Audit event types. Every authentication event is recorded in
// api.audit_events (migration 000006), append-only: users read their own
// rows through PostgREST, operators all of them with `authsvc audit`.
const (
	EventSignup               = "signup"
	EventLogin                = "login"
	EventLoginFailed          = "login_failed"
	EventTokenRefreshed       = "token_refreshed"
	EventRefreshFailed        = "refresh_failed"
	EventRefreshTokenReused   = "refresh_token_reused"
	EventLogout               = "logout"
	EventSessionRevoked       = "session_revoked"
	EventPasswordChanged      = "password_changed"
	EventKeysUpgraded         = "keys_upgraded"
	EventPasswordChangeFailed = "password_change_failed"
	// Signing key events (signer.Rotator), recorded without a user; their
	// detail names the kid.
	EventSigningKeyCreated   = "signing_key_created"
	EventSigningKeyPublished = "signing_key_published"
	EventSigningKeyRotated   = "signing_key_rotated"
	EventSigningKeyRevoked   = "signing_key_revoked"
	EventSigningKeyRemoved   = "signing_key_removed"
)

// AuditEvent is one row of the audit log.
//
// Detail is a small JSON object (at most 2 KiB encoded) of reasons, counts
// and ids. It must never hold a token, a password derivative, an SRP value,
// a key or anything a client encrypted.
type AuditEvent struct {
	Type      string // one of the Event* constants (or ^[a-z][a-z0-9_]{1,62}$)
	UserID    string // "" when there is no user (a failed login for an unknown identity, a key event)
	SessionID string // "" when there is no session
	// ClientAddr and RequestID default to the request's, when ctx carries
	// one (WithRequest); key events made by the CLI have neither.
	ClientAddr netip.Addr
	RequestID  string
	Detail     map[string]any
	At         time.Time // zero: the database's clock
}

// AuditRecord is a stored event.
type AuditRecord struct {
	ID         int64           `json:"id"`
	At         time.Time       `json:"at"`
	UserID     string          `json:"user_id,omitempty"`
	SessionID  string          `json:"session_id,omitempty"`
	Type       string          `json:"event"`
	ClientAddr string          `json:"client_addr,omitempty"`
	RequestID  string          `json:"request_id,omitempty"`
	Detail     json.RawMessage `json:"detail"`
}

// RequestMeta is what a request contributes to the audit rows it causes.
type RequestMeta struct {
	ClientAddr netip.Addr
	RequestID  string
}

type requestMetaKey struct{}

// WithRequest returns ctx carrying the request's client address and id, so
// that audit rows written anywhere below record them.
func WithRequest(ctx context.Context, m RequestMeta) context.Context {
	return context.WithValue(ctx, requestMetaKey{}, m)
}

// RequestFrom returns what WithRequest stored.
func RequestFrom(ctx context.Context) (RequestMeta, bool) {
	m, ok := ctx.Value(requestMetaKey{}).(RequestMeta)
	return m, ok
}

var (
	eventPattern     = regexp.MustCompile(`^[a-z][a-z0-9_]{1,62}$`)
	requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
)

// execer is what both the pool and a transaction offer.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Audit appends e to the audit log in a transaction of its own.
func (s *Store) Audit(ctx context.Context, e AuditEvent) error {
	return insertAudit(ctx, s.pool, e)
}

// AuditTx appends e to the audit log inside tx, so that the event is
// recorded if and only if the change it describes commits.
func AuditTx(ctx context.Context, tx pgx.Tx, e AuditEvent) error {
	return insertAudit(ctx, tx, e)
}

// Check refuses an event the audit log does not take: a type that is not
// snake_case, or a detail that does not encode to a JSON object of at most
// 2 KiB. It returns the encoded detail.
func (e AuditEvent) Check() ([]byte, error) {
	if !eventPattern.MatchString(e.Type) {
		return nil, fmt.Errorf("store: audit: bad event type %q", e.Type)
	}
	detail := []byte("{}")
	if len(e.Detail) > 0 {
		var err error
		if detail, err = json.Marshal(e.Detail); err != nil {
			return nil, fmt.Errorf("store: audit detail: %w", err)
		}
		if len(detail) > 2048 {
			return nil, errors.New("store: audit detail is larger than 2 KiB")
		}
	}
	return detail, nil
}

func insertAudit(ctx context.Context, q execer, e AuditEvent) error {
	detail, err := e.Check()
	if err != nil {
		return err
	}
	if m, ok := RequestFrom(ctx); ok {
		if !e.ClientAddr.IsValid() {
			e.ClientAddr = m.ClientAddr
		}
		if e.RequestID == "" {
			e.RequestID = m.RequestID
		}
	}
	var addr *netip.Addr
	if e.ClientAddr.IsValid() {
		a := e.ClientAddr.Unmap()
		addr = &a
	}
	var rid *string
	if requestIDPattern.MatchString(e.RequestID) {
		rid = &e.RequestID
	}
	var at *time.Time
	if !e.At.IsZero() {
		at = &e.At
	}
	_, err = q.Exec(ctx, `
		INSERT INTO api.audit_events (at, user_id, session_id, event, client_addr, request_id, detail)
		VALUES (coalesce($1, clock_timestamp()), nullif($2, '')::uuid, nullif($3, '')::uuid, $4, $5, $6, $7)`,
		at, e.UserID, e.SessionID, e.Type, addr, rid, detail)
	if err != nil {
		return fmt.Errorf("store: audit: %w", err)
	}
	return nil
}

// AuditFilter selects audit rows for operators.
type AuditFilter struct {
	UserID string    // "" for every user
	Since  time.Time // zero for all time
	Limit  int       // at most this many, newest first; 0 means 100
}

// AuditLog returns audit rows, newest first.
func (s *Store) AuditLog(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var since *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, at, coalesce(user_id::text, ''), coalesce(session_id::text, ''), event,
		       coalesce(host(client_addr), ''), coalesce(request_id, ''), detail
		  FROM api.audit_events
		 WHERE ($1 = '' OR user_id = nullif($1, '')::uuid)
		   AND ($2::timestamptz IS NULL OR at >= $2)
		 ORDER BY id DESC
		 LIMIT $3`, f.UserID, since, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: audit log: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditRecord, error) {
		var a AuditRecord
		err := r.Scan(&a.ID, &a.At, &a.UserID, &a.SessionID, &a.Type, &a.ClientAddr, &a.RequestID, &a.Detail)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: audit log: %w", err)
	}
	return out, nil
}
