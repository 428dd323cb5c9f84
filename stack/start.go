package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
)

// Start starts the stack in cfg.Dir and waits until every service is ready.
// If the stack already runs there it attaches to it (AlreadyRunning=true).
// On failure everything it started is stopped again.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	t0 := time.Now()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Dir == "" {
		return nil, errors.New("stack: Config.Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	unlock, err := LockFile(ctx, lockPath(dir))
	if err != nil {
		return nil, err
	}
	defer unlock()

	// Already running here? Attach. Partially running? Clean up first.
	if _, err := os.Stat(stateFilePath(dir)); err == nil {
		if old, err := load(dir); err == nil {
			old.log = log
			if old.allRunning() && httpOK(ctx, old.st.GatewayURL+"/healthz") == nil {
				log.Info("stack already running", "gateway", old.st.GatewayURL)
				old.AlreadyRunning = true
				return old, nil
			}
			for _, n := range Services {
				if old.Running(n) {
					log.Info("stack in state dir is only partly running; stopping the leftovers first")
					break
				}
			}
			if err := old.stopAll(ctx); err != nil {
				return nil, fmt.Errorf("clean up previous run: %w", err)
			}
		}
	}

	ra, err := resolveRunAs(ctx)
	if err != nil {
		return nil, err
	}
	repo := cfg.RepoRoot
	if repo == "" {
		wd, _ := os.Getwd()
		if repo, err = FindRepoRoot(wd); err != nil {
			return nil, err
		}
	}
	repo, _ = filepath.Abs(repo)
	cache := cfg.CacheDir
	if cache == "" {
		cache = os.Getenv("ZSM_CACHE_DIR")
	}
	if cache == "" {
		cache = filepath.Join(repo, ".zsm", "cache")
	}
	cache, _ = filepath.Abs(cache)
	// As root the services run as the service user, who must reach the
	// cached binaries. A checkout under a private directory (a CI clone in a
	// 0700 home, say) cannot be reached; fall back to a system cache then.
	if cfg.CacheDir == "" && os.Getenv("ZSM_CACHE_DIR") == "" && ra.checkTraversable(repo) != nil {
		cache = filepath.Join(string(filepath.Separator), "var", "cache", "zsm")
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("create cache dir: %w", err)
	}
	for _, p := range []string{dir, cache} {
		if err := ra.checkTraversable(p); err != nil {
			return nil, err
		}
	}
	if len(filepath.Join(dir, "run", ".s.PGSQL.65535")) > 100 {
		return nil, fmt.Errorf("state dir %s is too long for a unix socket path (max ~80 characters)", dir)
	}

	bins, err := EnsureBinaries(ctx, cache, log)
	if err != nil {
		return nil, err
	}

	// Ports.
	want := []*int{&cfg.GatewayPort, &cfg.AuthsvcPort, &cfg.PostgrestPort, &cfg.PostgrestAdminPort, &cfg.PostgresPort, &cfg.RedisPort}
	names := []string{"gateway (nginx)", "authsvc", "postgrest", "postgrest admin", "postgres", "redis"}
	var zero int
	for _, p := range want {
		if *p == 0 {
			zero++
		}
	}
	free, err := freePorts(zero)
	if err != nil {
		return nil, err
	}
	for i, p := range want {
		if *p == 0 {
			*p, free = free[0], free[1:]
		} else if !portFree(*p) {
			return nil, fmt.Errorf("port %d (%s) is already in use by another process; stop it or choose another port", *p, names[i])
		}
	}
	seen := map[int]string{}
	for i, p := range want {
		if o, dup := seen[*p]; dup {
			return nil, fmt.Errorf("port %d is configured for both %s and %s", *p, o, names[i])
		}
		seen[*p] = names[i]
	}

	if _, err := os.Stat(filepath.Join(dir, "pgdata", "PG_VERSION")); err == nil {
		if _, err := os.Stat(secretsPath(dir)); err != nil {
			return nil, fmt.Errorf("%s exists but %s is missing: the database passwords are lost; remove %s to start from scratch",
				filepath.Join(dir, "pgdata"), secretsPath(dir), dir)
		}
	}
	secrets, err := ensureSecrets(dir)
	if err != nil {
		return nil, err
	}
	if cfg.LoginRatePerSecond <= 0 {
		cfg.LoginRatePerSecond = DefaultLoginRatePerSecond
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = DefaultLoginBurst
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.CORSOrigins == nil {
		cfg.CORSOrigins = DefaultCORSOrigins
	}
	for _, o := range cfg.CORSOrigins {
		if !corsOrigin.MatchString(o) {
			return nil, fmt.Errorf("CORS origin %q is not scheme://host[:port]", o)
		}
	}
	ports := Ports{Gateway: cfg.GatewayPort, Authsvc: cfg.AuthsvcPort, Postgrest: cfg.PostgrestPort,
		PostgrestAdmin: cfg.PostgrestAdminPort, Postgres: cfg.PostgresPort, Redis: cfg.RedisPort}
	s := &Stack{
		secrets: secrets,
		ra:      ra,
		log:     log,
		st: State{
			Version:            1,
			Dir:                dir,
			RepoRoot:           repo,
			CacheDir:           cache,
			RunAs:              ra.name,
			GatewayURL:         fmt.Sprintf("http://127.0.0.1:%d", ports.Gateway),
			AuthsvcURL:         fmt.Sprintf("http://127.0.0.1:%d", ports.Authsvc),
			PostgrestURL:       fmt.Sprintf("http://127.0.0.1:%d", ports.Postgrest),
			PostgrestAdminURL:  fmt.Sprintf("http://127.0.0.1:%d", ports.PostgrestAdmin),
			PostgresDSN:        fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", ports.Postgres),
			AuthsvcDSN:         fmt.Sprintf("postgres://authsvc@127.0.0.1:%d/zsm?sslmode=disable", ports.Postgres),
			RedisAddr:          fmt.Sprintf("127.0.0.1:%d", ports.Redis),
			Ports:              ports,
			LoginRatePerSecond: cfg.LoginRatePerSecond,
			LoginBurst:         cfg.LoginBurst,
			CORSOrigins:        cfg.CORSOrigins,
			AuthsvcEnv:         cfg.AuthsvcEnv,
			Binaries:           bins,
			AuthsvcBinary:      filepath.Join(dir, "bin", "authsvc"),
			AuthsvcPrebuilt:    cfg.AuthsvcBinary,
			Services:           map[string]*ServiceInfo{},
			StartedAt:          time.Now().UTC(),
			ReadyTimeout:       cfg.ReadyTimeout,
		},
	}
	if cfg.RedisCluster {
		if err := s.allocateClusterPorts(seen); err != nil {
			return nil, err
		}
	}
	// Extra authsvc replicas and one admin port per replica.
	s.st.AuthsvcReplicas = max(1, cfg.AuthsvcReplicas)
	extra, err := freePorts(2*s.st.AuthsvcReplicas - 1)
	if err != nil {
		return nil, err
	}
	s.st.AuthsvcExtraPorts, s.st.AdminPorts = extra[:s.st.AuthsvcReplicas-1], extra[s.st.AuthsvcReplicas-1:]
	if err := s.makeDirs(); err != nil {
		return nil, err
	}
	if err := s.save(); err != nil {
		return nil, err
	}

	if err := s.startAll(ctx); err != nil {
		// Do not leak processes from a failed start.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if e := s.stopAll(stopCtx); e != nil {
			err = errors.Join(err, e)
		}
		return nil, err
	}
	log.Info("stack ready", "gateway", s.st.GatewayURL, "took", time.Since(t0).Round(time.Millisecond))
	return s, nil
}

