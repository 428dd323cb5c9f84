package compose

import (
	"regexp"
	"strings"
	"testing"
)

type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// parseDockerfile joins continuation lines and drops comments and blanks.
func parseDockerfile(src string) []instruction {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// The authsvc image: multi-stage, every base image pinned to an exact
// release (or scratch), a static binary, a non-root user in the final stage,
// a health check, and authsvc as the entrypoint.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(read(t, "Dockerfile"))
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("line %d: %s before the first FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stage(s); want a multi-stage build", len(stages))
	}
	pinned := regexp.MustCompile(`^[a-z0-9./-]+:v?\d+\.\d+\.\d+(-[a-z0-9.]+)?(@sha256:[0-9a-f]{64})?$`)
	for _, st := range stages {
		f := strings.Fields(st[0].args)
		if f[0] == "scratch" {
			continue
		}
		if strings.HasPrefix(f[0], "--platform") {
			f = f[1:]
		}
		if !pinned.MatchString(f[0]) {
			t.Errorf("line %d: base image %q is not pinned to an exact version (name:x.y.z[-variant])", st[0].line, f[0])
		}
	}
	final := stages[len(stages)-1]
	var user, health, entry string
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "HEALTHCHECK":
			health = in.args
		case "ENTRYPOINT":
			entry = in.args
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	switch {
	case user == "":
		t.Error("the final stage sets no USER: the container would run as root")
	case uid == "0" || uid == "root":
		t.Errorf("the final stage runs as %q", user)
	case !regexp.MustCompile(`^[1-9]\d*$`).MatchString(uid):
		t.Errorf("USER %q: use a numeric uid, so Kubernetes' runAsNonRoot can verify it", user)
	}
	if !strings.Contains(health, "CMD") || strings.Contains(health, "NONE") {
		t.Errorf("final stage health check %q", health)
	}
	if !strings.Contains(entry, "authsvc") {
		t.Errorf("entrypoint %q does not run authsvc", entry)
	}
	// The health check's binary and authsvc are built static, in the build stage.
	all := read(t, "Dockerfile")
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/authsvc", "./deploy/healthcheck"} {
		if !strings.Contains(all, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// Secrets, certificates and local state never enter the build context.
	ignore := read(t, ".dockerignore")
	for _, want := range []string{".git", ".zsm", "deploy/secrets", "deploy/tls", ".env"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(ignore) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}
