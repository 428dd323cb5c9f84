package integration

import (
	"bytes"
	"context"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zsm.dev/zsm/sdk/zsm"
)

// The promise itself: a secret's name and value, a vault's name, the
// password and the Secret Key appear nowhere on the server — not in any
// table, not in the database files or the WAL, not in Redis, not in any log.
func TestCanaryNeverReachesTheServer(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	tag := randHex(8)
	canary := map[string]string{
		"vault name":   "canary-vault-" + tag,
		"secret name":  "CANARY_NAME_" + strings.ToUpper(tag),
		"secret value": "canary-value-" + tag + "-s3cr3t",
		"password":     "canary-password-" + tag,
	}
	identity := "canary-" + tag + "@example.test"
	hc := httpFrom(sourceIP())
	state := zsm.NewMemState()
	res, err := zsm.Signup(ctx, hc, s.GatewayURL(), identity, canary["password"], state)
	if err != nil {
		t.Fatal(err)
	}
	canary["secret key text"] = res.SecretKey.Text()
	canary["secret key hex"] = hex.EncodeToString(res.SecretKey[:])
	sess, err := zsm.Login(ctx, hc, s.GatewayURL(), identity, canary["password"], res.SecretKey, state)
	if err != nil {
		t.Fatal(err)
	}
	c := zsm.New(sess, state, hc)
	v, err := c.CreateVault(ctx, canary["vault name"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx, v, canary["secret name"], canary["secret value"]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx, v, canary["secret name"], canary["secret value"]+"-2"); err != nil {
		t.Fatal(err)
	}
	got, err := c.SecretByName(ctx, v, canary["secret name"])
	if err != nil || got.Value != canary["secret value"]+"-2" {
		t.Fatalf("read back: %v %v", got, err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	// The key material of the session, too.
	canary["account key hex"] = hex.EncodeToString(sess.Keys.AccountKey)

	// Make sure everything written is on disk.
	conn := db(t)
	if _, err := conn.Exec(ctx, `CHECKPOINT`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // nginx flushes its buffered access log every second

	check := func(where string, data []byte) {
		t.Helper()
		for what, c := range canary {
			if bytes.Contains(data, []byte(c)) {
				t.Errorf("the %s appears in %s", what, where)
			}
		}
	}

	// Every row of every table of the zsm database, as text.
	rows, err := conn.Query(ctx, `
		SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema','pg_toast')`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		_ = rows.Scan(&name)
		tables = append(tables, name)
	}
	rows.Close()
	if len(tables) < 8 {
		t.Fatalf("only %d tables found: %v", len(tables), tables)
	}
	dumped := 0
	for _, tbl := range tables {
		var dump string
		if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(t::text, E'\n'), '') FROM `+tbl+` t`).Scan(&dump); err != nil {
			t.Fatalf("dump %s: %v", tbl, err)
		}
		dumped += len(dump)
		check("table "+tbl, []byte(dump))
	}
	if dumped == 0 {
		t.Fatal("the dump is empty")
	}

	// The database's files, WAL included.
	files := 0
	err = filepath.WalkDir(s.PostgresDataDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		check(path, b)
		return nil
	})
	if err != nil || files < 100 {
		t.Fatalf("walking the data directory: %v (%d files)", err, files)
	}

	// Every key and value in Redis.
	rdb := redisClient(t)
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		check("redis key name", []byte(k))
		if v, err := rdb.Dump(ctx, k).Result(); err == nil {
			check("redis key "+k, []byte(v))
		}
	}

	// Every log.
	for _, svc := range []string{"nginx", "authsvc", "postgrest", "postgres", "redis"} {
		b, err := os.ReadFile(s.LogFile(svc))
		if err != nil {
			t.Fatalf("%s log: %v", svc, err)
		}
		check(svc+" log", b)
	}
}
