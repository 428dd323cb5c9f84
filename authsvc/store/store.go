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
	// The bundle's public keys, published in api.public_keys; both or neither.
	X25519Public, Ed25519Public string
	// KeyRecordSignature is the verified signature over the account's key
	// record (version 1), published with the keys.
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
				INSERT INTO api.public_keys (user_id, x25519_public, ed25519_public, key_record_version, key_record_signature)
				VALUES ($1, $2, $3, CASE WHEN $4 <> '' THEN 1 END, nullif($4, ''))`,
				id, n.X25519Public, n.Ed25519Public, n.KeyRecordSignature)
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
		(pgErr.ConstraintName == "public_keys_x25519_unique" || pgErr.ConstraintName == "public_keys_ed25519_unique")
}

// PublishedKeys is an account's row of api.public_keys.
type PublishedKeys struct {
	UserID, Identity            string
	X25519Public, Ed25519Public string
	KeyRecordSignature          string // "" when the account has published no record yet
}

// PublishedKeysOf returns the identity and published keys of an account
// (ErrNotFound when it published none).
func (s *Store) PublishedKeysOf(ctx context.Context, userID string) (PublishedKeys, error) {
	k := PublishedKeys{UserID: userID}
	err := s.pool.QueryRow(ctx, `
		SELECT u.identity, p.x25519_public, p.ed25519_public, coalesce(p.key_record_signature, '')
		  FROM auth.users u JOIN api.public_keys p ON p.user_id = u.id
		 WHERE u.id = $1::uuid`, userID).Scan(&k.Identity, &k.X25519Public, &k.Ed25519Public, &k.KeyRecordSignature)
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
