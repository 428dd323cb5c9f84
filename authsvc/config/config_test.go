package config_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zsm.dev/zsm/authsvc/config"
)

// Distinctive secret values, so a leak is easy to spot in any output.
var (
	serverSecret = bytes.Repeat([]byte{0x5e}, 40)
	kek          = bytes.Repeat([]byte{0x4b}, 32)
)

const dbURL = "postgres://authsvc:hunter2-db-password@127.0.0.1:5432/zsm"

func env(m map[string]string) config.Getenv {
	return func(k string) string { return m[k] }
}

func full() map[string]string {
	return map[string]string{
		"AUTHSVC_LISTEN":             "127.0.0.1:18081",
		"AUTHSVC_DATABASE_URL":       dbURL,
		"AUTHSVC_REDIS_URL":          "redis://:hunter2-redis@127.0.0.1:6379/0",
		"AUTHSVC_ISSUER":             "http://127.0.0.1:8080",
		"AUTHSVC_SERVER_SECRET":      hex.EncodeToString(serverSecret),
		"AUTHSVC_KEY_ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(kek),
	}
}

func with(kv ...string) map[string]string {
	m := full()
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

func TestFullConfig(t *testing.T) {
	c, err := config.FromEnv(env(full()), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:18081" || string(c.DatabaseURL) != dbURL || c.Issuer != "http://127.0.0.1:8080" {
		t.Fatalf("config %+v", c)
	}
	if !bytes.Equal(c.ServerSecret, serverSecret) {
		t.Fatal("hex server secret not decoded")
	}
	if !bytes.Equal(c.KeyEncryptionKey, kek) {
		t.Fatal("base64 key-encryption key not decoded")
	}
	// Documented defaults.
	if c.Audience != "zsm-api" || c.AccessTTL != 15*time.Minute || c.HandshakeTTL != 60*time.Second || c.LogLevel != slog.LevelInfo {
		t.Fatalf("defaults: %+v", c)
	}
	want := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
	if len(c.TrustedProxies) != 2 || c.TrustedProxies[0] != want[0] || c.TrustedProxies[1] != want[1] {
		t.Fatalf("trusted proxies %v", c.TrustedProxies)
	}
}

func TestEveryProblemReportedAtOnce(t *testing.T) {
	_, err := config.FromEnv(env(map[string]string{
		"AUTHSVC_ACCESS_TTL":        "1h",
		"AUTHSVC_LOGIN_RATE_PER_IP": "0",
		"AUTHSVC_TRUSTED_PROXIES":   "10.0.0.0/8,not-a-cidr",
		"AUTHSVC_LOG_LEVEL":         "loud",
	}), true)
	if err == nil {
		t.Fatal("empty environment accepted")
	}
	msg := err.Error()
	for _, name := range []string{
		"AUTHSVC_DATABASE_URL", "AUTHSVC_LISTEN", "AUTHSVC_ISSUER", "AUTHSVC_REDIS_URL",
		"AUTHSVC_SERVER_SECRET", "AUTHSVC_KEY_ENCRYPTION_KEY", "AUTHSVC_ACCESS_TTL",
		"AUTHSVC_LOGIN_RATE_PER_IP", "not-a-cidr", "AUTHSVC_LOG_LEVEL",
	} {
		if !strings.Contains(msg, name) {
			t.Errorf("error does not name %s:\n%s", name, msg)
		}
	}
	if n := strings.Count(msg, "\n"); n < 9 {
		t.Errorf("expected one line per problem (>= 10), got %d lines:\n%s", n+1, msg)
	}
}

func TestMigrateNeedsLess(t *testing.T) {
	// migrate and keys need the database only.
	c, err := config.FromEnv(env(map[string]string{"AUTHSVC_DATABASE_URL": dbURL}), false)
	if err != nil {
		t.Fatalf("migrate config: %v", err)
	}
	if string(c.DatabaseURL) != dbURL {
		t.Fatal("database URL lost")
	}
	if _, err := config.FromEnv(env(map[string]string{}), false); err == nil || !strings.Contains(err.Error(), "AUTHSVC_DATABASE_URL") {
		t.Fatalf("migrate without a database URL: %v", err)
	}
}

func TestFileVariants(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m := with(
		"AUTHSVC_DATABASE_URL", "",
		"AUTHSVC_DATABASE_URL_FILE", write("db", dbURL+"\n"),
		"AUTHSVC_SERVER_SECRET", "",
		"AUTHSVC_SERVER_SECRET_FILE", write("ss", hex.EncodeToString(serverSecret)+"\r\n"),
		"AUTHSVC_KEY_ENCRYPTION_KEY", "",
		"AUTHSVC_KEY_ENCRYPTION_KEY_FILE", write("kek", base64.StdEncoding.EncodeToString(kek)),
		"AUTHSVC_REDIS_URL", "",
		"AUTHSVC_REDIS_URL_FILE", write("redis", "redis://:pw@127.0.0.1:6379/0\n"),
	)
	c, err := config.FromEnv(env(m), true)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.DatabaseURL) != dbURL {
		t.Fatalf("database URL from file: %q (trailing newline must go)", c.DatabaseURL)
	}
	if !bytes.Equal(c.ServerSecret, serverSecret) || !bytes.Equal(c.KeyEncryptionKey, kek) {
		t.Fatal("keys from files not decoded")
	}
	if string(c.RedisURL) != "redis://:pw@127.0.0.1:6379/0" {
		t.Fatalf("redis URL from file: %q", c.RedisURL)
	}

	// Missing file: named by variable, path not needed.
	m["AUTHSVC_SERVER_SECRET_FILE"] = filepath.Join(dir, "nope")
	if _, err := config.FromEnv(env(m), true); err == nil || !strings.Contains(err.Error(), "AUTHSVC_SERVER_SECRET_FILE") {
		t.Fatalf("missing secret file: %v", err)
	}
}

func TestBothValueAndFileIsAnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kek")
	_ = os.WriteFile(p, []byte(hex.EncodeToString(kek)), 0o600)
	_, err := config.FromEnv(env(with("AUTHSVC_KEY_ENCRYPTION_KEY_FILE", p)), true)
	if err == nil || !strings.Contains(err.Error(), "AUTHSVC_KEY_ENCRYPTION_KEY") || !strings.Contains(err.Error(), "only one") {
		t.Fatalf("value and file both set: %v", err)
	}
	// Even when they agree.
	_, err = config.FromEnv(env(with("AUTHSVC_DATABASE_URL_FILE", p)), true)
	if err == nil || !strings.Contains(err.Error(), "AUTHSVC_DATABASE_URL") {
		t.Fatalf("database URL and file both set: %v", err)
	}
}

func TestKeyLengths(t *testing.T) {
	cases := []struct {
		name, key, value string
		ok               bool
	}{
		{"kek 32 hex", "AUTHSVC_KEY_ENCRYPTION_KEY", hex.EncodeToString(kek), true},
		{"kek 31", "AUTHSVC_KEY_ENCRYPTION_KEY", hex.EncodeToString(kek[:31]), false},
		{"kek 33", "AUTHSVC_KEY_ENCRYPTION_KEY", hex.EncodeToString(append(kek, 1)), false},
		{"kek 64", "AUTHSVC_KEY_ENCRYPTION_KEY", hex.EncodeToString(append(kek, kek...)), false},
		{"kek raw text", "AUTHSVC_KEY_ENCRYPTION_KEY", "correct horse battery staple!!!!", false},
		{"kek url base64", "AUTHSVC_KEY_ENCRYPTION_KEY", base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), false},
		{"secret 32", "AUTHSVC_SERVER_SECRET", hex.EncodeToString(serverSecret[:32]), true},
		{"secret 31", "AUTHSVC_SERVER_SECRET", hex.EncodeToString(serverSecret[:31]), false},
		{"secret 64 base64", "AUTHSVC_SERVER_SECRET", base64.StdEncoding.EncodeToString(make([]byte, 64)), true},
		{"secret 16 base64", "AUTHSVC_SERVER_SECRET", base64.StdEncoding.EncodeToString(make([]byte, 16)), false},
		{"secret not encoded", "AUTHSVC_SERVER_SECRET", "this is a passphrase, not a key!", false},
	}
	for _, c := range cases {
		_, err := config.FromEnv(env(with(c.key, c.value)), true)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), c.key) {
			t.Errorf("%s: error does not name %s: %v", c.name, c.key, err)
		}
		if err != nil && strings.Contains(err.Error(), c.value) {
			t.Errorf("%s: error quotes the secret value: %v", c.name, err)
		}
	}
}

