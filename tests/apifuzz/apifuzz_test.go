// Package apifuzz runs schemathesis against both halves of zsm's API on a
// throwaway stack: authsvc's OpenAPI through the gateway (and its two
// internal endpoints on its own listener), and PostgREST's at /rest/, as a
// real signed-in user. Every check schemathesis has is on; a run with any
// failure fails the test, and so does schemathesis that cannot be installed
// or run. Nothing is skipped.
//
// The runs are bounded by count, not time: maxExamples per operation and
// phase. A time budget made the run depend on the machine's load: on a busy
// machine schemathesis spent its whole budget loading the document and
// generating the coverage cases, tested nothing, and the test failed.
package apifuzz

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/zsm"
	"zsm.dev/zsm/spec"
	"zsm.dev/zsm/srpgroup"
	"zsm.dev/zsm/stack"
)

var (
	st       *stack.Stack
	startErr error
)

func TestMain(m *testing.M) {
	var stop func()
	// Rate limits high enough that the fuzzer reaches the handlers rather
	// than the limiter on every request (429 is documented and accepted,
	// but tells nothing about the rest).
	st, stop, startErr = stack.StartTemp("zsm-apifuzz-", stack.Config{
		LoginRatePerSecond: 1000, LoginBurst: 1000,
		AuthsvcEnv: map[string]string{
			"AUTHSVC_LOGIN_RATE_PER_IP":  "100000",
			"AUTHSVC_SIGNUP_RATE_PER_IP": "100000",
		},
	})
	code := m.Run()
	stop()
	os.Exit(code)
}

// maxExamples bounds every phase of every run (schemathesis --max-examples).
// PostgREST's document has a few dozen operations whose filters are all typed
// as free strings; its run skips the coverage and stateful phases, which
// would spend minutes on boundary cases of parameters PostgREST declares as
// plain text (postgrest.toml says which checks stay off, and why).
const (
	maxExamples          = 25
	postgrestMaxExamples = 15
)

