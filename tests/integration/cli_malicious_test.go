package integration

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/cli"
)

// zsmCLI runs the zsm command line in this process and returns its exit
// code, stdout and stderr.
func zsmCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func wantCLI(t *testing.T, wantCode int, wantOut string, args ...string) string {
	t.Helper()
	code, out, errOut := zsmCLI(t, "", args...)
	if code != wantCode || out != wantOut {
		t.Fatalf("zsm %s: exit %d, stdout %q, stderr %q; want exit %d, stdout %q", strings.Join(args, " "), code, out, errOut, wantCode, wantOut)
	}
	return errOut
}

// The malicious-server case of issue 9 item 1, through the CLI: the server
// adds a vault with a grant signed by a stranger. The user's own vaults
// still list, get, export and run, exactly as before; the foreign grant is
// an invitation on stderr. A grant of the user's own that the server
// tampered with fails only its own vault, with exit 6.
func TestCLIKeepsWorkingNextToAForeignGrant(t *testing.T) {
	evil := newEvilServer(t)
	t.Setenv("ZSM_HOME", t.TempDir())
	t.Setenv("ZSM_KEYRING", "off")
	t.Setenv("ZSM_SERVER", evil.URL)
	t.Setenv("ZSM_SESSION", "")
	identity := "cli-victim-" + randHex(5) + "@example.test"
	code, out, errOut := zsmCLI(t, "correct horse battery staple\n", "signup", identity, "--password-stdin", "--kit", t.TempDir()+"/kit.txt")
	if code != 0 {
		t.Fatalf("signup: exit %d: %s", code, errOut)
	}
	m := regexp.MustCompile(`export ZSM_SESSION=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("signup printed no session key: %q", out)
	}
	t.Setenv("ZSM_SESSION", m[1])
	wantCLI(t, 0, "", "vault", "create", "mine")
	wantCLI(t, 0, "", "vault", "create", "other")
	wantCLI(t, 0, "", "set", "mine/API_KEY", "s3cret")
	wantCLI(t, 0, "", "set", "other/TOKEN", "t0ken")

	foreign, stranger := uuid.New(), uuid.New()
	evil.set(states(func(rs []map[string]any) []map[string]any {
		if len(rs) == 0 {
			return rs
		}
		return append(rs, foreignVault(foreign, stranger, grantOf(rs[0])["user_id"]))
	}))
	errOut = wantCLI(t, 0, "mine\nother\n", "vault", "list")
	wantErr := "\nInvitations (not verified; none is used; `zsm vault decline VAULT_ID` refuses one and blocks its sender):\n" +
		"  VAULT_ID                              FROM                                       ROLE   INVITED\n" +
		"  " + foreign.String() + "  user " + stranger.String() + "  owner  2026-11-29T10:00:00Z\n"
	if errOut != wantErr {
		t.Fatalf("vault list stderr:\n%s\nwant:\n%s", errOut, wantErr)
	}
	wantCLI(t, 0, "mine/API_KEY\nother/TOKEN\n", "ls")
	wantCLI(t, 0, "s3cret\n", "get", "mine/API_KEY")
	wantCLI(t, 0, "API_KEY=s3cret\n", "export", "--vault", "mine")
	wantCLI(t, 0, "s3cret", "run", "--vault", "mine", "--", "sh", "-c", `printf %s "$API_KEY"`)
	code, out, _ = zsmCLI(t, "", "vault", "list", "--json")
	var list struct {
		Vaults []struct {
			Name, ID string
		} `json:"vaults"`
		Invitations []struct {
			VaultID  string `json:"vault_id"`
			Verified bool   `json:"verified"`
		} `json:"invitations"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != 0 || len(list.Vaults) != 2 || list.Vaults[0].Name != "mine" ||
		len(list.Invitations) != 1 || list.Invitations[0].VaultID != foreign.String() || list.Invitations[0].Verified {
		t.Fatalf("vault list --json: exit %d, %s (%v)", code, out, err)
	}
	mineID := list.Vaults[0].ID

	// The server tampers with the grant of "mine" (the signature covers the
	// role): that vault alone is refused.
	evil.set(states(func(rs []map[string]any) []map[string]any {
		for _, r := range rs {
			if r["id"] == mineID {
				grantOf(r)["role"] = "admin"
			}
		}
		return rs
	}))
	errOut = wantCLI(t, 6, "other\n", "vault", "list")
	if !strings.Contains(errOut, "zsm: warning: left out: integrity check failed: the server sent data this account did not write: vault ") ||
		!strings.Contains(errOut, "zsm: the server sent data that failed verification; nothing was trusted: 1 vault(s) failed verification and were left out") {
		t.Fatalf("vault list stderr: %s", errOut)
	}
	wantCLI(t, 0, "t0ken\n", "get", "other/TOKEN")
	errOut = wantCLI(t, 6, "", "get", "mine/API_KEY")
	if !strings.HasPrefix(errOut, `zsm: the server sent data that failed verification; nothing was trusted: vault "mine" is not among the vaults that verify`) {
		t.Fatalf("get of the tampered vault: %s", errOut)
	}
	evil.set(nil)
	wantCLI(t, 0, "mine\nother\n", "vault", "list")
}