// The old per-identity limit on login starts is gone (it let anyone lock a
// user out); a setting of it is accepted with a warning, not ignored
// silently.
func TestObsoleteSettingWarns(t *testing.T) {
	c, err := config.FromEnv(env(with("AUTHSVC_LOGIN_RATE_PER_IDENTITY", "10")), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "AUTHSVC_LOGIN_RATE_PER_IDENTITY") {
		t.Fatalf("warnings %q", c.Warnings)
	}
	c, err = config.FromEnv(env(full()), true)
	if err != nil || len(c.Warnings) != 0 {
		t.Fatalf("warnings without the setting: %q, %v", c.Warnings, err)
	}
	// Defaults of the rate limits (docs/auth.md).
	f := c.LoginFailures
	if c.RateIPv4Prefix != 32 || c.RateIPv6Prefix != 64 || f.PerIdentity != 100 || f.Window != time.Hour || f.Free != 10 ||
		f.BackoffBase != time.Second || f.BackoffMax != 15*time.Minute || f.KnownFor != 30*24*time.Hour {
		t.Fatalf("rate limit defaults: %+v", c)
	}
}

func TestOtherRanges(t *testing.T) {
	bad := map[string][]string{
		"access TTL 16m":       {"AUTHSVC_ACCESS_TTL", "16m"},
		"access TTL 30s":       {"AUTHSVC_ACCESS_TTL", "30s"},
		"handshake TTL 61s":    {"AUTHSVC_HANDSHAKE_TTL", "61s"},
		"handshake TTL 1s":     {"AUTHSVC_HANDSHAKE_TTL", "1s"},
		"session TTL < access": {"AUTHSVC_SESSION_TTL", "5m"},
		"session TTL 2y":       {"AUTHSVC_SESSION_TTL", "17520h"},
		"duration garbage":     {"AUTHSVC_SESSION_TTL", "forever"},
		"rate negative":        {"AUTHSVC_LOGIN_RATE_PER_IP", "-1"},
		"IPv4 prefix 33":       {"AUTHSVC_RATE_IPV4_PREFIX", "33"},
		"IPv4 prefix 7":        {"AUTHSVC_RATE_IPV4_PREFIX", "7"},
		"IPv6 prefix 129":      {"AUTHSVC_RATE_IPV6_PREFIX", "129"},
		"IPv6 prefix 16":       {"AUTHSVC_RATE_IPV6_PREFIX", "16"},
		"no failures allowed":  {"AUTHSVC_LOGIN_FAILURES_PER_IDENTITY", "0"},
		"failure window 10s":   {"AUTHSVC_LOGIN_FAILURE_WINDOW", "10s"},
		"no free attempts":     {"AUTHSVC_LOGIN_FREE_ATTEMPTS_PER_ADDRESS", "0"},
		"backoff base 1ms":     {"AUTHSVC_LOGIN_BACKOFF_BASE", "1ms"},
		"backoff cap < base":   {"AUTHSVC_LOGIN_BACKOFF_MAX", "500ms"},
		"known address 1m":     {"AUTHSVC_LOGIN_KNOWN_ADDRESS_TTL", "1m"},
		// One address could use up the identity's 100 a window: 10 free,
		// then one every 10 s.
		"one address locks out": {"AUTHSVC_LOGIN_BACKOFF_MAX", "10s"},
		"rate not a number":     {"AUTHSVC_SIGNUP_RATE_PER_IP", "ten"},
		"listen hostname":       {"AUTHSVC_LISTEN", "localhost:18081"},
		"listen no port":        {"AUTHSVC_LISTEN", "127.0.0.1"},
		"db URL mysql":          {"AUTHSVC_DATABASE_URL", "mysql://u:p@h/db"},
		"db URL not a URL":      {"AUTHSVC_DATABASE_URL", "host=127.0.0.1 password=x"},
		"redis both":            {"AUTHSVC_REDIS_ADDRS", "127.0.0.1:7000,127.0.0.1:7001"},
		"audience blank":        {"AUTHSVC_AUDIENCE", "   "}, // trimmed, then defaulted? must not be empty
		"trusted proxy garbage": {"AUTHSVC_TRUSTED_PROXIES", "10.0.0.1"},
	}
	for name, kv := range bad {
		_, err := config.FromEnv(env(with(kv[0], kv[1])), true)
		if name == "audience blank" {
			// A blank value falls back to the default: allowed.
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted %s=%q", name, kv[0], kv[1])
		} else if !strings.Contains(err.Error(), kv[0]) {
			t.Errorf("%s: error does not name %s: %v", name, kv[0], err)
		}
	}
	// Redis Cluster instead of one URL.
	c, err := config.FromEnv(env(with("AUTHSVC_REDIS_URL", "", "AUTHSVC_REDIS_ADDRS", "127.0.0.1:7000, 127.0.0.1:7001")), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.RedisAddrs) != 2 || c.RedisAddrs[1] != "127.0.0.1:7001" {
		t.Fatalf("redis addrs %q", c.RedisAddrs)
	}
	// Trusted proxies are masked to their network.
	c, err = config.FromEnv(env(with("AUTHSVC_TRUSTED_PROXIES", "10.1.2.3/8")), true)
	if err != nil || len(c.TrustedProxies) != 1 || c.TrustedProxies[0].String() != "10.0.0.0/8" {
		t.Fatalf("trusted proxies %v, %v", c.TrustedProxies, err)
	}
}

