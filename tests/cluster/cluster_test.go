// Package cluster runs authsvc against a real three-node Redis Cluster, the
// topology docker-compose.yaml deploys: the local stack (stack.Config with
// RedisCluster) starts three Debian redis-server processes in cluster mode,
// authsvc gets AUTHSVC_REDIS_ADDRS, and every request goes through the nginx
// gateway. The single-node runs are tests/integration. If the stack or the
// cluster cannot start, every test fails: there is no skip.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/srpgroup"
	"zsm.dev/zsm/stack"
)

var (
	st       *stack.Stack
	startErr error
)

func TestMain(m *testing.M) {
	var stop func()
	st, stop, startErr = stack.StartTemp("zsm-cl-", stack.Config{RedisCluster: true, LoginRatePerSecond: 50, LoginBurst: 100})
	code := m.Run()
	stop()
	os.Exit(code)
}

func need(t *testing.T) *stack.Stack {
	t.Helper()
	if startErr != nil {
		t.Fatalf("the stack with a Redis Cluster did not start: %v", startErr)
	}
	if !st.RedisCluster() || len(st.RedisClusterAddrs()) != stack.ClusterNodes {
		t.Fatalf("the stack runs no Redis Cluster (addrs %v)", st.RedisClusterAddrs())
	}
	return st
}

func clusterClient(t *testing.T) *redis.ClusterClient {
	t.Helper()
	s := need(t)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: s.RedisClusterAddrs(), Password: s.RedisPassword(),
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

var nextIP atomic.Int32

// client is one simulated device with its own loopback source address
// (127.0.2.x), so per-address limits of one test never touch another.
type client struct {
	t    *testing.T
	http *http.Client
	auth *authclient.Client
}

func newClient(t *testing.T) *client {
	s := need(t)
	ip := fmt.Sprintf("127.0.2.%d", nextIP.Add(1))
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	c := &client{t: t, http: hc, auth: authclient.New(s.GatewayURL())}
	c.auth.HTTP = hc
	return c
}

type response struct {
	status int
	body   []byte
}

func (r response) code(t *testing.T) string {
	t.Helper()
	var e struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body is not JSON: %s", r.body)
	}
	return e.Code
}

func (c *client) do(method, path, token string, body any) response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, need(c.t).GatewayURL()+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: b}
}

func expect(t *testing.T, r response, status int, code, what string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.status, status, r.body)
	}
	if code != "" && r.code(t) != code {
		t.Fatalf("%s: code %q, want %q; body %s", what, r.code(t), code, r.body)
	}
}

type user struct {
	identity string
	secret   []byte
	id       string
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (c *client) signup() user {
	c.t.Helper()
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	kdf := authclient.KDF{Alg: "argon2id", Salt: base64.StdEncoding.EncodeToString(salt), MemoryKiB: 65536, Iterations: 3, Parallelism: 4}
	u := user{identity: fmt.Sprintf("cl-%s@example.test", randHex(6)), secret: []byte(randHex(16))}
	id, err := c.auth.Signup(context.Background(), u.identity, u.secret, kdf)
	if err != nil {
		c.t.Fatalf("signup: %v", err)
	}
	u.id = id
	return u
}

// init starts an SRP login by hand and returns the handshake id, the
// client state and the server's salt:B.
func (c *client) init(u user) (string, interface {
	Generate(string) (string, error)
	ServerOk(string) bool
}, string) {
	c.t.Helper()
	cl, err := srpgroup.Env().NewClient([]byte(u.identity), u.secret)
	if err != nil {
		c.t.Fatal(err)
	}
	cred := cl.Credentials()
	A, _ := new(big.Int).SetString(cred[strings.IndexByte(cred, ':')+1:], 16)
	r := c.do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.identity, "a": srpgroup.FormatPublic(A)})
	expect(c.t, r, http.StatusOK, "", "login init")
	var ch struct {
		HandshakeID string `json:"handshake_id"`
		SRPSalt     string `json:"srp_salt"`
		B           string `json:"b"`
	}
	if err := json.Unmarshal(r.body, &ch); err != nil {
		c.t.Fatal(err)
	}
	return ch.HandshakeID, cl, ch.SRPSalt + ":" + ch.B
}

// The nodes form one healthy cluster of three masters covering every slot.
func TestClusterIsFormed(t *testing.T) {
	rdb := clusterClient(t)
	ctx := context.Background()
	info, err := rdb.ClusterInfo(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cluster_state:ok", "cluster_slots_assigned:16384", fmt.Sprintf("cluster_known_nodes:%d", stack.ClusterNodes)} {
		if !strings.Contains(info, want) {
			t.Errorf("CLUSTER INFO lacks %q:\n%s", want, info)
		}
	}
	shards, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	masters := map[string]bool{}
	for _, sl := range shards {
		masters[sl.Nodes[0].Addr] = true
	}
	if len(masters) != stack.ClusterNodes {
		t.Errorf("slots are served by %d masters (%v), want %d", len(masters), masters, stack.ClusterNodes)
	}
}

