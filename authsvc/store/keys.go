package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// KeysChannel is the NOTIFY channel on which a change of the signing keys is
// announced to every authsvc replica.
const KeysChannel = "zsm_keys"

// Signing key states, as stored (auth.signing_keys.state):
//
//	next (published, not signing) → current (signing) → retired (published
//	until every token it signed has expired) → removed (published nowhere)
const (
	KeyNext    = "next"
	KeyCurrent = "current"
	KeyRetired = "retired"
	KeyRemoved = "removed"
)

// SigningKey is a signing key as kept in auth.signing_keys. The private half
// is stored only sealed with the operator's key-encryption key (signer
// seals and opens it; the store never sees it in clear).
type SigningKey struct {
	KID         string
	State       string // one of the Key* states
	Public      []byte // the Ed25519 public key
	Sealed      []byte // the private seed, sealed
	CreatedAt   time.Time
	ActivatedAt *time.Time
	RetiredAt   *time.Time
	PublishedAt *time.Time
	RemovedAt   *time.Time
	Revoked     bool
}

// KeyTx is one transaction over the signing keys, holding the lock that
// serializes every change to them across replicas. Whatever it changes,
// publishes, announces and audits commits together or not at all, so a
// replica that dies half-way through a rotation leaves nothing half-done.
// Store.InKeyTx runs one in PostgreSQL; memstore.Keys in memory, under the
// same contract (storetest.RunKeyStore checks both).
type KeyTx interface {
	// Keys returns every key, removed ones included, oldest first.
	Keys(ctx context.Context) ([]SigningKey, error)
	// Insert stores a new key in the state k.State, published at now.
	Insert(ctx context.Context, k SigningKey, now time.Time) error
	// Promote makes the next key kid current and the current key (if any)
	// retired at now; it fails when kid is not the next key.
	Promote(ctx context.Context, kid string, now time.Time) error
	// Remove stops publishing kid (revoked marks an emergency removal); a
	// key that is unknown or removed already is ErrNotFound.
	Remove(ctx context.Context, kid string, revoked bool, now time.Time) error
	// Publish hands jwks to PostgREST with the token policy the database
	// enforces (auth.publish_jwks, and the idle lifetime set with
	// SetSessionIdleTTL), and announces the change to the other replicas;
	// both take effect at commit. minIAT is the earliest iat a token may
	// carry (auth.token_policy.min_iat; the zero time is none): raised when
	// a key is revoked, never lowered by the signer (signer.MinIssuedAt).
	Publish(ctx context.Context, jwks []byte, issuer, audience string, maxTTL time.Duration, minIAT time.Time) error
	// Audit records an event in the authentication audit, at commit.
	Audit(ctx context.Context, e AuditEvent) error
}

// pgKeyTx is KeyTx in a PostgreSQL transaction.
type pgKeyTx struct {
	tx pgx.Tx
	s  *Store
}