func TestErrorsDoNotQuoteSecrets(t *testing.T) {
	// Every secret invalid in a way that makes FromEnv complain about it.
	m := with(
		"AUTHSVC_DATABASE_URL", "mysql://root:hunter2-db-password@h/db",
		"AUTHSVC_SERVER_SECRET", "hunter2-server-secret-not-hex",
		"AUTHSVC_KEY_ENCRYPTION_KEY", "hunter2-kek-not-base64",
	)
	_, err := config.FromEnv(env(m), true)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, s := range []string{"hunter2-db-password", "hunter2-server-secret", "hunter2-kek"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error quotes %q:\n%s", s, err)
		}
	}
}

func secretStrings(t *testing.T) ([]string, config.Config) {
	c, err := config.FromEnv(env(full()), true)
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		"hunter2", // db and redis passwords
		hex.EncodeToString(serverSecret), string(serverSecret),
		base64.StdEncoding.EncodeToString(kek), string(kek), hex.EncodeToString(kek),
		fmt.Sprint([]byte(kek)), fmt.Sprint([]byte(serverSecret)),
		"75 75 75", "94 94 94", // decimal bytes of 0x4b, 0x5e
	}, c
}

func assertClean(t *testing.T, what, out string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("%s leaks %q:\n%s", what, s, out)
		}
	}
	if !strings.Contains(out, "redacted") && !strings.Contains(strings.ToLower(out), hex.EncodeToString([]byte("redacted"))) {
		t.Errorf("%s does not show the redaction marker (test would pass vacuously):\n%s", what, out)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	secrets, c := secretStrings(t)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		assertClean(t, "Sprintf("+verb+", config)", fmt.Sprintf(verb, c), secrets)
		assertClean(t, "Sprintf("+verb+", secret)", fmt.Sprintf(verb, c.KeyEncryptionKey), secrets)
		assertClean(t, "Sprintf("+verb+", &config)", fmt.Sprintf(verb, &c), secrets)
	}
	assertClean(t, "Sprint", fmt.Sprint(c.ServerSecret, c.DatabaseURL), secrets)
	assertClean(t, "Sprintln", fmt.Sprintln(c.ServerSecret), secrets)
	assertClean(t, "error wrapping", fmt.Errorf("boom: %v", c.DatabaseURL).Error(), secrets)

	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	assertClean(t, "json.Marshal(config)", string(b), secrets)

	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var buf bytes.Buffer
		log := slog.New(h(&buf))
		log.Info("config", "cfg", c, "kek", c.KeyEncryptionKey, "db", c.DatabaseURL)
		log.Info("attrs", slog.Any("secret", c.ServerSecret), slog.Any("cfgptr", &c))
		log.With("kek", c.KeyEncryptionKey).Info("with")
		log.Info("group", slog.Group("g", "secret", c.ServerSecret))
		assertClean(t, "slog "+name, buf.String(), secrets)
	}
}

