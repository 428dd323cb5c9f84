package desktop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	password = "correct horse battery staple"
	// idleLock is the app's idle lock in this test: long enough for every
	// step, short enough to watch it happen.
	idleLock = 45 * time.Second
)

// account is one account on the test stack, driven by the Go CLI.
type account struct {
	t        *testing.T
	identity string
	home     string
	session  string // ZSM_SESSION after sign-up
	kit      string // the emergency kit file
}

func (a *account) env() []string {
	env := append(os.Environ(), "ZSM_SERVER="+st.GatewayURL(), "ZSM_HOME="+a.home, "ZSM_KEYRING=off")
	if a.session != "" {
		env = append(env, "ZSM_SESSION="+a.session)
	}
	return env
}

// zsm runs the CLI; it fails the test unless the exit code is want.
func (a *account) zsm(want int, stdin string, args ...string) string {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.zsm, args...)
	cmd.Env = a.env()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		a.t.Fatalf("zsm %v: %v", args, err)
	}
	if code != want {
		a.t.Fatalf("zsm %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, want, out.String(), errb.String())
	}
	return out.String()
}

func signup(t *testing.T) *account {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	a := &account{t: t, identity: "desk-" + hex.EncodeToString(b) + "@example.test", home: filepath.Join(t.TempDir(), "cli")}
	a.kit = filepath.Join(t.TempDir(), "zsm-emergency-kit.txt")
	out := a.zsm(0, password+"\n", "signup", a.identity, "--password-stdin", "--kit", a.kit)
	m := regexp.MustCompile(`export ZSM_SESSION=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("signup printed no session: %s", out)
	}
	a.session = m[1]
	return a
}

func (a *account) secretKey() string {
	a.t.Helper()
	b, err := os.ReadFile(a.kit)
	if err != nil {
		a.t.Fatal(err)
	}
	m := regexp.MustCompile(`Secret Key:\s+(\S+)`).FindSubmatch(b)
	if m == nil {
		a.t.Fatal("no Secret Key in the kit")
	}
	return string(m[1])
}

// ipcResult is what invoking a command from the page gave.
type ipcResult struct {
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value"`
	Code  string          `json:"code"`
	Error string          `json:"error"`
}

// invoke calls an IPC command from inside the web view, as any script
// running there could.
func invoke(d *wd, cmd string, args map[string]any) ipcResult {
	d.t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	var r ipcResult
	d.execAsync(`const [cmd, args, done] = arguments;
		window.__TAURI_INTERNALS__.invoke(cmd, args).then(
			(v) => done({ ok: true, value: v === undefined ? null : v }),
			(e) => done({ ok: false, code: (e && e.code) || "", error: typeof e === "string" ? e : JSON.stringify(e) }));`,
		&r, cmd, args)
	return r
}

// clipboard reads the X clipboard from outside the app.
func clipboard(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("xclip", "-selection", "clipboard", "-o")
	cmd.Env = append(os.Environ(), "DISPLAY="+h.display)
	out, err := cmd.Output()
	if err != nil {
		// xclip fails when nothing owns the clipboard: empty.
		return ""
	}
	return string(out)
}

func TestDesktopApp(t *testing.T) {
	need(t)
	a := signup(t)
	a.zsm(0, "", "vault", "create", "from-cli")
	a.zsm(0, "", "set", "from-cli/DATABASE_URL", "postgres://app:written-by-the-cli@db/app")

	home := t.TempDir()
	env := append(os.Environ(),
		"DISPLAY="+h.display,
		"HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"ZSM_DESKTOP_HOME="+filepath.Join(home, "zsm-desktop"),
		"ZSM_SERVER="+st.GatewayURL(),
		"ZSM_DESKTOP_IDLE_LOCK_SECONDS="+strings.TrimSuffix(idleLock.String(), "s"),
	)
	base := startDriver(t, env)
	launched := time.Now()
	d := newSession(t, base, h.app)
	defer d.close()
	shot := newShots(t)
	defer shot.onFailure(d)

	// --- sign-in screen; the boundary, attacked from the page --------------
	d.must("#sign-in-form")
	// Reported, not asserted (speed is measured, never a test condition).
	t.Logf("app start to the sign-in screen: %v", time.Since(launched).Round(time.Millisecond))
	if got := d.value("#server"); got != st.GatewayURL() {
		t.Fatalf("server field %q, want the gateway %q", got, st.GatewayURL())
	}
	form := d.text("#sign-in-form")
	for _, label := range []string{"SERVER", "IDENTITY", "PASSWORD", "SECRET KEY", "Open emergency kit", "Sign in"} {
		if !strings.Contains(form, label) {
			t.Fatalf("the sign-in form does not show %q:\n%s", label, form)
		}
	}
	shot.take(d, "sign-in")
	attackBoundary(t, d)

	// A wrong password: refused by the server's SRP check, said plainly.
	d.typeInto("#identity", a.identity)
	d.typeInto("#password", "not the password")
	d.typeInto("#secret-key", a.secretKey())
	d.click("#sign-in")
	d.waitText("#form-error", "The password or the Secret Key is wrong.")
	shot.take(d, "sign-in-wrong-password")

	// The Secret Key from the emergency kit file the CLI wrote.
	d.typeInto("#secret-key", "")
	d.sendFile("#kit-file", a.kit)
	d.waitText("#kit-name", "zsm-emergency-kit.txt")
	if got := d.value("#identity"); got != a.identity {
		t.Fatalf("identity from the kit %q, want %q", got, a.identity)
	}
	d.typeInto("#password", password)
	if ph := d.value("#secret-key"); ph != "" {
		t.Fatalf("the Secret Key field holds %q with the kit read", ph)
	}
	var keyField struct {
		Disabled    bool   `json:"disabled"`
		Placeholder string `json:"placeholder"`
	}
	d.exec(`const e = document.querySelector("#secret-key"); return { disabled: e.disabled, placeholder: e.placeholder };`, &keyField)
	if !keyField.Disabled || keyField.Placeholder != "read from the emergency kit" {
		t.Fatalf("the Secret Key field with the kit read: %+v", keyField)
	}
	shot.take(d, "sign-in-with-kit")
	d.click("#sign-in")
	signIn := time.Now()

	// --- the CLI's vault and secret appear --------------------------------
	d.must("#vault-list")
	d.waitText("#sync-status", "1 vault, 1 secret verified")
	t.Logf("sign-in (Argon2id, SRP, key bundle, full check) to the vault list: %v", time.Since(signIn).Round(time.Millisecond))
	d.waitText("#vault-list", "from-cli")
	d.click(`#vault-list li[data-vault-name="from-cli"]`)
	// The vault screen: its name, the role held, the secret's name and
	// revision, never a value; who is signed in, where.
	d.waitExact("#vault-title", "from-cli")
	d.waitText(".content-head", "owner")
	d.waitText("#secret-count", "1 secret")
	d.waitText(`#secret-list li[data-secret-name="DATABASE_URL"]`, "rev 1")
	if got := d.text("#whoami"); got != a.identity {
		t.Fatalf("top bar names %q", got)
	}
	if list := d.text("#content"); strings.Contains(list, "written-by-the-cli") {
		t.Fatalf("the vault screen shows a value: %q", list)
	}
	if !strings.Contains(d.text(`#vault-list li.selected`), "from-cli") {
		t.Fatal("the open vault is not the highlighted one")
	}
	shot.take(d, "vault-list")
	// Keys live in Rust: what a script in the page can read holds no
	// password, Secret Key or token.
	nothingSecretInThePage(t, d, password, a.secretKey())
	d.click(`#secret-list li[data-secret-name="DATABASE_URL"]`)
	d.waitExact("#secret-title", "DATABASE_URL")
	d.waitExact("#secret-revision", "1")
	d.waitText("#revealed-value", "••••")
	d.click("#reveal")
	d.waitText("#revealed-value", "postgres://app:written-by-the-cli@db/app")
	d.waitExact("#reveal", "Hide")
	shot.take(d, "cli-secret-revealed")

	// --- a vault made in the app, renamed ----------------------------------
	d.click("#new-vault")
	d.waitText("#new-vault-form", "NEW VAULT'S NAME")
	d.typeInto("#new-vault-name", "desk-vault-draft")
	shot.take(d, "vault-create")
	d.click("#create-vault")
	d.waitExact("#vault-title", "desk-vault-draft")
	d.waitText("#toast", "Created vault desk-vault-draft")
	d.waitText("#content", "This vault has no secrets yet.")
	d.click("#rename-vault")
	d.waitText("#rename-vault-form", "NEW NAME")
	d.typeInto("#rename-vault-name", "desk-vault")
	shot.take(d, "vault-rename")
	d.click("#save-vault-name")
	d.waitExact("#vault-title", "desk-vault")
	d.waitText("#toast", "Renamed to desk-vault")
	d.must(`#vault-list li[data-vault-name="desk-vault"]`)
	if _, ok := d.textOf(`#vault-list li[data-vault-name="desk-vault-draft"]`); ok {
		t.Fatal("the old name is still listed after the rename")
	}

	// --- add a secret with the generator ----------------------------------
	d.click("#add-secret")
	d.typeInto("#secret-name", "API_KEY")
	if _, ok := d.textOf("#toast:not([hidden])"); ok {
		t.Fatal("the rename's message is still shown on the add screen")
	}
	form = d.text("#add-form")
	for _, label := range []string{"Add a secret", "NAME", "VALUE", "GENERATOR", "characters", "Generate", "Save"} {
		if !strings.Contains(form, label) {
			t.Fatalf("the add form does not show %q:\n%s", label, form)
		}
	}
	d.click("#generate")
	var generated string
	d.waitFor("a generated value", 10*time.Second, func() bool {
		generated = d.value("#secret-value")
		return len(generated) == 32
	})
	if !regexp.MustCompile(`^[A-Za-z0-9]{32}$`).MatchString(generated) {
		t.Fatalf("generated %q: not 32 alphanumerics", generated)
	}
	shot.take(d, "add-secret-generated")
	d.click("#save-secret")
	d.waitExact("#secret-title", "API_KEY")
	d.waitExact("#secret-revision", "1")
	d.waitText("#toast", "Saved API_KEY (revision 1).")

	// --- reveal, copy: the clipboard holds it, then not -------------------
	d.click("#reveal")
	d.waitText("#revealed-value", generated)
	shot.take(d, "secret-revealed")
	d.click("#reveal") // hide again
	d.waitText("#revealed-value", "••••")
	d.click("#copy")
	copied := time.Now()
	d.waitText("#toast", "The clipboard is cleared in 30 s")
	d.waitFor("the value on the clipboard", 10*time.Second, func() bool { return clipboard(t) == generated })
	shot.take(d, "secret-copied")
	// Nothing happens in the window now: the clipboard must empty itself
	// at 30 s (the app is still unlocked then), the app must lock at 45 s.
	d.waitFor("the clipboard to be cleared", 40*time.Second, func() bool { return clipboard(t) != generated })
	if el := time.Since(copied); el < 29*time.Second {
		t.Fatalf("the clipboard was cleared after %v, before 30 s", el)
	}
	if ph := phase(d); ph != "unlocked" {
		t.Fatalf("the app is %s when the clipboard cleared; the 30 s timer should have done it", ph)
	}
	d.waitFor("the idle lock", idleLock+20*time.Second, func() bool { return phase(d) == "locked" })
	if el := time.Since(copied); el < idleLock-2*time.Second {
		t.Fatalf("locked after %v idle, before %v", el, idleLock)
	}
	d.waitText("#lock-reason", "Locked after 45 s without activity. The keys were wiped from memory")
	if got := d.text("#locked-identity"); got != a.identity {
		t.Fatalf("lock screen names %q", got)
	}
	shot.take(d, "locked-idle")
	if r := invoke(d, "reveal_secret", map[string]any{"vaultId": "x", "name": "API_KEY"}); r.OK || r.Code != "locked" {
		t.Fatalf("reveal while locked: %+v, want the code locked", r)
	}
	d.typeInto("#unlock-password", "wrong password")
	d.click("#unlock")
	d.waitText("#form-error", "The password or the Secret Key is wrong.")
	if ph := phase(d); ph != "locked" {
		t.Fatalf("a wrong unlock password left the app %s", ph)
	}
	shot.take(d, "unlock-wrong-password")
	d.typeInto("#unlock-password", password)
	d.click("#unlock")
	d.must("#vault-list")

	// --- edit → revision 2, history, restore revision 1 → revision 3 -------
	d.click(`#vault-list li[data-vault-name="desk-vault"]`)
	d.click(`#secret-list li[data-secret-name="API_KEY"]`)
	d.click("#edit")
	if got := d.value("#secret-value"); got != generated {
		t.Fatalf("the editor shows %q, want the current value", got)
	}
	d.waitText("#edit-form h2", "Edit API_KEY")
	d.waitText("#edit-form", "Revision 1. Saving keeps this one in the history.")
	d.typeInto("#secret-value", "edited in the desktop app")
	shot.take(d, "edit-secret")
	d.click("#save-secret")
	d.waitExact("#secret-revision", "2")
	if got := strings.TrimSpace(a.zsm(0, "", "get", "desk-vault/API_KEY")); got != "edited in the desktop app" {
		t.Fatalf("zsm get after the edit: %q", got)
	}
	d.waitText("#toast", "Saved API_KEY as revision 2.")
	d.click("#history")
	d.waitText(`#history-list li[data-revision="2"]`, "current")
	d.waitText(`#history-list li[data-revision="1"]`, "Restore")
	if _, ok := d.textOf("#restore-2"); ok {
		t.Fatal("the current revision offers a restore")
	}
	if list := d.text("#history-list"); strings.Contains(list, generated) || strings.Contains(list, "edited in the desktop app") {
		t.Fatalf("the history shows a value: %q", list)
	}
	shot.take(d, "history")
	d.click("#restore-1")
	d.waitExact("#secret-revision", "3")
	d.waitText("#toast", "Restored revision 1 as revision 3.")
	d.click("#reveal")
	d.waitText("#revealed-value", generated)
	shot.take(d, "restored")

	// --- the CLI reads what the app wrote ----------------------------------
	if got := strings.TrimSpace(a.zsm(0, "", "get", "desk-vault/API_KEY")); got != generated {
		t.Fatalf("zsm get: %q, want the restored value %q", got, generated)
	}
	var hist []struct {
		Revision int `json:"revision"`
	}
	if err := json.Unmarshal([]byte(a.zsm(0, "", "history", "desk-vault/API_KEY", "--json")), &hist); err != nil || len(hist) != 3 {
		t.Fatalf("zsm history: %v %+v, want 3 revisions", err, hist)
	}

	// --- a CLI write after sign-in shows after Refresh; search -------------
	a.zsm(0, "", "set", "from-cli/DATABASE_URL", "postgres://app:rotated-by-the-cli@db/app")
	a.zsm(0, "", "set", "desk-vault/API_SECRET", "s3")
	a.zsm(0, "", "set", "desk-vault/SMTP_PASSWORD", "s4")
	d.click("#sync-refresh")
	d.waitText("#sync-status", "2 vaults, 4 secrets verified")
	d.click(`#vault-list li[data-vault-name="desk-vault"]`)
	d.waitText("#secret-count", "3 secrets")
	d.typeInto("#search", "api_")
	d.waitText("#secret-count", "2 of 3")
	if list := d.text("#secret-list"); strings.Contains(list, "SMTP_PASSWORD") || !strings.Contains(list, "API_SECRET") {
		t.Fatalf("search for api_ shows %q", list)
	}
	shot.take(d, "secret-list-search")

	// --- the server swaps a vault's encrypted name: the app says so -------
	// Whoever controls the database puts from-cli's sealed name into
	// desk-vault's row (triggers off, revision kept): a ciphertext this
	// account never wrote for that vault.
	ids := vaultIDs(t, d)
	undo := swapVaultMeta(t, ids["desk-vault"], ids["from-cli"])
	d.click("#sync-refresh")
	d.waitText("#sync-status", "1 vault, 1 secret verified; 1 vault failed verification")
	d.waitText("#toast", "A vault failed verification")
	if _, ok := d.textOf(`#vault-list li[data-vault-name="desk-vault"]`); ok {
		t.Fatal("the tampered vault is still listed by name")
	}
	d.click(`#vault-list li.refused[data-vault-id="` + ids["desk-vault"] + `"]`)
	d.waitExact("#refused-id", ids["desk-vault"])
	d.waitText("#refused-reason", "integrity check failed")
	shot.take(d, "vault-refused")
	undo()
	d.click("#sync-refresh")
	d.waitText("#sync-status", "2 vaults, 4 secrets verified")
	if _, ok := d.textOf("#vault-list li.refused"); ok {
		t.Fatal("the vault is still refused after its name was put back")
	}
	d.click(`#vault-list li[data-vault-name="from-cli"]`)
	d.click(`#secret-list li[data-secret-name="DATABASE_URL"]`)
	d.waitExact("#secret-revision", "2")
	d.click("#reveal")
	d.waitText("#revealed-value", "rotated-by-the-cli")

	// --- sessions: the CLI's session is listed and revoked from the app ----
	d.click("#sessions")
	d.must("#session-list")
	rows := d.text("#session-list")
	if !strings.Contains(rows, "this device") {
		t.Fatalf("sessions list without the current session: %q", rows)
	}
	var sessions []struct {
		ID      string `json:"id"`
		Current bool   `json:"current"`
	}
	r := invoke(d, "list_sessions", nil)
	if !r.OK || json.Unmarshal(r.Value, &sessions) != nil || len(sessions) < 2 {
		t.Fatalf("list_sessions: %+v", r)
	}
	if !strings.Contains(rows, "zsm desktop") || !strings.Contains(rows, "zsm CLI") {
		t.Fatalf("the sessions list does not name both devices: %q", rows)
	}
	if _, ok := d.textOf(`#vault-list li.selected`); ok {
		t.Fatal("a vault is highlighted on the sessions screen")
	}
	shot.take(d, "sessions")
	var other string
	for _, s := range sessions {
		if !s.Current {
			other = s.ID
		}
	}
	if _, ok := d.textOf(`#session-list tr.current button`); ok {
		t.Fatal("this device's own session offers a revoke")
	}
	d.click("#revoke-" + other)
	d.waitText("#toast", "Session revoked")
	d.waitFor("the revoked session to leave the list", 10*time.Second, func() bool {
		_, ok := d.textOf(`#session-list tr[data-session-id="` + other + `"]`)
		return !ok
	})
	// The CLI's session ended at once: its next command is refused (exit 3).
	a.zsm(3, "", "ls")

	// --- lock now, unlock, sign out ----------------------------------------
	d.click("#lock")
	d.must("#unlock-form")
	if got := d.text("#locked-identity"); got != a.identity {
		t.Fatalf("lock screen names %q", got)
	}
	shot.take(d, "locked")
	d.typeInto("#unlock-password", password)
	d.click("#unlock")
	d.must("#vault-list")

	// --- the server ends the app's session: the app locks, and unlocking
	// logs in afresh ---------------------------------------------------------
	a.session = ""
	m := regexp.MustCompile(`export ZSM_SESSION=(\S+)`).FindStringSubmatch(a.zsm(0, password+"\n", "login", a.identity, "--password-stdin"))
	if m == nil {
		t.Fatal("zsm login printed no session")
	}
	a.session = m[1]
	var cliSessions []struct {
		ID          string `json:"id"`
		DeviceLabel string `json:"device_label"`
		Current     bool   `json:"current"`
	}
	if err := json.Unmarshal([]byte(a.zsm(0, "", "sessions", "--json")), &cliSessions); err != nil {
		t.Fatal(err)
	}
	appSession := ""
	for _, s := range cliSessions {
		if !s.Current && s.DeviceLabel == "zsm desktop" {
			appSession = s.ID
		}
	}
	if appSession == "" {
		t.Fatalf("the CLI does not see the app's session: %+v", cliSessions)
	}
	a.zsm(0, "", "sessions", "revoke", appSession)
	d.click("#sync-refresh")
	d.waitText("#lock-reason", "The server ended the session")
	shot.take(d, "locked-session-ended")
	d.typeInto("#unlock-password", password)
	d.click("#unlock")
	d.must("#vault-list")
	d.waitText("#sync-status", "2 vaults, 4 secrets verified")

	// --- sharing: a vault another account shares is an invitation, with
	// its role, until the person compares safety numbers and trusts the
	// sender; then it opens with that role -----------------------------------
	b := signup(t)
	b.zsm(0, "", "vault", "create", "team")
	b.zsm(0, "", "set", "team/SHARED_TOKEN", "shared-by-"+b.identity)
	b.zsm(0, "", "vault", "share", "team", a.identity, "--role", "editor", "--trust-on-first-use")
	d.click("#sync-refresh")
	invitation := `#vault-list li.invitation[data-invitation-from="` + b.identity + `"]`
	d.waitText(invitation, "invitation · editor")
	if _, ok := d.textOf(`#vault-list li[data-vault-name="team"]`); ok {
		t.Fatal("the shared vault opened before its sender was verified")
	}
	d.click(invitation)
	d.waitText("#invitation-title", b.identity+" shared a vault with you")
	d.waitExact("#identity-status", "unverified")
	// The numbers the app computed are the ones each account's CLI prints
	// for itself (zsm whoami --fingerprint).
	if theirs, cli := d.text("#their-safety-number"), b.zsm(0, "", "whoami", "--fingerprint"); len(theirs) != 71 || !strings.Contains(cli, theirs) {
		t.Fatalf("the app shows %q for %s, whose CLI prints %q", theirs, b.identity, cli)
	}
	if own, cli := d.text("#own-safety-number"), a.zsm(0, "", "whoami", "--fingerprint"); len(own) != 71 || !strings.Contains(cli, own) {
		t.Fatalf("the app shows %q as its own number, the CLI prints %q", own, cli)
	}
	shot.take(d, "invitation")
	d.click("#trust-sharer")
	d.waitText("#toast", b.identity+" is verified")
	d.waitExact("#vault-title", "team")
	d.waitText(`#vault-list li[data-vault-name="team"]`, "editor")
	d.waitText("#sync-status", "3 vaults, 5 secrets verified")
	if _, ok := d.textOf(invitation); ok {
		t.Fatal("the invitation is still listed after its sender was trusted")
	}
	d.click(`#secret-list li[data-secret-name="SHARED_TOKEN"]`)
	d.click("#reveal")
	d.waitExact("#revealed-value", "shared-by-"+b.identity)
	shot.take(d, "shared-vault")
	// The account's CLI reads the pin the app wrote, and the vault.
	var verified struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(a.zsm(0, "", "verify", b.identity, "--json")), &verified); err != nil || verified.Status != "verified" {
		t.Fatalf("zsm verify after the app trusted %s: %+v %v", b.identity, verified, err)
	}
	if got := a.zsm(0, "", "get", "team/SHARED_TOKEN"); got != "shared-by-"+b.identity+"\n" {
		t.Fatalf("the CLI reads %q from the shared vault", got)
	}
	// An invitation declined from the app: gone from both clients.
	c := signup(t)
	c.zsm(0, "", "vault", "create", "unwanted")
	c.zsm(0, "", "vault", "share", "unwanted", a.identity, "--role", "viewer", "--trust-on-first-use")
	d.click("#sync-refresh")
	unwanted := `#vault-list li.invitation[data-invitation-from="` + c.identity + `"]`
	d.waitText(unwanted, "invitation · viewer")
	d.click(unwanted)
	d.waitExact("#identity-status", "unverified")
	// Trusting keys whose safety number is not the one compared (as when
	// the server swaps the sender's keys after the screen showed them) is
	// refused, and nothing is pinned.
	wrong := strings.TrimSpace(strings.Repeat("12345 ", 12))
	if r := invoke(d, "trust_identity", map[string]any{"identity": c.identity, "safetyNumber": wrong}); r.OK || r.Code != "integrity" ||
		!strings.Contains(r.Error, "changed since their safety number was shown") {
		t.Fatalf("trust_identity with another safety number: %+v", r)
	}
	var unpinned struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(a.zsm(0, "", "verify", c.identity, "--json")), &unpinned); err != nil || unpinned.Status != "unverified" {
		t.Fatalf("zsm verify after a refused trust: %+v %v", unpinned, err)
	}
	d.click("#decline-invitation")
	d.waitText("#decline-form", "stop "+c.identity+" from sharing vaults with you again")
	d.click("#confirm-decline")
	d.waitText("#toast", "Declined the invitation from "+c.identity)
	d.waitFor("the declined invitation to leave the list", 10*time.Second, func() bool {
		_, ok := d.textOf(unwanted)
		return !ok
	})
	var listed struct {
		Invitations []json.RawMessage `json:"invitations"`
	}
	if err := json.Unmarshal([]byte(a.zsm(0, "", "vault", "list", "--json")), &listed); err != nil || len(listed.Invitations) != 0 {
		t.Fatalf("the CLI still lists invitations after the app declined: %+v %v", listed, err)
	}

	d.click(`#vault-list li[data-vault-name="desk-vault"]`)
	d.waitExact("#vault-title", "desk-vault")
	d.click("#delete-vault")
	d.waitText("#delete-vault-form", "Deleting desk-vault deletes its 3 secrets and their history")
	// The button stays off until the name is typed exactly.
	d.typeInto("#delete-vault-confirm", "desk-vaul")
	var off bool
	d.exec(`return document.querySelector("#confirm-delete-vault").disabled;`, &off)
	if !off {
		t.Fatal("delete is enabled before the vault's name is typed")
	}
	d.typeInto("#delete-vault-confirm", "desk-vault")
	shot.take(d, "vault-delete")
	d.click("#confirm-delete-vault")
	d.waitText("#toast", "Deleted vault desk-vault")
	d.waitFor("desk-vault to leave the list", 10*time.Second, func() bool {
		_, ok := d.textOf(`#vault-list li[data-vault-name="desk-vault"]`)
		return !ok
	})
	a.zsm(5, "", "ls", "desk-vault") // not found: the CLI agrees it is gone
	d.click("#sign-out")
	d.must("#sign-in-form")
	if ph := phase(d); ph != "signed_out" {
		t.Fatalf("after sign-out the app is %s", ph)
	}
	// The form remembers who signed in last, never the password or key.
	if got := d.value("#identity"); got != a.identity {
		t.Fatalf("identity after sign-out %q", got)
	}
	if got := d.value("#password") + d.value("#secret-key"); got != "" {
		t.Fatalf("the sign-in form after sign-out holds %q", got)
	}
	shot.take(d, "signed-out")
}

