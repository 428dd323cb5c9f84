package integration

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"zsm.dev/zsm/authsvc/migrate"
	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/authsvc/store/storetest"
)

// The signing-key store's contract, run against PostgreSQL: the same suite
// the in-memory store (memstore) passes, so the rotation's unit tests
// there say something about the real thing. It runs on a database of its
// own, migrated by the production migrations, as role authsvc.
//
// Publishing sets pgrst.jwt_secret on role authenticator, which is
// cluster-wide: the stack's PostgREST would read the suite's keys at its
// next reload. So the stack's setting is saved first and put back (and
// PostgREST told to reload) when the suite ends.
func TestKeyStoreConformance(t *testing.T) {
	s := need(t)
	admin := db(t)
	ctx := context.Background()

	var saved string
	if err := admin.QueryRow(ctx, `
		SELECT coalesce((SELECT c FROM pg_db_role_setting r, unnest(r.setconfig) c
		                  WHERE r.setrole = 'authenticator'::regrole AND r.setdatabase = 0 AND c LIKE 'pgrst.jwt_secret=%'), '')`).Scan(&saved); err != nil {
		t.Fatal(err)
	}
	if saved == "" {
		t.Fatal("the stack has published no JWKS to PostgREST")
	}
	t.Cleanup(func() {
		ctx := context.Background()
		var stmt string
		if err := admin.QueryRow(ctx, `SELECT format('ALTER ROLE authenticator SET pgrst.jwt_secret = %L', $1::text)`,
			saved[len("pgrst.jwt_secret="):]).Scan(&stmt); err != nil {
			t.Errorf("restoring PostgREST's JWKS: %v", err)
			return
		}
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Errorf("restoring PostgREST's JWKS: %v", err)
		}
		if _, err := admin.Exec(ctx, `NOTIFY pgrst, 'reload config'`); err != nil {
			t.Errorf("reloading PostgREST: %v", err)
		}
	})

	name := "zsm_keystore_" + randHex(4)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name+` OWNER authsvc`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`) })
	dsn := func(base string) string {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + name
		return u.String()
	}
	m, err := migrate.Open(dsn(s.AuthsvcDSN()))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Up(); err != nil {
		t.Fatalf("migrating the suite's database: %v", err)
	}
	_ = m.Close()

	sto, err := store.Open(ctx, dsn(s.AuthsvcDSN()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sto.Close)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	clean, err := pgx.Connect(cctx, dsn(s.AdminDSN()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clean.Close(context.Background()) })

	storetest.RunKeyStore(t, func(t *testing.T) signer.KeyStore {
		if _, err := clean.Exec(context.Background(), `DELETE FROM auth.signing_keys`); err != nil {
			t.Fatal(err)
		}
		return sto
	})
}
