package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"zsm.dev/zsm/authsvc/signer"
)

// KeysChannel is the NOTIFY channel on which a change of the signing keys is
// announced to every authsvc replica.
const KeysChannel = "zsm_keys"

// KeyTx is one transaction over the signing keys, holding the lock that
// serializes every change to them across replicas. Whatever it changes,
// publishes and announces commits together or not at all, so a replica that
// dies half-way through a rotation leaves nothing half-done.
type KeyTx struct {
	tx pgx.Tx
	s  *Store
}

// InKeyTx runs f in a KeyTx.
func (s *Store) InKeyTx(ctx context.Context, f func(ctx context.Context, t *KeyTx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('zsm signing keys'))`); err != nil {
			return err
		}
		return f(ctx, &KeyTx{tx: tx, s: s})
	})
	if err != nil {
		return fmt.Errorf("store: signing keys: %w", err)
	}
	return nil
}

// Keys returns every key, removed ones included.
func (t *KeyTx) Keys(ctx context.Context) ([]signer.StoredKey, error) {
	rows, err := t.tx.Query(ctx, `
		SELECT kid, state, public_key, private_sealed, created_at, activated_at, retired_at, published_at, removed_at, revoked
		  FROM auth.signing_keys ORDER BY created_at`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (signer.StoredKey, error) {
		var k signer.StoredKey
		err := r.Scan(&k.KID, &k.State, &k.Public, &k.Sealed, &k.CreatedAt, &k.ActivatedAt, &k.RetiredAt, &k.PublishedAt, &k.RemovedAt, &k.Revoked)
		return k, err
	})
}

// Insert stores a new key in the state k.State, published at now.
func (t *KeyTx) Insert(ctx context.Context, k signer.StoredKey, now time.Time) error {
	_, err := t.tx.Exec(ctx, `
		INSERT INTO auth.signing_keys (kid, algorithm, state, public_key, private_sealed, created_at, activated_at, published_at)
		VALUES ($1, 'EdDSA', $2, $3, $4, $5, $6, $5)`, k.KID, k.State, k.Public, k.Sealed, now, k.ActivatedAt)
	return err
}

// Promote makes the next key current and the current key retired.
func (t *KeyTx) Promote(ctx context.Context, next string, now time.Time) error {
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

// Remove stops publishing a key; revoked marks an emergency removal.
func (t *KeyTx) Remove(ctx context.Context, kid string, revoked bool, now time.Time) error {
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

// Publish pushes jwks to PostgREST with the token policy (as
// Store.PublishJWKS does) and announces
// the change to the other replicas; both take effect at commit.
func (t *KeyTx) Publish(ctx context.Context, jwks []byte, issuer, audience string, maxTTL time.Duration) error {
	if err := t.s.publish(ctx, t.tx, jwks, issuer, audience, maxTTL); err != nil {
		return err
	}
	_, err := t.tx.Exec(ctx, `SELECT pg_notify($1, 'changed')`, KeysChannel)
	return err
}

// ListenKeys calls changed whenever the signing keys change, until ctx ends.
// It holds a connection of its own for LISTEN and reconnects after errors;
// changed is also called after each reconnect, since notifications may have
// been missed meanwhile.
func (s *Store) ListenKeys(ctx context.Context, changed func()) {
	for delay := 100 * time.Millisecond; ctx.Err() == nil; delay = min(2*delay, 5*time.Second) {
		conn, err := s.pool.Acquire(ctx)
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN "+KeysChannel)
			if err == nil {
				delay = 100 * time.Millisecond
				changed()
				for err == nil {
					_, err = conn.Conn().WaitForNotification(ctx)
					if err == nil {
						changed()
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

// Audit records an event in the authentication audit, in this transaction.
func (t *KeyTx) Audit(ctx context.Context, e AuditEvent) error { return AuditTx(ctx, t.tx, e) }