func (s *Stack) makeDirs() error {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{s.st.Dir, 0o755}, {s.dir("logs"), 0o755}, {s.dir("pids"), 0o755}, {s.dir("bin"), 0o755},
		{s.dir("run"), 0o700}, {s.dir("redis"), 0o700}, {s.dir("postgrest"), 0o750},
		{s.dir("nginx"), 0o750}, {s.dir("nginx", "tmp"), 0o700},
	} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return err
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return err
		}
		if d.path != s.dir("bin") && d.path != s.dir("pids") {
			if err := s.ra.chown(d.path); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Stack) startAll(ctx context.Context) error {
	// Build authsvc while PostgreSQL initializes and starts.
	buildErr := make(chan error, 1)
	go func() { buildErr <- s.buildAuthsvc(ctx) }()

	err := s.initdb(ctx)
	if err == nil {
		err = s.startPostgres(ctx)
	}
	if err == nil {
		err = s.bootstrap(ctx)
	}
	if berr := <-buildErr; err == nil {
		err = berr
	}
	if err != nil {
		return err
	}
	if err := s.migrate(ctx); err != nil {
		return err
	}
	if err := s.setAuthenticatorPassword(ctx); err != nil {
		return err
	}
	for _, name := range s.services()[1:] {
		if err := s.startService(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------- helpers

func (s *Stack) baseEnv() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
	}
	return []string{"PATH=" + path, "HOME=" + s.st.Dir, "LANG=C.UTF-8", "TZ=UTC"}
}

func httpOK(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// waitReady polls check until it succeeds, the process dies or the deadline passes.
func (s *Stack) waitReady(ctx context.Context, name string, pid int, check func(context.Context) error) error {
	timeout := s.st.ReadyTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if err := check(ctx); err == nil {
			s.log.Info("ready", "service", name, "pid", pid)
			return nil
		} else {
			last = err
			var perm permanentError
			if errors.As(err, &perm) {
				return fmt.Errorf("%s: %w", name, perm.err)
			}
		}
		if pid > 0 && !alive(pid) {
			return fmt.Errorf("%s exited during startup (last check: %v); tail of %s:\n%s",
				name, last, s.LogFile(name), tailFile(s.LogFile(name), 30))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", name, ctx.Err())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v; tail of %s:\n%s",
				name, timeout, last, s.LogFile(name), tailFile(s.LogFile(name), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// permanentError stops waitReady at once (e.g. a wrong password).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }

// ErrPortInUse means a port the stack was to listen on was taken. Ports
// picked at random are free when picked; another process (a test's
// outgoing connection, say) may take one before the service binds it.
var ErrPortInUse = errors.New("port already in use by another process")

func (s *Stack) checkPort(name string, port int) error {
	if !portFree(port) {
		return fmt.Errorf("port %d (%s): %w", port, name, ErrPortInUse)
	}
	return nil
}

func (s *Stack) writeServiceFile(path string, data []byte, mode os.FileMode) error {
	if err := writeFileAtomic(path, data, mode); err != nil {
		return err
	}
	return s.ra.chown(path)
}

func (s *Stack) runAsService(ctx context.Context, env []string, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Dir = s.st.Dir
	cmd.SysProcAttr = s.ra.sysProcAttr()
	return cmd.CombinedOutput()
}

func sqlQuote(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// ---------------------------------------------------------------- postgres

func (s *Stack) pgdata() string { return s.dir("pgdata") }

func (s *Stack) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.pgdata(), "PG_VERSION")); err == nil {
		return nil
	}
	if _, err := os.Stat(s.pgdata()); err == nil {
		// A half-done initdb from an interrupted first start.
		if err := os.RemoveAll(s.pgdata()); err != nil {
			return err
		}
	}
	s.log.Info("initializing PostgreSQL data directory", "dir", s.pgdata())
	pw := s.dir("run", "initdb-pw")
	if err := s.writeServiceFile(pw, []byte(s.secrets[secPostgres]+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pw)
	out, err := s.runAsService(ctx, append(s.baseEnv(), "LC_ALL=C"), s.st.Binaries.Initdb,
		"-D", s.pgdata(), "-U", "postgres", "--pwfile="+pw, "--auth-local=scram-sha-256",
		"--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions")
	if err != nil {
		return fmt.Errorf("initdb failed: %w\n%s", err, TailLines(string(out), 30))
	}
	hba := "# generated by the zsm stack runner\n" +
		"# TYPE  DATABASE  USER      ADDRESS        METHOD\n" +
		"local   all       postgres                 scram-sha-256\n" +
		"host    all       all       127.0.0.1/32   scram-sha-256\n" +
		"host    all       all       ::1/128        scram-sha-256\n"
	if err := s.writeServiceFile(filepath.Join(s.pgdata(), "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.pgdata(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString("\n# zsm stack runner settings (rewritten on every start)\ninclude_if_exists = 'zsm.conf'\n")
	return err
}

func (s *Stack) startPostgres(ctx context.Context) error {
	port := s.st.Ports.Postgres
	if err := s.checkPort("postgres", port); err != nil {
		return err
	}
	conf := fmt.Sprintf(`# generated by the zsm stack runner on every start
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = %s
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
shared_buffers = '128MB'
max_connections = 100
fsync = on
logging_collector = off
log_destination = 'stderr'
log_statement = 'none'
log_min_duration_statement = -1
log_parameter_max_length = 0
log_parameter_max_length_on_error = 0
log_line_prefix = '%%m [%%p] %%q%%u@%%d '
`, port, sqlQuote(s.dir("run")))
	if err := s.writeServiceFile(filepath.Join(s.pgdata(), "zsm.conf"), []byte(conf), 0o600); err != nil {
		return err
	}
	pid, err := spawn(s.st.Binaries.Postgres, []string{"-D", s.pgdata()}, append(s.baseEnv(), "LC_ALL=C"),
		s.st.Dir, s.LogFile(Postgres), s.ra)
	if err != nil {
		return err
	}
	if err := s.recordStarted(Postgres, pid, port, ""); err != nil {
		return err
	}
	return s.waitReady(ctx, Postgres, pid, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.SuperuserDSN())
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "28P01" {
				return permanentError{fmt.Errorf("superuser password rejected: %s/secrets.env does not match the data directory "+
					"(remove %s to start from scratch): %w", s.st.Dir, s.st.Dir, err)}
			}
			return err
		}
		defer conn.Close(ctx)
		return conn.Ping(ctx)
	})
}

func (s *Stack) superConn(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, pgURL("postgres", s.secrets[secPostgres], s.st.Ports.Postgres, db))
}

// bootstrap creates role authsvc and database zsm (idempotent).
func (s *Stack) bootstrap(ctx context.Context) error {
	conn, err := s.superConn(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("bootstrap: connect as superuser: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authsvc')`).Scan(&exists); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	if _, err := conn.Exec(ctx, verb+` ROLE authsvc WITH LOGIN CREATEROLE NOSUPERUSER PASSWORD `+sqlQuote(s.secrets[secAuthsvcDB])); err != nil {
		return fmt.Errorf("bootstrap: %s role authsvc: %w", strings.ToLower(verb), err)
	}
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'zsm')`).Scan(&exists); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE DATABASE zsm OWNER authsvc ENCODING 'UTF8' TEMPLATE template0`); err != nil {
			return fmt.Errorf("bootstrap: create database zsm: %w", err)
		}
	}
	// authsvc publishes its JWKS with ALTER ROLE authenticator SET pgrst.jwt_secret;
	// setting that placeholder needs this grant from a superuser (see sql/embed.go).
	if _, err := conn.Exec(ctx, `GRANT SET ON PARAMETER pgrst.jwt_secret TO authsvc`); err != nil {
		return fmt.Errorf("bootstrap: grant set on parameter pgrst.jwt_secret: %w", err)
	}
	return nil
}

