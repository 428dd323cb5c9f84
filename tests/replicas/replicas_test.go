// Package replicas tests zsm with two authsvc replicas behind nginx: logins
// that cross replicas, signing-key rotation under load with zero failed
// requests, revocation that takes effect within a second, and a rotation
// interrupted half-way. A real stack, started by the project's runner.
package replicas

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/srpgroup"
	"zsm.dev/zsm/stack"
	"zsm.dev/zsm/tests/internal/stacktest"
)

func TestMain(m *testing.M) {
	os.Exit(stacktest.Run(m, "zsm-replicas-", stack.Config{
		AuthsvcReplicas: 2, LoginRatePerSecond: 1000, LoginBurst: 1000,
		AuthsvcEnv: map[string]string{
			"AUTHSVC_KEY_PUBLISH_DELAY":  "1s",
			"AUTHSVC_SESSION_IDLE_TTL":   "36h",
			"AUTHSVC_LOGIN_RATE_PER_IP":  "100000",
			"AUTHSVC_SIGNUP_RATE_PER_IP": "100000",
		},
	}))
}

var need = stacktest.Need

// signup registers a new account through base (the gateway or a replica).
func signup(t *testing.T, base string) stacktest.Account {
	t.Helper()
	return stacktest.DeviceFor(t, base).Signup("r")
}

// login logs u in through base.
func login(t *testing.T, base string, u stacktest.Account) authclient.Session {
	t.Helper()
	return stacktest.DeviceFor(t, base).Login(u)
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(raw, &hdr)
	return hdr.Kid
}

