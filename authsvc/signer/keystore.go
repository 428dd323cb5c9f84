package signer

import (
	"context"

	"zsm.dev/zsm/authsvc/store"
)

// KeyStore is where the signing keys live: *store.Store in PostgreSQL, and
// memstore.Keys in memory for tests. Both keep the contract that
// storetest.RunKeyStore checks, so code tested against one behaves the same
// against the other.
type KeyStore interface {
	// SigningKeys returns every key as committed, removed ones included,
	// oldest first.
	SigningKeys(ctx context.Context) ([]store.SigningKey, error)
	// InKeyTx runs f in one transaction over the keys that holds the
	// signing-keys lock (one at a time, across replicas): what f changes,
	// publishes and audits commits if f returns nil, and nothing does
	// otherwise.
	InKeyTx(ctx context.Context, f func(ctx context.Context, t store.KeyTx) error) error
}