// BUG (low severity, reported to the lead): Secret redacts only for the
// string verbs; %d (and %o, %b, %c, %U) print the bytes, because fmt only
// calls String for verbs valid for strings. A Format method would close
// every verb at once.
func TestSecretNeverPrintsWithNumericVerbs(t *testing.T) {
	_, c := secretStrings(t)
	for _, verb := range []string{"%d", "%o", "%b", "%c", "%U", "%v"} {
		out := fmt.Sprintf(verb, c.KeyEncryptionKey)
		raw := fmt.Sprintf(verb, []byte(c.KeyEncryptionKey))
		if strings.Contains(out, strings.Trim(raw, "[]")) {
			t.Errorf("Sprintf(%s, secret) = %.60q… prints the key's bytes", verb, out)
		}
	}
}

func TestWebhookSettings(t *testing.T) {
	c, err := config.FromEnv(env(full()), true)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Webhooks
	if w.AllowHTTP || len(w.AllowNets) != 0 || w.Timeout != 10*time.Second || w.RetryBase != 10*time.Second ||
		w.RetryMax != time.Hour || w.MaxAttempts != 12 || w.DisableAfter != 5 || w.Concurrency != 16 ||
		w.Poll != time.Second || w.Retention != 30*24*time.Hour {
		t.Fatalf("webhook defaults: %+v", w)
	}
	c, err = config.FromEnv(env(with("AUTHSVC_WEBHOOK_ALLOW_HTTP", "true", "AUTHSVC_WEBHOOK_ALLOW_NETS", "127.0.0.0/8, ::1/128",
		"AUTHSVC_WEBHOOK_RETRY_BASE", "50ms", "AUTHSVC_WEBHOOK_MAX_ATTEMPTS", "4", "AUTHSVC_WEBHOOK_DISABLE_AFTER", "2")), true)
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Webhooks; !w.AllowHTTP || len(w.AllowNets) != 2 || w.RetryBase != 50*time.Millisecond || w.MaxAttempts != 4 || w.DisableAfter != 2 {
		t.Fatalf("webhook settings: %+v", w)
	}
	// Every problem at once.
	_, err = config.FromEnv(env(with("AUTHSVC_WEBHOOK_ALLOW_HTTP", "maybe", "AUTHSVC_WEBHOOK_ALLOW_NETS", "10.0.0.1",
		"AUTHSVC_WEBHOOK_TIMEOUT", "2m", "AUTHSVC_WEBHOOK_RETRY_BASE", "1ms", "AUTHSVC_WEBHOOK_RETRY_MAX", "48h",
		"AUTHSVC_WEBHOOK_MAX_ATTEMPTS", "0", "AUTHSVC_WEBHOOK_DISABLE_AFTER", "-1", "AUTHSVC_WEBHOOK_CONCURRENCY", "1000",
		"AUTHSVC_EVENTS_POLL_INTERVAL", "1ms", "AUTHSVC_WEBHOOK_LOG_RETENTION", "1m")), true)
	if err == nil {
		t.Fatal("bad webhook settings accepted")
	}
	for _, name := range []string{"AUTHSVC_WEBHOOK_ALLOW_HTTP", "AUTHSVC_WEBHOOK_ALLOW_NETS", "AUTHSVC_WEBHOOK_TIMEOUT",
		"AUTHSVC_WEBHOOK_RETRY_BASE", "AUTHSVC_WEBHOOK_RETRY_MAX", "AUTHSVC_WEBHOOK_MAX_ATTEMPTS", "AUTHSVC_WEBHOOK_DISABLE_AFTER",
		"AUTHSVC_WEBHOOK_CONCURRENCY", "AUTHSVC_EVENTS_POLL_INTERVAL", "AUTHSVC_WEBHOOK_LOG_RETENTION"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}
