package compose

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"

	"zsm.dev/zsm/stack"
)

// directive is one nginx directive with its block, if any.
type directive struct {
	name  string
	args  []string
	block []*directive
}

func (d *directive) String() string {
	return strings.TrimSpace(d.name + " " + strings.Join(d.args, " "))
}

// canon renders a directive and its block on one line, for comparisons.
func (d *directive) canon() string {
	s := d.String()
	if d.block != nil {
		var parts []string
		for _, c := range d.block {
			parts = append(parts, c.canon())
		}
		s += " { " + strings.Join(parts, "; ") + " }"
	}
	return s
}

func (d *directive) all(name string) []*directive {
	var out []*directive
	for _, c := range d.block {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// parseNginx parses enough of nginx's syntax for these comparisons: words,
// single- and double-quoted strings (kept with their quotes), comments,
// blocks and semicolons.
func parseNginx(t *testing.T, src string) *directive {
	t.Helper()
	var toks []string
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, string(c))
			i++
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(src) && src[j] != c {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				t.Fatalf("unterminated string at offset %d", i)
			}
			toks = append(toks, src[i:j+1])
			i = j + 1
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n{};", rune(src[j])) {
				j++
			}
			toks = append(toks, src[i:j])
			i = j
		}
	}
	root := &directive{name: "main", block: []*directive{}}
	stackOf := []*directive{root}
	var cur *directive
	for _, tok := range toks {
		switch tok {
		case ";":
			if cur == nil {
				t.Fatal("empty directive")
			}
			top := stackOf[len(stackOf)-1]
			top.block = append(top.block, cur)
			cur = nil
		case "{":
			if cur == nil {
				t.Fatal("block without a directive")
			}
			cur.block = []*directive{}
			top := stackOf[len(stackOf)-1]
			top.block = append(top.block, cur)
			stackOf = append(stackOf, cur)
			cur = nil
		case "}":
			if cur != nil || len(stackOf) == 1 {
				t.Fatal("unbalanced }")
			}
			stackOf = stackOf[:len(stackOf)-1]
		default:
			if cur == nil {
				cur = &directive{name: tok}
			} else {
				cur.args = append(cur.args, tok)
			}
		}
	}
	if len(stackOf) != 1 || cur != nil {
		t.Fatal("unbalanced braces or a missing semicolon at the end")
	}
	return root
}

// localGateway renders nginx/gateway.conf.tmpl as the stack runner does,
// with the runner's default login rate and burst.
func localGateway(t *testing.T) *directive {
	tmpl, err := template.New("gw").Option("missingkey=error").Parse(read(t, "nginx/gateway.conf.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, stack.NginxTemplateData{
		GatewayPort: 8080, AuthsvcPort: 18081, PostgrestPort: 18082,
		Prefix: "/s/nginx", PidFile: "/s/nginx/nginx.pid", LogFile: "/s/logs/nginx.log", TempDir: "/s/nginx/tmp",
		LoginRatePerSecond: stack.DefaultLoginRatePerSecond, LoginBurst: stack.DefaultLoginBurst,
		CORSOrigins: stack.DefaultCORSOrigins,
	}); err != nil {
		t.Fatal(err)
	}
	return parseNginx(t, buf.String())
}

func one(t *testing.T, d *directive, name string) *directive {
	t.Helper()
	l := d.all(name)
	if len(l) != 1 {
		t.Fatalf("%s: %d %q directives, want 1", d.String(), len(l), name)
	}
	return l[0]
}

// simple returns the block's directives without blocks of their own, as
// canonical strings, minus those named in skip.
func simple(d *directive, skip ...string) []string {
	var out []string
	for _, c := range d.block {
		if c.block == nil && !slices.Contains(skip, c.name) {
			out = append(out, c.String())
		}
	}
	slices.Sort(out)
	return out
}

func blocks(d *directive, name string) map[string]string {
	out := map[string]string{}
	for _, c := range d.all(name) {
		out[strings.Join(c.args, " ")] = c.canon()
	}
	return out
}

func diffLists(t *testing.T, what string, local, compose []string) {
	t.Helper()
	for _, l := range local {
		if !slices.Contains(compose, l) {
			t.Errorf("%s: the local gateway has %q, the compose gateway does not", what, l)
		}
	}
	for _, c := range compose {
		if !slices.Contains(local, c) {
			t.Errorf("%s: the compose gateway has %q, the local gateway does not", what, c)
		}
	}
}

