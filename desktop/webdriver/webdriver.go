// Package webdriver drives the desktop app in a virtual X server: it starts
// Xvfb and tauri-driver (which hands sessions to WebKitWebDriver, which
// drives the app's web view) and speaks the W3C WebDriver protocol to them
// over plain HTTP on loopback. The end-to-end test (tests/desktop) and the
// benchmark's app start phase (cmd/zsmbench) share it.
package webdriver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ElementKey is the W3C name of an element reference in JSON.
const ElementKey = "element-6066-11e4-a52e-4f735466cecf"

// Error is an error answer of the WebDriver server.
type Error struct {
	Status  int
	Code    string // "no such element", "stale element reference", …
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("webdriver %d %s: %s", e.Status, e.Code, e.Message)
}

// IsCode reports whether err is a WebDriver error with that code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Do sends one command to base (http://127.0.0.1:PORT) and returns its
// "value"; an error answer comes back as *Error.
func Do(hc *http.Client, base, method, path string, body any) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s %s: status %d, body %.300s", method, path, resp.StatusCode, b)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(out.Value, &e)
		return nil, &Error{Status: resp.StatusCode, Code: e.Error, Message: e.Message}
	}
	return out.Value, nil
}

// Session is one WebDriver session: one running instance of the app.
type Session struct {
	Base string // the driver, http://127.0.0.1:PORT
	ID   string
	HTTP *http.Client
}

// NewSession starts the app (tauri-driver launches the binary) and
// returns once its web view is ready for commands.
func NewSession(base, app string) (*Session, error) {
	s := &Session{Base: base, HTTP: &http.Client{Timeout: 90 * time.Second}}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"tauri:options": map[string]any{"application": app},
	}}}
	v, err := Do(s.HTTP, base, "POST", "/session", caps)
	if err != nil {
		return nil, fmt.Errorf("WebDriver session (starting the app): %w", err)
	}
	var r struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(v, &r); err != nil || r.SessionID == "" {
		return nil, fmt.Errorf("no session id in %s", v)
	}
	s.ID = r.SessionID
	return s, nil
}

// Cmd sends a command of this session (path after /session/ID).
func (s *Session) Cmd(method, path string, body any) (json.RawMessage, error) {
	return Do(s.HTTP, s.Base, method, "/session/"+s.ID+path, body)
}

// Close ends the session, and with it the app.
func (s *Session) Close() {
	if s.ID != "" {
		_, _ = s.Cmd("DELETE", "", nil)
		s.ID = ""
	}
}

// Find returns the first element matching css, or "" when there is none.
func (s *Session) Find(css string) (string, error) {
	v, err := s.Cmd("POST", "/element", map[string]string{"using": "css selector", "value": css})
	if IsCode(err, "no such element") {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find %s: %w", css, err)
	}
	var ref map[string]string
	if err := json.Unmarshal(v, &ref); err != nil {
		return "", fmt.Errorf("find %s: %s", css, v)
	}
	return ref[ElementKey], nil
}

// Displayed reports whether an element matching css exists and is shown,
// and returns it.
func (s *Session) Displayed(css string) (string, bool) {
	id, err := s.Find(css)
	if err != nil || id == "" {
		return "", false
	}
	var shown bool
	v, err := s.Cmd("GET", "/element/"+id+"/displayed", nil)
	return id, err == nil && json.Unmarshal(v, &shown) == nil && shown
}

// WaitDisplayed polls (bounded by limit) until an element matching css is
// shown.
func (s *Session) WaitDisplayed(css string, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for {
		if id, ok := s.Displayed(css); ok {
			return id, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s not shown within %v", css, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Type replaces the text of the input matching css.
func (s *Session) Type(css, text string) error {
	id, err := s.WaitDisplayed(css, 20*time.Second)
	if err != nil {
		return err
	}
	if _, err := s.Cmd("POST", "/element/"+id+"/clear", map[string]any{}); err != nil {
		return err
	}
	_, err = s.Cmd("POST", "/element/"+id+"/value", map[string]any{"text": text})
	return err
}

// Click clicks the element matching css once it is shown.
func (s *Session) Click(css string) error {
	id, err := s.WaitDisplayed(css, 20*time.Second)
	if err != nil {
		return err
	}
	_, err = s.Cmd("POST", "/element/"+id+"/click", map[string]any{})
	return err
}

// Text is the rendered text of the element matching css ("" and false
// when there is none).
func (s *Session) Text(css string) (string, bool) {
	id, err := s.Find(css)
	if err != nil || id == "" {
		return "", false
	}
	v, err := s.Cmd("GET", "/element/"+id+"/text", nil)
	if err != nil {
		return "", false
	}
	var t string
	return t, json.Unmarshal(v, &t) == nil
}

// WaitText polls (bounded by limit) until the element matching css shows
// want.
func (s *Session) WaitText(css, want string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		got, ok := s.Text(css)
		if ok && strings.Contains(got, want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not show %q within %v (it shows %q)", css, want, limit, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartXvfb starts an X server on a display it picks itself (-displayfd)
// and returns the display (":N") and how to stop it.
func StartXvfb() (string, func(), error) {
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		return "", nil, fmt.Errorf("Xvfb is not installed (go tool task desktop:deps installs it): %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(xvfb, "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", nil, err
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
			return "", nil, fmt.Errorf("Xvfb reported display %q", n)
		}
		return ":" + n, stop, nil
	case <-time.After(20 * time.Second):
		stop()
		return "", nil, fmt.Errorf("Xvfb did not report a display within 20 s")
	}
}

// FreePort asks the kernel for an unused loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Driver is a running tauri-driver.
type Driver struct {
	Base string // http://127.0.0.1:PORT
	cmd  *exec.Cmd
}

// StartDriver starts tauri-driver (the binary at path) with the app's
// environment, its output to log, and waits (at most 30 s) until it
// answers.
func StartDriver(path string, env []string, log io.Writer) (*Driver, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	native, err := FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--native-port", strconv.Itoa(native))
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start tauri-driver: %w", err)
	}
	d := &Driver{Base: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(d.Base + "/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, fmt.Errorf("tauri-driver did not answer on %s within 30 s: %v", d.Base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends the whole process group: tauri-driver, WebKitWebDriver and the
// app (SIGTERM, then SIGKILL after 10 s).
func (d *Driver) Stop() {
	pid := d.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = d.cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
}
