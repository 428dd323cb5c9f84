// Package config reads authsvc's configuration from the environment, once, and
// reports every problem it finds together rather than the first one.
//
// Every secret may also be given as a file: AUTHSVC_X_FILE names a file whose
// content (without a trailing newline) is the value of AUTHSVC_X. Secrets are
// held in the Secret type, which never prints its value.
package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"zsm.dev/zsm/authsvc/ratelimit"
)

// Secret holds key material. Its String, GoString and LogValue methods
// redact it, so it cannot leak through fmt, %v or slog by accident.
type Secret []byte

func (Secret) String() string                 { return "[redacted]" }
func (Secret) GoString() string               { return "[redacted]" }
func (Secret) LogValue() slog.Value           { return slog.StringValue("[redacted]") }
func (s Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Format redacts under every verb, %d and %x included, not only the string
// verbs that use String.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// Config is authsvc's whole configuration.
type Config struct {
	Listen           string         // host:port of the public API (behind nginx)
	DatabaseURL      Secret         // role authsvc; holds a password
	RedisURL         Secret         // one node: redis://…; empty when RedisAddrs is set
	RedisAddrs       []string       // Redis Cluster seed nodes
	RedisPassword    Secret         // with RedisAddrs
	Issuer           string         // the iss claim; the gateway's public URL
	Audience         string         // the aud claim; PostgREST's jwt-aud
	ServerSecret     Secret         // >= 32 bytes: seals SRP handshakes, derives fake salts
	KeyEncryptionKey Secret         // 32 bytes: seals private signing keys in the database
	TrustedProxies   []netip.Prefix // peers whose X-Zsm-Client-Ip header is believed

	AccessTTL      time.Duration // lifetime of an access token, at most 15 minutes
	SessionTTL     time.Duration // absolute lifetime of a session (refreshes never extend it)
	SessionIdleTTL time.Duration // a session not logged into or refreshed this long is dead
	HandshakeTTL   time.Duration // lifetime of SRP handshake state, at most 60 s

	// Rate limits count a client address by its prefix: an IPv6 client
	// usually owns a whole /64, and an IPv4 network may be counted as one.
	RateIPv4Prefix  int // IPv4 prefix length (32: every address on its own)
	RateIPv6Prefix  int // IPv6 prefix length (64: a subscriber's network)
	LoginRatePerIP  int // login and password-change starts per minute per address prefix (params, refresh, logout: 4x)
	SignupRatePerIP int // sign-ups per minute per address prefix
	// Machine token logins: challenges, and logins, per minute, each per
	// address prefix and per token id.
	MachineLoginRatePerIP, MachineLoginRatePerToken int
	// LoginFailures bounds attempts without a correct proof, per identity
	// and per identity and address prefix (docs/auth.md).
	LoginFailures ratelimit.FailurePolicy

	LogLevel slog.Level

	// Signing keys.
	KeyPublishDelay     time.Duration // how long a next key is published before it signs
	KeyRotationInterval time.Duration // 0: no automatic rotation
	PostgrestURL        string        // for probing PostgREST after a key change and evicting expired tokens from its JWT cache; "" skips both

	// The admin listener: loopback only, admin token required.
	AdminListen string
	AdminToken  Secret

	// Webhooks and events (authsvc/events, docs/webhooks.md).
	Webhooks Webhooks

	// Warnings are settings that are accepted but deserve a log line
	// (obsolete names, say).
	Warnings []string
}

// Webhooks configures the events worker.
type Webhooks struct {
	AllowHTTP    bool           // http:// URLs allowed, not only https://
	AllowNets    []netip.Prefix // networks reachable despite the address guard (e.g. 127.0.0.0/8 in tests)
	Timeout      time.Duration  // one delivery, connect to last byte
	RetryBase    time.Duration  // first retry delay; doubles per attempt
	RetryMax     time.Duration  // cap of the retry delay
	MaxAttempts  int            // attempts per event and webhook
	DisableAfter int            // events in a row that used up their attempts before the webhook is disabled
	Concurrency  int            // deliveries in flight per replica
	Poll         time.Duration  // how often the worker looks for due work without a NOTIFY
	Retention    time.Duration  // finished deliveries are kept this long
}

// Getenv is os.Getenv's shape, so tests can pass a map.
type Getenv func(string) string

// FromEnv reads and validates the configuration. needServe says whether the
// settings only `serve` needs (listen address, Redis, keys) are required; the
// migrate and keys subcommands need less.
func FromEnv(getenv Getenv, needServe bool) (Config, error) {
	r := reader{getenv: getenv}
	c := Config{
		Listen:   r.str("AUTHSVC_LISTEN", ""),
		Issuer:   r.str("AUTHSVC_ISSUER", ""),
		Audience: r.str("AUTHSVC_AUDIENCE", "zsm-api"),

		AccessTTL:      r.duration("AUTHSVC_ACCESS_TTL", 15*time.Minute),
		SessionTTL:     r.duration("AUTHSVC_SESSION_TTL", 30*24*time.Hour),
		SessionIdleTTL: r.duration("AUTHSVC_SESSION_IDLE_TTL", 7*24*time.Hour),
		HandshakeTTL:   r.duration("AUTHSVC_HANDSHAKE_TTL", 60*time.Second),

		RateIPv4Prefix:           r.integer("AUTHSVC_RATE_IPV4_PREFIX", 32),
		RateIPv6Prefix:           r.integer("AUTHSVC_RATE_IPV6_PREFIX", 64),
		LoginRatePerIP:           r.integer("AUTHSVC_LOGIN_RATE_PER_IP", 30),
		SignupRatePerIP:          r.integer("AUTHSVC_SIGNUP_RATE_PER_IP", 10),
		MachineLoginRatePerIP:    r.integer("AUTHSVC_MACHINE_LOGIN_RATE_PER_IP", 60),
		MachineLoginRatePerToken: r.integer("AUTHSVC_MACHINE_LOGIN_RATE_PER_TOKEN", 60),
		LoginFailures: ratelimit.FailurePolicy{
			PerIdentity: r.integer("AUTHSVC_LOGIN_FAILURES_PER_IDENTITY", 100),
			Window:      r.duration("AUTHSVC_LOGIN_FAILURE_WINDOW", time.Hour),
			Free:        r.integer("AUTHSVC_LOGIN_FREE_ATTEMPTS_PER_ADDRESS", 10),
			BackoffBase: r.duration("AUTHSVC_LOGIN_BACKOFF_BASE", time.Second),
			BackoffMax:  r.duration("AUTHSVC_LOGIN_BACKOFF_MAX", 15*time.Minute),
			KnownFor:    r.duration("AUTHSVC_LOGIN_KNOWN_ADDRESS_TTL", 30*24*time.Hour),
		},
	}
	if r.str("AUTHSVC_LOGIN_RATE_PER_IDENTITY", "") != "" {
		c.Warnings = append(c.Warnings, "AUTHSVC_LOGIN_RATE_PER_IDENTITY is no longer read: login starts are not limited per identity "+
			"(that let anyone lock a user out); failures are, with AUTHSVC_LOGIN_FAILURES_PER_IDENTITY and the settings beside it")
	}
	c.DatabaseURL = r.secret("AUTHSVC_DATABASE_URL")
	c.RedisURL = r.secret("AUTHSVC_REDIS_URL")
	c.RedisPassword = r.secret("AUTHSVC_REDIS_PASSWORD")
	if addrs := r.str("AUTHSVC_REDIS_ADDRS", ""); addrs != "" {
		for _, a := range strings.Split(addrs, ",") {
			c.RedisAddrs = append(c.RedisAddrs, strings.TrimSpace(a))
		}
	}
	c.ServerSecret = r.key("AUTHSVC_SERVER_SECRET", 32, 0)
	c.KeyEncryptionKey = r.key("AUTHSVC_KEY_ENCRYPTION_KEY", 32, 32)
	c.TrustedProxies = r.prefixes("AUTHSVC_TRUSTED_PROXIES", "127.0.0.1/32,::1/128")
	c.LogLevel = r.level("AUTHSVC_LOG_LEVEL", slog.LevelInfo)
	c.KeyPublishDelay = r.duration("AUTHSVC_KEY_PUBLISH_DELAY", 10*time.Minute)
	c.KeyRotationInterval = r.duration("AUTHSVC_KEY_ROTATION_INTERVAL", 0)
	c.PostgrestURL = r.str("AUTHSVC_POSTGREST_URL", "")
	c.AdminListen = r.str("AUTHSVC_ADMIN_LISTEN", "")
	c.AdminToken = r.secret("AUTHSVC_ADMIN_TOKEN")
	c.Webhooks = r.webhooks()
	if c.KeyPublishDelay < 0 || c.KeyPublishDelay > 24*time.Hour {
		r.fail("AUTHSVC_KEY_PUBLISH_DELAY must be between 0s and 24h")
	}
	if c.KeyRotationInterval != 0 && c.KeyRotationInterval < c.KeyPublishDelay+c.AccessTTL {
		r.fail("AUTHSVC_KEY_ROTATION_INTERVAL must be 0 (off) or at least the publish delay plus the access TTL")
	}
	if c.PostgrestURL != "" {
		if u, err := url.Parse(c.PostgrestURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.fail("AUTHSVC_POSTGREST_URL must be an http(s) URL")
		}
	}
	if c.AdminListen != "" {
		// The admin API can revoke every key: it never listens beyond this
		// machine (or beyond the container, in compose, where an internal
		// network address is allowed explicitly).
		ap, err := netip.ParseAddrPort(c.AdminListen)
		switch {
		case err != nil:
			r.fail(fmt.Sprintf("AUTHSVC_ADMIN_LISTEN %q is not an IP:port", c.AdminListen))
		case !ap.Addr().IsLoopback() && r.str("AUTHSVC_ADMIN_ALLOW_NON_LOOPBACK", "") != "true":
			r.fail("AUTHSVC_ADMIN_LISTEN must be a loopback address (set AUTHSVC_ADMIN_ALLOW_NON_LOOPBACK=true only on an internal network)")
		}
		if len(c.AdminToken) < 32 {
			r.fail("AUTHSVC_ADMIN_TOKEN (at least 32 characters) is required with AUTHSVC_ADMIN_LISTEN")
		}
	}

	if len(c.DatabaseURL) == 0 {
		r.fail("AUTHSVC_DATABASE_URL is required")
	} else if u, err := url.Parse(string(c.DatabaseURL)); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		r.fail("AUTHSVC_DATABASE_URL must be a postgres:// URL")
	}
	if needServe {
		if c.Listen == "" {
			r.fail("AUTHSVC_LISTEN is required (host:port)")
		} else if _, err := netip.ParseAddrPort(c.Listen); err != nil {
			r.fail(fmt.Sprintf("AUTHSVC_LISTEN %q is not an IP:port", c.Listen))
		}
		if c.Issuer == "" {
			r.fail("AUTHSVC_ISSUER is required (the gateway's public URL)")
		}
		switch {
		case len(c.RedisURL) == 0 && len(c.RedisAddrs) == 0:
			r.fail("AUTHSVC_REDIS_URL or AUTHSVC_REDIS_ADDRS is required")
		case len(c.RedisURL) > 0 && len(c.RedisAddrs) > 0:
			r.fail("set only one of AUTHSVC_REDIS_URL and AUTHSVC_REDIS_ADDRS")
		}
		if c.ServerSecret == nil {
			r.fail("AUTHSVC_SERVER_SECRET is required (32 or more random bytes, hex or base64)")
		}
	}
	if c.Audience == "" {
		r.fail("AUTHSVC_AUDIENCE must not be empty")
	}
	if c.KeyEncryptionKey == nil && needServe {
		r.fail("AUTHSVC_KEY_ENCRYPTION_KEY is required (32 random bytes, hex or base64)")
	}
	// PostgREST applies 30 s of clock skew on top, and gate.check_request
	// refuses tokens whose exp - iat exceeds 900 s.
	if c.AccessTTL < time.Minute || c.AccessTTL > 15*time.Minute {
		r.fail("AUTHSVC_ACCESS_TTL must be between 1m and 15m")
	}
	if c.SessionTTL < c.AccessTTL || c.SessionTTL > 365*24*time.Hour {
		r.fail("AUTHSVC_SESSION_TTL must be between the access TTL and 8760h")
	}
	// At least the access TTL: a client refreshes when its access token
	// expires, and that refresh must find the session alive.
	if c.SessionIdleTTL < c.AccessTTL || c.SessionIdleTTL > 365*24*time.Hour {
		r.fail("AUTHSVC_SESSION_IDLE_TTL must be between the access TTL and 8760h")
	}
	if c.HandshakeTTL < 5*time.Second || c.HandshakeTTL > 60*time.Second {
		r.fail("AUTHSVC_HANDSHAKE_TTL must be between 5s and 60s")
	}
	for name, v := range map[string]int{
		"AUTHSVC_LOGIN_RATE_PER_IP": c.LoginRatePerIP, "AUTHSVC_SIGNUP_RATE_PER_IP": c.SignupRatePerIP,
		"AUTHSVC_MACHINE_LOGIN_RATE_PER_IP": c.MachineLoginRatePerIP, "AUTHSVC_MACHINE_LOGIN_RATE_PER_TOKEN": c.MachineLoginRatePerToken,
	} {
		if v < 1 {
			r.fail(name + " must be at least 1")
		}
	}
	if c.RateIPv4Prefix < 8 || c.RateIPv4Prefix > 32 {
		r.fail("AUTHSVC_RATE_IPV4_PREFIX must be between 8 and 32")
	}
	if c.RateIPv6Prefix < 32 || c.RateIPv6Prefix > 128 {
		r.fail("AUTHSVC_RATE_IPV6_PREFIX must be between 32 and 128")
	}
	r.failurePolicy(c.LoginFailures)
	if len(r.problems) > 0 {
		return Config{}, fmt.Errorf("invalid configuration:\n  %s", strings.Join(r.problems, "\n  "))
	}
	return c, nil
}

