// Package stack starts and stops the local zsm stack (PostgreSQL, Redis,
// authsvc, PostgREST and the nginx gateway) on 127.0.0.1, as detached
// processes whose state lives in one directory.
//
// Layout of the state directory:
//
//	secrets.env        generated passwords and keys (0600, never printed)
//	stack.json         what runs where (no passwords)
//	pids/<svc>.pid     one pid file per service (the leader of its process group)
//	logs/<svc>.log     stdout+stderr of each service (nginx: access+error log)
//	bin/authsvc        authsvc built from source
//	pgdata/ run/       PostgreSQL data directory and unix socket directory
//	redis/ postgrest/ nginx/   per-service config and scratch files
package stack

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Service names, in start order.
const (
	Postgres  = "postgres"
	Redis     = "redis"
	Authsvc   = "authsvc"
	Postgrest = "postgrest"
	Nginx     = "nginx"
)

// Services lists every service in start order (stop order is the reverse).
var Services = []string{Postgres, Redis, Authsvc, Postgrest, Nginx}

// DefaultCORSOrigins are the browser origins the gateway answers CORS
// requests to /rest from when Config.CORSOrigins is empty: those of the
// desktop app's web view (Tauri 2 on Linux and macOS, and on Windows).
var DefaultCORSOrigins = []string{"tauri://localhost", "http://tauri.localhost"}

// Defaults for the login rate limit applied by nginx.
const (
	DefaultLoginRatePerSecond = 5
	DefaultLoginBurst         = 20
)

// Dev defaults used by cmd/zsmstack (the library defaults to free ports).
const (
	DevGatewayPort        = 8080
	DevAuthsvcPort        = 18081
	DevPostgrestPort      = 18082
	DevPostgrestAdminPort = 18083
	DevPostgresPort       = 15432
	DevRedisPort          = 16379
)

// Config describes a stack to start.
type Config struct {
	Dir      string // state dir (required); created if missing
	RepoRoot string // "" = find go.mod upward from the working dir
	CacheDir string // "" = $ZSM_CACHE_DIR or <RepoRoot>/.zsm/cache

	GatewayPort, AuthsvcPort, PostgrestPort, PostgrestAdminPort, PostgresPort, RedisPort int // 0 = pick free ports

	LoginRatePerSecond, LoginBurst int // nginx limit_req for login endpoints; 0 = defaults (5 r/s, burst 20)

	AuthsvcEnv map[string]string // extra env for authsvc (e.g. rate limits), applied last

	// CORSOrigins are the origins (scheme://host[:port]) that may call
	// /rest from a browser; nil means DefaultCORSOrigins. Every other
	// origin gets no CORS headers.
	CORSOrigins []string

	// AuthsvcReplicas is how many authsvc processes run behind nginx (0 or
	// 1: one). They share everything through Postgres and Redis; replica i
	// (from 2) is the service "authsvc-i".
	AuthsvcReplicas int
	Logger          *slog.Logger

	// AuthsvcBinary, if set, is a prebuilt authsvc used instead of
	// `go build ./cmd/authsvc` (it is copied into <Dir>/bin).
	AuthsvcBinary string

	// ReadyTimeout bounds the wait for each service to become ready (0 = 60s).
	ReadyTimeout time.Duration

	// RedisCluster starts a three-node Redis Cluster (see cluster.go)
	// instead of one Redis; authsvc then gets AUTHSVC_REDIS_ADDRS.
	RedisCluster bool
}

// Ports of every listener of the stack (all on 127.0.0.1).
type Ports struct {
	Gateway        int `json:"gateway"`
	Authsvc        int `json:"authsvc"`
	Postgrest      int `json:"postgrest"`
	PostgrestAdmin int `json:"postgrest_admin"`
	Postgres       int `json:"postgres"`
	Redis          int `json:"redis"`
}

// ServiceInfo is what stack.json records for one service.
type ServiceInfo struct {
	Pid     int    `json:"pid"` // 0 when stopped
	PidFile string `json:"pid_file"`
	LogFile string `json:"log_file"`
	Binary  string `json:"binary"`
	Port    int    `json:"port"`
	URL     string `json:"url,omitempty"`
}

