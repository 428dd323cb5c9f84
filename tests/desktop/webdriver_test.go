package desktop

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"zsm.dev/zsm/desktop/webdriver"
)

// wd is a W3C WebDriver session, spoken over plain HTTP to tauri-driver
// (which hands it to WebKitWebDriver, which drives the app's web view).
type wd struct {
	t    *testing.T
	base string // http://127.0.0.1:PORT
	id   string // session id
	http *http.Client
}

// raw sends one command; a WebDriver error comes back as *webdriver.Error.
func (d *wd) raw(method, path string, body any) (json.RawMessage, error) {
	return webdriver.Do(d.http, d.base, method, path, body)
}

// cmd is raw on the session, failing the test on error.
func (d *wd) cmd(method, path string, body any) json.RawMessage {
	d.t.Helper()
	v, err := d.raw(method, "/session/"+d.id+path, body)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	return v
}

// newSession starts the app: tauri-driver launches the binary.
func newSession(t *testing.T, base, app string) *wd {
	t.Helper()
	d := &wd{t: t, base: base, http: &http.Client{Timeout: 90 * time.Second}}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"tauri:options": map[string]any{"application": app},
	}}}
	v, err := d.raw("POST", "/session", caps)
	if err != nil {
		t.Fatalf("WebDriver session (starting the app): %v", err)
	}
	var s struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(v, &s); err != nil || s.SessionID == "" {
		t.Fatalf("no session id in %s", v)
	}
	d.id = s.SessionID
	return d
}

func (d *wd) close() {
	if d.id != "" {
		_, _ = d.raw("DELETE", "/session/"+d.id, nil)
		d.id = ""
	}
}

// find returns the first element matching css, or "" when there is none.
func (d *wd) find(css string) string {
	d.t.Helper()
	v, err := d.raw("POST", "/session/"+d.id+"/element", map[string]string{"using": "css selector", "value": css})
	if err != nil {
		if webdriver.IsCode(err, "no such element") {
			return ""
		}
		d.t.Fatalf("find %s: %v", css, err)
	}
	var ref map[string]string
	if err := json.Unmarshal(v, &ref); err != nil {
		d.t.Fatalf("find %s: %s", css, v)
	}
	return ref[webdriver.ElementKey]
}

// must waits (bounded) for an element matching css to exist and be
// displayed, and returns it.
func (d *wd) must(css string) string {
	d.t.Helper()
	var id string
	d.waitFor("element "+css, 20*time.Second, func() bool {
		id = d.find(css)
		if id == "" {
			return false
		}
		var shown bool
		v, err := d.raw("GET", "/session/"+d.id+"/element/"+id+"/displayed", nil)
		return err == nil && json.Unmarshal(v, &shown) == nil && shown
	})
	return id
}

// click clicks the element matching css once it is displayed and enabled.
// A screen redrawn between finding and clicking makes the reference stale:
// the element is found again (bounded).
func (d *wd) click(css string) {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		id := d.must(css)
		var on bool
		v, err := d.raw("GET", "/session/"+d.id+"/element/"+id+"/enabled", nil)
		if err == nil && json.Unmarshal(v, &on) == nil && on {
			_, err = d.raw("POST", "/session/"+d.id+"/element/"+id+"/click", map[string]any{})
			if err == nil {
				return
			}
		}
		var we *webdriver.Error
		stale := errors.As(err, &we) && we.Code == "stale element reference"
		if err != nil && !stale {
			d.t.Fatalf("click %s: %v", css, err)
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("click %s: not clickable within 20s (%v)", css, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// typeInto clears a field and types text (finding it again if the screen
// was redrawn meanwhile).
func (d *wd) typeInto(css, text string) {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		id := d.must(css)
		_, err := d.raw("POST", "/session/"+d.id+"/element/"+id+"/clear", map[string]any{})
		if err == nil && text != "" {
			_, err = d.raw("POST", "/session/"+d.id+"/element/"+id+"/value", map[string]any{"text": text})
		}
		if err == nil {
			return
		}
		var we *webdriver.Error
		if !errors.As(err, &we) || we.Code != "stale element reference" || time.Now().After(deadline) {
			d.t.Fatalf("type into %s: %v", css, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sendFile gives a file input a local file (WebDriver sends the path).
func (d *wd) sendFile(css, path string) {
	d.t.Helper()
	id := d.find(css)
	if id == "" {
		d.t.Fatalf("no element %s", css)
	}
	d.cmd("POST", "/element/"+id+"/value", map[string]any{"text": path})
}

// text is the element's rendered text (innerText), read by a script: one
// round trip, and no stale element between finding it and reading it.
func (d *wd) text(css string) string {
	d.t.Helper()
	d.must(css)
	s, _ := d.textOf(css)
	return s
}

// textOf returns the innerText of the first element matching css, and
// whether there is one.
func (d *wd) textOf(css string) (string, bool) {
	d.t.Helper()
	v, err := d.raw("POST", "/session/"+d.id+"/execute/sync", map[string]any{
		"script": `const e = document.querySelector(arguments[0]); return e ? e.innerText : null;`,
		"args":   []any{css},
	})
	if err != nil {
		return "", false
	}
	var s *string
	if json.Unmarshal(v, &s) != nil || s == nil {
		return "", false
	}
	return *s, true
}

// value reads a form control's current value (a DOM property).
func (d *wd) value(css string) string {
	d.t.Helper()
	id := d.must(css)
	var s string
	_ = json.Unmarshal(d.cmd("GET", "/element/"+id+"/property/value", nil), &s)
	return s
}

// exec runs a synchronous script in the page and decodes its result.
func (d *wd) exec(script string, out any, args ...any) {
	d.t.Helper()
	if args == nil {
		args = []any{}
	}
	v := d.cmd("POST", "/execute/sync", map[string]any{"script": script, "args": args})
	if out != nil {
		if err := json.Unmarshal(v, out); err != nil {
			d.t.Fatalf("script result %s: %v", v, err)
		}
	}
}

// execAsync runs a script whose last argument is the callback.
func (d *wd) execAsync(script string, out any, args ...any) {
	d.t.Helper()
	if args == nil {
		args = []any{}
	}
	v := d.cmd("POST", "/execute/async", map[string]any{"script": script, "args": args})
	if out != nil {
		if err := json.Unmarshal(v, out); err != nil {
			d.t.Fatalf("script result %s: %v", v, err)
		}
	}
}

// screenshot waits for two animation frames (so the picture is of the
// current DOM, not the previous frame) and returns the web view as PNG.
func (d *wd) screenshot() []byte {
	d.t.Helper()
	d.execAsync(`const done = arguments[arguments.length - 1];
		requestAnimationFrame(() => requestAnimationFrame(() => done(true)));`, nil)
	var s string
	if err := json.Unmarshal(d.cmd("GET", "/screenshot", nil), &s); err != nil {
		d.t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		d.t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		d.t.Fatal("the screenshot is not a PNG")
	}
	return png
}

// waitFor polls cond until it holds or the time is up (then the test fails).
func (d *wd) waitFor(what string, limit time.Duration, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitText waits (bounded) until the element's text contains want.
func (d *wd) waitText(css, want string) string {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, ok := d.textOf(css)
		if ok && strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out after 30s waiting for %s to show %q; it shows %q (found: %v)", css, want, got, ok)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitExact waits (bounded) until the element's text is exactly want.
func (d *wd) waitExact(css, want string) {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, ok := d.textOf(css)
		if ok && strings.TrimSpace(got) == want {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out after 30s waiting for %s to be %q; it is %q (found: %v)", css, want, got, ok)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