// InKeyTx runs f in a KeyTx: it commits what f did if f returns nil, and
// nothing otherwise.
func (s *Store) InKeyTx(ctx context.Context, f func(ctx context.Context, t KeyTx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('zsm signing keys'))`); err != nil {
			return err
		}
		return f(ctx, &pgKeyTx{tx: tx, s: s})
	})
	if err != nil {
		return fmt.Errorf("store: signing keys: %w", err)
	}
	return nil
}

const selectKeys = `
	SELECT kid, state, public_key, private_sealed, created_at, activated_at, retired_at, published_at, removed_at, revoked
	  FROM auth.signing_keys ORDER BY created_at, kid`

func collectKeys(rows pgx.Rows) ([]SigningKey, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (SigningKey, error) {
		var k SigningKey
		err := r.Scan(&k.KID, &k.State, &k.Public, &k.Sealed, &k.CreatedAt, &k.ActivatedAt, &k.RetiredAt, &k.PublishedAt, &k.RemovedAt, &k.Revoked)
		return k, err
	})
}

// SigningKeys returns every key, removed ones included, oldest first, as
// committed now (without the lock).
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.pool.Query(ctx, selectKeys)
	if err != nil {
		return nil, fmt.Errorf("store: signing keys: %w", err)
	}
	keys, err := collectKeys(rows)
	if err != nil {
		return nil, fmt.Errorf("store: signing keys: %w", err)
	}
	return keys, nil
}

func (t *pgKeyTx) Keys(ctx context.Context) ([]SigningKey, error) {
	rows, err := t.tx.Query(ctx, selectKeys)
	if err != nil {
		return nil, err
	}
	return collectKeys(rows)
}

func (t *pgKeyTx) Insert(ctx context.Context, k SigningKey, now time.Time) error {
	_, err := t.tx.Exec(ctx, `
		INSERT INTO auth.signing_keys (kid, algorithm, state, public_key, private_sealed, created_at, activated_at, published_at)
		VALUES ($1, 'EdDSA', $2, $3, $4, $5, $6, $5)`, k.KID, k.State, k.Public, k.Sealed, now, k.ActivatedAt)
	return err
}

func (t *pgKeyTx) Promote(ctx context.Context, next string, now time.Time) error {
	if _, err := t.tx.Exec(ctx, `UPDATE auth.signing_keys SET state = 'retired', retired_at = $1 WHERE state = 'current'`, now); err != nil {
		return err
	}
	tag, err := t.tx.Exec(ctx, `UPDATE auth.signing_keys SET state = 'current', activated_at = $2 WHERE kid = $1 AND state = 'next'`, next, now)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("key %s is not the next key", next)
	}
	return nil
}

func (t *pgKeyTx) Remove(ctx context.Context, kid string, revoked bool, now time.Time) error {
	tag, err := t.tx.Exec(ctx, `
		UPDATE auth.signing_keys SET state = 'removed', removed_at = $2, revoked = $3,
		       retired_at = coalesce(retired_at, $2)
		 WHERE kid = $1 AND state <> 'removed'`, kid, now, revoked)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("no published key %s: %w", kid, ErrNotFound)
	}
	return nil
}

// Publish runs auth.publish_jwks and records the idle lifetime
// gate.check_request() enforces (migration 000006). It is the only path
// that publishes keys, so the policy and the session checks authsvc makes
// itself (SetSessionIdleTTL) never drift apart.
func (t *pgKeyTx) Publish(ctx context.Context, jwks []byte, issuer, audience string, maxTTL time.Duration, minIAT time.Time) error {
	if _, err := t.tx.Exec(ctx, `SELECT auth.publish_jwks($1, $2, $3, $4)`, string(jwks), issuer, audience, int(maxTTL/time.Second)); err != nil {
		return err
	}
	var cutoff int64
	if !minIAT.IsZero() {
		cutoff = minIAT.Unix()
	}
	if _, err := t.tx.Exec(ctx, `UPDATE auth.token_policy SET min_iat = $1`, cutoff); err != nil {
		return err
	}
	if t.s.idleTTL > 0 {
		if _, err := t.tx.Exec(ctx, `UPDATE auth.token_policy SET idle_ttl_seconds = $1`, t.s.idleSeconds()); err != nil {
			return err
		}
	}
	_, err := t.tx.Exec(ctx, `SELECT pg_notify($1, 'changed')`, KeysChannel)
	return err
}

func (t *pgKeyTx) Audit(ctx context.Context, e AuditEvent) error { return AuditTx(ctx, t.tx, e) }

// ListenKeys calls changed whenever the signing keys change, until ctx ends
// (see Listen).
func (s *Store) ListenKeys(ctx context.Context, changed func()) {
	Listen(ctx, s.pool, KeysChannel, changed)
}

// Listen calls notified for every NOTIFY on channel, until ctx ends. It
// holds a connection of its own for LISTEN and reconnects after errors,
// backing off from 100 ms to 5 s; notified is also called after each
// (re)connect, since notifications may have been missed meanwhile.
func Listen(ctx context.Context, pool *pgxpool.Pool, channel string, notified func()) {
	for delay := 100 * time.Millisecond; ctx.Err() == nil; delay = min(2*delay, 5*time.Second) {
		conn, err := pool.Acquire(ctx)
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize())
			if err == nil {
				delay = 100 * time.Millisecond
				notified()
				for err == nil {
					_, err = conn.Conn().WaitForNotification(ctx)
					if err == nil {
						notified()
					}
				}
			}
			// The connection may hold a LISTEN; never hand it back.
			conn.Hijack().Close(context.Background())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}
