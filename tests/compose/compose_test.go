// Package compose checks the production deployment without a Docker engine:
// docker-compose.yaml is loaded with the compose library
// (github.com/compose-spec/compose-go/v2) and held to the deployment's rules,
// the Dockerfile is linted, and the nginx configuration is compared with the
// local gateway's and checked with `nginx -t` (nginx_test.go).
package compose

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"zsm.dev/zsm/stack"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := stack.FindRepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// load reads docker-compose.yaml as `docker compose` would, with the
// variables of .env.example (and nothing from this machine's environment).
func load(t *testing.T) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yaml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnvFiles(filepath.Join(root, ".env.example")),
		cli.WithDotEnv,
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cli.ProjectFromOptions(context.Background(), opts)
	if err != nil {
		t.Fatalf("docker-compose.yaml does not load: %v", err)
	}
	return p
}

// oneShot reports whether a service runs once and exits (restart "no").
func oneShot(s types.ServiceConfig) bool { return s.Restart == "no" }

func TestServicesAndImages(t *testing.T) {
	p := load(t)
	want := []string{"postgres", "db-bootstrap", "migrate", "db-roles", "redis-1", "redis-2", "redis-3",
		"redis-cluster-init", "authsvc-1", "authsvc-2", "postgrest", "nginx"}
	got := p.ServiceNames()
	sort.Strings(got)
	w := slices.Clone(want)
	sort.Strings(w)
	if !slices.Equal(got, w) {
		t.Fatalf("services %v, want %v", got, w)
	}
	// Exact releases: no latest, no floating major or minor tags.
	pinned := map[string]*regexp.Regexp{
		"postgres": regexp.MustCompile(`^postgres:18\.\d+-alpine3\.\d+$`),
		"redis-1":  regexp.MustCompile(`^redis:8\.\d+\.\d+-alpine(3\.\d+)?$`),
		"nginx":    regexp.MustCompile(`^nginx:1\.\d+\.\d+-alpine(3\.\d+)?$`),
	}
	for name, re := range pinned {
		if img := p.Services[name].Image; !re.MatchString(img) {
			t.Errorf("%s: image %q is not pinned to an exact release (want %s)", name, img, re)
		}
	}
	exact := regexp.MustCompile(`^[a-z0-9./-]+:v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?$`)
	for _, s := range p.Services {
		if s.Build != nil {
			continue // authsvc and PostgREST, built from the Dockerfile
		}
		if !exact.MatchString(s.Image) {
			t.Errorf("%s: image %q is not pinned to an exact version tag", s.Name, s.Image)
		}
	}
	// PostgREST is the Dockerfile's "postgrest" target, which is the
	// release the tests run (TestDeployedPostgrestIsTheTestedOne).
	if b := p.Services["postgrest"].Build; b == nil || b.Target != "postgrest" || b.Dockerfile != "Dockerfile" {
		t.Errorf("postgrest: want build target \"postgrest\" of the Dockerfile, got %+v", b)
	}
	// The same image for the migration job and the two replicas.
	for _, n := range []string{"migrate", "authsvc-1", "authsvc-2"} {
		if s := p.Services[n]; s.Build == nil || s.Image != p.Services["authsvc-1"].Image {
			t.Errorf("%s: want the authsvc image built from the Dockerfile, got image %q build %v", n, s.Image, s.Build)
		}
	}
	if c := p.Services["migrate"].Command; !slices.Equal([]string(c), []string{"migrate", "up"}) {
		t.Errorf("migrate runs %v, want [migrate up]", c)
	}
	for _, n := range []string{"authsvc-1", "authsvc-2"} {
		if c := p.Services[n].Command; len(c) != 0 {
			t.Errorf("%s overrides the image's command (serve) with %v", n, c)
		}
	}
	// The one-shot jobs and the redis nodes use the images of their servers.
	for _, n := range []string{"db-bootstrap", "db-roles"} {
		if p.Services[n].Image != p.Services["postgres"].Image {
			t.Errorf("%s: image %q, want postgres's %q (same psql as the server)", n, p.Services[n].Image, p.Services["postgres"].Image)
		}
	}
	for _, n := range []string{"redis-2", "redis-3", "redis-cluster-init"} {
		if p.Services[n].Image != p.Services["redis-1"].Image {
			t.Errorf("%s: image %q, want redis-1's %q", n, p.Services[n].Image, p.Services["redis-1"].Image)
		}
	}
}

