package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"zsm.dev/zsm/stack"
)

// This test needs the real parts (npm packages, redis-server, nginx, and
// ./cmd/authsvc building). It never skips: a missing prerequisite fails it.
// ZSM_STACK_TEST_AUTHSVC_BIN may name a prebuilt authsvc to use instead of
// building ./cmd/authsvc (for working on the runner alone).
func TestStackLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	dir := stack.TempDir(t)
	cfg := stack.Config{
		Dir:                dir,
		LoginRatePerSecond: 1,
		LoginBurst:         2,
		Logger:             slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		AuthsvcBinary:      os.Getenv("ZSM_STACK_TEST_AUTHSVC_BIN"),
	}

	t0 := time.Now()
	s, err := stack.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("cold Start (fresh data dir) took %s", time.Since(t0).Round(time.Millisecond))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			s.Stop(context.Background())
		}
	})

	// Every listener is loopback and the ports are distinct.
	p := s.Ports()
	seen := map[int]bool{}
	for _, port := range []int{p.Gateway, p.Authsvc, p.Postgrest, p.PostgrestAdmin, p.Postgres, p.Redis} {
		if port == 0 || seen[port] {
			t.Fatalf("bad port set %+v", p)
		}
		seen[port] = true
	}

	checkAll(ctx, t, s)
	checkGateway(ctx, t, s)

	// Start again on a running stack attaches.
	s2, err := stack.Start(ctx, stack.Config{Dir: dir})
	if err != nil || !s2.AlreadyRunning || s2.GatewayURL() != s.GatewayURL() {
		t.Fatalf("second Start: err=%v already=%v", err, s2 != nil && s2.AlreadyRunning)
	}
	a, err := stack.Attach(dir)
	if err != nil || a.RedisURL() != s.RedisURL() || a.SuperuserDSN() != s.SuperuserDSN() {
		t.Fatalf("Attach: %v", err)
	}
	for _, f := range []string{"stack.json"} {
		b, _ := os.ReadFile(dir + "/" + f)
		for _, secret := range []string{s.RedisPassword(), pwOf(t, s.SuperuserDSN()), pwOf(t, s.AuthsvcDSN())} {
			if bytes.Contains(b, []byte(secret)) {
				t.Fatalf("%s contains a password", f)
			}
		}
	}

	// Stop redis: it is gone, its port is closed; start it again.
	if err := s.StopService(ctx, stack.Redis); err != nil {
		t.Fatalf("StopService(redis): %v", err)
	}
	if s.Running(stack.Redis) || dialable(p.Redis) {
		t.Fatalf("redis still running after StopService")
	}
	if err := s.StartService(ctx, stack.Redis); err != nil {
		t.Fatalf("StartService(redis): %v", err)
	}
	pingRedis(ctx, t, s)

	// With authsvc down the gateway answers 502 with a JSON body.
	if err := s.StopService(ctx, stack.Authsvc); err != nil {
		t.Fatalf("StopService(authsvc): %v", err)
	}
	resp, body := get(t, s.GatewayURL()+"/auth/v1/sessions", nil)
	expectJSONError(t, resp, body, 502, "bad_gateway")
	if err := s.StartService(ctx, stack.Authsvc); err != nil {
		t.Fatalf("StartService(authsvc): %v", err)
	}
	if err := s.RestartService(ctx, stack.Postgrest); err != nil {
		t.Fatalf("RestartService(postgrest): %v", err)
	}
	checkAll(ctx, t, s)

	// Stop everything: no process of the stack may survive.
	procs := stackProcesses(s)
	if len(procs) < 5 {
		t.Fatalf("expected at least 5 processes, found %v", procs)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	assertGone(t, procs)
	for _, n := range stack.Services {
		if s.Running(n) {
			t.Errorf("%s still running after Stop", n)
		}
		if _, err := os.Stat(dir + "/pids/" + n + ".pid"); err == nil {
			t.Errorf("pid file of %s left behind", n)
		}
	}

	// Warm start: data dir kept, same dir.
	t0 = time.Now()
	s, err = stack.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("warm Start: %v", err)
	}
	stopped = false
	t.Logf("warm Start (existing data dir) took %s", time.Since(t0).Round(time.Millisecond))
	checkAll(ctx, t, s)
	procs = stackProcesses(s)

	// down from pid files alone (as after the `up` process exited), with a
	// stale pid file pointing at a live process that is not ours.
	if err := stack.StopDir(ctx, dir, nil); err != nil {
		t.Fatalf("StopDir: %v", err)
	}
	stopped = true
	assertGone(t, procs)
	if err := os.WriteFile(dir+"/pids/nginx.pid", []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := stack.StopDir(ctx, dir, nil); err != nil {
		t.Fatalf("StopDir with stale pid file: %v", err)
	}
	if _, err := os.Stat(dir + "/pids/nginx.pid"); err == nil {
		t.Errorf("stale pid file not removed")
	}
}