func TestSchemathesis(t *testing.T) {
	if startErr != nil {
		t.Fatalf("the stack did not start: %v", startErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stBin, err := stack.EnsureSchemathesis(ctx, st.State().CacheDir, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatalf("schemathesis cannot be installed: %v", err)
	}
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	env := append(os.Environ(),
		"PYTHONPATH="+here,
		"SCHEMATHESIS_HOOKS=zsm_hooks",
		"ZSM_APIFUZZ_IDENTITIES="+writeIdentities(t, work),
		"NO_COLOR=1",
	)
	// One user per run: the authsvc run may end its own session (it lists
	// the sessions and follows their ids to DELETE /auth/v1/sessions/{id}).
	authsvcToken, restToken := signedInUser(t, ctx), signedInUser(t, ctx)
	gw := st.GatewayURL()

	t.Run("authsvc through the gateway", func(t *testing.T) {
		runSchemathesis(t, ctx, stBin, env, filepath.Join(here, "authsvc.toml"),
			filepath.Join(st.RepoRoot(), "authsvc", "httpapi", "openapi.yaml"),
			"--checks", "all", "--max-examples", fmt.Sprint(maxExamples), "--url", gw, "--exclude-tag", "internal",
			"-H", "Authorization: Bearer "+authsvcToken)
	})
	t.Run("authsvc's own listener", func(t *testing.T) {
		// /healthz and /readyz are served to the orchestrator on authsvc's
		// own port; the gateway answers its own /healthz and no /readyz
		// (TestGatewayHealthRoutes).
		runSchemathesis(t, ctx, stBin, env, filepath.Join(here, "authsvc.toml"),
			filepath.Join(st.RepoRoot(), "authsvc", "httpapi", "openapi.yaml"),
			"--checks", "all", "--max-examples", fmt.Sprint(maxExamples), "--url", st.AuthsvcURL(), "--include-tag", "internal")
	})
	t.Run("PostgREST at /rest/", func(t *testing.T) {
		// Every check schemathesis has is on by default; postgrest.toml
		// turns off the two that PostgREST's own loose document defeats,
		// and says why. (--checks all would turn them on again.)
		doc := restDocument(t, ctx, restToken)
		runSchemathesis(t, ctx, stBin, env, filepath.Join(here, "postgrest.toml"), doc,
			"--max-examples", fmt.Sprint(postgrestMaxExamples), "--phases", "examples,fuzzing",
			"--url", gw+"/rest",
			"-H", "Authorization: Bearer "+restToken)
	})
}

// runSchemathesis runs `st run` on one document and fails the test unless
// schemathesis reports no failure and no error.
func runSchemathesis(t *testing.T, ctx context.Context, stBin string, env []string, config, doc string, args ...string) {
	t.Helper()
	all := append([]string{"--config-file", config, "run", doc,
		"--workers", "1",
		"--request-timeout", "10", "--no-color", "--suppress-health-check", "too_slow"}, args...)
	cmd := exec.CommandContext(ctx, stBin, all...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	text := redactBearer(string(out))
	logFile := filepath.Join(os.TempDir(), "zsm-apifuzz-"+strings.NewReplacer("/", "-", "'", "").Replace(t.Name())+".log")
	_ = os.WriteFile(logFile, []byte(text), 0o600)
	if err != nil {
		t.Fatalf("schemathesis found failures or could not run (%v); full output in %s:\n%s", err, logFile, tail(text, 150))
	}
	if !strings.Contains(text, "No issues found") && !strings.Contains(text, " passed") {
		t.Fatalf("schemathesis exited 0 without a summary; full output in %s:\n%s", logFile, tail(text, 60))
	}
	t.Logf("schemathesis: %s", lastLine(text))
}

// signedInUser signs a user up and in through the gateway with the SDK,
// with a vault and a secret so that PostgREST has rows to show, and returns
// the access token.
func signedInUser(t *testing.T, ctx context.Context) string {
	t.Helper()
	state := zsm.NewMemState()
	id := "fuzz-" + uuid.NewString()[:8] + "@example.test"
	res, err := zsm.Signup(ctx, nil, st.GatewayURL(), id, "correct horse fuzz", state)
	if err != nil {
		t.Fatalf("signup: %v", err)
	}
	sess, err := zsm.Login(ctx, nil, st.GatewayURL(), id, "correct horse fuzz", res.SecretKey, state)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	c := zsm.New(sess, state, nil)
	v, err := c.CreateVault(ctx, "fuzzed")
	if err != nil {
		t.Fatalf("create vault: %v", err)
	}
	if _, err := c.SetSecret(ctx, v, "A", "value"); err != nil {
		t.Fatalf("set secret: %v", err)
	}
	return sess.AccessToken
}

// restDocument fetches PostgREST's OpenAPI through the gateway as the user
// (it lists what the caller's role may use), checks that it names the
// gateway and /rest, and writes it to a file.
func restDocument(t *testing.T, ctx context.Context, token string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, st.GatewayURL()+"/rest/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /rest/: %d %v", resp.StatusCode, err)
	}
	var doc struct {
		Swagger  string         `json:"swagger"`
		Host     string         `json:"host"`
		BasePath string         `json:"basePath"`
		Paths    map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	gw, _ := url.Parse(st.GatewayURL())
	if doc.Host != gw.Host || doc.BasePath != "/rest" {
		t.Fatalf("PostgREST's OpenAPI names host %q and basePath %q, want the gateway %q and /rest", doc.Host, doc.BasePath, gw.Host)
	}
	if _, ok := doc.Paths["/vaults"]; !ok {
		t.Fatalf("PostgREST's OpenAPI does not list /vaults for a signed-in user")
	}
	body = markNullable(t, body)
	p := filepath.Join(t.TempDir(), "postgrest-openapi.json")
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// markNullable adds "x-nullable": true to every property of PostgREST's
// definitions that is not listed as required. Swagger 2.0 cannot say that a
// value may be null; PostgREST 12 lists exactly the NOT NULL columns as
// required and types the others by their column type alone, so a row with a
// NULL in a nullable column (audit_events.session_id of a sign-up, say)
// would "violate" the document. x-nullable is the Swagger 2.0 extension
// schemathesis reads for this; nothing else of the document changes.
func markNullable(t *testing.T, body []byte) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	defs, _ := doc["definitions"].(map[string]any)
	n := 0
	for _, d := range defs {
		def, _ := d.(map[string]any)
		required := map[string]bool{}
		if req, ok := def["required"].([]any); ok {
			for _, r := range req {
				if name, ok := r.(string); ok {
					required[name] = true
				}
			}
		}
		props, _ := def["properties"].(map[string]any)
		for name, p := range props {
			if prop, ok := p.(map[string]any); ok && !required[name] {
				prop["x-nullable"] = true
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("PostgREST's document has no nullable column: the definitions are not where they were")
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeIdentities writes the identity samples the hooks draw from: the
// valid inputs of spec/vectors/identity.json, sorted by srpgroup into those
// a login takes and those a sign-up takes too.
func writeIdentities(t *testing.T, dir string) string {
	t.Helper()
	data, err := spec.Vectors.ReadFile("vectors/identity.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		TestGroups []struct {
			Type  string `json:"type"`
			Tests []struct {
				Input  string `json:"input"`
				Result string `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{"login": {}, "signup": {}}
	for _, g := range f.TestGroups {
		if g.Type != "normalize" {
			continue
		}
		for _, tc := range g.Tests {
			raw, err := hex.DecodeString(tc.Input)
			if err != nil {
				t.Fatal(err)
			}
			n, err := srpgroup.NormalizeIdentity(string(raw))
			if tc.Result != "valid" || err != nil {
				continue
			}
			out["login"] = append(out["login"], string(raw))
			if srpgroup.CheckNewIdentity(n) == nil {
				out["signup"] = append(out["signup"], string(raw))
			}
		}
	}
	if len(out["login"]) < 10 || len(out["signup"]) < 10 {
		t.Fatalf("too few identity samples: %d for login, %d for sign-up", len(out["login"]), len(out["signup"]))
	}
	b, _ := json.Marshal(out)
	p := filepath.Join(dir, "identities.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// redactBearer keeps the access token out of logs (schemathesis filters
// Authorization in its own output; this is for anything else).
func redactBearer(s string) string {
	for {
		i := strings.Index(s, "Bearer ey")
		if i < 0 {
			return s
		}
		j := i + len("Bearer ")
		for j < len(s) && strings.IndexByte(" \t\r\n'\"", s[j]) < 0 {
			j++
		}
		s = s[:i] + "Bearer [redacted]" + s[j:]
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func lastLine(s string) string { return tail(s, 1) }