func TestHealthChecksAndStartOrder(t *testing.T) {
	p := load(t)
	for _, s := range p.Services {
		if oneShot(s) {
			continue
		}
		if s.Restart != "unless-stopped" && s.Restart != "always" {
			t.Errorf("%s: restart %q; a long-running service should come back after a crash", s.Name, s.Restart)
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 {
			t.Errorf("%s: long-running service without a health check", s.Name)
			continue
		}
		if s.HealthCheck.Interval == nil || s.HealthCheck.Timeout == nil || s.HealthCheck.Retries == nil {
			t.Errorf("%s: health check without interval, timeout or retries", s.Name)
		}
	}
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %s", s.Name, dep)
				continue
			}
			want := types.ServiceConditionHealthy
			if oneShot(target) {
				want = types.ServiceConditionCompletedSuccessfully
			}
			if d.Condition != want {
				t.Errorf("%s depends on %s with condition %q, want %q", s.Name, dep, d.Condition, want)
			}
		}
	}
	// The chain that must hold (direct edges).
	edges := map[string][]string{
		"db-bootstrap":       {"postgres"},
		"migrate":            {"db-bootstrap"},
		"db-roles":           {"migrate"},
		"redis-cluster-init": {"redis-1", "redis-2", "redis-3"},
		"authsvc-1":          {"postgres", "migrate", "redis-cluster-init"},
		"authsvc-2":          {"postgres", "migrate", "redis-cluster-init"},
		"postgrest":          {"postgres", "db-roles"},
		"nginx":              {"authsvc-1", "authsvc-2", "postgrest"},
	}
	for svc, deps := range edges {
		for _, d := range deps {
			if _, ok := p.Services[svc].DependsOn[d]; !ok {
				t.Errorf("%s does not wait for %s", svc, d)
			}
		}
	}
}

func TestNetworksAndPorts(t *testing.T) {
	p := load(t)
	for _, s := range p.Services {
		if s.Name != "nginx" && len(s.Ports) > 0 {
			t.Errorf("%s publishes ports %v; only nginx may", s.Name, s.Ports)
		}
		if len(s.Expose) > 0 && s.Name == "postgres" {
			t.Errorf("postgres exposes %v", s.Expose)
		}
	}
	var published []uint32
	for _, port := range p.Services["nginx"].Ports {
		published = append(published, port.Target)
	}
	slices.Sort(published)
	if !slices.Equal(published, []uint32{80, 443}) {
		t.Errorf("nginx publishes container ports %v, want 80 and 443", published)
	}
	internal := func(n string) bool { return p.Networks[n].Internal }
	for _, n := range []string{"postgres", "redis-1", "redis-2", "redis-3"} {
		if len(p.Services[n].Networks) == 0 {
			t.Errorf("%s is on the default network", n)
		}
		for net := range p.Services[n].Networks {
			if !internal(net) {
				t.Errorf("%s is on network %s, which is not internal", n, net)
			}
		}
	}
	for _, n := range []string{"authsvc-1", "authsvc-2", "postgrest", "migrate", "db-bootstrap", "db-roles", "redis-cluster-init"} {
		for net := range p.Services[n].Networks {
			if !internal(net) {
				t.Errorf("%s is on network %s, which is not internal: only nginx faces the outside", n, net)
			}
		}
	}
	// authsvc believes X-Zsm-Client-Ip only from nginx's fixed address.
	nginxApp := p.Services["nginx"].Networks["app"]
	if nginxApp == nil || nginxApp.Ipv4Address == "" {
		t.Fatal("nginx has no fixed address on network app")
	}
	for _, n := range []string{"authsvc-1", "authsvc-2"} {
		tp := p.Services[n].Environment["AUTHSVC_TRUSTED_PROXIES"]
		if tp == nil || *tp != nginxApp.Ipv4Address+"/32" {
			t.Errorf("%s: AUTHSVC_TRUSTED_PROXIES=%v, want nginx's %s/32", n, deref(tp), nginxApp.Ipv4Address)
		}
	}
}

