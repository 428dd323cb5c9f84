package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"zsm.dev/zsm/sdk/zsm"
	"zsm.dev/zsm/stack"
)

// The scripts in testdata/script run `zsm` against ONE real stack
// (PostgreSQL, Redis, authsvc, PostgREST, nginx) started on free loopback
// ports the first time a test needs it. If it cannot start, those tests
// fail; they never skip.

var (
	stackOnce sync.Once
	st        *stack.Stack
	stackErr  error
	stackDir  string
)

func needStack(t testing.TB) string {
	t.Helper()
	stackOnce.Do(func() {
		stackDir, stackErr = os.MkdirTemp("", "zsm-cli-")
		if stackErr != nil {
			return
		}
		// As root the services run as an unprivileged user, who must be
		// able to reach the state directory (MkdirTemp makes it 0700).
		if stackErr = os.Chmod(stackDir, 0o711); stackErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		st, stackErr = stack.Start(ctx, stack.Config{
			Dir:                stackDir,
			LoginRatePerSecond: 1000,
			LoginBurst:         1000,
			AuthsvcEnv: map[string]string{
				"AUTHSVC_LOGIN_RATE_PER_IP":  "100000",
				"AUTHSVC_SIGNUP_RATE_PER_IP": "100000",
				// The shortest access tokens authsvc allows: every command
				// after a login then refreshes (under the session lock) and
				// re-seals the session file under the exported key.
				"AUTHSVC_ACCESS_TTL": "1m",
				// Webhooks to loopback are allowed here (and only here).
				"AUTHSVC_WEBHOOK_ALLOW_HTTP": "true",
				"AUTHSVC_WEBHOOK_ALLOW_NETS": "127.0.0.0/8",
			},
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
	})
	if stackErr != nil {
		t.Fatalf("the stack did not start: %v", stackErr)
	}
	return st.GatewayURL()
}

type stackM struct{ m *testing.M }

func (s stackM) Run() int {
	code := s.m.Run()
	if st != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := st.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the stack:", err)
		}
	}
	if stackDir != "" {
		os.RemoveAll(stackDir)
	}
	return code
}

func TestMain(m *testing.M) {
	testscript.Main(stackM{m}, map[string]func(){
		"zsm": func() { os.Exit(Main()) },
		// zsm-printenv NAME…: prints each variable, or <unset>.
		"zsm-printenv": func() {
			for _, k := range os.Args[1:] {
				if v, ok := os.LookupEnv(k); ok {
					fmt.Println(v)
				} else {
					fmt.Println("<unset>")
				}
			}
		},
		// zsm-rest METHOD PATH [BODY]: sends one request to the server with
		// the access token of this home's session (as zsm would, refreshing
		// it if needed) and prints the status and the body: for scripts that
		// play a user who goes around the CLI.
		"zsm-rest": func() { os.Exit(restMain(os.Args[1:])) },
		// zsm-exit N: exits with N.
		"zsm-exit": func() {
			n, _ := strconv.Atoi(os.Args[1])
			os.Exit(n)
		},
		// zsm-sigchild: sends SIGTERM to its parent (zsm run), which must
		// pass it back; exits 42 when it arrives, 1 if not within 10 s.
		"zsm-sigchild": func() {
			ch := make(chan os.Signal, 1)
			signal.Notify(ch, syscall.SIGTERM)
			_ = syscall.Kill(os.Getppid(), syscall.SIGTERM)
			select {
			case <-ch:
				os.Exit(42)
			case <-time.After(10 * time.Second):
				os.Exit(1)
			}
		},
	})
}

func TestScripts(t *testing.T) {
	gateway := needStack(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			b := make([]byte, 6)
			_, _ = rand.Read(b)
			e.Setenv("ZSM_SERVER", gateway)
			e.Setenv("ZSM_HOME", e.WorkDir+"/home")
			e.Setenv("ZSM_KEYRING", "off")
			e.Setenv("ID", "cli-"+hex.EncodeToString(b)+"@example.test")
			return nil
		},
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"exitcode":   cmdExitcode,
			"setenvfrom": cmdSetenvfrom,
			"jsonfield":  cmdJSONField,
			"expandfile": cmdExpandfile,
			"bumpseen":   cmdBumpseen,
		},
	})
}

func restMain(args []string) int {
	if len(args) < 2 || len(args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: zsm-rest METHOD PATH [BODY]")
		return 2
	}
	ctx := context.Background()
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, hc: zsm.NewHTTPClient()}
	l, err := a.login(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zsm-rest:", err)
		return 1
	}
	defer a.saveState()
	var body io.Reader
	if len(args) == 3 {
		body = strings.NewReader(args[2])
	}
	s := l.session()
	req, err := http.NewRequestWithContext(ctx, args[0], s.Server+args[1], body)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zsm-rest:", err)
		return 1
	}
	req.Header.Set("Authorization", "Bearer "+s.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zsm-rest:", err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s\n", resp.StatusCode, b)
	return 0
}

// exitcode N CMD ARGS…: runs CMD (like exec) and wants exit code N.
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N CMD [ARGS…]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// setenvfrom VAR FILE REGEXP: sets VAR to the first group of REGEXP in FILE
// (stdout and stderr name the last command's output).
func cmdSetenvfrom(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: setenvfrom VAR FILE REGEXP")
	}
	re, err := regexp.Compile(args[2])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile(args[1]))
	if len(m) < 2 {
		ts.Fatalf("no match for %q in %s", args[2], args[1])
	}
	ts.Setenv(args[0], m[1])
}

// jsonfield FILE PATH WANT: the JSON value at PATH (dot-separated keys and
// indexes; "#" at the end is a length) of FILE must print as WANT (strings
// without quotes, everything else as JSON). With !, it must not.
func cmdJSONField(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: jsonfield FILE PATH WANT")
	}
	var v any
	if err := json.Unmarshal([]byte(ts.ReadFile(args[0])), &v); err != nil {
		ts.Fatalf("%s is not JSON: %v", args[0], err)
	}
	if args[1] != "." {
		for _, p := range strings.Split(args[1], ".") {
			switch x := v.(type) {
			case map[string]any:
				if p == "#" {
					v = float64(len(x))
					continue
				}
				var ok bool
				if v, ok = x[p]; !ok {
					v = "<missing>"
				}
			case []any:
				if p == "#" {
					v = float64(len(x))
					continue
				}
				i, err := strconv.Atoi(p)
				if err != nil || i < 0 || i >= len(x) {
					ts.Fatalf("%s: no index %s in an array of %d", args[0], p, len(x))
				}
				v = x[i]
			default:
				ts.Fatalf("%s: %s: not an object or array", args[0], args[1])
			}
		}
	}
	got, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		got = string(b)
	}
	if (got == args[2]) == neg {
		ts.Fatalf("%s %s = %q, want %s%q", args[0], args[1], got, map[bool]string{true: "not ", false: ""}[neg], args[2])
	}
}

// expandfile SRC DST: copies SRC to DST with $VAR and ${VAR} expanded.
func cmdExpandfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: expandfile SRC DST")
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(os.Expand(ts.ReadFile(args[0]), ts.Getenv)), 0o600))
}

// bumpseen FILE: raises every revision a state.json has seen by 100, as if
// this device had seen newer data than the server now sends (a rollback).
func cmdBumpseen(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: bumpseen STATEFILE")
	}
	var st map[string]any
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &st))
	seen, _ := st["seen"].(map[string]any)
	for k, v := range seen {
		seen[k] = v.(float64) + 100
	}
	b, err := json.Marshal(st)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o600))
}