// Sign-up, login and a PostgREST read with the token, through the gateway;
// the handshake lives in the cluster under zsm:hs:<id>, handshakes land on
// more than one node, and a replayed verify finds nothing.
func TestLoginThroughTheCluster(t *testing.T) {
	c := newClient(t)
	u := c.signup()
	sess, err := c.auth.LoginWithSecret(context.Background(), u.identity, u.secret)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if sess.UserID != u.id {
		t.Fatalf("login for %s gave user %s", u.id, sess.UserID)
	}
	expect(t, c.do("GET", "/rest/vaults", sess.AccessToken, nil), http.StatusOK, "", "PostgREST read with the token")

	rdb := clusterClient(t)
	ctx := context.Background()
	nodes := map[string]int{}
	var lastID string
	var lastCl interface {
		Generate(string) (string, error)
		ServerOk(string) bool
	}
	var lastSB string
	for range 8 {
		id, cl, sb := c.init(u)
		key := "zsm:hs:" + id
		if n, err := rdb.Exists(ctx, key).Result(); err != nil || n != 1 {
			t.Fatalf("handshake %s not found through the cluster client: n=%d err=%v", key, n, err)
		}
		node, err := rdb.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		nodes[node.Options().Addr]++
		lastID, lastCl, lastSB = id, cl, sb
	}
	// 8 random ids on one of 3 equal nodes: chance 3·(1/3)^8 ≈ 0.05 %.
	if len(nodes) < 2 {
		t.Errorf("8 handshakes all landed on one node: %v", nodes)
	}
	m, err := lastCl.Generate(lastSB)
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]string{"handshake_id": lastID, "m": m}
	r := c.do("POST", "/auth/v1/login/verify", "", body)
	expect(t, r, http.StatusOK, "", "verify")
	var ok struct {
		ServerProof string `json:"server_proof"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(r.body, &ok); err != nil || !lastCl.ServerOk(ok.ServerProof) {
		t.Fatalf("server proof does not verify (%v)", err)
	}
	expect(t, c.do("POST", "/auth/v1/login/verify", "", body), http.StatusUnauthorized, "login_failed", "replayed verify")
	if n, _ := rdb.Exists(ctx, "zsm:hs:"+lastID).Result(); n != 0 {
		t.Fatal("handshake state outlived its verify")
	}
}

// Login attempts for one identity from one address are counted in the
// cluster: after the free attempts (AUTHSVC_LOGIN_FREE_ATTEMPTS_PER_ADDRESS,
// 10 by default) the next is refused with 429 rate_limited, and the
// counters (one hash tag per identity, so one node holds them all) and the
// per-address windows are on the cluster's nodes.
func TestLoginAttemptsCountedInTheCluster(t *testing.T) {
	u := newClient(t).signup()
	const free = 10
	c := newClient(t)
	for i := 0; i < free; i++ {
		r := c.do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.identity, "a": "2"})
		expect(t, r, http.StatusOK, "", fmt.Sprintf("attempt %d", i+1))
	}
	last := c.do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.identity, "a": "2"})
	expect(t, last, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("attempt %d from one address", free+1))
	// Another address is not held back by this one's attempts.
	r := newClient(t).do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.identity, "a": "2"})
	expect(t, r, http.StatusOK, "", "the same identity from another address")
	rdb := clusterClient(t)
	for _, pattern := range []string{"zsm:rl:*", "zsm:lf:*"} {
		keys := 0
		err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
			ks, err := n.Keys(ctx, pattern).Result()
			keys += len(ks)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if keys == 0 {
			t.Errorf("no rate-limit counters %s on any node", pattern)
		}
	}
}

// With every node down login fails closed (503); once the nodes are back
// the cluster re-forms from its nodes.conf and login works again.
func TestAllNodesDownFailsClosed(t *testing.T) {
	s := need(t)
	c := newClient(t)
	u := c.signup()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := s.StopService(ctx, "redis"); err != nil {
		t.Fatalf("stop redis: %v", err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = s.StartService(context.Background(), "redis")
		}
	}()
	for _, a := range s.RedisClusterAddrs() {
		if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			conn.Close()
			t.Fatalf("node %s still accepts connections after StopService", a)
		}
	}
	expect(t, c.do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.identity, "a": "2"}),
		http.StatusServiceUnavailable, "service_unavailable", "init with every node down")
	_, err := c.auth.LoginWithSecret(ctx, u.identity, u.secret)
	var apiErr *authclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "service_unavailable" {
		t.Fatalf("login with every node down: %v, want service_unavailable", err)
	}

	if err := s.StartService(ctx, "redis"); err != nil {
		t.Fatalf("start redis: %v", err)
	}
	restarted = true
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := c.auth.LoginWithSecret(ctx, u.identity, u.secret)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login still fails 60 s after the cluster came back: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