func deref(p *string) string {
	if p == nil {
		return "<unset>"
	}
	return *p
}

// Named volumes hold PostgreSQL's data and each Redis node's nodes.conf.
func TestVolumes(t *testing.T) {
	p := load(t)
	mount := func(svc, target string) *types.ServiceVolumeConfig {
		for _, v := range p.Services[svc].Volumes {
			if v.Target == target {
				return &v
			}
		}
		return nil
	}
	for svc, target := range map[string]string{"postgres": "/var/lib/postgresql", "redis-1": "/data", "redis-2": "/data", "redis-3": "/data"} {
		v := mount(svc, target)
		if v == nil || v.Type != types.VolumeTypeVolume {
			t.Errorf("%s: %s is not on a named volume (%+v)", svc, target, v)
			continue
		}
		if _, ok := p.Volumes[v.Source]; !ok {
			t.Errorf("%s: volume %s is not declared", svc, v.Source)
		}
	}
	// Every file the compose file mounts exists in the tree.
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind || strings.Contains(v.Source, "/deploy/tls") {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s, which does not exist: %v", s.Name, v.Source, err)
			}
		}
	}
}

var (
	secretName = regexp.MustCompile(`(?i)(PASSWORD|SECRET|_KEY($|_)|DATABASE_URL|DB_URI|REDIS_URL|TOKEN)`)
	// Settings about keys that are not themselves secret.
	notSecret = map[string]bool{"AUTHSVC_KEY_PUBLISH_DELAY": true, "AUTHSVC_KEY_ROTATION_INTERVAL": true}
	urlCreds  = regexp.MustCompile(`[a-z][a-z0-9+.-]*://[^/@\s:]+:[^@\s/]+@`)
)