// State is the content of <dir>/stack.json. It holds no passwords.
type State struct {
	Version            int                     `json:"version"`
	Dir                string                  `json:"dir"`
	RepoRoot           string                  `json:"repo_root"`
	CacheDir           string                  `json:"cache_dir"`
	RunAs              string                  `json:"run_as"`
	GatewayURL         string                  `json:"gateway_url"`
	AuthsvcURL         string                  `json:"authsvc_url"`
	PostgrestURL       string                  `json:"postgrest_url"`
	PostgrestAdminURL  string                  `json:"postgrest_admin_url"`
	PostgresDSN        string                  `json:"postgres_dsn"` // superuser, without password
	AuthsvcDSN         string                  `json:"authsvc_dsn"`  // without password
	RedisAddr          string                  `json:"redis_addr"`
	Ports              Ports                   `json:"ports"`
	LoginRatePerSecond int                     `json:"login_rate_per_second"`
	LoginBurst         int                     `json:"login_burst"`
	CORSOrigins        []string                `json:"cors_origins,omitempty"`
	AuthsvcEnv         map[string]string       `json:"authsvc_env,omitempty"`
	Binaries           Binaries                `json:"binaries"`
	AuthsvcBinary      string                  `json:"authsvc_binary"`
	Services           map[string]*ServiceInfo `json:"services"`
	AuthsvcReplicas    int                     `json:"authsvc_replicas,omitempty"`
	AuthsvcExtraPorts  []int                   `json:"authsvc_extra_ports,omitempty"` // replicas 2..N
	AdminPorts         []int                   `json:"admin_ports,omitempty"`         // per replica, loopback admin API
	AuthsvcPrebuilt    string                  `json:"authsvc_prebuilt,omitempty"`
	StartedAt          time.Time               `json:"started_at"`
	ReadyTimeout       time.Duration           `json:"ready_timeout"`

	// Redis Cluster mode (Config.RedisCluster): node 1 listens on
	// Ports.Redis; every node's client and cluster-bus ports, in node order.
	RedisCluster         bool  `json:"redis_cluster,omitempty"`
	RedisClusterPorts    []int `json:"redis_cluster_ports,omitempty"`
	RedisClusterBusPorts []int `json:"redis_cluster_bus_ports,omitempty"`
}

// Stack is a handle on a (running or stopped) stack in a state directory.
type Stack struct {
	mu      sync.Mutex
	st      State
	secrets map[string]string
	ra      runAs
	log     *slog.Logger

	// AlreadyRunning is true when Start found the stack running and attached to it.
	AlreadyRunning bool
}

type logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Debug(msg string, args ...any)
}

func (s *Stack) dir(parts ...string) string {
	return filepath.Join(append([]string{s.st.Dir}, parts...)...)
}

func stateFilePath(dir string) string { return filepath.Join(dir, "stack.json") }
func lockPath(dir string) string      { return filepath.Join(dir, ".stack.lock") }

// FindRepoRoot walks up from dir to the directory holding go.mod.
func FindRepoRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", fmt.Errorf("no go.mod found above %s; set Config.RepoRoot", dir)
		}
		d = p
	}
}

// Attach opens the stack described by <dir>/stack.json (running or not).
func Attach(dir string) (*Stack, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s, err := load(abs)
	if err != nil {
		return nil, err
	}
	s.log = slog.New(slog.DiscardHandler)
	return s, nil
}

func load(dir string) (*Stack, error) {
	raw, err := os.ReadFile(stateFilePath(dir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no stack in %s (stack.json missing): start it first", dir)
		}
		return nil, err
	}
	s := &Stack{}
	if err := json.Unmarshal(raw, &s.st); err != nil {
		return nil, fmt.Errorf("parse %s: %w", stateFilePath(dir), err)
	}
	s.st.Dir = dir
	if s.st.Services == nil {
		s.st.Services = map[string]*ServiceInfo{}
	}
	sec, err := readSecrets(dir)
	if err != nil {
		return nil, err
	}
	s.secrets = sec
	if s.st.RunAs == ServiceUser && os.Geteuid() == 0 {
		if s.ra, err = resolveRunAs(context.Background()); err != nil {
			return nil, err
		}
	} else {
		s.ra = runAs{name: s.st.RunAs, uid: os.Geteuid(), gid: os.Getegid()}
	}
	return s, nil
}

