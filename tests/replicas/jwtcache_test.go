package replicas

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/sdk/authclient"
)

// cachingPostgrest starts a second PostgREST 12.0.2 on the stack's database
// with the project's configuration but its JWT cache on (an hour), which
// 12.0.2 does not clear when the keys change, and returns its URL.
// cachingPostgrest starts a second PostgREST with the JWT cache on; it
// returns its URL and the path of its log.
func cachingPostgrest(t *testing.T) (string, string) {
	t.Helper()
	s := need(t)
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(s.RepoRoot(), "postgrest", "postgrest.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(src), "jwt-cache-max-lifetime = 0", "jwt-cache-max-lifetime = 3600", 1)
	if conf == string(src) {
		t.Fatal("postgrest.conf has no jwt-cache-max-lifetime = 0 line to change")
	}
	if err := os.WriteFile(filepath.Join(dir, "postgrest.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	port, admin := freePort(t), freePort(t)
	log, err := os.Create(filepath.Join(dir, "postgrest.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.State().Binaries.Postgrest, filepath.Join(dir, "postgrest.conf"))
	cmd.Env = []string{
		"PGRST_DB_URI=" + s.AuthenticatorDSN(), "PGRST_SERVER_HOST=127.0.0.1",
		fmt.Sprintf("PGRST_SERVER_PORT=%d", port), fmt.Sprintf("PGRST_ADMIN_SERVER_PORT=%d", admin),
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a second PostgREST: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", admin))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "postgrest.log"))
			t.Fatalf("the second PostgREST is not ready: %v\n%s", err, b)
		}
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port), filepath.Join(dir, "postgrest.log")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// refusal reads a PostgREST or gate error body.
func refusal(t *testing.T, body string) (code, message string) {
	t.Helper()
	var e struct{ Code, Message string }
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Code, e.Message
}

// handMade signs claims with key under a header naming kid, the way
// authsvc did before access tokens carried the kid as a claim.
func handMade(t *testing.T, kid string, key ed25519.PrivateKey, claims map[string]any) string {
	t.Helper()
	seg := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := seg(map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": kid}) + "." + seg(claims)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(in)))
}

// With PostgREST's JWT cache on, a token it verified once is not verified
// again until it expires, keys changed or not. The gate still refuses, on
// the first request after the commit: tokens of a revoked key (named by the
// kid claim, or by the protected header when the claim is absent) with
// 401 PGRST301, and tokens of a logged-out session with 401
// session_revoked. A token of the same key that PostgREST never cached is
// refused by PostgREST itself, which shows the cached ones reached the gate.
func TestCachedTokensOfRevokedKeysAndEndedSessionsRefused(t *testing.T) {
	s := need(t)
	pg, pgLog := cachingPostgrest(t)
	u := signup(t, s.GatewayURL())
	// The key to revoke signs from now on: a fresh rotation makes it current.
	authsvc(t, "keys", "rotate")
	cur := inState(keys(t), store.KeyCurrent)[0]
	// Every replica signs with it (they reload on NOTIFY).
	var cached, uncached authclient.Session
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		cached, uncached = login(t, s.GatewayURL(), u), login(t, s.GatewayURL(), u)
		if kidOf(t, cached.AccessToken) == cur.KID && kidOf(t, uncached.AccessToken) == cur.KID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokens still signed by %s, not the current key %s", kidOf(t, cached.AccessToken), cur.KID)
		}
	}
	kek, err := hex.DecodeString(s.KeyEncryptionKey())
	if err != nil {
		t.Fatal(err)
	}
	priv, err := signer.OpenPrivateKey(kek, cur)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	noClaim := handMade(t, cur.KID, priv, map[string]any{
		"iss": s.GatewayURL(), "aud": "zsm-api", "sub": cached.UserID, "role": "app_user",
		"sid": cached.SessionID, "iat": now, "exp": now + 300,
	})

	// Into PostgREST's cache.
	for name, tok := range map[string]string{"token": cached.AccessToken, "token without the kid claim": noClaim} {
		if code, body := get(tok, pg+"/vaults"); code != 200 {
			t.Fatalf("%s before the revoke: %d %s", name, code, body)
		}
	}

	authsvc(t, "keys", "revoke", cur.KID)
	for name, tok := range map[string]string{"cached token": cached.AccessToken, "cached token without the kid claim": noClaim} {
		body := mustStatus(t, tok, pg+"/vaults", 401)
		if c, m := refusal(t, body); c != "PGRST301" || m != "the key that signed the token is not published" {
			t.Fatalf("%s of the revoked key, first request after the revoke: %s", name, body)
		}
	}
	// PostgREST itself refuses the uncached token once it has reloaded its
	// keys, with its own message: it would have let the cached ones through.
	// A token PostgREST verifies before its reload goes into its cache even
	// when the gate then refuses the request, so the login's token is held
	// back until a probe shows the reload: each probe is a fresh token of
	// the revoked key (a new jti: never cached), refused by the gate until
	// PostgREST itself refuses it. The reload follows a NOTIFY; on a loaded
	// machine it has taken seconds.
	reloaded := false
	var probe string
	for i, deadline := 0, time.Now().Add(30*time.Second); time.Now().Before(deadline); i++ {
		now := time.Now().Unix()
		fresh := handMade(t, cur.KID, priv, map[string]any{
			"iss": s.GatewayURL(), "aud": "zsm-api", "sub": cached.UserID, "role": "app_user",
			"sid": cached.SessionID, "iat": now, "exp": now + 300, "kid": cur.KID, "jti": fmt.Sprintf("probe-%d", i),
		})
		code, body := get(fresh, pg+"/vaults")
		probe = fmt.Sprintf("%d %s", code, body)
		if code != 401 {
			t.Fatalf("probe token of the revoked key: %s, want 401", probe)
		}
		if _, m := refusal(t, body); m != "the key that signed the token is not published" {
			reloaded = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !reloaded {
		b, _ := os.ReadFile(pgLog)
		t.Fatalf("PostgREST did not reload its keys within 30 s (last probe: %s); its log:\n%s", probe, b)
	}
	code, body := get(uncached.AccessToken, pg+"/vaults")
	if c, m := refusal(t, body); code != 401 || c != "PGRST301" || m == "the key that signed the token is not published" {
		t.Fatalf("uncached token of the revoked key: %d %s, want PostgREST's own 401 PGRST301", code, body)
	}
	if c, m := refusal(t, mustStatus(t, cached.AccessToken, pg+"/vaults", 401)); c != "PGRST301" || m != "the key that signed the token is not published" {
		t.Fatalf("cached token after PostgREST reloaded: %s %s", c, m)
	}

	// A logged-out session's cached token.
	sess := login(t, s.GatewayURL(), u)
	if code, body := get(sess.AccessToken, pg+"/vaults"); code != 200 {
		t.Fatalf("new session before logout: %d %s", code, body)
	}
	if err := authclient.New(s.GatewayURL()).Logout(context.Background(), sess.RefreshToken); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if c, _ := refusal(t, mustStatus(t, sess.AccessToken, pg+"/vaults", 401)); c != "session_revoked" {
		t.Fatalf("cached token of a logged-out session: code %s, want session_revoked", c)
	}
}

func mustStatus(t *testing.T, token, url string, want int) string {
	t.Helper()
	code, body := get(token, url)
	if code != want {
		t.Fatalf("GET %s: %d %s, want %d", url, code, body, want)
	}
	return body
}
