package replicas

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"zsm.dev/zsm/authsvc/jwtcache"
	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/sdk/authclient"
)

// cachingPostgrest starts a second PostgREST 12.0.2 on the stack's database
// with the project's configuration, JWT cache on (which 12.0.2 does not
// clear when the keys change); it returns its URL and the path of its log.
func cachingPostgrest(t *testing.T) (string, string) {
	t.Helper()
	s := need(t)
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(s.RepoRoot(), "postgrest", "postgrest.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// The project's configuration, cache included: a PostgREST of its own
	// gives the test its own cache and log.
	conf := string(src)
	if !strings.Contains(conf, "\njwt-cache-max-lifetime = 3600\n") {
		t.Fatal("postgrest.conf does not turn the JWT cache on (jwt-cache-max-lifetime = 3600)")
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

// The hole the issued-at cutoff closes: PostgREST 12.0.2 tries every
// published key whatever kid a token names, so a token signed with a
// stolen key A can name a key B that stays published; once cached, it is
// not verified again when A is revoked, and the gate's key check sees B.
// From the revocation's commit on, the gate refuses it because it was
// issued before the cutoff (auth.token_policy.min_iat = removal + 36 s,
// rounded up). Tokens issued after the revocation are dated at the cutoff
// and work at once, through the gateway and straight at the caching
// PostgREST; a session whose token was refused goes on after a refresh.
func TestCachedForgeryNamingAPublishedKeyRefusedAfterRevocation(t *testing.T) {
	s := need(t)
	pg, _ := cachingPostgrest(t)
	u := signup(t, s.GatewayURL())
	authsvc(t, "keys", "rotate")
	a := inState(keys(t), store.KeyCurrent)[0]
	b := inState(keys(t), store.KeyNext)[0]
	var victim authclient.Session
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if victim = login(t, s.GatewayURL(), u); kidOf(t, victim.AccessToken) == a.KID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokens still signed by %s, not the current key %s", kidOf(t, victim.AccessToken), a.KID)
		}
	}
	kek, err := hex.DecodeString(s.KeyEncryptionKey())
	if err != nil {
		t.Fatal(err)
	}
	stolen, err := signer.OpenPrivateKey(kek, a)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	// iat 25 s ahead: PostgREST allows 30 s, so the thief dates it as late
	// as it can.
	forged := handMade(t, b.KID, stolen, map[string]any{
		"iss": s.GatewayURL(), "aud": "zsm-api", "sub": victim.UserID, "role": "app_user",
		"sid": victim.SessionID, "iat": now + 25, "exp": now + 25 + 600, "kid": b.KID, "jti": "forged",
	})
	if code, body := get(forged, pg+"/vaults"); code != 200 {
		t.Fatalf("the forged token before the revocation: %d %s (the attack needs it cached)", code, body)
	}
	if code, body := get(victim.AccessToken, pg+"/vaults"); code != 200 {
		t.Fatalf("the victim's own token before the revocation: %d %s", code, body)
	}

	// The command returns once PostgREST itself refuses the key's
	// signatures (it probes), and names the cutoff.
	if out := authsvc(t, "keys", "revoke", a.KID); !strings.Contains(out, "every access token issued before") {
		t.Fatalf("revoke output: %s", out)
	}
	for name, tok := range map[string]string{"cached forgery naming a published key": forged, "honest token of the revoked key": victim.AccessToken} {
		body := mustStatus(t, tok, pg+"/vaults", 401)
		c, m := refusal(t, body)
		if name == "honest token of the revoked key" {
			if c != "PGRST301" {
				t.Fatalf("%s: %s", name, body)
			}
			continue
		}
		if c != "token_expired" || m != "token was issued before a signing key was revoked; refresh it" {
			t.Fatalf("%s, first request after the revoke: %s", name, body)
		}
	}
	var removed time.Time
	var minIAT int64
	conn, err := pgx.Connect(context.Background(), s.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(),
		`SELECT k.removed_at, p.min_iat FROM auth.signing_keys k, auth.token_policy p WHERE k.kid = $1 AND k.revoked`, a.KID).
		Scan(&removed, &minIAT); err != nil {
		t.Fatal(err)
	}
	if want := removed.Add(signer.RevocationWindow); minIAT < want.Unix() || minIAT > want.Unix()+1 {
		t.Fatalf("min_iat %d, want the removal %v + %v rounded up", minIAT, removed, signer.RevocationWindow)
	}

	// A refresh after the revocation: a token dated at the cutoff, taken
	// at once by the gateway's PostgREST and the caching one.
	start := time.Now()
	fresh, err := authclient.New(s.GatewayURL()).Refresh(context.Background(), victim.RefreshToken)
	if err != nil {
		t.Fatalf("refresh after the revocation: %v", err)
	}
	t.Logf("refresh right after the revocation took %v", time.Since(start).Round(time.Millisecond))
	if iat := claimInt(t, fresh.AccessToken, "iat"); iat < minIAT {
		t.Fatalf("new token's iat %d is before the cutoff %d", iat, minIAT)
	}
	for _, url := range []string{s.GatewayURL() + "/rest/vaults", pg + "/vaults"} {
		if code, body := get(fresh.AccessToken, url); code != 200 {
			t.Fatalf("a token issued after the revocation at %s: %d %s", url, code, body)
		}
	}
	if code, body := get(forged, pg+"/vaults"); code != 401 || !strings.Contains(body, "token_expired") {
		t.Fatalf("the forgery after the refresh: %d %s", code, body)
	}
}

func claimInt(t *testing.T, token, name string) int64 {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	v, ok := c[name].(float64)
	if !ok {
		t.Fatalf("claim %s is %v", name, c[name])
	}
	return int64(v)
}

// The evictor against the real PostgREST: an access token past its expiry
// and PostgREST's 30 s of skew is refused (401: PostgREST looked it up,
// which drops a cached entry, and did not cache it again), and one that
// still verifies is reported, not counted as evicted.
func TestEvictorReplayAgainstPostgREST(t *testing.T) {
	s := need(t)
	pg, _ := cachingPostgrest(t)
	cur := inState(keys(t), store.KeyCurrent)[0]
	kek, err := hex.DecodeString(s.KeyEncryptionKey())
	if err != nil {
		t.Fatal(err)
	}
	priv, err := signer.OpenPrivateKey(kek, cur)
	if err != nil {
		t.Fatal(err)
	}
	u := signup(t, s.GatewayURL())
	sess := login(t, s.GatewayURL(), u)
	mk := func(iat, exp int64, jti string) string {
		return handMade(t, cur.KID, priv, map[string]any{
			"iss": s.GatewayURL(), "aud": "zsm-api", "sub": sess.UserID, "role": "app_user",
			"sid": sess.SessionID, "iat": iat, "exp": exp, "kid": cur.KID, "jti": jti,
		})
	}
	// Dated no earlier than a revocation's cutoff (an earlier test of the
	// package revoked a key moments ago), as authsvc dates its tokens.
	var cutoff int64
	conn, err := pgx.Connect(context.Background(), s.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), `SELECT min_iat FROM auth.token_policy`).Scan(&cutoff); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	expired, live := mk(now-120, now-40, "expired"), mk(max(now, cutoff), max(now, cutoff)+300, "live")
	if code, body := get(live, pg+"/vaults"); code != 200 {
		t.Fatalf("the live token: %d %s", code, body)
	}
	var logs strings.Builder
	e := &jwtcache.Evictor{URL: pg, Delay: time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Now: func() time.Time { return time.Now().Add(time.Hour) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	e.Add(expired, time.Unix(now-40, 0))
	e.Add(live, time.Unix(now+300, 0))
	for deadline := time.Now().Add(10 * time.Second); e.Stats().Replayed+e.Stats().Failed < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if st := e.Stats(); st.Replayed != 1 || st.Failed != 1 {
		t.Fatalf("evictor stats %+v, want the expired token evicted and the live one reported; log:\n%s", st, logs.String())
	}
	if strings.Contains(logs.String(), live) || strings.Contains(logs.String(), expired) {
		t.Fatal("a token reached the evictor's log")
	}
}
