// Command authsvc is zsm's authentication service: SRP-6a sign-up and login,
// sessions and refresh tokens, and the signing keys PostgREST trusts.
//
//	authsvc serve                    run the HTTP API
//	authsvc migrate up|down [N|--all]|version
//	authsvc keys list                show the signing keys (never private halves)
//	authsvc audit [--user ID] [--since DURATION] [--limit N] [--json]
//
// Configuration comes from the environment; see authsvc/config.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/labstack/echo/v4"

	"zsm.dev/zsm/authsvc/admin"
	"zsm.dev/zsm/authsvc/config"
	"zsm.dev/zsm/authsvc/events"
	"zsm.dev/zsm/authsvc/handshake"
	"zsm.dev/zsm/authsvc/httpapi"
	"zsm.dev/zsm/authsvc/metrics"
	"zsm.dev/zsm/authsvc/migrate"
	"zsm.dev/zsm/authsvc/ratelimit"
	"zsm.dev/zsm/authsvc/rotation"
	"zsm.dev/zsm/authsvc/session"
	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/authsvc/store"
)

const usage = `usage:
  authsvc serve
  authsvc migrate up | down [N | --all] | version
  authsvc keys list | rotate | revoke KID
  authsvc audit [--user ID] [--since DURATION] [--limit N] [--json]
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "authsvc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv config.Getenv, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := config.FromEnv(getenv, true)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})))
	case "migrate":
		cfg, err := config.FromEnv(getenv, false)
		if err != nil {
			return err
		}
		return migrateCmd(cfg, args[1:], stdout)
	case "keys":
		cfg, err := config.FromEnv(getenv, false)
		if err != nil {
			return err
		}
		return keysCmd(ctx, cfg, args[1:], stdout)
	case "audit":
		cfg, err := config.FromEnv(getenv, false)
		if err != nil {
			return err
		}
		return auditCmd(ctx, cfg, args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func migrateCmd(cfg config.Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: authsvc migrate up | down [N | --all] | version")
	}
	m, err := migrate.Open(string(cfg.DatabaseURL))
	if err != nil {
		return err
	}
	defer m.Close()
	switch args[0] {
	case "up":
		err = m.Up()
	case "down":
		steps := 1
		if len(args) > 1 {
			if args[1] == "--all" {
				steps = -1
			} else if steps, err = strconv.Atoi(args[1]); err != nil || steps < 1 {
				return errors.New("migrate down takes a positive number of steps or --all")
			}
		}
		err = m.Down(steps)
	case "version":
	default:
		return fmt.Errorf("unknown migrate command %q", args[0])
	}
	if err != nil {
		return err
	}
	v, dirty, err := m.Version()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "version %d", v)
	if dirty {
		fmt.Fprint(stdout, " (dirty: a migration failed half-way; fix it by hand, then force the version)")
	}
	fmt.Fprintln(stdout)
	return nil
}

func keysCmd(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	usage := errors.New("usage: authsvc keys list | rotate | revoke KID")
	if len(args) == 0 {
		return usage
	}
	st, err := store.Open(ctx, string(cfg.DatabaseURL))
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetSessionIdleTTL(cfg.SessionIdleTTL)
	rot := rotator(cfg, st, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if args[0] != "list" && (len(cfg.KeyEncryptionKey) == 0 || cfg.Issuer == "") {
		return errors.New("rotating or revoking keys needs AUTHSVC_KEY_ENCRYPTION_KEY and AUTHSVC_ISSUER, as for serve")
	}
	switch {
	case args[0] == "list" && len(args) == 1:
	case args[0] == "rotate" && len(args) == 1:
		res, err := rot.Rotate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rotated: %s is current (was %s); %s is published as next\n", res.Current, orDash(res.Retired), res.Next)
	case args[0] == "revoke" && len(args) == 2:
		if err := rot.Revoke(ctx, args[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s: it is published nowhere and its tokens are refused\n", args[1])
	default:
		return usage
	}
	keys, err := st.SigningKeys(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KID\tSTATE\tALG\tCREATED\tPUBLISHED\tACTIVATED\tRETIRED\tREMOVED")
	for _, k := range keys {
		state := k.State
		if k.Revoked {
			state += " (revoked)"
		}
		fmt.Fprintf(w, "%s\t%s\tEdDSA\t%s\t%s\t%s\t%s\t%s\n", k.KID, state, k.CreatedAt.UTC().Format(time.RFC3339),
			stamp(k.PublishedAt), stamp(k.ActivatedAt), stamp(k.RetiredAt), stamp(k.RemovedAt))
	}
	return w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rotator builds the signing-key rotator from the configuration.
func rotator(cfg config.Config, st *store.Store, log *slog.Logger) *rotation.Rotator {
	r := &rotation.Rotator{
		Keys: st, KEK: cfg.KeyEncryptionKey, Issuer: cfg.Issuer, Audience: cfg.Audience,
		AccessTTL: cfg.AccessTTL, PublishDelay: cfg.KeyPublishDelay, Log: log,
		Audit: func(ctx context.Context, t *store.KeyTx, event, kid string) error {
			return t.Audit(ctx, store.AuditEvent{Type: event, Detail: map[string]any{"kid": kid}})
		},
	}
	if cfg.PostgrestURL != "" {
		r.Prober = &rotation.HTTPProber{URL: cfg.PostgrestURL, Issuer: cfg.Issuer, Audience: cfg.Audience, KEK: cfg.KeyEncryptionKey}
	}
	return r
}

// eventsConfig builds the events worker's settings from the configuration.
func eventsConfig(cfg config.Config, log *slog.Logger) events.Config {
	w := cfg.Webhooks
	return events.Config{
		Timeout: w.Timeout, RetryBase: w.RetryBase, RetryMax: w.RetryMax, MaxAttempts: w.MaxAttempts,
		DisableAfter: w.DisableAfter, Concurrency: w.Concurrency, Poll: w.Poll, Retention: w.Retention,
		AllowHTTP: w.AllowHTTP, AllowNets: w.AllowNets, Log: log,
	}
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func redisClient(cfg config.Config) (redis.UniversalClient, error) {
	if len(cfg.RedisAddrs) > 0 {
		return redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs: cfg.RedisAddrs, Password: string(cfg.RedisPassword), IsClusterMode: true,
			DialTimeout: 2 * time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		}), nil
	}
	opt, err := redis.ParseURL(string(cfg.RedisURL))
	if err != nil {
		return nil, errors.New("AUTHSVC_REDIS_URL cannot be parsed")
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: []string{opt.Addr}, Password: opt.Password, Username: opt.Username, DB: opt.DB,
		DialTimeout: 2 * time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	}), nil
}

func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	for _, w := range cfg.Warnings {
		log.Warn("configuration", "warning", w)
	}
	st, err := store.Open(ctx, string(cfg.DatabaseURL))
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetSessionIdleTTL(cfg.SessionIdleTTL)
	rdb, err := redisClient(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()

	hsKey, err := srplogin.HandshakeKey(cfg.ServerSecret)
	if err != nil {
		return err
	}
	hs, err := handshake.New(rdb, hsKey, cfg.HandshakeTTL)
	if err != nil {
		return err
	}
	login, err := srplogin.New(st, hs, cfg.ServerSecret)
	if err != nil {
		return err
	}
	sg := signer.New(cfg.Issuer, cfg.Audience, cfg.AccessTTL, cfg.KeyEncryptionKey)

	// The keys must be loaded and published before tokens are issued. If the
	// database is not up yet, keep trying in the background; /readyz says 503
	// until it worked.
	loaded := make(chan struct{})
	go func() {
		for delay := 250 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
			err := rotator(cfg, st, log).Bootstrap(ctx)
			if err == nil {
				err = sg.Reload(ctx, st)
			}
			if err == nil {
				log.Info("signing keys loaded and JWKS published to PostgREST")
				close(loaded)
				return
			}
			log.Warn("loading signing keys failed; retrying", "err", err, "retry_in", delay.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
		}
	}()

	// Every replica follows key changes made by any other (LISTEN/NOTIFY),
	// and takes part in pruning and scheduled rotation.
	go func() {
		<-loaded
		st.ListenKeys(ctx, func() {
			if err := sg.Reload(ctx, st); err != nil {
				log.Warn("reloading signing keys failed", "err", err)
			}
		})
	}()
	rot := rotator(cfg, st, log)
	go func() {
		<-loaded
		rot.Maintain(ctx, cfg.KeyRotationInterval)
	}()
	// Every replica delivers webhooks and raises rotation reminders; the
	// database shares the work out (docs/webhooks.md).
	ev, err := events.Open(ctx, string(cfg.DatabaseURL), eventsConfig(cfg, log))
	if err != nil {
		return err
	}
	defer ev.Close()
	go ev.Run(ctx)
	mx := metrics.New(sg.Keys)
	sessions := session.New(st, sg, cfg.SessionTTL, log)
	sessions.OnReuse = mx.Reuse.Inc

	api := &httpapi.Server{
		Login:    login,
		Sessions: sessions,
		Signer:   sg,
		Keys:     st,
		Limiter:  ratelimit.New(rdb),
		Attempts: ratelimit.NewAttempts(rdb, cfg.LoginFailures),
		Limits: httpapi.Limits{
			LoginPerIP: cfg.LoginRatePerIP, SignupPerIP: cfg.SignupRatePerIP,
			IPv4Prefix: cfg.RateIPv4Prefix, IPv6Prefix: cfg.RateIPv6Prefix,
		},
		Ready: map[string]httpapi.Checker{
			"postgres": st.Ping,
			"redis":    func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
			"signing_keys": func(context.Context) error {
				select {
				case <-loaded:
					return nil
				default:
					return errors.New("signing keys not loaded yet")
				}
			},
		},
	}
	api.Middleware = []echo.MiddlewareFunc{mx.Middleware}
	api.JWKSMaxAge = min(cfg.KeyPublishDelay/2, 5*time.Minute)
	if cfg.AdminListen != "" {
		adm := &admin.Server{
			Rotator: rot, Keys: st.SigningKeys, Metrics: mx.Handler(), Token: []byte(cfg.AdminToken), Log: log,
			Ready: func(ctx context.Context) error { return errors.Join(st.Ping(ctx), rdb.Ping(ctx).Err()) },
		}
		adminSrv := &http.Server{Addr: cfg.AdminListen, Handler: adm.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := adminSrv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin listener failed", "err", err)
			}
		}()
		defer adminSrv.Close()
		log.Info("admin API listening", "addr", cfg.AdminListen)
	}
	srv := &http.Server{
		Addr:              cfg.Listen,
		Handler:           api.Handler(log, cfg.TrustedProxies),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("authsvc listening", "addr", cfg.Listen, "issuer", cfg.Issuer, "audience", cfg.Audience)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
