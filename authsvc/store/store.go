// Package store keeps authsvc's durable state in PostgreSQL schema auth:
// accounts with their SRP verifiers, sessions with their refresh tokens, and
// signing keys. It speaks pgx directly; every statement is a constant with
// parameters, and every multi-step change runs in one transaction.
//
// It is the storage layer only: it imports no other part of authsvc, and
// the domain packages (srplogin, session, signer) depend on it through
// small interfaces of their own. PostgreSQL's errors are mapped to the
// sentinels below here, at the boundary.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors callers branch on.
var (
	ErrNotFound      = errors.New("store: not found")
	ErrIdentityTaken = errors.New("store: identity already registered")
	// ErrKeysTaken: a public key being published belongs to another account
	// (a public key has one owner; migration 000010).
	ErrKeysTaken = errors.New("store: public key already published by another account")
	// ErrRefreshInvalid: unknown token, or its session has ended.
	ErrRefreshInvalid = errors.New("store: refresh token is not valid")
	// ErrRefreshReused: the token was already exchanged once. Its session has
	// been revoked by the same call.
	ErrRefreshReused = errors.New("store: refresh token was already used")
)

// Store is authsvc's database.
type Store struct {
	pool    *pgxpool.Pool
	idleTTL time.Duration // idle lifetime of sessions; see SetSessionIdleTTL (sessions.go)
}

// Open connects to the database. The pool reconnects by itself when the
// server restarts: a broken connection is dropped and the next use dials anew.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors may quote the URL, password included.
		return nil, errors.New("store: database URL cannot be parsed")
	}
	cfg.MaxConnIdleTime = time.Minute
	cfg.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close releases every connection.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// User is an account as login needs it.
type User struct {
	ID        string
	Identity  string
	SRPSalt   []byte
	Verifier  []byte
	KDF       json.RawMessage
	KeyBundle json.RawMessage // nil when the account has none
}

// NewUser is an account to register.
type NewUser struct {
	ID        string // "" lets the database choose
	Identity  string
	SRPSalt   []byte
	Verifier  []byte
	KDF       json.RawMessage
	KeyBundle json.RawMessage // optional
	// The bundle's public keys, published in api.public_keys; both or
	// neither. XWingPublic is set for a version 2 bundle.
	X25519Public, Ed25519Public, XWingPublic string
	// KeyRecordSignature is the verified signature over the account's key
	// record (version 2 when there is an X-Wing key, else 1), published
	// with the keys.
	KeyRecordSignature string
}