func checkAll(ctx context.Context, t *testing.T, s *stack.Stack) {
	t.Helper()
	for _, n := range stack.Services {
		if !s.Running(n) {
			t.Fatalf("%s not running", n)
		}
		if fi, err := os.Stat(s.LogFile(n)); err != nil || fi.Size() == 0 {
			t.Errorf("log file of %s missing or empty: %v", n, err)
		}
	}
	for _, dsn := range []string{s.SuperuserDSN(), s.AuthsvcDSN()} {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("postgres connect: %v", err)
		}
		var one int
		if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("postgres query: %v", err)
		}
		c.Close(ctx)
	}
	pingRedis(ctx, t, s)
	for _, u := range []string{s.AuthsvcURL() + "/healthz", s.AuthsvcURL() + "/readyz", s.PostgrestURL() + "/",
		s.GatewayURL() + "/healthz"} {
		if resp, body := get(t, u, nil); resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
		}
	}
	if _, err := os.Stat(s.AuthsvcBinary()); err != nil {
		t.Fatalf("authsvc binary: %v", err)
	}
}

func checkGateway(ctx context.Context, t *testing.T, s *stack.Stack) {
	t.Helper()
	// /rest/ reaches PostgREST, prefix stripped: an anonymous read of a
	// table is refused by PostgreSQL's grants (42501), not by nginx.
	resp, body := get(t, s.GatewayURL()+"/rest/vaults", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"42501"`) {
		t.Fatalf("/rest/vaults did not reach PostgREST: %d %s", resp.StatusCode, body)
	}
	// The API document at the gateway needs a token (it lists what the
	// caller may use); PostgREST's own answer shows what it says.
	r2, b2 := get(t, s.GatewayURL()+"/rest/", nil)
	expectJSONError(t, r2, b2, http.StatusUnauthorized, "invalid_token")
	_, body = get(t, s.PostgrestURL()+"/", nil)
	// The document sends integrators to the gateway and its /rest prefix,
	// never around it to PostgREST's own port.
	var doc struct {
		Host     string   `json:"host"`
		BasePath string   `json:"basePath"`
		Schemes  []string `json:"schemes"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("/rest/ is not JSON: %v", err)
	}
	gw, _ := url.Parse(s.GatewayURL())
	if doc.Host != gw.Host || doc.BasePath != "/rest" || !slices.Equal(doc.Schemes, []string{gw.Scheme}) {
		t.Fatalf("OpenAPI names host %q, basePath %q, schemes %v; want %q, /rest, [%s]", doc.Host, doc.BasePath, doc.Schemes, gw.Host, gw.Scheme)
	}
	rid := resp.Header.Get("X-Request-Id")
	if rid == "" {
		t.Fatalf("no X-Request-Id on gateway response")
	}
	// A well-formed client request id is kept.
	resp, _ = get(t, s.GatewayURL()+"/healthz", map[string]string{"X-Request-Id": "test-req-1234"})
	if got := resp.Header.Get("X-Request-Id"); got != "test-req-1234" {
		t.Fatalf("client request id not kept: %q", got)
	}
	// jwks reaches authsvc.
	if resp, body := get(t, s.GatewayURL()+"/.well-known/jwks.json", nil); resp.StatusCode != 200 {
		t.Fatalf("jwks via gateway: %d %s", resp.StatusCode, body)
	}
	// Unknown path: JSON 404 from nginx.
	resp, body = get(t, s.GatewayURL()+"/nope", nil)
	expectJSONError(t, resp, body, 404, "not_found")
	// Body too large on /auth/: JSON 413.
	req, _ := http.NewRequest("POST", s.GatewayURL()+"/auth/v1/signup", bytes.NewReader(make([]byte, 100<<10)))
	req.Header.Set("Content-Type", "application/json")
	resp, body = do(t, req)
	expectJSONError(t, resp, body, 413, "request_too_large")
	// Login rate limit (1 r/s, burst 2): a quick series gets a JSON 429.
	got429 := false
	for i := 0; i < 10 && !got429; i++ {
		req, _ := http.NewRequest("POST", s.GatewayURL()+"/auth/v1/login/init", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		resp, body := do(t, req)
		if resp.StatusCode == 429 {
			got429 = true
			expectJSONError(t, resp, body, 429, "rate_limited")
		}
	}
	if !got429 {
		t.Fatalf("login rate limit never answered 429")
	}
	// The access log never holds query strings or Authorization headers.
	req, _ = http.NewRequest("GET", s.GatewayURL()+"/rest/?access_token=SECRETQUERY", nil)
	req.Header.Set("Authorization", "Bearer SECRETHEADER")
	do(t, req)
	time.Sleep(100 * time.Millisecond)
	// (nginx's error log lines, in the same file, quote the raw request line
	// on errors; that is nginx's behaviour and out of our control.)
	logb, _ := os.ReadFile(s.LogFile(stack.Nginx))
	if bytes.Contains(logb, []byte("SECRETHEADER")) {
		t.Fatalf("nginx log contains an Authorization header:\n%s", logb)
	}
	for _, line := range bytes.Split(logb, []byte("\n")) {
		if bytes.HasPrefix(line, []byte(`{"time"`)) && bytes.Contains(line, []byte("SECRETQUERY")) {
			t.Fatalf("nginx access log contains a query string: %s", line)
		}
	}
	_ = ctx
}

func expectJSONError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var m map[string]string
	if resp.StatusCode != status || json.Unmarshal(body, &m) != nil || m["code"] != code || m["request_id"] == "" || m["message"] == "" {
		t.Fatalf("want %d %s JSON error, got %d %q", status, code, resp.StatusCode, body)
	}
	if m["request_id"] != resp.Header.Get("X-Request-Id") {
		t.Fatalf("request_id %q != header %q", m["request_id"], resp.Header.Get("X-Request-Id"))
	}
}

func pingRedis(ctx context.Context, t *testing.T, s *stack.Stack) {
	t.Helper()
	opt, err := redis.ParseURL(s.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis ping: %v", err)
	}
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func dialable(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func pwOf(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil || cfg.Password == "" {
		t.Fatalf("dsn without password: %v", err)
	}
	return cfg.Password
}

// stackProcesses lists the services' processes and their descendants.
func stackProcesses(s *stack.Stack) []int {
	roots := map[int]bool{}
	for _, n := range stack.Services {
		if pid := s.Pid(n); pid > 0 {
			roots[pid] = true
		}
	}
	type pinfo struct{ ppid, sid int }
	all := map[int]pinfo{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if f[0] == "Z" {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		sid, _ := strconv.Atoi(f[4])
		all[pid] = pinfo{pp, sid}
	}
	var out []int
	for pid, pi := range all {
		if roots[pid] || roots[pi.sid] || roots[pi.ppid] {
			out = append(out, pid)
		}
	}
	return out
}

func assertGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if f[0] != "Z" {
			t.Errorf("process %d survived: %s", pid, b)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