// nothingSecretInThePage reads, as a script in the web view could, every
// answer of the commands that list things, the page's DOM and its storage,
// and fails if any of them holds one of the secrets given (in any case,
// with or without the Secret Key's dashes) or a bearer token.
func nothingSecretInThePage(t *testing.T, d *wd, secrets ...string) {
	t.Helper()
	var seen []string
	for _, cmd := range []string{"app_status", "list_vaults", "sync_status", "list_sessions"} {
		r := invoke(d, cmd, nil)
		if !r.OK {
			t.Fatalf("%s: %+v", cmd, r)
		}
		seen = append(seen, cmd+": "+string(r.Value))
	}
	for name, id := range vaultIDs(t, d) {
		r := invoke(d, "list_secrets", map[string]any{"vaultId": id})
		if !r.OK {
			t.Fatalf("list_secrets %s: %+v", name, r)
		}
		seen = append(seen, "list_secrets: "+string(r.Value))
	}
	var page string
	d.exec(`return document.documentElement.outerHTML + "\n" + JSON.stringify(Object.entries(localStorage)) +
		JSON.stringify(Object.entries(sessionStorage)) + "\n" + Array.from(document.querySelectorAll("input, textarea")).map((e) => e.value).join("\n");`, &page)
	seen = append(seen, "page: "+page)
	jwt := regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ`)
	for _, text := range seen {
		low := strings.ToLower(text)
		for _, sec := range secrets {
			for _, form := range []string{sec, strings.ReplaceAll(sec, "-", "")} {
				if strings.Contains(low, strings.ToLower(form)) {
					t.Fatalf("a secret reached the web view in %.60s…", text)
				}
			}
		}
		if jwt.MatchString(text) {
			t.Fatalf("a token reached the web view in %.60s…", text)
		}
	}
}

// vaultIDs asks the app for its vault list, by name (as a script in the
// page could).
func vaultIDs(t *testing.T, d *wd) map[string]string {
	t.Helper()
	r := invoke(d, "list_vaults", nil)
	var l struct {
		Vaults []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"vaults"`
	}
	if !r.OK || json.Unmarshal(r.Value, &l) != nil {
		t.Fatalf("list_vaults: %+v", r)
	}
	ids := map[string]string{}
	for _, v := range l.Vaults {
		ids[v.Name] = v.ID
	}
	return ids
}

