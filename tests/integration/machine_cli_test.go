package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/cli"
	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/machinetoken"
	"zsm.dev/zsm/sdk/zsm"
	"zsm.dev/zsm/stack"
)

// cliEnv runs the zsm CLI with an environment of its own.
type cliEnv struct {
	t   *testing.T
	env map[string]string
}

// run sets the environment (every other ZSM_ and home variable cleared)
// and runs zsm.
func (e cliEnv) run(stdin string, args ...string) (int, string, string) {
	e.t.Helper()
	for _, k := range []string{"ZSM_HOME", "ZSM_SESSION", "ZSM_TOKEN", "ZSM_SERVER", "ZSM_KEYRING", "ZSM_OFFLINE_CACHE_DIR",
		"HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "ZSM_IDENTITY", "ZSM_PASSWORD", "ZSM_SECRET_KEY"} {
		e.t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range e.env {
		e.t.Setenv(k, v)
	}
	var out, errOut bytes.Buffer
	code := cli.Run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func (e cliEnv) ok(stdin string, args ...string) string {
	e.t.Helper()
	code, out, errOut := e.run(stdin, args...)
	if code != 0 {
		e.t.Fatalf("zsm %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func (e cliEnv) fails(code int, stderrHas string, args ...string) string {
	e.t.Helper()
	got, out, errOut := e.run("", args...)
	if got != code || !strings.Contains(errOut, stderrHas) {
		e.t.Fatalf("zsm %s: exit %d, stderr %q; want exit %d with %q (stdout %q)", strings.Join(args, " "), got, errOut, code, stderrHas, out)
	}
	return errOut
}

// ownerCLI signs a person up through the CLI, with vaults prod (DB_URL,
// API_KEY) and other (KEY_B).
func ownerCLI(t *testing.T) cliEnv {
	t.Helper()
	dir := t.TempDir()
	o := cliEnv{t: t, env: map[string]string{"ZSM_HOME": filepath.Join(dir, "zsm"), "ZSM_SERVER": need(t).GatewayURL(),
		"ZSM_KEYRING": "off", "HOME": dir, "ZSM_OFFLINE_CACHE_DIR": filepath.Join(dir, "cache")}}
	id := "tokowner-" + randHex(5) + "@example.test"
	o.env["ZSM_SESSION"] = strings.TrimSpace(o.ok("pw-"+id+"\n", "signup", id, "--password-stdin", "--kit", filepath.Join(dir, "kit.txt"), "--raw"))
	o.ok("", "vault", "create", "prod")
	o.ok("", "vault", "create", "other")
	o.ok("", "set", "prod/DB_URL", "postgres://db.example/prod")
	o.ok("", "set", "prod/API_KEY", "k-123")
	o.ok("", "set", "other/KEY_B", "b-secret")
	return o
}

// machineEnv is the environment of a CI job: a fresh, empty HOME, the
// server and the token, and nothing else.
func machineEnv(t *testing.T, token string) (cliEnv, string) {
	t.Helper()
	home := t.TempDir()
	return cliEnv{t: t, env: map[string]string{"HOME": home, "ZSM_SERVER": need(t).GatewayURL(), "ZSM_TOKEN": token}}, home
}

func emptyDir(t *testing.T, dir string) {
	t.Helper()
	var files []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			files = append(files, p)
		}
		return nil
	})
	if len(files) > 0 {
		t.Fatalf("%s is not empty: %v", dir, files)
	}
}

// TestMachineTokenCLI: a person makes a token for one vault; a CI job with
// nothing but ZSM_TOKEN (a fresh HOME) runs, reads and exports that vault,
// cannot see or write beyond it, and is cut off at once by revocation.
func TestMachineTokenCLI(t *testing.T) {
	o := ownerCLI(t)
	out := o.ok("", "token", "create", "deploy-prod", "--vault", "prod", "--expires", "30d")
	tok := strings.TrimSpace(out)
	if _, err := machinetoken.Parse(tok); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("token create printed %q: %v", out, err)
	}
	m, home := machineEnv(t, tok)

	if got := m.ok("", "read", "zsm://prod/DB_URL"); got != "postgres://db.example/prod" {
		t.Fatalf("read %q", got)
	}
	if got := m.ok("", "run", "--vault", "prod", "--", "sh", "-c", `printf '%s|%s' "$DB_URL" "$API_KEY"`); got != "postgres://db.example/prod|k-123" {
		t.Fatalf("run %q", got)
	}
	if got := m.ok("", "export", "--vault", "prod", "--format", "env"); got != "API_KEY=k-123\nDB_URL=postgres://db.example/prod\n" && got != "DB_URL=postgres://db.example/prod\nAPI_KEY=k-123\n" {
		t.Fatalf("export %q", got)
	}
	emptyDir(t, home) // no config dir, no keyring, no state

	// Scope: the other vault does not exist for the token; a viewer writes
	// nothing; management is refused.
	m.fails(cli.ExitNotFound, "other", "read", "zsm://other/KEY_B")
	m.fails(cli.ExitForbidden, "", "set", "prod/NEW", "x")
	m.fails(cli.ExitForbidden, "", "token", "create", "t2", "--vault", "prod")

	// The owner's list.
	var list []struct {
		Name, State string
		Vaults      []struct{ Name, Role string }
		LastUsedAt  *time.Time `json:"last_used_at"`
	}
	if err := json.Unmarshal([]byte(o.ok("", "token", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "deploy-prod" || list[0].State != "live" || len(list[0].Vaults) != 1 ||
		list[0].Vaults[0].Name != "prod" || list[0].Vaults[0].Role != "viewer" || list[0].LastUsedAt == nil {
		t.Fatalf("token list %+v", list)
	}

	// A flipped character: refused before any request (no server needed).
	flipped := []byte(tok)
	i := len(machinetoken.Prefix) + 10
	flipped[i] ^= 'A' ^ 'B'
	if flipped[i] == tok[i] {
		flipped[i] = 'C'
	}
	bad, _ := machineEnv(t, string(flipped))
	bad.env["ZSM_SERVER"] = "http://127.0.0.1:1"
	bad.fails(cli.ExitUsage, "malformed token", "read", "zsm://prod/DB_URL")

	// Revocation: at once, and the token leaves the vault's membership.
	o.ok("", "token", "revoke", "deploy-prod")
	m.fails(cli.ExitNotLoggedIn, "revoked or has expired", "read", "zsm://prod/DB_URL")
	members := o.ok("", "vault", "members", "prod", "--json")
	if strings.Contains(members, "token:") {
		t.Fatalf("the revoked token is still a member: %s", members)
	}
	o.fails(cli.ExitNotFound, "", "token", "revoke", "deploy-prod")
}

// TestMachineTokenEditorWrites: an editor token writes secrets, which its
// owner reads, and the vault's trail names the token as the writer.
func TestMachineTokenEditorWrites(t *testing.T) {
	o := ownerCLI(t)
	tok := strings.TrimSpace(o.ok("", "token", "create", "ci-editor", "--vault", "prod", "--role", "editor"))
	m, _ := machineEnv(t, tok)
	m.ok("", "set", "prod/BUILD_ID", "4711")
	if got := o.ok("", "read", "zsm://prod/BUILD_ID"); got != "4711" {
		t.Fatalf("owner reads %q", got)
	}
	id := tokenID(t, tok)
	var n int
	if err := db(t).QueryRow(context.Background(), `SELECT count(*) FROM api.vault_events WHERE actor_id = $1 AND type = 'secret.created'`, id).Scan(&n); err != nil || n != 1 {
		t.Fatalf("events by the token: %d (%v)", n, err)
	}
}

func tokenID(t *testing.T, text string) uuid.UUID {
	t.Helper()
	tok, err := machinetoken.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return tok.ID()
}

// TestMachineTokenScopeIsCryptographic: a server that hands the token the
// rows of a vault it was not granted, with the grant relabelled to the
// token, cannot make it open them: the key was never sealed to the token.
// And a grant to the token signed by somebody who is not an owner or admin
// of the vault (a non-member) is refused.
func TestMachineTokenScopeIsCryptographic(t *testing.T) {
	ctx := context.Background()
	owner := newSDKUser(t, "scope")
	a, err := owner.c.CreateVault(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := owner.c.CreateVault(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.c.SetSecret(ctx, b, "B_SECRET", "only-b"); err != nil {
		t.Fatal(err)
	}
	tok, _, err := owner.c.CreateToken(ctx, "scoped", []zsm.Vault{a}, "viewer", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// B's row as the server has it (the owner's view), for the attack.
	var ownerRows []map[string]any
	expectStatus(t, owner.rest("GET", "/rpc/vault_states", nil), 200, "owner's states")
	owner.rest("GET", "/rpc/vault_states", nil).JSON(t, &ownerRows)
	var bRow map[string]any
	for _, r := range ownerRows {
		if r["id"] == b.ID.String() {
			bRow = r
		}
	}
	if bRow == nil {
		t.Fatal("no row for b")
	}

	evil := newEvilServer(t)
	tid := tok.ID().String()
	evil.set(states(func(rs []map[string]any) []map[string]any {
		r := cloneRow(bRow)
		grantOf(r)["user_id"] = tid
		return append(rs, r)
	}))
	c, err := zsm.LoginToken(ctx, nil, evil.URL, tok, "", zsm.NewMemState())
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.ListVaults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Vaults) != 1 || l.Vaults[0].ID != a.ID {
		t.Fatalf("the token opened %v", l.Vaults)
	}
	// B is at most an invitation (the log does not name the token): never
	// opened, nothing of it used.
	if len(l.Refused) != 0 || len(l.Invitations) != 1 || l.Invitations[0].VaultID != b.ID {
		t.Fatalf("b: refused %+v, invitations %+v", l.Refused, l.Invitations)
	}
	// And the cryptographic refusal itself: with B's sealed key in hand,
	// the token's keys do not open it.
	k, err := machinetoken.Derive(tok)
	if err != nil {
		t.Fatal(err)
	}
	bg := grantOf(bRow)
	priv, err := k.AccountKeys().KEMKey(uint16(bg["kem_id"].(float64)))
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range []uuid.UUID{tok.ID(), owner.c.Session().UserID} {
		if key, err := grant.OpenVaultKeyV2(priv, b.ID, uid, uint64(bg["key_generation"].(float64)), bg["sealed_key"].(string)); err == nil {
			t.Fatalf("the token's key opened vault b's key (%d bytes)", len(key))
		}
	}

	// The grant of vault a re-signed by a stranger, who is no member: the
	// token refuses the vault.
	mallory := newSDKUser(t, "mallory")
	ms := mallory.c.Session()
	evil.set(states(func(rs []map[string]any) []map[string]any {
		for _, r := range rs {
			if r["id"] != a.ID.String() {
				continue
			}
			g := grantOf(r)
			kem := grant.KEM(int(g["kem_id"].(float64)))
			gen := uint64(g["key_generation"].(float64))
			v2 := grant.GrantV2{VaultID: a.ID, UserID: tok.ID(), GrantedBy: ms.UserID, Role: g["role"].(string),
				Generation: gen, KEM: kem, SealedKey: g["sealed_key"].(string)}
			sig, err := grant.SignV2(v2, ms.Keys.Ed25519)
			if err != nil {
				t.Error(err)
			}
			g["granted_by"], g["signature"] = ms.UserID.String(), sig
		}
		return rs
	}))
	c2, err := zsm.LoginToken(ctx, nil, evil.URL, tok, "", zsm.NewMemState())
	if err != nil {
		t.Fatal(err)
	}
	l, err = c2.ListVaults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Vaults) != 0 || len(l.Refused) != 1 || l.Refused[0].ID != a.ID || !isTampered(l.Refused[0].Err) {
		t.Fatalf("a grant signed by a non-member: vaults %v, refused %+v", l.Vaults, l.Refused)
	}
}

func cloneRow(r map[string]any) map[string]any {
	b, _ := json.Marshal(r)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func isTampered(err error) bool {
	return err != nil && strings.Contains(err.Error(), zsm.ErrTampered.Error())
}

// TestMachineTokenOfflineCache: with --cache-max-age a token keeps an
// encrypted copy of what it read; with the gateway stopped it runs from
// that copy (and says so), refuses a copy past the age, and keeps no
// plaintext on disk; a revoked token's cache is removed.
func TestMachineTokenOfflineCache(t *testing.T) {
	s := need(t)
	o := ownerCLI(t)
	tok := strings.TrimSpace(o.ok("", "token", "create", "offline", "--vault", "prod"))
	m, home := machineEnv(t, tok)
	cacheDir := filepath.Join(home, "cache")
	m.env["ZSM_OFFLINE_CACHE_DIR"] = cacheDir

	// Without the flag nothing is kept.
	m.ok("", "read", "zsm://prod/DB_URL")
	emptyDir(t, home)
	if got := m.ok("", "read", "--cache-max-age", "10m", "zsm://prod/DB_URL"); got != "postgres://db.example/prod" {
		t.Fatalf("online read %q", got)
	}
	// Ciphertext only: no value, no vault name in any cache file.
	_ = filepath.WalkDir(cacheDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, plain := range []string{"postgres://db.example/prod", "k-123", "DB_URL", "API_KEY"} {
			if bytes.Contains(b, []byte(plain)) {
				t.Fatalf("%s holds %q in the clear", p, plain)
			}
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.StopService(ctx, stack.Nginx); err != nil {
		t.Fatalf("stop the gateway: %v", err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = s.StartService(context.Background(), stack.Nginx)
		}
	}()
	code, out, errOut := m.run("", "run", "--vault", "prod", "--cache-max-age", "10m", "--", "sh", "-c", `printf %s "$DB_URL"`)
	if code != 0 || out != "postgres://db.example/prod" || !strings.Contains(errOut, "using cached copy of vault prod from") {
		t.Fatalf("run from the cache: exit %d, %q, %q", code, out, errOut)
	}
	if got := m.ok("", "export", "--vault", "prod", "--cache-max-age", "10m", "--format", "json"); !strings.Contains(got, `"API_KEY": "k-123"`) {
		t.Fatalf("export from the cache %q", got)
	}
	m.fails(cli.ExitUnavailable, "", "read", "zsm://prod/DB_URL")
	time.Sleep(1100 * time.Millisecond)
	m.fails(cli.ExitUnavailable, "no cached copy younger than --cache-max-age 1s", "read", "--cache-max-age", "1s", "zsm://prod/DB_URL")

	if err := s.StartService(ctx, stack.Nginx); err != nil {
		t.Fatalf("start the gateway: %v", err)
	}
	restarted = true
	if !eventually(20*time.Second, func() bool { c, _, _ := m.run("", "read", "zsm://prod/DB_URL"); return c == 0 }) {
		t.Fatal("the token does not read again after the gateway came back")
	}

	// Revoked: the first refused login removes the token's cache.
	o.ok("", "token", "revoke", "offline")
	m.fails(cli.ExitNotLoggedIn, "revoked", "read", "--cache-max-age", "10m", "zsm://prod/DB_URL")
	emptyDir(t, cacheDir)
}

// TestPersonOfflineCacheGoesAtLogout: a person's offline copy is sealed
// under a key derived from the account key, serves a read while the
// gateway is stopped, and is removed by logout.
func TestPersonOfflineCacheGoesAtLogout(t *testing.T) {
	s := need(t)
	o := ownerCLI(t)
	cacheDir := o.env["ZSM_OFFLINE_CACHE_DIR"]
	if got := o.ok("", "read", "--cache-max-age", "10m", "zsm://prod/API_KEY"); got != "k-123" {
		t.Fatalf("read %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.StopService(ctx, stack.Nginx); err != nil {
		t.Fatalf("stop the gateway: %v", err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = s.StartService(context.Background(), stack.Nginx)
		}
	}()
	code, out, errOut := o.run("", "read", "--cache-max-age", "10m", "zsm://prod/API_KEY")
	if code != 0 || out != "k-123" || !strings.Contains(errOut, "using cached copy of vault prod") {
		t.Fatalf("read from the cache: exit %d, %q, %q", code, out, errOut)
	}
	if err := s.StartService(ctx, stack.Nginx); err != nil {
		t.Fatalf("start the gateway: %v", err)
	}
	restarted = true
	if !eventually(20*time.Second, func() bool { c, _, _ := o.run("", "read", "zsm://prod/API_KEY"); return c == 0 }) {
		t.Fatal("no read after the gateway came back")
	}
	o.ok("", "logout")
	emptyDir(t, cacheDir)
}