// Passwords and keys come from Docker secrets: the compose file holds no
// value of one, only file paths.
func TestNoInlineSecrets(t *testing.T) {
	p := load(t)
	raw := read(t, "docker-compose.yaml")
	if m := urlCreds.FindString(raw); m != "" {
		t.Errorf("docker-compose.yaml contains credentials in a URL: %q", m)
	}
	for _, s := range p.Services {
		for k, v := range s.Environment {
			if !secretName.MatchString(k) || notSecret[k] {
				continue
			}
			val := deref(v)
			switch {
			case strings.HasSuffix(k, "_FILE") && strings.HasPrefix(val, "/run/secrets/"):
			case k == "PGRST_DB_URI" && strings.HasPrefix(val, "@/run/secrets/"):
			default:
				t.Errorf("%s: %s=%q: secrets must come from /run/secrets (a _FILE variable)", s.Name, k, val)
			}
			if strings.HasPrefix(val, "/run/secrets/") || strings.HasPrefix(val, "@/run/secrets/") {
				name := strings.TrimPrefix(strings.TrimPrefix(val, "@"), "/run/secrets/")
				if !slices.ContainsFunc(s.Secrets, func(sc types.ServiceSecretConfig) bool { return sc.Source == name }) {
					t.Errorf("%s: %s points at secret %s, which the service does not mount", s.Name, k, name)
				}
			}
		}
		if len(s.EnvFiles) > 0 {
			t.Errorf("%s reads env_file %v: secrets belong in Docker secrets", s.Name, s.EnvFiles)
		}
	}
	root := repoRoot(t)
	for name, sc := range p.Secrets {
		if sc.File == "" || sc.Environment != "" {
			t.Errorf("secret %s: want a file, got %+v", name, sc)
			continue
		}
		if rel, err := filepath.Rel(filepath.Join(root, "deploy", "secrets"), sc.File); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("secret %s: file %s is outside ZSM_SECRETS_DIR's default deploy/secrets", name, sc.File)
		}
	}
	// deploy/gensecrets makes exactly the secrets the compose file declares.
	src := read(t, "deploy/gensecrets/main.go")
	made := regexp.MustCompile(`\{"([a-z_]+)", func`).FindAllStringSubmatch(src, -1)
	var names []string
	for _, m := range made {
		names = append(names, m[1])
	}
	var declared []string
	for n := range p.Secrets {
		declared = append(declared, n)
	}
	sort.Strings(names)
	sort.Strings(declared)
	if !slices.Equal(names, declared) {
		t.Errorf("deploy/gensecrets makes %v, the compose file declares %v", names, declared)
	}
	// Secrets and certificates are git-ignored and kept out of the image.
	for _, f := range []string{"deploy/secrets/.gitignore", "deploy/tls/.gitignore"} {
		if got := read(t, f); !strings.HasPrefix(got, "*\n") {
			t.Errorf("%s does not ignore everything: %q", f, got)
		}
	}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?][^}]*)?\}`)

// parseEnvExample returns .env.example's variables with their values.
func parseEnvExample(t *testing.T) map[string]string {
	vars := map[string]string{}
	for i, line := range strings.Split(read(t, ".env.example"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf(".env.example line %d is not NAME=value: %q", i+1, line)
			continue
		}
		vars[k] = v
	}
	return vars
}

// Every variable the compose file reads is in .env.example, with the same
// default as the compose file's fallback; .env.example lists nothing else
// and no secret.
func TestEnvExampleDocumentsEveryVariable(t *testing.T) {
	vars := parseEnvExample(t)
	raw := read(t, "docker-compose.yaml")
	var code []string // the file without its comment lines
	for _, line := range strings.Split(raw, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			code = append(code, line)
		}
	}
	used := map[string]bool{}
	for _, m := range envRef.FindAllStringSubmatch(strings.Join(code, "\n"), -1) {
		name, fallback := m[1], m[2]
		used[name] = true
		v, ok := vars[name]
		if !ok {
			t.Errorf("docker-compose.yaml reads ${%s}, which .env.example does not list", name)
			continue
		}
		if !strings.HasPrefix(fallback, ":-") {
			t.Errorf("${%s} has no default (${%s:-…}); the compose file must work without .env", name, name)
		} else if def := strings.TrimPrefix(fallback, ":-"); def != v {
			t.Errorf("${%s}: compose default %q, .env.example says %q", name, def, v)
		}
	}
	for k, v := range vars {
		if !used[k] {
			t.Errorf(".env.example lists %s, which docker-compose.yaml does not use", k)
		}
		if (regexp.MustCompile(`(?i)PASSWORD|SECRET|KEY$`).MatchString(k) && !strings.HasSuffix(k, "_DIR")) || urlCreds.MatchString(v) {
			t.Errorf(".env.example holds a secret (%s): secrets are Docker secrets", k)
		}
	}
	// Bare $VAR references would also be interpolated; only ${…} and $$ are used.
	bare := regexp.MustCompile(`(^|[^$])\$[A-Za-z_]`)
	for i, line := range strings.Split(raw, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if bare.MatchString(line) {
			t.Errorf("docker-compose.yaml line %d uses a bare $VARIABLE: %s", i+1, line)
		}
	}
}

// authsvc in compose talks to the Redis Cluster: every node is a seed.
func TestAuthsvcConfiguration(t *testing.T) {
	p := load(t)
	for _, n := range []string{"authsvc-1", "authsvc-2"} {
		env := p.Services[n].Environment
		if deref(env["AUTHSVC_REDIS_ADDRS"]) != "redis-1:6379,redis-2:6379,redis-3:6379" {
			t.Errorf("%s: AUTHSVC_REDIS_ADDRS=%s", n, deref(env["AUTHSVC_REDIS_ADDRS"]))
		}
		if _, ok := env["AUTHSVC_REDIS_URL"]; ok {
			t.Errorf("%s sets AUTHSVC_REDIS_URL as well as the cluster addresses", n)
		}
		for _, k := range []string{"AUTHSVC_LISTEN", "AUTHSVC_DATABASE_URL_FILE", "AUTHSVC_REDIS_PASSWORD_FILE",
			"AUTHSVC_SERVER_SECRET_FILE", "AUTHSVC_KEY_ENCRYPTION_KEY_FILE", "AUTHSVC_ISSUER", "AUTHSVC_AUDIENCE", "AUTHSVC_TRUSTED_PROXIES"} {
			if deref(env[k]) == "<unset>" || deref(env[k]) == "" {
				t.Errorf("%s: %s is not set", n, k)
			}
		}
		if got := deref(env["AUTHSVC_ISSUER"]); !strings.HasPrefix(got, "https://") {
			t.Errorf("%s: issuer %q is not an https URL", n, got)
		}
	}
	// Every AUTHSVC_* setting authsvc reads is described in docs/deploy.md.
	cfg := read(t, "authsvc/config/config.go")
	doc := read(t, "docs/deploy.md")
	for _, m := range regexp.MustCompile(`"(AUTHSVC_[A-Z_]+)"`).FindAllStringSubmatch(cfg, -1) {
		if !strings.Contains(doc, m[1]) {
			t.Errorf("docs/deploy.md does not describe %s", m[1])
		}
	}
}

// PostgREST in compose has the settings of postgrest/postgrest.conf, but
// for the documented differences.
func TestPostgrestMatchesLocalConfig(t *testing.T) {
	p := load(t)
	env := p.Services["postgrest"].Environment
	local := map[string]string{}
	for _, line := range strings.Split(read(t, "postgrest/postgrest.conf"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		local[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	for k, v := range local {
		name := "PGRST_" + strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
		if got := deref(env[name]); got != v {
			t.Errorf("postgrest: %s=%s, but postgrest/postgrest.conf has %s = %q", name, got, k, v)
		}
	}
	for _, k := range []string{"PGRST_DB_URI", "PGRST_SERVER_PORT", "PGRST_ADMIN_SERVER_PORT"} {
		if deref(env[k]) == "<unset>" {
			t.Errorf("postgrest: %s is not set", k)
		}
	}
}

// The PostgREST that compose deploys is the release every test runs: the
// Dockerfile's postgrest stage starts from the image of exactly the version
// the stack runner installs. Moving to another release means changing both,
// and running the tests against it first (docs/deploy.md).
func TestDeployedPostgrestIsTheTestedOne(t *testing.T) {
	tested, _, _ := strings.Cut(stack.PostgrestNpmVersion, "-") // "12.0.2-2": the npm build of 12.0.2
	var base string
	for _, in := range parseDockerfile(read(t, "Dockerfile")) {
		if in.cmd != "FROM" {
			continue
		}
		f := strings.Fields(in.args)
		if len(f) == 3 && strings.EqualFold(f[1], "AS") && f[2] == "postgrest" {
			base = f[0]
		}
	}
	if base == "" {
		t.Fatal("the Dockerfile has no stage named postgrest")
	}
	if want := "postgrest/postgrest:v" + tested; base != want {
		t.Fatalf("compose deploys %s, but the tests run PostgREST %s (want %s)", base, tested, want)
	}
}