// swapVaultMeta acts as a malicious server: it writes donor's sealed name
// into victim's row, with triggers off so that the revision (and the event
// trail) stay as they were. The returned func puts victim's own name back
// the same way.
func swapVaultMeta(t *testing.T, victim, donor string) func() {
	t.Helper()
	if victim == "" || donor == "" {
		t.Fatalf("vault ids %q, %q", victim, donor)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, st.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var own string
	if err := conn.QueryRow(ctx, `SELECT meta FROM api.vaults WHERE id = $1`, victim).Scan(&own); err != nil {
		t.Fatal(err)
	}
	set := func(ctx context.Context, conn *pgx.Conn, meta string) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.Background())
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE api.vaults SET meta = $2 WHERE id = $1`, victim, meta)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("updated %d rows", tag.RowsAffected())
		}
		return tx.Commit(ctx)
	}
	var foreign string
	if err := conn.QueryRow(ctx, `SELECT meta FROM api.vaults WHERE id = $1`, donor).Scan(&foreign); err != nil {
		t.Fatal(err)
	}
	if err := set(ctx, conn, foreign); err != nil {
		t.Fatalf("swapping the vault's name: %v", err)
	}
	return func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, st.AdminDSN())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if err := set(ctx, conn, own); err != nil {
			t.Fatalf("putting the vault's name back: %v", err)
		}
	}
}

// phase reads the app's phase from the page.
func phase(d *wd) string {
	d.t.Helper()
	var p string
	d.exec(`return document.body.dataset.phase || "";`, &p)
	return p
}

// attackBoundary tries, from inside the web view, what a script injected
// there would try, and checks each refusal.
func attackBoundary(t *testing.T, d *wd) {
	t.Helper()
	// Core plugins are not granted: the app cannot even read its own version.
	for _, cmd := range []string{"plugin:app|version", "plugin:window|title", "plugin:event|listen", "plugin:path|resolve_directory", "plugin:webview|print"} {
		r := invoke(d, cmd, nil)
		if r.OK || !strings.Contains(r.Error, "not allowed") {
			t.Fatalf("%s from the web view: %+v, want a refusal (not allowed)", cmd, r)
		}
	}
	// A command that does not exist, and the shell plugin that is not there.
	for _, cmd := range []string{"plugin:shell|execute", "plugin:shell|open", "export_keys"} {
		if r := invoke(d, cmd, nil); r.OK {
			t.Fatalf("%s from the web view succeeded: %+v", cmd, r)
		}
	}
	// Commands that need an account refuse while signed out.
	for _, cmd := range []string{"list_vaults", "list_sessions", "sync_now"} {
		if r := invoke(d, cmd, nil); r.OK || r.Code != "signed_out" {
			t.Fatalf("%s while signed out: %+v, want the code signed_out", cmd, r)
		}
	}
	// connect-src: the page cannot reach the server (or anything) itself.
	var fetched string
	d.execAsync(`const [url, done] = arguments;
		fetch(url).then(() => done("fetched"), (e) => done("refused: " + e));`, &fetched, st.GatewayURL()+"/healthz")
	if !strings.HasPrefix(fetched, "refused") {
		t.Fatalf("fetch to the gateway from the web view: %s", fetched)
	}
	// No inline script runs.
	var ran bool
	d.execAsync(`const done = arguments[0];
		const s = document.createElement("script");
		s.textContent = "window.__inlineRan = true";
		document.body.append(s);
		setTimeout(() => done(window.__inlineRan === true), 200);`, &ran)
	if ran {
		t.Fatal("an inline script ran despite the CSP")
	}
	// Navigation away from the app's pages is not followed.
	d.exec(`window.location.href = arguments[0]; return null;`, nil, st.GatewayURL()+"/healthz")
	time.Sleep(1500 * time.Millisecond)
	var url string
	d.exec(`return document.location.href;`, &url)
	if !strings.HasPrefix(url, "tauri://localhost") {
		t.Fatalf("the web view navigated to %s", url)
	}
	d.must("#sign-in-form")
}
