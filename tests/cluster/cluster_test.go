// Package cluster runs authsvc against a real three-node Redis Cluster, the
// topology docker-compose.yaml deploys: the local stack (stack.Config with
// RedisCluster) starts three Debian redis-server processes in cluster mode,
// authsvc gets AUTHSVC_REDIS_ADDRS, and every request goes through the nginx
// gateway. The single-node runs are tests/integration. If the stack or the
// cluster cannot start, every test fails: there is no skip.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"zsm.dev/zsm/sdk/authclient"
	"zsm.dev/zsm/srpgroup"
	"zsm.dev/zsm/stack"
	"zsm.dev/zsm/tests/internal/stacktest"
)

func TestMain(m *testing.M) {
	os.Exit(stacktest.Run(m, "zsm-cl-", stack.Config{RedisCluster: true, LoginRatePerSecond: 50, LoginBurst: 100}))
}

func need(t *testing.T) *stack.Stack {
	t.Helper()
	s := stacktest.Need(t)
	if !s.RedisCluster() || len(s.RedisClusterAddrs()) != stack.ClusterNodes {
		t.Fatalf("the stack runs no Redis Cluster (addrs %v)", s.RedisClusterAddrs())
	}
	return s
}

func clusterClient(t *testing.T) *redis.ClusterClient {
	t.Helper()
	s := need(t)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: s.RedisClusterAddrs(), Password: s.RedisPassword(),
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// newClient is one simulated device with its own loopback source address,
// so per-address limits of one test never touch another.
func newClient(t *testing.T) *stacktest.Device {
	need(t)
	return stacktest.NewDevice(t)
}

var expect = stacktest.Expect

// srpInit starts an SRP login by hand and returns the handshake id, the
// client state and the server's salt:B.
func srpInit(c *stacktest.Device, u stacktest.Account) (string, interface {
	Generate(string) (string, error)
	ServerOk(string) bool
}, string) {
	c.T.Helper()
	cl, err := srpgroup.Env().NewClient([]byte(u.Identity), u.Secret)
	if err != nil {
		c.T.Fatal(err)
	}
	cred := cl.Credentials()
	A, _ := new(big.Int).SetString(cred[strings.IndexByte(cred, ':')+1:], 16)
	r := c.Do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.Identity, "a": srpgroup.FormatPublic(A)})
	expect(c.T, r, http.StatusOK, "", "login init")
	var ch struct {
		HandshakeID string `json:"handshake_id"`
		SRPSalt     string `json:"srp_salt"`
		B           string `json:"b"`
	}
	if err := json.Unmarshal(r.Body, &ch); err != nil {
		c.T.Fatal(err)
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
	u := c.Signup("cl")
	sess, err := c.LoginAs(u)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if sess.UserID != u.ID {
		t.Fatalf("login for %s gave user %s", u.ID, sess.UserID)
	}
	expect(t, c.Do("GET", "/rest/vaults", sess.AccessToken, nil), http.StatusOK, "", "PostgREST read with the token")

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
		id, cl, sb := srpInit(c, u)
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
	r := c.Do("POST", "/auth/v1/login/verify", "", body)
	expect(t, r, http.StatusOK, "", "verify")
	var ok struct {
		ServerProof string `json:"server_proof"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(r.Body, &ok); err != nil || !lastCl.ServerOk(ok.ServerProof) {
		t.Fatalf("server proof does not verify (%v)", err)
	}
	expect(t, c.Do("POST", "/auth/v1/login/verify", "", body), http.StatusUnauthorized, "login_failed", "replayed verify")
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
	u := newClient(t).Signup("cl")
	const free = 10
	c := newClient(t)
	for i := 0; i < free; i++ {
		r := c.Do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.Identity, "a": "2"})
		expect(t, r, http.StatusOK, "", fmt.Sprintf("attempt %d", i+1))
	}
	last := c.Do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.Identity, "a": "2"})
	expect(t, last, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("attempt %d from one address", free+1))
	// Another address is not held back by this one's attempts.
	r := newClient(t).Do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.Identity, "a": "2"})
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
	u := c.Signup("cl")
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
	expect(t, c.Do("POST", "/auth/v1/login/init", "", map[string]string{"identity": u.Identity, "a": "2"}),
		http.StatusServiceUnavailable, "service_unavailable", "init with every node down")
	_, err := c.LoginAs(u)
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
		_, err := c.LoginAs(u)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login still fails 60 s after the cluster came back: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