func (s *Stack) save() error {
	b, err := json.MarshalIndent(&s.st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(stateFilePath(s.st.Dir), append(b, '\n'), 0o644)
}

// State returns a copy of what stack.json records.
func (s *Stack) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Services = map[string]*ServiceInfo{}
	for k, v := range s.st.Services {
		c := *v
		st.Services[k] = &c
	}
	return st
}

func (s *Stack) Dir() string               { return s.st.Dir }
func (s *Stack) Ports() Ports              { return s.st.Ports }
func (s *Stack) GatewayURL() string        { return s.st.GatewayURL }
func (s *Stack) PostgrestURL() string      { return s.st.PostgrestURL }
func (s *Stack) PostgrestAdminURL() string { return s.st.PostgrestAdminURL }
func (s *Stack) AuthsvcURL() string        { return s.st.AuthsvcURL }
func (s *Stack) AuthsvcBinary() string     { return s.st.AuthsvcBinary }
func (s *Stack) RepoRoot() string          { return s.st.RepoRoot }

// SuperuserDSN is the postgres superuser's URL (database postgres).
func (s *Stack) SuperuserDSN() string {
	return pgURL("postgres", s.secrets[secPostgres], s.st.Ports.Postgres, "postgres")
}

// AdminDSN is the superuser's URL on database zsm, for tests and
// benchmarks that look behind the API's back.
func (s *Stack) AdminDSN() string {
	return pgURL("postgres", s.secrets[secPostgres], s.st.Ports.Postgres, "zsm")
}

// AuthsvcDSN is role authsvc's URL on database zsm (what AUTHSVC_DATABASE_URL gets).
func (s *Stack) AuthsvcDSN() string {
	return pgURL("authsvc", s.secrets[secAuthsvcDB], s.st.Ports.Postgres, "zsm")
}

// AuthenticatorDSN is PostgREST's URL (role authenticator on database zsm).
func (s *Stack) AuthenticatorDSN() string {
	return pgURL("authenticator", s.secrets[secAuthenticator], s.st.Ports.Postgres, "zsm")
}

// RedisURL is redis://:PASSWORD@127.0.0.1:PORT/0.
func (s *Stack) RedisURL() string {
	return fmt.Sprintf("redis://:%s@127.0.0.1:%d/0", s.secrets[secRedis], s.st.Ports.Redis)
}

// RedisPassword returns the Redis password.
func (s *Stack) RedisPassword() string { return s.secrets[secRedis] }

// KeyEncryptionKey is the hex key authsvc seals its private signing keys
// with; tests use it to sign tokens with the real key and attack one claim.
func (s *Stack) KeyEncryptionKey() string { return s.secrets[secKeyEncryptionKey] }

// LogFile returns a service's log file ("nginx": access and error log together).
func (s *Stack) LogFile(service string) string {
	return s.dir("logs", service+".log")
}

func pgURL(user, pw string, port int, db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", user, pw, port, db)
}

func (s *Stack) pidFile(name string) string { return s.dir("pids", name+".pid") }

func (s *Stack) service(name string) *ServiceInfo {
	si := s.st.Services[name]
	if si == nil {
		si = &ServiceInfo{}
		s.st.Services[name] = si
	}
	si.PidFile = s.pidFile(name)
	si.LogFile = s.LogFile(name)
	return si
}

func (s *Stack) binaryFor(name string) string {
	switch name {
	case Postgres:
		return s.st.Binaries.Postgres
	case Redis:
		return s.st.Binaries.RedisServer
	case Authsvc:
		return s.st.AuthsvcBinary
	case Postgrest:
		return s.st.Binaries.Postgrest
	case Nginx:
		return s.st.Binaries.Nginx
	}
	if _, ok := replicaIndex(name); ok {
		return s.st.AuthsvcBinary
	}
	return ""
}

func (s *Stack) validService(name string) error {
	for _, n := range s.services() {
		if n == name {
			return nil
		}
	}
	return fmt.Errorf("unknown service %q (want one of %v)", name, s.services())
}