// failurePolicy checks the login-failure limits. Beyond the ranges, one
// rule is the point of the policy: from a single address prefix nobody can
// use up an identity's allowance within a window, so nobody without the
// password can lock a user out from one network.
func (r *reader) failurePolicy(p ratelimit.FailurePolicy) {
	n := len(r.problems)
	if p.PerIdentity < 1 || p.PerIdentity > 100000 {
		r.fail("AUTHSVC_LOGIN_FAILURES_PER_IDENTITY must be between 1 and 100000")
	}
	if p.Window < time.Minute || p.Window > 24*time.Hour {
		r.fail("AUTHSVC_LOGIN_FAILURE_WINDOW must be between 1m and 24h")
	}
	if p.Free < 1 || p.Free > 1000 {
		r.fail("AUTHSVC_LOGIN_FREE_ATTEMPTS_PER_ADDRESS must be between 1 and 1000")
	}
	if p.BackoffBase < 10*time.Millisecond || p.BackoffBase > time.Hour {
		r.fail("AUTHSVC_LOGIN_BACKOFF_BASE must be between 10ms and 1h")
	}
	if p.BackoffMax < p.BackoffBase || p.BackoffMax > 24*time.Hour {
		r.fail("AUTHSVC_LOGIN_BACKOFF_MAX must be between the backoff base and 24h")
	}
	if p.KnownFor < time.Hour || p.KnownFor > 365*24*time.Hour {
		r.fail("AUTHSVC_LOGIN_KNOWN_ADDRESS_TTL must be between 1h and 8760h")
	}
	if len(r.problems) == n {
		if m := p.MaxFromOnePrefix(); m >= p.PerIdentity {
			r.fail(fmt.Sprintf("AUTHSVC_LOGIN_FAILURES_PER_IDENTITY (%d) must exceed the attempts one address can make per "+
				"AUTHSVC_LOGIN_FAILURE_WINDOW (%d with AUTHSVC_LOGIN_FREE_ATTEMPTS_PER_ADDRESS, AUTHSVC_LOGIN_BACKOFF_BASE and "+
				"AUTHSVC_LOGIN_BACKOFF_MAX as set), or one address could lock the identity out", p.PerIdentity, m))
		}
	}
}

