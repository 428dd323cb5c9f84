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

	"zsm.dev/zsm/cli"
	"zsm.dev/zsm/sdk/keys"
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
	home := t.TempDir()
	kit := filepath.Join(home, "kit.txt")
	t.Setenv("ZSM_HOME", filepath.Join(home, "zsm"))
	t.Setenv("ZSM_SERVER", s.GatewayURL())
	t.Setenv("ZSM_KEYRING", "off")
	t.Setenv("ZSM_SESSION", "")
	// The canary goes in through the CLI, exactly as a user would put it.
	zsmCLI := func(stdin string, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := cli.Run(args, strings.NewReader(stdin), &out, &errOut); code != 0 {
			t.Fatalf("zsm %v: exit %d: %s", args, code, errOut.String())
		}
		return out.String()
	}
	sessionKey := strings.TrimSpace(zsmCLI(canary["password"]+"\n", "signup", identity, "--password-stdin", "--kit", kit, "--raw"))
	t.Setenv("ZSM_SESSION", sessionKey)
	kitText, err := os.ReadFile(kit)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(kitText), "\n") {
		if v, ok := strings.CutPrefix(line, "Secret Key:"); ok {
			canary["secret key text"] = strings.TrimSpace(v)
		}
	}
	sk, err := keys.ParseSecretKey(canary["secret key text"])
	if err != nil {
		t.Fatalf("the emergency kit has no Secret Key: %v", err)
	}
	canary["secret key hex"] = hex.EncodeToString(sk[:])
	canary["session key"] = sessionKey
	zsmCLI("", "vault", "create", canary["vault name"])
	zsmCLI("", "set", canary["vault name"]+"/"+canary["secret name"], canary["secret value"])
	zsmCLI(canary["secret value"]+"-2", "set", canary["vault name"]+"/"+canary["secret name"], "-")
	if got := zsmCLI("", "read", "zsm://"+canary["vault name"]+"/"+canary["secret name"]); got != canary["secret value"]+"-2" {
		t.Fatalf("read back %q", got)
	}
	// A shared vault: a second account verifies the owner and is verified,
	// joins as an editor, writes a secret of its own, and is removed again
	// with a new key; none of its names or values reach the server either.
	ownerHome, peerHome := filepath.Join(home, "zsm"), filepath.Join(home, "peer")
	as := func(dir, session string) { t.Setenv("ZSM_HOME", dir); t.Setenv("ZSM_SESSION", session) }
	peer := "canary-peer-" + tag + "@example.test"
	canary["peer password"] = "canary-peer-password-" + tag
	canary["shared secret name"] = "CANARY_SHARED_" + strings.ToUpper(tag)
	canary["shared secret value"] = "canary-shared-value-" + tag
	as(peerHome, "")
	peerSession := strings.TrimSpace(zsmCLI(canary["peer password"]+"\n", "signup", peer, "--password-stdin", "--kit", filepath.Join(home, "peer-kit.txt"), "--raw"))
	as(ownerHome, sessionKey)
	zsmCLI("", "verify", peer, "--confirm")
	zsmCLI("", "vault", "share", canary["vault name"], peer, "--role", "editor")
	as(peerHome, peerSession)
	zsmCLI("", "verify", identity, "--confirm")
	zsmCLI("", "set", canary["vault name"]+"/"+canary["shared secret name"], canary["shared secret value"])
	if got := zsmCLI("", "read", "zsm://"+canary["vault name"]+"/"+canary["secret name"]); got != canary["secret value"]+"-2" {
		t.Fatalf("the member reads back %q", got)
	}
	as(ownerHome, sessionKey)
	if got := zsmCLI("", "read", "zsm://"+canary["vault name"]+"/"+canary["shared secret name"]); got != canary["shared secret value"] {
		t.Fatalf("the owner reads the member's secret back as %q", got)
	}
	if got := zsmCLI("", "vault", "members", canary["vault name"]); !strings.Contains(got, peer) {
		t.Fatalf("members: %q", got)
	}
	zsmCLI("", "vault", "unshare", canary["vault name"], peer, "--rekey")
	as(peerHome, peerSession)
	zsmCLI("", "logout")
	as(ownerHome, sessionKey)

	// The account key, as the SDK opens it, must not reach the server either.
	hc := httpFrom(sourceIP())
	sess, err := zsm.Login(ctx, hc, s.GatewayURL(), identity, canary["password"], sk, zsm.NewMemState())
	if err != nil {
		t.Fatal(err)
	}
	canary["account key hex"] = hex.EncodeToString(sess.Keys.AccountKey)
	zsmCLI("", "logout")

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
