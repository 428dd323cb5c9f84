package memstore_test

import (
	"testing"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store/memstore"
	"zsm.dev/zsm/authsvc/store/storetest"
)

// The in-memory store keeps the contract PostgreSQL keeps (the same suite
// runs against *store.Store in tests/integration).
func TestConformance(t *testing.T) {
	storetest.RunKeyStore(t, func(*testing.T) signer.KeyStore { return &memstore.Keys{} })
}