// CreateUser registers an account, and publishes its public keys, in one
// transaction.
func (s *Store) CreateUser(ctx context.Context, n NewUser) (string, error) {
	var id string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO auth.users (id, identity, srp_salt, srp_verifier, kdf, key_bundle)
			VALUES (coalesce(nullif($1, '')::uuid, gen_random_uuid()), $2, $3, $4, $5, $6)
			ON CONFLICT DO NOTHING
			RETURNING id::text`, n.ID, n.Identity, n.SRPSalt, n.Verifier, n.KDF, nullJSON(n.KeyBundle)).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrIdentityTaken
		}
		if err != nil {
			return err
		}
		if n.X25519Public != "" {
			_, err := tx.Exec(ctx, `
				INSERT INTO api.public_keys (user_id, x25519_public, ed25519_public, key_record_version, key_record_signature, xwing_public)
				VALUES ($1, $2, $3, CASE WHEN $4 = '' THEN NULL WHEN $5 = '' THEN 1 ELSE 2 END, nullif($4, ''), nullif($5, ''))`,
				id, n.X25519Public, n.Ed25519Public, n.KeyRecordSignature, n.XWingPublic)
			if isKeyTaken(err) {
				return ErrKeysTaken
			}
			if err != nil {
				return err
			}
		}
		return AuditTx(ctx, tx, AuditEvent{Type: EventSignup, UserID: id})
	})
	if errors.Is(err, ErrIdentityTaken) || errors.Is(err, ErrKeysTaken) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("store: create user: %w", err)
	}
	return id, nil
}

// isKeyTaken reports whether err is the unique violation of a published
// public key.
func isKeyTaken(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" &&
		(pgErr.ConstraintName == "public_keys_x25519_unique" || pgErr.ConstraintName == "public_keys_ed25519_unique" ||
			pgErr.ConstraintName == "public_keys_xwing_unique")
}

// PublishedKeys is an account's row of api.public_keys.
type PublishedKeys struct {
	UserID, Identity            string
	X25519Public, Ed25519Public string
	KeyRecordSignature          string // "" when the account has published no record yet
	KeyRecordVersion            int    // 0 without a record, else 1 or 2
	XWingPublic                 string // "" unless the record is version 2
}

// PublishedKeysOf returns the identity and published keys of an account
// (ErrNotFound when it published none).
func (s *Store) PublishedKeysOf(ctx context.Context, userID string) (PublishedKeys, error) {
	k := PublishedKeys{UserID: userID}
	err := s.pool.QueryRow(ctx, `
		SELECT u.identity, p.x25519_public, p.ed25519_public, coalesce(p.key_record_signature, ''),
		       coalesce(p.key_record_version, 0), coalesce(p.xwing_public, '')
		  FROM auth.users u JOIN api.public_keys p ON p.user_id = u.id
		 WHERE u.id = $1::uuid`, userID).Scan(&k.Identity, &k.X25519Public, &k.Ed25519Public, &k.KeyRecordSignature,
		&k.KeyRecordVersion, &k.XWingPublic)
	if errors.Is(err, pgx.ErrNoRows) {
		return PublishedKeys{}, ErrNotFound
	}
	if err != nil {
		return PublishedKeys{}, fmt.Errorf("store: published keys: %w", err)
	}
	return k, nil
}

// AddKeyRecord publishes a verified key record signature for an account
// whose row has none yet (accounts made before records existed), provided
// the keys are still the ones it was verified against. It reports whether
// it stored anything: false when a record was there already.
func (s *Store) AddKeyRecord(ctx context.Context, k PublishedKeys) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE api.public_keys SET key_record_version = 1, key_record_signature = $4
		 WHERE user_id = $1::uuid AND x25519_public = $2 AND ed25519_public = $3 AND key_record_signature IS NULL`,
		k.UserID, k.X25519Public, k.Ed25519Public, k.KeyRecordSignature)
	if err != nil {
		return false, fmt.Errorf("store: add key record: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// KeyUpgrade is an account's move to key bundle version 2
// (docs/crypto.md §3): the new bundle, checked by the caller against
// OldBundle, and the verified version 2 key record.
type KeyUpgrade struct {
	UserID             string
	OldBundle          json.RawMessage // the bundle the new one was checked against
	NewBundle          json.RawMessage
	XWingPublic        string
	KeyRecordSignature string
}

// Errors of UpgradeKeys.
var (
	// ErrBundleChanged: the stored bundle is no longer the one the upgrade
	// was checked against (another device upgraded or changed the password
	// meanwhile).
	ErrBundleChanged = errors.New("store: the key bundle changed meanwhile")
)

// UpgradeKeys stores a version 2 bundle and record in one transaction,
// provided the stored bundle is still OldBundle (compared as JSON) and the
// published record is not version 2 already (ErrBundleChanged otherwise;
// ErrKeysTaken when another account published the X-Wing key).
func (s *Store) UpgradeKeys(ctx context.Context, u KeyUpgrade) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE auth.users SET key_bundle = $3, updated_at = now()
			 WHERE id = $1::uuid AND key_bundle = $2::jsonb`, u.UserID, u.OldBundle, u.NewBundle)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return ErrBundleChanged
		}
		tag, err = tx.Exec(ctx, `
			UPDATE api.public_keys SET key_record_version = 2, key_record_signature = $2, xwing_public = $3
			 WHERE user_id = $1::uuid AND key_record_version IS DISTINCT FROM 2`, u.UserID, u.KeyRecordSignature, u.XWingPublic)
		if isKeyTaken(err) {
			return ErrKeysTaken
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return ErrBundleChanged
		}
		return AuditTx(ctx, tx, AuditEvent{Type: EventKeysUpgraded, UserID: u.UserID})
	})
	switch {
	case errors.Is(err, ErrBundleChanged), errors.Is(err, ErrKeysTaken):
		return err
	case err != nil:
		return fmt.Errorf("store: upgrade keys: %w", err)
	}
	return nil
}

// KeyBundleOf returns the account's stored key bundle (nil if it has none;
// ErrNotFound for no account).
func (s *Store) KeyBundleOf(ctx context.Context, userID string) (json.RawMessage, error) {
	var b json.RawMessage
	err := s.pool.QueryRow(ctx, `SELECT key_bundle FROM auth.users WHERE id = $1::uuid`, userID).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: key bundle: %w", err)
	}
	return b, nil
}

func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// UserByIdentity finds an account by its normalized identity.
func (s *Store) UserByIdentity(ctx context.Context, identity string) (User, error) {
	u := User{Identity: identity}
	err := s.pool.QueryRow(ctx, `
		SELECT id::text, srp_salt, srp_verifier, kdf, key_bundle FROM auth.users WHERE identity = $1`,
		identity).Scan(&u.ID, &u.SRPSalt, &u.Verifier, &u.KDF, &u.KeyBundle)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("store: find user: %w", err)
	}
	return u, nil
}

// IsUnavailable reports whether err means the database could not be reached
// (as opposed to a query that failed).
func IsUnavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P0x: the server is shutting down.
		return pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var connErr *pgconn.ConnectError
	return errors.As(err, &connErr) || pgconn.SafeToRetry(err) || errors.Is(err, context.DeadlineExceeded)
}