// The compose gateway has the local gateway's routes, body limits, rate
// limits, request-id handling, client-address header, JSON error bodies and
// log format. Everything else that differs is listed here, with its reason.
func TestNginxSameRoutesAndLimits(t *testing.T) {
	local := localGateway(t)
	compose := parseNginx(t, read(t, "deploy/nginx/nginx.conf"))
	lh, ch := one(t, local, "http"), one(t, compose, "http")

	// http level. Different on purpose: temp paths and log destinations
	// (the container's /var/cache/nginx, stdout; an unbuffered access log
	// because docker collects stdout), and TLS settings, which only compose has.
	skip := []string{"client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path", "access_log"}
	var composeHTTP []string
	for _, d := range simple(ch, skip...) {
		if !strings.HasPrefix(d, "ssl_") {
			composeHTTP = append(composeHTTP, d)
		}
	}
	diffLists(t, "http", simple(lh, skip...), composeHTTP)
	if got := ch.all("ssl_protocols"); len(got) != 1 || got[0].String() != "ssl_protocols TLSv1.2 TLSv1.3" {
		t.Errorf("compose gateway ssl_protocols: %v", got)
	}
	// Same access log format (no Authorization, no query string), logged.
	lf, cf := one(t, lh, "log_format"), one(t, ch, "log_format")
	if lf.canon() != cf.canon() {
		t.Errorf("log_format differs:\nlocal   %s\ncompose %s", lf.canon(), cf.canon())
	}
	if al := one(t, ch, "access_log"); len(al.args) < 2 || al.args[1] != "zsm" {
		t.Errorf("compose access_log %q does not use format zsm", al.String())
	}
	lm, cm := blocks(lh, "map"), blocks(ch, "map")
	diffLists(t, "map blocks", mapValues(lm), mapValues(cm))

	// Upstreams: same names; compose balances over both authsvc replicas.
	lu, cu := blocks(lh, "upstream"), blocks(ch, "upstream")
	if !slices.Equal(sortedKeys(lu), sortedKeys(cu)) {
		t.Errorf("upstreams: local %v, compose %v", sortedKeys(lu), sortedKeys(cu))
	}
	for _, u := range ch.all("upstream") {
		var servers []string
		for _, s := range u.all("server") {
			servers = append(servers, s.args[0])
		}
		want := map[string][]string{
			"zsm_authsvc": {"authsvc-1:8081", "authsvc-2:8081"}, "zsm_postgrest": {"postgrest:3000"}, "zsm_postgrest_reads": {"postgrest:3000"},
		}[u.args[0]]
		if !slices.Equal(servers, want) {
			t.Errorf("upstream %s: servers %v, want %v", u.args[0], servers, want)
		}
		// Everything but the servers (keepalive, …) as on the local gateway.
		var lu *directive
		for _, l := range lh.all("upstream") {
			if l.args[0] == u.args[0] {
				lu = l
			}
		}
		if lu != nil {
			diffLists(t, "upstream "+u.args[0], simple(lu, "server"), simple(u, "server"))
		}
	}

	// Servers: the local one against compose's TLS server.
	ls := one(t, lh, "server")
	var tlsServer, plain *directive
	for _, s := range ch.all("server") {
		if slices.ContainsFunc(s.all("listen"), func(l *directive) bool { return slices.Contains(l.args, "ssl") }) {
			tlsServer = s
		} else {
			plain = s
		}
	}
	if tlsServer == nil || plain == nil {
		t.Fatal("the compose gateway needs a TLS server and a plain-HTTP server")
	}
	if got := one(t, tlsServer, "listen").String(); got != "listen 443 ssl" {
		t.Errorf("TLS server: %q", got)
	}
	var tlsSimple []string
	for _, d := range simple(tlsServer, "listen", "ssl_certificate", "ssl_certificate_key") {
		if !strings.HasPrefix(d, "add_header Strict-Transport-Security") {
			tlsSimple = append(tlsSimple, d)
		}
	}
	diffLists(t, "server", simple(ls, "listen"), tlsSimple)
	if !slices.ContainsFunc(tlsServer.all("add_header"), func(d *directive) bool { return d.args[0] == "Strict-Transport-Security" }) {
		t.Error("the TLS server sends no Strict-Transport-Security")
	}
	ll, cl := blocks(ls, "location"), blocks(tlsServer, "location")
	if !slices.Equal(sortedKeys(ll), sortedKeys(cl)) {
		t.Errorf("locations: local %v, compose %v", sortedKeys(ll), sortedKeys(cl))
	}
	for k, v := range ll {
		if cl[k] != v {
			t.Errorf("location %s differs:\nlocal   %s\ncompose %s", k, v, cl[k])
		}
	}
	// Plain HTTP: health check, and a redirect to https for the rest.
	pl := blocks(plain, "location")
	if pl["= /healthz"] != ll["= /healthz"] {
		t.Errorf("port 80 /healthz %q, want the local gateway's %q", pl["= /healthz"], ll["= /healthz"])
	}
	if pl["/"] != "location / { return 301 https://$host$request_uri }" || len(pl) != 2 {
		t.Errorf("port 80 should only redirect to https (and answer /healthz): %v", pl)
	}
	if got, want := one(t, one(t, compose, "events"), "worker_connections").String(), one(t, one(t, local, "events"), "worker_connections").String(); got != want {
		t.Errorf("events: %s, local %s", got, want)
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Fatal("nginx is not installed (apt-get install -y nginx, or run `go tool task up` once as root)")
	return ""
}

// `nginx -t` accepts deploy/nginx/nginx.conf with the certificate
// `go tool task tls:dev` makes. The configuration names the compose services
// (authsvc-1, authsvc-2, postgrest) as upstream hosts, which nginx resolves
// when it loads the file and which do not resolve here. Rather than edit
// /etc/hosts (shared, needs root, leaks into other tests), the test checks a
// copy in which only these differ: each service name becomes a loopback
// address of its own, and the container's paths (/etc/nginx/tls,
// /var/cache/nginx, the pid file) and `user nginx` (no such user here)
// point into a temp dir and at the current user. Every other byte is the
// compose file's.
func TestNginxConfigLoads(t *testing.T) {
	bin := nginxBinary(t)
	root := repoRoot(t)
	dir := t.TempDir()
	tls := filepath.Join(dir, "tls")
	gen := exec.Command("go", "run", "./deploy/devcert", "-out", tls)
	gen.Dir = root
	out, err := gen.CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./deploy/devcert: %v\n%s", err, out)
	}
	for _, f := range []string{"fullchain.pem", "privkey.pem"} {
		if _, err := os.Stat(filepath.Join(tls, f)); err != nil {
			t.Fatalf("devcert did not write %s: %v", f, err)
		}
	}
	src := read(t, "deploy/nginx/nginx.conf")
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	replace := []struct{ from, to string }{
		{"server authsvc-1:", "server 127.0.0.11:"},
		{"server authsvc-2:", "server 127.0.0.12:"},
		{"server postgrest:", "server 127.0.0.13:"},
		{"/etc/nginx/tls/", tls + "/"},
		{"/var/cache/nginx/", filepath.Join(dir, "cache") + "/"},
		{"/var/run/nginx.pid", filepath.Join(dir, "nginx.pid")},
		{"user nginx;", fmt.Sprintf("user %s %s;", u.Username, g.Name)},
	}
	conf := src
	for _, r := range replace {
		if !strings.Contains(conf, r.from) {
			t.Fatalf("deploy/nginx/nginx.conf no longer contains %q; update this test's mapping", r.from)
		}
		conf = strings.ReplaceAll(conf, r.from, r.to)
	}
	if err := os.MkdirAll(filepath.Join(dir, "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-t", "-p", dir+"/", "-c", path, "-e", "stderr")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t rejects the compose gateway config: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "test is successful") {
		t.Fatalf("nginx -t: %s", b)
	}
	t.Logf("%s", bytes.TrimSpace(b))
}