// ReplicaName is the service name of authsvc replica i (1-based).
func ReplicaName(i int) string {
	if i <= 1 {
		return Authsvc
	}
	return fmt.Sprintf("%s-%d", Authsvc, i)
}

// replicaIndex is the inverse of ReplicaName.
func replicaIndex(name string) (int, bool) {
	if name == Authsvc {
		return 1, true
	}
	rest, ok := strings.CutPrefix(name, Authsvc+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	return i, err == nil && i >= 2
}

// Replicas is the number of authsvc replicas.
func (s *Stack) Replicas() int { return max(1, s.st.AuthsvcReplicas) }

// services lists this stack's services in start order.
func (s *Stack) services() []string {
	out := []string{Postgres, Redis}
	for i := 1; i <= s.Replicas(); i++ {
		out = append(out, ReplicaName(i))
	}
	return append(out, Postgrest, Nginx)
}

// ReplicaURL is the direct URL of authsvc replica i (1-based).
func (s *Stack) ReplicaURL(i int) string {
	return fmt.Sprintf("http://127.0.0.1:%d", s.replicaPort(i))
}

func (s *Stack) replicaPort(i int) int {
	if i <= 1 {
		return s.st.Ports.Authsvc
	}
	return s.st.AuthsvcExtraPorts[i-2]
}

// AdminURL is the loopback admin API of authsvc replica i (1-based).
func (s *Stack) AdminURL(i int) string {
	return fmt.Sprintf("http://127.0.0.1:%d", s.st.AdminPorts[i-1])
}

// AdminToken is the credential of the admin API.
func (s *Stack) AdminToken() string { return s.secrets[secAdminToken] }

// pidOf returns the live pid of a service (0 if not running / stale pid file).
func (s *Stack) pidOf(name string) int {
	pid := readPidFile(s.pidFile(name))
	if pid == 0 {
		if si := s.st.Services[name]; si != nil {
			pid = si.Pid
		}
	}
	bin := s.binaryFor(name)
	if pid == 0 || bin == "" || !isOurProcess(pid, bin) {
		return 0
	}
	return pid
}

// Running reports whether a service's process is alive.
func (s *Stack) Running(name string) bool { return s.pidOf(name) != 0 }

// Pid returns a service's pid (0 if not running).
func (s *Stack) Pid(name string) int { return s.pidOf(name) }

func (s *Stack) allRunning() bool {
	for _, n := range s.services() {
		if !s.Running(n) {
			return false
		}
	}
	return true
}

// Stop stops every service in reverse start order: SIGTERM (SIGINT for
// postgres, its fast shutdown) to the whole process group, SIGKILL after a
// grace period. Stale pid files are removed.
func (s *Stack) Stop(ctx context.Context) error {
	unlock, err := LockFile(ctx, lockPath(s.st.Dir))
	if err != nil {
		return err
	}
	defer unlock()
	return s.stopAll(ctx)
}

func (s *Stack) stopAll(ctx context.Context) error {
	var errs []error
	all := s.services()
	for i := len(all) - 1; i >= 0; i-- {
		if err := s.stopService(ctx, all[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// StopService stops one service (e.g. redis for a failure test).
func (s *Stack) StopService(ctx context.Context, name string) error {
	if err := s.validService(name); err != nil {
		return err
	}
	unlock, err := LockFile(ctx, lockPath(s.st.Dir))
	if err != nil {
		return err
	}
	defer unlock()
	return s.stopService(ctx, name)
}

func (s *Stack) stopService(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pid := readPidFile(s.pidFile(name))
	if si := s.st.Services[name]; pid == 0 && si != nil {
		pid = si.Pid
	}
	var err error
	if pid > 0 {
		// Kill the group if its leader is still ours, or if members of the
		// group (whose id is the leader's pid, as it was a session leader) survive.
		bin := s.binaryFor(name)
		if (bin != "" && isOurProcess(pid, bin)) || (!alive(pid) && len(treeMembers(pid)) > 0) {
			sig, grace := sigTerm, 10*time.Second
			if name == Postgres {
				sig, grace = sigInt, 30*time.Second
			}
			s.log.Info("stopping", "service", name, "pid", pid)
			if err = killGroup(ctx, pid, sig, grace); err != nil {
				err = fmt.Errorf("stop %s: %w", name, err)
			}
		}
	}
	if err == nil {
		os.Remove(s.pidFile(name))
		if si := s.st.Services[name]; si != nil {
			si.Pid = 0
		}
		if _, statErr := os.Stat(stateFilePath(s.st.Dir)); statErr == nil {
			if e := s.save(); e != nil {
				return e
			}
		}
	}
	return err
}

// StartService starts one stopped service again with the same config and
// waits until it is ready. Starting a running service is a no-op.
func (s *Stack) StartService(ctx context.Context, name string) error {
	if err := s.validService(name); err != nil {
		return err
	}
	unlock, err := LockFile(ctx, lockPath(s.st.Dir))
	if err != nil {
		return err
	}
	defer unlock()
	if s.Running(name) {
		return nil
	}
	return s.startService(ctx, name)
}

// RestartService stops and starts one service.
func (s *Stack) RestartService(ctx context.Context, name string) error {
	if err := s.StopService(ctx, name); err != nil {
		return err
	}
	return s.StartService(ctx, name)
}

func (s *Stack) startService(ctx context.Context, name string) error {
	switch name {
	case Postgres:
		return s.startPostgres(ctx)
	case Redis:
		return s.startRedis(ctx)
	case Authsvc:
		return s.startAuthsvc(ctx, 1)
	case Postgrest:
		return s.startPostgrest(ctx)
	case Nginx:
		return s.startNginx(ctx)
	}
	if i, ok := replicaIndex(name); ok && i <= s.Replicas() {
		return s.startAuthsvc(ctx, i)
	}
	return s.validService(name)
}

// recordStarted writes the pid file and stack.json for a freshly spawned service.
func (s *Stack) recordStarted(name string, pid int, port int, url string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	si := s.service(name)
	si.Pid = pid
	si.Port = port
	si.URL = url
	si.Binary = s.binaryFor(name)
	if err := writeFileAtomic(s.pidFile(name), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return err
	}
	return s.save()
}

// StopDir stops whatever runs in a state dir, from stack.json if present and
// otherwise from the pid files alone (used by `zsmstack down`).
func StopDir(ctx context.Context, dir string, log *slog.Logger) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := load(abs)
	if err != nil {
		if _, statErr := os.Stat(stateFilePath(abs)); statErr == nil {
			return err
		}
		// No stack.json: fall back to pid files, matching the known binary names.
		s = &Stack{st: State{Dir: abs, Services: map[string]*ServiceInfo{}}}
		s.st.Binaries = Binaries{Postgres: "postgres", RedisServer: "redis-server", Postgrest: "postgrest", Nginx: "nginx"}
		s.st.AuthsvcBinary = "authsvc"
	}
	s.log = log
	return s.Stop(ctx)
}

// DefaultDir is the state directory named name (e.g. "dev") for the checkout
// at repo: <repo>/.zsm/<name>. As root the services run as the service user,
// who cannot reach a checkout under a private directory (a 0700 home); then
// the state lives in /var/lib/zsm/<name>-<hash of repo> instead, the same
// for every call, so `up` and `down` agree.
func DefaultDir(repo, name string) string {
	local := filepath.Join(repo, ".zsm", name)
	if os.Geteuid() != 0 || worldSearchable(repo) {
		return local
	}
	h := sha256.Sum256([]byte(repo))
	return filepath.Join(string(filepath.Separator), "var", "lib", "zsm", fmt.Sprintf("%s-%x", name, h[:4]))
}

// worldSearchable reports whether every directory from path up to / has
// the o+x bit.
func worldSearchable(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	for dir := abs; ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if dir == filepath.Dir(dir) {
			return true
		}
	}
}

// PostgresDataDir is the PostgreSQL data directory (tests search its files,
// WAL included, for data that must never reach the server).
func (s *Stack) PostgresDataDir() string { return s.pgdata() }

// AuthsvcEnv is the environment authsvc replica i (1-based) runs with,
// secrets included: tests run `authsvc keys …` with it as an operator would.
func (s *Stack) AuthsvcEnv(i int) []string { return s.authsvcEnv(i) }
