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
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"zsm.dev/zsm/desktop/toolchain"
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
		return nil, fmt.Errorf("%w\n%s", err, tailLines(buildLog.String(), 60))
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

// startXvfb starts an X server on a display it picks itself (-displayfd).
func startXvfb() (func(), error) {
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		return nil, fmt.Errorf("Xvfb is not installed (go tool task desktop:deps installs it): %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(xvfb, "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w.Close()
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		got <- strings.TrimSpace(line)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = cmd.Process.Wait()
	}
	select {
	case n := <-got:
		if _, err := strconv.Atoi(n); err != nil {
			stop()
			return nil, fmt.Errorf("Xvfb reported display %q", n)
		}
		h.display = ":" + n
		return stop, nil
	case <-time.After(20 * time.Second):
		stop()
		return nil, fmt.Errorf("Xvfb did not report a display within 20 s")
	}
}

// freePort asks the kernel for an unused loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startDriver starts tauri-driver with the app's environment and waits
// until it answers; it is stopped when the test ends.
func startDriver(t *testing.T, env []string) string {
	t.Helper()
	port, native := freePort(t), freePort(t)
	cmd := exec.Command(h.driver, "--port", strconv.Itoa(port), "--native-port", strconv.Itoa(native))
	cmd.Env = env
	logf, err := os.Create(filepath.Join(t.TempDir(), "tauri-driver.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tauri-driver: %v", err)
	}
	t.Cleanup(func() {
		// The whole group: tauri-driver, WebKitWebDriver and the app.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _, _ = cmd.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("tauri-driver log:\n%s", tailLines(string(b), 80))
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tauri-driver did not answer on %s within 30 s: %v", base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
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
		s.t.Logf("the page at the failure:\n%s", tailLines(src, 60))
	}
}