func (r *reader) webhooks() Webhooks {
	w := Webhooks{
		AllowHTTP:    r.boolean("AUTHSVC_WEBHOOK_ALLOW_HTTP", false),
		AllowNets:    r.prefixes("AUTHSVC_WEBHOOK_ALLOW_NETS", ""),
		Timeout:      r.duration("AUTHSVC_WEBHOOK_TIMEOUT", 10*time.Second),
		RetryBase:    r.duration("AUTHSVC_WEBHOOK_RETRY_BASE", 10*time.Second),
		RetryMax:     r.duration("AUTHSVC_WEBHOOK_RETRY_MAX", time.Hour),
		MaxAttempts:  r.integer("AUTHSVC_WEBHOOK_MAX_ATTEMPTS", 12),
		DisableAfter: r.integer("AUTHSVC_WEBHOOK_DISABLE_AFTER", 5),
		Concurrency:  r.integer("AUTHSVC_WEBHOOK_CONCURRENCY", 16),
		Poll:         r.duration("AUTHSVC_EVENTS_POLL_INTERVAL", time.Second),
		Retention:    r.duration("AUTHSVC_WEBHOOK_LOG_RETENTION", 30*24*time.Hour),
	}
	if w.Timeout < time.Second || w.Timeout > time.Minute {
		r.fail("AUTHSVC_WEBHOOK_TIMEOUT must be between 1s and 1m")
	}
	if w.RetryBase < 10*time.Millisecond || w.RetryBase > time.Hour {
		r.fail("AUTHSVC_WEBHOOK_RETRY_BASE must be between 10ms and 1h")
	}
	if w.RetryMax < w.RetryBase || w.RetryMax > 24*time.Hour {
		r.fail("AUTHSVC_WEBHOOK_RETRY_MAX must be between the retry base and 24h")
	}
	if w.MaxAttempts < 1 || w.MaxAttempts > 50 {
		r.fail("AUTHSVC_WEBHOOK_MAX_ATTEMPTS must be between 1 and 50")
	}
	if w.DisableAfter < 1 || w.DisableAfter > 1000 {
		r.fail("AUTHSVC_WEBHOOK_DISABLE_AFTER must be between 1 and 1000")
	}
	if w.Concurrency < 1 || w.Concurrency > 256 {
		r.fail("AUTHSVC_WEBHOOK_CONCURRENCY must be between 1 and 256")
	}
	if w.Poll < 10*time.Millisecond || w.Poll > time.Minute {
		r.fail("AUTHSVC_EVENTS_POLL_INTERVAL must be between 10ms and 1m")
	}
	if w.Retention < time.Hour || w.Retention > 365*24*time.Hour {
		r.fail("AUTHSVC_WEBHOOK_LOG_RETENTION must be between 1h and 8760h")
	}
	return w
}