func get(token, url string) (int, string) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// authsvc runs the authsvc binary as an operator would, with the stack's
// configuration.
func authsvc(t *testing.T, args ...string) string {
	t.Helper()
	s := need(t)
	cmd := exec.Command(s.AuthsvcBinary(), args...)
	cmd.Env = s.AuthsvcEnv(1)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("authsvc %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func keys(t *testing.T) []store.SigningKey {
	t.Helper()
	sto, err := store.Open(context.Background(), need(t).AuthsvcDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer sto.Close()
	ks, err := sto.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func inState(ks []store.SigningKey, state string) []store.SigningKey {
	var out []store.SigningKey
	for _, k := range ks {
		if k.State == state {
			out = append(out, k)
		}
	}
	return out
}

// consistent checks the invariants a rotation must never break, however it
// was interrupted: one current key, at most one next, and PostgREST given
// exactly the published set.
func consistent(t *testing.T) {
	t.Helper()
	ks := keys(t)
	if n := len(inState(ks, store.KeyCurrent)); n != 1 {
		t.Fatalf("%d current keys", n)
	}
	if n := len(inState(ks, store.KeyNext)); n > 1 {
		t.Fatalf("%d next keys", n)
	}
	want, err := signer.EncodeJWKS(signer.Published(ks))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), need(t).AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var cfg []string
	if err := conn.QueryRow(context.Background(), `SELECT setconfig FROM pg_db_role_setting WHERE setrole = 'authenticator'::regrole AND setdatabase = 0`).Scan(&cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cfg, "pgrst.jwt_secret="+string(want)) {
		t.Fatalf("PostgREST's keys differ from the published set\n got %v\nwant %s", cfg, want)
	}
	// Every publication also carries the configured idle lifetime to the gate.
	var idle int
	if err := conn.QueryRow(context.Background(), `SELECT idle_ttl_seconds FROM auth.token_policy`).Scan(&idle); err != nil || idle != 36*3600 {
		t.Fatalf("token policy idle lifetime %d s (%v), want %d", idle, err, 36*3600)
	}
}

// A login started on one replica completes on the other.
func TestLoginAcrossReplicas(t *testing.T) {
	s := need(t)
	u := signup(t, s.GatewayURL())
	cl, err := srpgroup.Env().NewClient([]byte(u.Identity), u.Secret)
	if err != nil {
		t.Fatal(err)
	}
	cred := cl.Credentials()
	A, _ := new(big.Int).SetString(cred[strings.IndexByte(cred, ':')+1:], 16)
	var ch struct {
		HandshakeID string `json:"handshake_id"`
		SRPSalt     string `json:"srp_salt"`
		B           string `json:"b"`
	}
	if err := authclient.New(s.ReplicaURL(1)).Do(context.Background(), "POST", "/auth/v1/login/init",
		map[string]string{"identity": u.Identity, "a": A.Text(16)}, &ch); err != nil {
		t.Fatal(err)
	}
	m, err := cl.Generate(ch.SRPSalt + ":" + ch.B)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		ServerProof string `json:"server_proof"`
		AccessToken string `json:"access_token"`
	}
	if err := authclient.New(s.ReplicaURL(2)).Do(context.Background(), "POST", "/auth/v1/login/verify",
		map[string]string{"handshake_id": ch.HandshakeID, "m": m}, &out); err != nil {
		t.Fatalf("verify on the other replica: %v", err)
	}
	if !cl.ServerOk(out.ServerProof) {
		t.Fatal("server proof from the other replica does not verify")
	}
	if code, body := get(out.AccessToken, s.GatewayURL()+"/rest/vaults"); code != 200 {
		t.Fatalf("token from replica 2: %d %s", code, body)
	}
}

// Authenticated reads run through the gateway while `authsvc keys rotate`
// runs three times; clients keep refreshing (through both replicas), so
// tokens of every key are in use. Not one request may fail.
func TestRotationUnderLoadFailsNothing(t *testing.T) {
	s := need(t)
	u := signup(t, s.GatewayURL())
	before := keys(t)
	var (
		ok, bad atomic.Int64
		mu      sync.Mutex
		fails   []string
		kids    = map[string]bool{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess := login(t, s.GatewayURL(), u)
			ac := authclient.New(s.GatewayURL())
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%20 == 19 {
					ns, err := ac.Refresh(context.Background(), sess.RefreshToken)
					if err != nil {
						bad.Add(1)
						mu.Lock()
						fails = append(fails, "refresh: "+err.Error())
						mu.Unlock()
						continue
					}
					sess = ns
					mu.Lock()
					kids[kidOf(t, sess.AccessToken)] = true
					mu.Unlock()
				}
				code, body := get(sess.AccessToken, s.GatewayURL()+"/rest/vaults")
				if code != 200 {
					bad.Add(1)
					mu.Lock()
					fails = append(fails, fmt.Sprintf("%d %s", code, body))
					mu.Unlock()
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	for i := 0; i < 3; i++ {
		time.Sleep(300 * time.Millisecond)
		authsvc(t, "keys", "rotate")
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d requests failed during rotation, e.g. %v", bad.Load(), bad.Load()+ok.Load(), fails[:min(3, len(fails))])
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests ran", ok.Load())
	}
	after := keys(t)
	if len(inState(after, store.KeyRetired)) < len(inState(before, store.KeyRetired))+3 {
		t.Fatalf("three rotations should retire three keys: before %d retired, after %d", len(inState(before, store.KeyRetired)), len(inState(after, store.KeyRetired)))
	}
	if len(kids) < 2 {
		t.Fatalf("refreshed tokens used %d keys; rotation did not reach the signers", len(kids))
	}
	consistent(t)
	t.Logf("%d requests, 0 failed, tokens of %d keys seen", ok.Load(), len(kids))
}

// Every replica signs with the new key within seconds of a rotation.
func TestReplicasFollowRotation(t *testing.T) {
	s := need(t)
	u := signup(t, s.GatewayURL())
	authsvc(t, "keys", "rotate")
	cur := inState(keys(t), store.KeyCurrent)[0].KID
	deadline := time.Now().Add(5 * time.Second)
	for i := 1; i <= 2; i++ {
		for {
			sess := login(t, s.ReplicaURL(i), u)
			if kidOf(t, sess.AccessToken) == cur {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d still signs with %s, not %s", i, kidOf(t, sess.AccessToken), cur)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// A revoked key's tokens are refused within one second, through the admin
// API, and signing goes on with another key.
func TestRevokedKeyRefusedWithinASecond(t *testing.T) {
	s := need(t)
	u := signup(t, s.GatewayURL())
	sess := login(t, s.GatewayURL(), u)
	kid := kidOf(t, sess.AccessToken)
	if code, _ := get(sess.AccessToken, s.GatewayURL()+"/rest/vaults"); code != 200 {
		t.Fatal("token does not work before the revoke")
	}
	// The admin API refuses callers without the credential.
	for _, tok := range []string{"", "wrong-token-wrong-token-wrong-token-wrong"} {
		req, _ := http.NewRequest("POST", s.AdminURL(2)+"/admin/v1/keys/"+kid+"/revoke", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("admin revoke with token %q: %d", tok, resp.StatusCode)
		}
	}
	if !slices.ContainsFunc(inState(keys(t), store.KeyCurrent), func(k store.SigningKey) bool { return k.KID == kid }) {
		t.Fatal("the key was revoked without the credential")
	}

	req, _ := http.NewRequest("POST", s.AdminURL(2)+"/admin/v1/keys/"+kid+"/revoke", nil)
	req.Header.Set("Authorization", "Bearer "+s.AdminToken())
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("admin revoke: %d %s", resp.StatusCode, body)
	}
	var code int
	var msg string
	for time.Since(start) < time.Second {
		if code, msg = get(sess.AccessToken, s.GatewayURL()+"/rest/vaults"); code == 401 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 401 || !strings.Contains(msg, "PGRST301") {
		t.Fatalf("token of the revoked key after %v: %d %s", time.Since(start), code, msg)
	}
	t.Logf("refused %v after the revoke", time.Since(start).Round(time.Millisecond))
	// Logins go on, with another key, on both replicas.
	time.Sleep(200 * time.Millisecond)
	for i := 1; i <= 2; i++ {
		n := login(t, s.ReplicaURL(i), u)
		if kidOf(t, n.AccessToken) == kid {
			t.Fatalf("replica %d still signs with the revoked key", i)
		}
		if code, body := get(n.AccessToken, s.GatewayURL()+"/rest/vaults"); code != 200 {
			t.Fatalf("new token from replica %d: %d %s", i, code, body)
		}
	}
	if jwks := mustGet(t, s.GatewayURL()+"/.well-known/jwks.json"); strings.Contains(jwks, kid) {
		t.Fatal("the revoked key is still in the JWKS")
	}
	consistent(t)
	// The revoke is in the authentication audit.
	conn, err := pgx.Connect(context.Background(), s.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM api.audit_events WHERE event = 'signing_key_revoked' AND detail->>'kid' = $1`, kid).Scan(&n); err != nil || n != 1 {
		t.Fatalf("audit rows for the revoke: %d (%v)", n, err)
	}
}

func mustGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A rotation killed half-way (while it waits for the next key to be
// published long enough), and a replica restarted meanwhile, leave a
// consistent state; the next rotation completes.
func TestInterruptedRotationLeavesNoHalfState(t *testing.T) {
	s := need(t)
	// A publish delay long enough to kill the command while it waits.
	cmd := exec.Command(s.AuthsvcBinary(), "keys", "rotate")
	cmd.Env = append(s.AuthsvcEnv(1), "AUTHSVC_KEY_PUBLISH_DELAY=1h")
	// Make sure a fresh next key is involved: revoke the current next, if any.
	for _, k := range inState(keys(t), store.KeyNext) {
		authsvc(t, "keys", "revoke", k.KID)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(inState(keys(t), store.KeyNext)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no next key published: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	consistent(t)

	ctx := context.Background()
	if err := s.RestartService(ctx, stack.ReplicaName(2)); err != nil {
		t.Fatal(err)
	}
	consistent(t)
	before := inState(keys(t), store.KeyNext)[0].KID
	authsvc(t, "keys", "rotate")
	consistent(t)
	if cur := inState(keys(t), store.KeyCurrent)[0].KID; cur != before {
		t.Fatalf("the interrupted rotation's next key %s did not become current (%s is)", before, cur)
	}
}

// Retired keys are removed once every token they signed has expired.
func TestPruneRemovesExpiredRetiredKeys(t *testing.T) {
	s := need(t)
	authsvc(t, "keys", "rotate")
	retired := inState(keys(t), store.KeyRetired)
	if len(retired) == 0 {
		t.Fatal("no retired key to prune")
	}
	sto, err := store.Open(context.Background(), s.AuthsvcDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer sto.Close()
	r := &signer.Rotator{Keys: sto, Issuer: s.GatewayURL(), Audience: "zsm-api", AccessTTL: 15 * time.Minute,
		Now: func() time.Time { return time.Now().Add(15*time.Minute + signer.Skew + time.Second) }}
	// Not yet: just before expiry nothing is removed.
	early := &signer.Rotator{Keys: sto, Issuer: s.GatewayURL(), Audience: "zsm-api", AccessTTL: 15 * time.Minute,
		Now: func() time.Time { return time.Now().Add(15 * time.Minute) }}
	if n, err := early.Prune(context.Background()); err != nil || n != 0 {
		t.Fatalf("early prune removed %d (%v)", n, err)
	}
	n, err := r.Prune(context.Background())
	if err != nil || n < len(retired) {
		t.Fatalf("prune removed %d of %d (%v)", n, len(retired), err)
	}
	for _, k := range retired {
		if jwks := mustGet(t, s.ReplicaURL(1)+"/.well-known/jwks.json"); strings.Contains(jwks, k.KID) {
			// The replica reloads on NOTIFY; give it a moment.
			time.Sleep(300 * time.Millisecond)
			if jwks = mustGet(t, s.ReplicaURL(1)+"/.well-known/jwks.json"); strings.Contains(jwks, k.KID) {
				t.Fatalf("pruned key %s still published", k.KID)
			}
		}
	}
	consistent(t)
}

// Operators' view: metrics and readiness on the admin listener, behind the
// credential.
func TestAdminMetrics(t *testing.T) {
	s := need(t)
	u := signup(t, s.GatewayURL())
	login(t, s.GatewayURL(), u)
	req, _ := http.NewRequest("GET", s.AdminURL(1)+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("metrics without the credential: %d", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken())
	found := false
	for i := 1; i <= 2 && !found; i++ {
		req, _ := http.NewRequest("GET", s.AdminURL(i)+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+s.AdminToken())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(b)
		for _, m := range []string{"zsm_authsvc_signing_key_age_seconds", "zsm_authsvc_request_duration_seconds",
			"zsm_authsvc_jwtcache_tokens_added_total", "zsm_authsvc_jwtcache_tokens_pending", "zsm_authsvc_jwtcache_evicted_total", "zsm_authsvc_jwtcache_failed_total"} {
			if !strings.Contains(body, m) {
				t.Fatalf("replica %d metrics lack %s", i, m)
			}
		}
		// The replica that issued the login's token queued it for
		// eviction from PostgREST's JWT cache.
		found = strings.Contains(body, `zsm_authsvc_logins_total{outcome="success"`) &&
			!strings.Contains(body, "zsm_authsvc_jwtcache_tokens_added_total 0\n")
	}
	if !found {
		t.Fatal("no replica counted the login")
	}
}
