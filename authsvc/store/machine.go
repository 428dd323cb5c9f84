package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Audit event types of machine tokens (migration 000018). Each names the
// token's owner as its user and the token in detail.
const (
	EventTokenCreated       = "token_created"
	EventTokenRevoked       = "token_revoked"
	EventTokenUsed          = "token_used"
	EventMachineLoginFailed = "machine_login_failed"
)

// Errors of machine tokens.
var (
	// ErrNameTaken: the owner has a live token of that name.
	ErrNameTaken = errors.New("store: the owner has a live machine token of that name")
	// ErrTokenIDTaken: the token id is a token's or an account's id.
	ErrTokenIDTaken = errors.New("store: the token id is taken")
)

// NewMachineToken is a token to store, its key record already verified.
type NewMachineToken struct {
	ID, OwnerID, Name                        string
	X25519Public, Ed25519Public, XWingPublic string
	KeyRecordSignature, Anchor               string
	CreatedAt, ExpiresAt                     time.Time
}

// MachineToken is a stored token as login needs it.
type MachineToken struct {
	ID, OwnerID, Name string
	Ed25519Public     string
	Anchor            string
	ExpiresAt         time.Time
	RevokedAt         *time.Time
}

// Live reports whether the token may log in at now.
func (t MachineToken) Live(now time.Time) bool { return t.RevokedAt == nil && now.Before(t.ExpiresAt) }

// CreateMachineToken stores a token and records token_created, in one
// transaction. An expired, unrevoked token of the same owner and name is
// revoked first (reason "expired"), so that the name can be used again.
func (s *Store) CreateMachineToken(ctx context.Context, n NewMachineToken) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			UPDATE auth.machine_tokens SET revoked_at = $3
			 WHERE owner_id = $1::uuid AND name = $2 AND revoked_at IS NULL AND expires_at <= $3`,
			n.OwnerID, n.Name, n.CreatedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO auth.machine_tokens (id, owner_id, name, x25519_public, ed25519_public, xwing_public,
			                                 key_record_signature, anchor, created_at, expires_at)
			VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10)`,
			n.ID, n.OwnerID, n.Name, n.X25519Public, n.Ed25519Public, n.XWingPublic,
			n.KeyRecordSignature, n.Anchor, n.CreatedAt, n.ExpiresAt)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			switch pgErr.ConstraintName {
			case "machine_tokens_owner_name":
				return ErrNameTaken
			case "machine_tokens_pkey":
				return ErrTokenIDTaken
			default: // the Ed25519 or X-Wing key of another token
				return ErrKeysTaken
			}
		}
		if err != nil {
			return err
		}
		return AuditTx(ctx, tx, AuditEvent{Type: EventTokenCreated, UserID: n.OwnerID,
			Detail: map[string]any{"token_id": n.ID, "name": n.Name, "expires_at": n.ExpiresAt.UTC().Format(time.RFC3339)}})
	})
	if errors.Is(err, ErrNameTaken) || errors.Is(err, ErrTokenIDTaken) || errors.Is(err, ErrKeysTaken) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: create machine token: %w", err)
	}
	return nil
}

// RevokeMachineToken revokes token id of owner at now, records
// token_revoked, and records a token.revoked event in every vault the
// token holds a grant in (whose webhooks hear of it), in one transaction.
// Revoking a token that is revoked already changes nothing and succeeds;
// a token that is not the owner's, or does not exist, is ErrNotFound.
func (s *Store) RevokeMachineToken(ctx context.Context, owner, id string, now time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var revoked *time.Time
		var name string
		err := tx.QueryRow(ctx, `
			SELECT revoked_at, name FROM auth.machine_tokens WHERE id = $1::uuid AND owner_id = $2::uuid FOR UPDATE`,
			id, owner).Scan(&revoked, &name)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if revoked != nil {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE auth.machine_tokens SET revoked_at = greatest($2, created_at) WHERE id = $1::uuid`, id, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO api.vault_events (vault_id, type, actor_id, member_id, role)
			SELECT p.vault_id, 'token.revoked', $2::uuid, p.user_id, p.role
			  FROM api.access_policies p WHERE p.user_id = $1::uuid`, id, owner); err != nil {
			return err
		}
		return AuditTx(ctx, tx, AuditEvent{Type: EventTokenRevoked, UserID: owner,
			Detail: map[string]any{"token_id": id, "name": name}})
	})
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: revoke machine token: %w", err)
	}
	return nil
}

// MachineTokenByID returns a token, live or not (ErrNotFound when there is
// none).
func (s *Store) MachineTokenByID(ctx context.Context, id string) (MachineToken, error) {
	t := MachineToken{ID: id}
	err := s.pool.QueryRow(ctx, `
		SELECT owner_id::text, name, ed25519_public, anchor, expires_at, revoked_at
		  FROM auth.machine_tokens WHERE id = $1::uuid`, id).
		Scan(&t.OwnerID, &t.Name, &t.Ed25519Public, &t.Anchor, &t.ExpiresAt, &t.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return MachineToken{}, ErrNotFound
	}
	if err != nil {
		return MachineToken{}, fmt.Errorf("store: machine token: %w", err)
	}
	return t, nil
}

// MachineTokenUsed records a successful machine login: last_used_at and
// token_used, in one transaction. It fails with ErrNotFound when the token
// was revoked or expired meanwhile, so no access token is issued then.
func (s *Store) MachineTokenUsed(ctx context.Context, t MachineToken, now time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE auth.machine_tokens SET last_used_at = $2
			 WHERE id = $1::uuid AND revoked_at IS NULL AND expires_at > $2`, t.ID, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return AuditTx(ctx, tx, AuditEvent{Type: EventTokenUsed, UserID: t.OwnerID,
			Detail: map[string]any{"token_id": t.ID, "name": t.Name}})
	})
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: machine token used: %w", err)
	}
	return nil
}