type reader struct {
	getenv   Getenv
	problems []string
}

func (r *reader) fail(msg string) { r.problems = append(r.problems, msg) }

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// secret reads NAME, or the file NAME_FILE names; setting both is an error.
func (r *reader) secret(name string) Secret {
	v, file := r.getenv(name), r.getenv(name+"_FILE")
	switch {
	case v != "" && file != "":
		r.fail(fmt.Sprintf("set only one of %s and %s_FILE", name, name))
		return nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			r.fail(fmt.Sprintf("%s_FILE: %v", name, errors.Unwrap(err)))
			return nil
		}
		return Secret(strings.TrimRight(string(b), "\r\n"))
	case v != "":
		return Secret(v)
	}
	return nil
}

// key reads a secret given as hex or standard base64 and checks its length.
func (r *reader) key(name string, minLen, exactLen int) Secret {
	s := r.secret(name)
	if s == nil {
		return nil
	}
	text := strings.TrimSpace(string(s))
	b, err := hex.DecodeString(text)
	if err != nil {
		b, err = base64.StdEncoding.DecodeString(text)
	}
	if err != nil {
		r.fail(name + " is neither hex nor base64")
		return nil
	}
	if exactLen > 0 && len(b) != exactLen {
		r.fail(fmt.Sprintf("%s must decode to exactly %d bytes, not %d", name, exactLen, len(b)))
		return nil
	}
	if len(b) < minLen {
		r.fail(fmt.Sprintf("%s must decode to at least %d bytes, not %d", name, minLen, len(b)))
		return nil
	}
	return Secret(b)
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.fail(fmt.Sprintf("%s %q is not a duration like 15m", name, v))
		return def
	}
	return d
}

func (r *reader) integer(name string, def int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.fail(fmt.Sprintf("%s %q is not a whole number", name, v))
		return def
	}
	return n
}

func (r *reader) boolean(name string, def bool) bool {
	switch v := strings.ToLower(r.str(name, "")); v {
	case "":
		return def
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off":
		return false
	default:
		r.fail(fmt.Sprintf("%s %q is not true or false", name, v))
		return def
	}
}

func (r *reader) prefixes(name, def string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range strings.Split(r.str(name, def), ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			r.fail(fmt.Sprintf("%s: %q is not a CIDR prefix", name, p))
			continue
		}
		out = append(out, pfx.Masked())
	}
	return out
}

func (r *reader) level(name string, def slog.Level) slog.Level {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		r.fail(fmt.Sprintf("%s %q is not one of debug, info, warn, error", name, v))
		return def
	}
	return l
}
