// Package authsvc assembles zsm's authentication service from its parts:
// Serve runs it (the HTTP API, the admin listener, the signing-key
// lifecycle and the events worker) and Migrate, Keys and Audit are the
// operator's commands. cmd/authsvc only reads the command line and the
// environment and calls these.
package authsvc

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"zsm.dev/zsm/authsvc/admin"
	"zsm.dev/zsm/authsvc/config"
	"zsm.dev/zsm/authsvc/events"
	"zsm.dev/zsm/authsvc/handshake"
	"zsm.dev/zsm/authsvc/httpapi"
	"zsm.dev/zsm/authsvc/jwtcache"
	"zsm.dev/zsm/authsvc/machine"
	"zsm.dev/zsm/authsvc/metrics"
	"zsm.dev/zsm/authsvc/ratelimit"
	"zsm.dev/zsm/authsvc/session"
	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/authsvc/store"
)

// rotator builds the signing-key rotator from the configuration.
func rotator(cfg config.Config, st *store.Store, log *slog.Logger) *signer.Rotator {
	r := &signer.Rotator{
		Keys: st, KEK: cfg.KeyEncryptionKey, Issuer: cfg.Issuer, Audience: cfg.Audience,
		AccessTTL: cfg.AccessTTL, PublishDelay: cfg.KeyPublishDelay, Log: log,
	}
	if cfg.PostgrestURL != "" {
		r.Prober = &signer.HTTPProber{URL: cfg.PostgrestURL, Issuer: cfg.Issuer, Audience: cfg.Audience, KEK: cfg.KeyEncryptionKey}
	}
	return r
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

// Serve runs the service until ctx ends: the public API on cfg.Listen, the
// admin listener if configured, the signing keys (loaded, followed across
// replicas, pruned and rotated) and the events worker. It returns when
// the listener fails or after a graceful shutdown.
func Serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
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
	login, err := srplogin.New(st, st, hs, cfg.ServerSecret)
	if err != nil {
		return err
	}
	sg := signer.New(cfg.Issuer, cfg.Audience, cfg.AccessTTL, cfg.KeyEncryptionKey)
	mx := metrics.New(sg.Keys)
	if cfg.PostgrestURL != "" {
		// Every token issued is replayed to PostgREST once it has
		// expired, which drops it from PostgREST's JWT cache (12.0.2
		// never purges it by itself).
		evictor := &jwtcache.Evictor{URL: cfg.PostgrestURL, Log: log}
		sg.Track(evictor)
		go evictor.Run(ctx)
		mx.JWTCache(evictor)
	}

	// The keys must be loaded and published before tokens are issued. If the
	// database is not up yet, keep trying in the background; /readyz says 503
	// until it worked.
	loaded := make(chan struct{})
	go func() {
		for delay := 250 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
			err := rotator(cfg, st, log).Load(ctx, sg)
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
	ev, err := events.Open(ctx, string(cfg.DatabaseURL), events.Config{Webhooks: cfg.Webhooks, Log: log})
	if err != nil {
		return err
	}
	defer ev.Close()
	go ev.Run(ctx)
	sessions, err := session.New(st, st, sg, cfg.SessionTTL, log)
	if err != nil {
		return err
	}
	sessions.OnReuse = mx.Reuse.Inc
	machines, err := machine.New(st, handshake.NewNonces(rdb, cfg.HandshakeTTL), sg, cfg.Audience, log)
	if err != nil {
		return err
	}

	api := &httpapi.Server{
		Login:    login,
		Sessions: sessions,
		Machine:  machines,
		Signer:   sg,
		Limiter:  ratelimit.New(rdb),
		Attempts: ratelimit.NewAttempts(rdb, cfg.LoginFailures),
		Limits: httpapi.Limits{
			LoginPerIP: cfg.LoginRatePerIP, SignupPerIP: cfg.SignupRatePerIP,
			MachinePerIP: cfg.MachineLoginRatePerIP, MachinePerToken: cfg.MachineLoginRatePerToken,
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
