// Package desktop tests the desktop app (desktop/) end to end: the real
// binary in a real window (Xvfb), driven through tauri-driver and
// WebKitWebDriver, against a throwaway stack of the project's stack runner,
// on an account the Go CLI created. Nothing is mocked. If anything the test
// needs is missing — the stack, the Debian packages, tauri-driver, the
// build — every test fails; none skips.
//
// Screenshots of every screen go to <repo>/.zsm/desktop-screenshots (or
// $ZSM_DESKTOP_SCREENSHOTS).
package desktop

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zsm.dev/zsm/desktop/toolchain"
	"zsm.dev/zsm/desktop/webdriver"
	"zsm.dev/zsm/stack"
)

var (
	st       *stack.Stack
	startErr error
	h        harness
)

// harness is what every test here needs besides the stack.
type harness struct {
	repo    string
	app     string // the built app
	zsm     string // the built CLI
	driver  string // tauri-driver
	tmp     string
	display string // :N of our Xvfb
	err     error
}

func TestMain(m *testing.M) {
	var stop func()
	st, stop, startErr = stack.StartTemp("zsm-desktop-", stack.Config{LoginRatePerSecond: 50, LoginBurst: 100})
	var stopX func()
	if startErr == nil {
		stopX, h.err = setup()
	}
	code := m.Run()
	if stopX != nil {
		stopX()
	}
	if h.tmp != "" {
		os.RemoveAll(h.tmp)
	}
	stop()
	os.Exit(code)
}

// need fails the test when the stack or the harness did not come up.
func need(t *testing.T) *stack.Stack {
	t.Helper()
	if startErr != nil {
		t.Fatalf("the stack did not start: %v", startErr)
	}
	if h.err != nil {
		t.Fatalf("the desktop test harness did not come up: %v", h.err)
	}
	return st
}

// setup installs what is missing, builds the app and the CLI, and starts an
// X server of our own.
func setup() (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	wd, _ := os.Getwd()
	repo, err := stack.FindRepoRoot(wd)
	if err != nil {
		return nil, err
	}
	h.repo = repo
	p, err := toolchain.Resolve(repo)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if h.driver, err = toolchain.EnsureAll(ctx, p, log); err != nil {
		return nil, err
	}
	start := time.Now()
	var buildLog strings.Builder
	if h.app, err = toolchain.Build(ctx, p, &buildLog); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, stack.TailLines(buildLog.String(), 60))
	}
	fmt.Fprintf(os.Stderr, "desktop app built in %.1fs: %s\n", time.Since(start).Seconds(), h.app)
	if h.tmp, err = os.MkdirTemp("", "zsm-desktop-e2e-"); err != nil {
		return nil, err
	}
	h.zsm = filepath.Join(h.tmp, "zsm")
	build := exec.CommandContext(ctx, "go", "build", "-o", h.zsm, "./cmd/zsm")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/zsm: %w\n%s", err, out)
	}
	return startXvfb()
}

// startXvfb starts our own X server and remembers its display.
func startXvfb() (func(), error) {
	display, stop, err := webdriver.StartXvfb()
	if err != nil {
		return nil, err
	}
	h.display = display
	return stop, nil
}

// startDriver starts tauri-driver with the app's environment; it is
// stopped (with the app) when the test ends.
func startDriver(t *testing.T, env []string) string {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "tauri-driver.log"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := webdriver.StartDriver(h.driver, env, logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("tauri-driver log:\n%s", stack.TailLines(string(b), 80))
		}
	})
	return d.Base
}

// shots saves screenshots under one directory, numbered in order.
type shots struct {
	t   *testing.T
	dir string
	n   int
}

func newShots(t *testing.T) *shots {
	dir := os.Getenv("ZSM_DESKTOP_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(h.repo, ".zsm", "desktop-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &shots{t: t, dir: dir}
}

func (s *shots) take(d *wd, name string) {
	s.t.Helper()
	s.n++
	p := filepath.Join(s.dir, fmt.Sprintf("%02d-%s.png", s.n, name))
	if err := os.WriteFile(p, d.screenshot(), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// onFailure saves what the window showed, and its DOM, when the test failed.
func (s *shots) onFailure(d *wd) {
	if !s.t.Failed() {
		return
	}
	if v, err := d.raw("GET", "/session/"+d.id+"/screenshot", nil); err == nil {
		var b64 string
		if json.Unmarshal(v, &b64) == nil {
			if png, err := base64.StdEncoding.DecodeString(b64); err == nil {
				p := filepath.Join(s.dir, "failure.png")
				_ = os.WriteFile(p, png, 0o644)
				s.t.Logf("the window at the failure: %s", p)
			}
		}
	}
	if v, err := d.raw("GET", "/session/"+d.id+"/source", nil); err == nil {
		var src string
		_ = json.Unmarshal(v, &src)
		s.t.Logf("the page at the failure:\n%s", stack.TailLines(src, 60))
	}
}