// nginx gives a location that sets any proxy_set_header of its own none of
// the shared ones: a location that once set Prefer sent PostgREST no
// X-Request-Id and "Connection: close". So the shared set carries the
// request id, the single Prefer line the gate relies on, the empty
// Connection header that pooled upstream connections need and Host, and a
// location that sets its own list (/rest/ passes only named headers) sets
// every one of them too, to the same values.
func TestNginxProxyHeadersInherited(t *testing.T) {
	required := map[string]string{"X-Request-Id": "$zsm_request_id", "Prefer": "$http_prefer", "Connection": `""`, "Host": "$host"}
	for name, conf := range map[string]*directive{
		"local":   localGateway(t),
		"compose": parseNginx(t, read(t, "deploy/nginx/nginx.conf")),
	} {
		h := one(t, conf, "http")
		check := func(d *directive, where string) {
			set := map[string]string{}
			for _, c := range d.block {
				if c.name == "proxy_set_header" {
					set[c.args[0]] = strings.Join(c.args[1:], " ")
				}
			}
			if where != "http" && len(set) == 0 {
				return // inherits the shared set
			}
			for header, want := range required {
				if set[header] != want {
					t.Errorf("%s gateway: %s: proxy_set_header %s %q, want %q", name, where, header, set[header], want)
				}
			}
		}
		var walk func(d *directive, where string)
		walk = func(d *directive, where string) {
			check(d, where)
			for _, c := range d.block {
				if c.block != nil {
					walk(c, strings.TrimSpace(c.name+" "+strings.Join(c.args, " ")))
				}
			}
		}
		walk(h, "http")
	}
}