func (s *Stack) setAuthenticatorPassword(ctx context.Context) error {
	conn, err := s.superConn(ctx, "zsm")
	if err != nil {
		return fmt.Errorf("connect as superuser: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator')`).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return errors.New("role authenticator does not exist after `authsvc migrate up` (the migrations must create it)")
	}
	if _, err := conn.Exec(ctx, `ALTER ROLE authenticator PASSWORD `+sqlQuote(s.secrets[secAuthenticator])); err != nil {
		return fmt.Errorf("set authenticator password: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------- authsvc

func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func (s *Stack) buildAuthsvc(ctx context.Context) error {
	t0 := time.Now()
	out := s.st.AuthsvcBinary
	tmp := out + ".build"
	if s.st.AuthsvcPrebuilt != "" {
		b, err := os.ReadFile(s.st.AuthsvcPrebuilt)
		if err != nil {
			return fmt.Errorf("prebuilt authsvc: %w", err)
		}
		if err := os.WriteFile(tmp, b, 0o755); err != nil {
			return err
		}
	} else {
		// Build straight onto the target (nothing runs it during Start): go
		// then skips relinking when the existing binary is up to date.
		cmd := exec.CommandContext(ctx, goBinary(), "build", "-o", out, "./cmd/authsvc")
		cmd.Dir = s.st.RepoRoot
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("build authsvc (go build ./cmd/authsvc in %s): %w\n%s", s.st.RepoRoot, err, TailLines(string(b), 40))
		}
		s.log.Info("built authsvc", "binary", out, "took", time.Since(t0).Round(time.Millisecond))
		return os.Chmod(out, 0o755)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	s.log.Info("built authsvc", "binary", out, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// authsvcEnv is the environment of authsvc replica i (1-based).
func (s *Stack) authsvcEnv(i int) []string {
	env := append(s.baseEnv(), s.redisEnv()...)
	if len(s.st.AdminPorts) >= i {
		env = append(env,
			"AUTHSVC_ADMIN_LISTEN="+fmt.Sprintf("127.0.0.1:%d", s.st.AdminPorts[i-1]),
			"AUTHSVC_ADMIN_TOKEN="+s.secrets[secAdminToken])
	}
	env = append(env,
		"AUTHSVC_POSTGREST_URL="+s.st.PostgrestURL,
		"AUTHSVC_LISTEN="+fmt.Sprintf("127.0.0.1:%d", s.replicaPort(i)),
		"AUTHSVC_DATABASE_URL="+s.AuthsvcDSN(),
		"AUTHSVC_ISSUER="+s.st.GatewayURL,
		"AUTHSVC_AUDIENCE=zsm-api",
		"AUTHSVC_SERVER_SECRET="+s.secrets[secServerSecret],
		"AUTHSVC_KEY_ENCRYPTION_KEY="+s.secrets[secKeyEncryptionKey],
		"AUTHSVC_TRUSTED_PROXIES=127.0.0.1/32,::1/128",
		"AUTHSVC_LOG_LEVEL=info",
	)
	for k, v := range s.st.AuthsvcEnv {
		env = append(env, k+"="+v) // later entries win in os/exec (dedupEnv keeps the last)
	}
	return env
}

func (s *Stack) migrate(ctx context.Context) error {
	out, err := s.runAsService(ctx, s.authsvcEnv(1), s.st.AuthsvcBinary, "migrate", "up")
	if err != nil {
		return fmt.Errorf("authsvc migrate up: %w\n%s", err, TailLines(string(out), 30))
	}
	s.log.Info("migrations applied")
	return nil
}

func (s *Stack) startAuthsvc(ctx context.Context, i int) error {
	name, port, url := ReplicaName(i), s.replicaPort(i), s.ReplicaURL(i)
	if err := s.checkPort(name, port); err != nil {
		return err
	}
	pid, err := spawn(s.st.AuthsvcBinary, []string{"serve"}, s.authsvcEnv(i), s.st.Dir, s.LogFile(name), s.ra)
	if err != nil {
		return err
	}
	if err := s.recordStarted(name, pid, port, url); err != nil {
		return err
	}
	return s.waitReady(ctx, name, pid, func(ctx context.Context) error {
		return httpOK(ctx, url+"/readyz")
	})
}

// ---------------------------------------------------------------- redis

func (s *Stack) startRedis(ctx context.Context) error {
	if s.st.RedisCluster {
		return s.startRedisCluster(ctx)
	}
	port := s.st.Ports.Redis
	if err := s.checkPort("redis", port); err != nil {
		return err
	}
	// The password goes into a 0600 config file, not argv (visible in ps).
	conf := fmt.Sprintf(`# generated by the zsm stack runner
bind 127.0.0.1
port %d
protected-mode yes
daemonize no
save ""
appendonly no
dir %s
logfile ""
requirepass %s
`, port, strconv.Quote(s.dir("redis")), s.secrets[secRedis])
	confPath := s.dir("redis", "redis.conf")
	if err := s.writeServiceFile(confPath, []byte(conf), 0o600); err != nil {
		return err
	}
	pid, err := spawn(s.st.Binaries.RedisServer, []string{confPath}, s.baseEnv(), s.dir("redis"), s.LogFile(Redis), s.ra)
	if err != nil {
		return err
	}
	if err := s.recordStarted(Redis, pid, port, ""); err != nil {
		return err
	}
	return s.waitReady(ctx, Redis, pid, func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: s.st.RedisAddr, Password: s.secrets[secRedis],
			DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	})
}

// ---------------------------------------------------------------- postgrest

func (s *Stack) startPostgrest(ctx context.Context) error {
	port, admin := s.st.Ports.Postgrest, s.st.Ports.PostgrestAdmin
	if err := s.checkPort("postgrest", port); err != nil {
		return err
	}
	if err := s.checkPort("postgrest admin", admin); err != nil {
		return err
	}
	src, err := os.ReadFile(filepath.Join(s.st.RepoRoot, "postgrest", "postgrest.conf"))
	if err != nil {
		return fmt.Errorf("read postgrest config: %w", err)
	}
	conf := s.dir("postgrest", "postgrest.conf")
	if err := s.writeServiceFile(conf, src, 0o640); err != nil {
		return err
	}
	env := append(s.baseEnv(),
		"PGRST_DB_URI="+s.AuthenticatorDSN(),
		"PGRST_SERVER_HOST=127.0.0.1",
		"PGRST_SERVER_PORT="+strconv.Itoa(port),
		"PGRST_ADMIN_SERVER_PORT="+strconv.Itoa(admin),
		// The OpenAPI document at /rest/ names the gateway, the only address
		// clients reach, not PostgREST's own (tests/integration checks it).
		"PGRST_OPENAPI_SERVER_PROXY_URI="+s.st.GatewayURL+"/rest",
	)
	pid, err := spawn(s.st.Binaries.Postgrest, []string{conf}, env, s.dir("postgrest"), s.LogFile(Postgrest), s.ra)
	if err != nil {
		return err
	}
	if err := s.recordStarted(Postgrest, pid, port, s.st.PostgrestURL); err != nil {
		return err
	}
	return s.waitReady(ctx, Postgrest, pid, func(ctx context.Context) error {
		return httpOK(ctx, s.st.PostgrestAdminURL+"/ready")
	})
}

// ---------------------------------------------------------------- nginx

// NginxTemplateData is what nginx/gateway.conf.tmpl is rendered with.
type NginxTemplateData struct {
	GatewayPort, AuthsvcPort, PostgrestPort int
	AuthsvcExtraPorts                       []int // replicas 2..N
	Prefix, PidFile, LogFile, TempDir       string
	LoginRatePerSecond, LoginBurst          int
	CORSOrigins                             []string // each matches corsOrigin, so it is safe inside the config's quotes
}

// corsOrigin is what an Origin header holds: a scheme, a host and maybe a
// port, nothing an nginx string could be broken out of.
var corsOrigin = regexp.MustCompile(`^[a-z][a-z0-9+.-]*://[A-Za-z0-9.-]+(:[0-9]{1,5})?$`)

// corsOrigins are the state's origins, checked again (stack.json may have
// been edited by hand); a stack saved before they existed gets the defaults.
func (s *Stack) corsOrigins() ([]string, error) {
	if s.st.CORSOrigins == nil {
		return DefaultCORSOrigins, nil
	}
	for _, o := range s.st.CORSOrigins {
		if !corsOrigin.MatchString(o) {
			return nil, fmt.Errorf("CORS origin %q in stack.json is not scheme://host[:port]", o)
		}
	}
	return s.st.CORSOrigins, nil
}

func (s *Stack) nginxArgs(conf string) []string {
	return []string{"-p", s.dir("nginx") + "/", "-c", conf, "-e", s.LogFile(Nginx)}
}

// RenderNginxConfig renders the gateway template into the state dir and
// checks it with `nginx -t` (as the service user); it returns the path.
func (s *Stack) RenderNginxConfig(ctx context.Context) (string, error) {
	tmplPath := filepath.Join(s.st.RepoRoot, "nginx", "gateway.conf.tmpl")
	src, err := os.ReadFile(tmplPath)
	if err != nil {
		return "", fmt.Errorf("read nginx template: %w", err)
	}
	tmpl, err := template.New("gateway").Option("missingkey=error").Parse(string(src))
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", tmplPath, err)
	}
	origins, err := s.corsOrigins()
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, NginxTemplateData{
		GatewayPort: s.st.Ports.Gateway, AuthsvcPort: s.st.Ports.Authsvc, PostgrestPort: s.st.Ports.Postgrest,
		AuthsvcExtraPorts: s.st.AuthsvcExtraPorts,
		Prefix:            s.dir("nginx"), PidFile: s.dir("nginx", "nginx.pid"), LogFile: s.LogFile(Nginx),
		TempDir: s.dir("nginx", "tmp"), LoginRatePerSecond: s.st.LoginRatePerSecond, LoginBurst: s.st.LoginBurst,
		CORSOrigins: origins,
	}); err != nil {
		return "", fmt.Errorf("render %s: %w", tmplPath, err)
	}
	conf := s.dir("nginx", "gateway.conf")
	if err := s.writeServiceFile(conf, buf.Bytes(), 0o640); err != nil {
		return "", err
	}
	// Create the log file as the service user before nginx -t opens it.
	if f, err := os.OpenFile(s.LogFile(Nginx), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640); err == nil {
		f.Close()
		if err := s.ra.chown(s.LogFile(Nginx)); err != nil {
			return "", err
		}
	}
	out, err := s.runAsService(ctx, s.baseEnv(), s.st.Binaries.Nginx, append([]string{"-t", "-q"}, s.nginxArgs(conf)...)...)
	if err != nil {
		return "", fmt.Errorf("nginx -t rejected %s: %w\n%s", conf, err, TailLines(string(out), 20))
	}
	return conf, nil
}

func (s *Stack) startNginx(ctx context.Context) error {
	port := s.st.Ports.Gateway
	if err := s.checkPort("gateway (nginx)", port); err != nil {
		return err
	}
	conf, err := s.RenderNginxConfig(ctx)
	if err != nil {
		return err
	}
	// Fresh temp dirs owned by the service user (an `nginx -t` run by root by
	// hand would have created them owned by nobody).
	tmp := s.dir("nginx", "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if err := s.ra.chown(tmp); err != nil {
		return err
	}
	pid, err := spawn(s.st.Binaries.Nginx, s.nginxArgs(conf), s.baseEnv(), s.dir("nginx"), s.LogFile(Nginx), s.ra)
	if err != nil {
		return err
	}
	if err := s.recordStarted(Nginx, pid, port, s.st.GatewayURL); err != nil {
		return err
	}
	return s.waitReady(ctx, Nginx, pid, func(ctx context.Context) error {
		return httpOK(ctx, s.st.GatewayURL+"/healthz")
	})
}
