// Package cli is the zsm command-line client: every command of `zsm`, on
// top of the Go SDK (sdk/zsm). cmd/zsm only calls Main.
package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"zsm.dev/zsm/sdk/zsm"
)

// DefaultServer is the local stack's gateway.
const DefaultServer = "http://127.0.0.1:8080"

// app is one invocation of zsm.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	lines  *bufio.Reader // stdin, read line by line (--password-stdin, …)

	serverFlag   string
	identityFlag string
	jsonOut      bool

	h     *home
	state *zsm.FileState
	cur   *loggedIn // the open session, once a command needed it
	hc    *http.Client
}

// exitCode makes Main exit with a code and print nothing (zsm run).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Main runs zsm with the process's arguments and streams and returns the
// exit code.
func Main() int { return Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr) }

// Run runs zsm with args.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if host, err := os.Hostname(); err == nil && host != "" {
		zsm.DeviceLabel = "zsm CLI on " + host
	} else {
		zsm.DeviceLabel = "zsm CLI"
	}
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, hc: zsm.NewHTTPClient()}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if serr := a.saveState(); serr != nil && err == nil {
		err = serr
	}
	if err == nil {
		return ExitOK
	}
	var ec exitCode
	if errors.As(err, &ec) {
		return int(ec)
	}
	if cobraUsage(err) {
		err = &cliError{code: ExitUsage, msg: err.Error(), hint: "see `zsm help`"}
	}
	code, msg, hint := classify(err)
	fmt.Fprintf(stderr, "zsm: %s\n", oneLine(msg))
	if hint != "" {
		fmt.Fprintf(stderr, "hint: %s\n", oneLine(hint))
	}
	return code
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// cobraUsage recognizes cobra's own argument errors.
func cobraUsage(err error) bool {
	var ce *cliError
	if errors.As(err, &ce) {
		return false
	}
	m := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "required flag", "accepts ", "requires ", "invalid argument", "flag needs an argument", "bad flag", "if any flags in the group"} {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "zsm",
		Short: "zsm keeps secrets encrypted on your machine and syncs them through a server that cannot read them",
		Long: `zsm is the command-line client of zsm, a zero-knowledge secrets manager.
Secrets are encrypted here before they leave this machine; the server stores
ciphertext it cannot read.

Server: --server or ZSM_SERVER (default ` + DefaultServer + `).
Configuration: $ZSM_HOME or <user config dir>/zsm.
Exit codes: 0 ok, 1 error, 2 usage, 3 not logged in, 4 wrong password or
Secret Key, 5 not found, 6 integrity failure, 7 server unavailable,
8 conflict, 9 not allowed for your role in the vault. See docs/cli.md.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &cliError{code: ExitUsage, msg: err.Error(), hint: "see `zsm help`"}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.serverFlag, "server", "", "server URL (default $ZSM_SERVER or "+DefaultServer+")")
	pf.StringVar(&a.identityFlag, "identity", "", "account identity (default $ZSM_IDENTITY or the last one used)")
	root.AddCommand(
		a.signupCmd(), a.loginCmd(), a.logoutCmd(), a.whoamiCmd(), a.statusCmd(),
		a.verifyCmd(), a.vaultCmd(),
		a.setCmd(), a.getCmd(), a.lsCmd(), a.rmCmd(), a.historyCmd(), a.restoreCmd(),
		a.runCmd(), a.readCmd(), a.injectCmd(), a.importCmd(), a.exportCmd(),
		a.sessionsCmd(), a.passwordCmd(),
		a.rotateCmd(), a.webhookCmd(), a.auditCmd(),
	)
	return root
}

// jsonFlag adds --json to a command that prints data.
func (a *app) jsonFlag(c *cobra.Command) *cobra.Command {
	c.Flags().BoolVar(&a.jsonOut, "json", false, "print JSON (stable snake_case field names)")
	return c
}

// args validators with zsm's usage errors.
func exactArgs(n int, usage string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErr("usage: zsm "+usage, "expected %d argument(s), got %d", n, len(args))
		}
		return nil
	}
}

func rangeArgs(lo, hi int, usage string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usageErr("usage: zsm "+usage, "expected %d to %d arguments, got %d", lo, hi, len(args))
		}
		return nil
	}
}

// server returns the server URL and whether the user chose it.
func (a *app) server() (string, bool) {
	if a.serverFlag != "" {
		return strings.TrimRight(a.serverFlag, "/"), true
	}
	if s := os.Getenv("ZSM_SERVER"); s != "" {
		return strings.TrimRight(s, "/"), true
	}
	return DefaultServer, false
}

func (a *app) home() (*home, error) {
	if a.h != nil {
		return a.h, nil
	}
	h, err := openHome()
	if err != nil {
		return nil, err
	}
	a.h = h
	return h, nil
}

// loadState loads the device state; saveState (after every command) writes
// it back, so revisions seen are remembered even when a command fails.
func (a *app) loadState() (*zsm.FileState, error) {
	if a.state != nil {
		return a.state, nil
	}
	h, err := a.home()
	if err != nil {
		return nil, err
	}
	st, err := h.loadState()
	if err != nil {
		return nil, err
	}
	a.state = st
	return st, nil
}

func (a *app) saveState() error {
	if a.state == nil {
		return nil
	}
	if err := a.state.Save(); err != nil {
		return fmt.Errorf("saving the device state: %w", err)
	}
	return nil
}

// printJSON writes v as indented JSON to stdout.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// info writes a human message to stderr (data goes to stdout).
func (a *app) info(format string, args ...any) {
	fmt.Fprintf(a.stderr, format+"\n", args...)
}

func (a *app) warn(format string, args ...any) {
	fmt.Fprintf(a.stderr, "zsm: warning: "+format+"\n", args...)
}

// isTerminal reports whether f is a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress writes "what n/total" to stderr, only on a terminal.
func (a *app) progress(what string, n, total int) {
	if !isTerminal(a.stderr) || total < 20 {
		return
	}
	fmt.Fprintf(a.stderr, "\r%s %d/%d", what, n, total)
	if n == total {
		fmt.Fprintln(a.stderr)
	}
}

// splitRef splits VAULT/NAME (the name may contain '/').
func splitRef(ref string) (vault, name string, err error) {
	ref = strings.TrimPrefix(ref, "zsm://")
	v, n, ok := strings.Cut(ref, "/")
	if !ok || v == "" || n == "" {
		return "", "", usageErr("write VAULT/NAME, e.g. prod/API_KEY", "%q is not VAULT/NAME", ref)
	}
	return v, n, nil
}
