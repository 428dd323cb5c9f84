// Package integration tests zsm end to end: a real stack (PostgreSQL 18,
// PostgREST 12, Redis, nginx and authsvc built from this tree) started by the
// project's own stack runner on free loopback ports, and every request sent
// through the nginx gateway as a client would. Nothing is mocked. If the
// stack cannot start, every test fails: there is no silent skip.
package integration

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/stack"
	"zsm.dev/zsm/tests/internal/stacktest"
)

func TestMain(m *testing.M) {
	os.Exit(stacktest.Run(m, "zsm-it-", stack.Config{LoginRatePerSecond: 50, LoginBurst: 100}))
}

// The helpers every test here uses, from tests/internal/stacktest.
var (
	need          = stacktest.Need
	newClient     = stacktest.NewDevice
	httpFrom      = stacktest.HTTPFrom
	sourceIP      = stacktest.SourceIP
	expectStatus  = stacktest.ExpectStatus
	expectRefusal = stacktest.Expect
	randBytes     = stacktest.RandBytes
	randHex       = stacktest.RandHex
	testKDF       = stacktest.KDF
	mustIdentity  = stacktest.Identity
)

type (
	client   = stacktest.Device
	response = stacktest.Response
	user     = stacktest.Account
)

// db opens a superuser connection to the zsm database, for checks behind
// the API's back.
func db(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, need(t).AdminDSN())
	if err != nil {
		t.Fatalf("connect as superuser: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// currentKey returns the private half of the key authsvc signs with, so
// tests can sign tokens that are perfectly valid except for the one claim
// they attack.
func currentKey(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	s := need(t)
	ctx := context.Background()
	sto, err := store.Open(ctx, s.AuthsvcDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer sto.Close()
	keys, err := sto.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := hex.DecodeString(s.KeyEncryptionKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.State == store.KeyCurrent {
			priv, err := signer.OpenPrivateKey(kek, k)
			if err != nil {
				t.Fatal(err)
			}
			return k.KID, priv
		}
	}
	t.Fatal("no current signing key")
	return "", nil
}

func b64(v any) string {
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case string:
		b = []byte(x)
	default:
		var err error
		if b, err = json.Marshal(x); err != nil {
			panic(err)
		}
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// signEdDSA makes a compact JWS by hand, so a test can put any header and
// claims into it.
func signEdDSA(header, claims map[string]any, key ed25519.PrivateKey) string {
	in := b64(header) + "." + b64(claims)
	return in + "." + b64(ed25519.Sign(key, []byte(in)))
}

func b64decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func apiErr(t *testing.T, err error) *authclient.APIError {
	t.Helper()
	var e *authclient.APIError
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an API error", err)
	}
	return e
}

func pgxConnect(ctx context.Context, dsn string) (*pgx.Conn, error) { return pgx.Connect(ctx, dsn) }

func randHexOf(b []byte) string { return hex.EncodeToString(b) }
