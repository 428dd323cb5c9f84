package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/zsm"
	"zsm.dev/zsm/srpgroup"
)

// minPasswordLen is the shortest password signup accepts (in characters).
const minPasswordLen = 10

// refusePasswordFlag adds a hidden --password that explains why not.
func refusePasswordFlag(c *cobra.Command) {
	var p string
	c.Flags().StringVar(&p, "password", "", "")
	_ = c.Flags().MarkHidden("password")
	prev := c.PreRunE
	c.PreRunE = func(cmd *cobra.Command, args []string) error {
		if cmd.Flags().Changed("password") {
			return usageErr("use --password-stdin or ZSM_PASSWORD", "zsm does not take a password as an argument (it would show in the process list and shell history)")
		}
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
}

// accounts opens this device's configuration: its directory, the accounts
// it knows, and the server the command talks to.
func (a *app) accounts() (*home, *accountsFile, string, error) {
	h, err := a.home()
	if err != nil {
		return nil, nil, "", err
	}
	accts, err := h.loadAccounts()
	if err != nil {
		return nil, nil, "", err
	}
	server, _ := a.server()
	return h, accts, server, nil
}

func normalizeIdentity(id string) (string, error) {
	n, err := srpgroup.ParseIdentity(id)
	if err != nil {
		return "", usageErr("an identity is an e-mail address or user name of 3–254 bytes without spaces", "identity %q: %v", id, err)
	}
	return n.String(), nil
}

func (a *app) signupCmd() *cobra.Command {
	var pwStdin, raw bool
	var kit string
	c := &cobra.Command{
		Use:   "signup [IDENTITY]",
		Short: "Create an account, show its emergency kit once, and log in",
		Long: `Create an account. zsm makes a Secret Key on this machine and prints the
emergency kit (server, identity, Secret Key) to stdout, or to --kit FILE.
Keep it safe: the Secret Key and the password together open the account,
and neither can be recovered.

The password comes from --password-stdin (first line of stdin), ZSM_PASSWORD
or, on a terminal, a prompt (asked twice).`,
		Args: rangeArgs(0, 1, "signup [IDENTITY]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			h, accts, server, err := a.accounts()
			if err != nil {
				return err
			}
			var id string
			switch {
			case len(args) == 1:
				id = args[0]
			case a.identityFlag != "":
				id = a.identityFlag
			case os.Getenv("ZSM_IDENTITY") != "":
				id = os.Getenv("ZSM_IDENTITY")
			default:
				if id, err = a.prompt("Identity (e-mail): "); err != nil || id == "" {
					return usageErr("pass the identity: zsm signup you@example.com", "no identity given")
				}
			}
			if id, err = normalizeIdentity(id); err != nil {
				return err
			}
			pw, err := a.password(pwStdin, true)
			if err != nil {
				return err
			}
			if utf8.RuneCountInString(pw) < minPasswordLen {
				return usageErr("choose a longer password (a passphrase of several words is easy to type)", "the password must have at least %d characters", minPasswordLen)
			}
			st, err := a.loadState()
			if err != nil {
				return err
			}
			res, err := zsm.Signup(ctx, a.hc, server, id, pw, st)
			if err != nil {
				if errors.Is(err, zsm.ErrExists) {
					return withHint(ExitConflict, fmt.Errorf("identity %s is already registered", id), "log in with `zsm login "+id+"`, or choose another identity")
				}
				return err
			}
			// The kit first: if anything below fails, the user still has the key.
			text := emergencyKit(server, res.Identity, res.SecretKey.Text(), time.Now())
			if kit != "" {
				if err := writeFile0600(kit, []byte(text)); err != nil {
					fmt.Fprint(a.stdout, text)
					return fmt.Errorf("writing the emergency kit to %s: %w (it was printed above instead)", kit, err)
				}
				a.info("Emergency kit written to %s. Print it or keep it somewhere safe.", kit)
			} else {
				fmt.Fprint(a.stdout, text)
			}
			acct := accountKey(server, res.Identity)
			where, err := h.storeSecretKey(acct, res.SecretKey)
			if err != nil {
				a.warn("could not keep the Secret Key on this device (%v); you will need the emergency kit to log in", err)
			}
			accts.Accounts[acct] = &account{Server: server, Identity: res.Identity, UserID: res.UserID.String(), SecretKeyIn: where}
			accts.Last = acct
			if err := h.saveAccounts(accts); err != nil {
				return err
			}
			a.info("Account %s created on %s.", res.Identity, server)
			sess, err := zsm.Login(ctx, a.hc, server, res.Identity, pw, res.SecretKey, st)
			if err != nil {
				return withHint(0, fmt.Errorf("the account was created, but logging in failed: %w", err), "run `zsm login`")
			}
			return a.finishLogin(ctx, h, accts, sess, raw)
		},
	}
	c.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")
	c.Flags().StringVar(&kit, "kit", "", "write the emergency kit to `FILE` (0600) instead of stdout")
	c.Flags().BoolVar(&raw, "raw", false, "print only the session key (when there is no keyring), for scripts")
	refusePasswordFlag(c)
	return a.jsonFlag(c)
}

func emergencyKit(server, identity, secretKey string, now time.Time) string {
	return fmt.Sprintf(`zsm Emergency Kit
-----------------
Created:     %s
Server:      %s
Identity:    %s
Secret Key:  %s

Your password and this Secret Key together open your account. Nobody,
not zsm and not the server's operator, can recover or reset either: lose
both this kit and every device that keeps the key, or forget the password,
and your secrets are gone. Print this kit or keep it somewhere safe, apart
from your password.
`, now.UTC().Format("2006-01-02"), server, identity, secretKey)
}

func (a *app) loginCmd() *cobra.Command {
	var pwStdin, skStdin, raw, acceptKDF bool
	c := &cobra.Command{
		Use:   "login [IDENTITY]",
		Short: "Log in and keep the session for the next commands",
		Long: `Log in with password and Secret Key (SRP-6a: the password never leaves this
machine).

Password: --password-stdin (first line of stdin), ZSM_PASSWORD, or a prompt.
Secret Key: ZSM_SECRET_KEY, --secret-key-stdin (next line of stdin), the one
kept on this device since signup or the first login, or a prompt.

The session is sealed in the configuration directory. Its key goes to the OS
keyring; where there is none, zsm prints "export ZSM_SESSION=…", which you
must run (eval "$(zsm login)") for later commands to open the session.`,
		Args: rangeArgs(0, 1, "login [IDENTITY]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			h, accts, server, err := a.accounts()
			if err != nil {
				return err
			}
			id, err := a.identity(args, accts, server)
			if err != nil {
				return err
			}
			if id, err = normalizeIdentity(id); err != nil {
				return err
			}
			acct := accountKey(server, id)
			known := accts.Accounts[acct]
			pw, err := a.password(pwStdin, false)
			if err != nil {
				return err
			}
			sk, stored, err := a.secretKey(skStdin, h, server, id, known)
			if err != nil {
				return err
			}
			st, err := a.loadState()
			if err != nil {
				return err
			}
			var pins zsm.State = st
			if acceptKDF {
				pins = forgetPin{State: st}
			}
			sess, err := zsm.Login(ctx, a.hc, server, id, pw, sk, pins)
			if errors.Is(err, zsm.ErrKDFChange) {
				return withHint(ExitIntegrity, err, "if you changed the password on another device, log in with --accept-new-kdf; otherwise the server is trying to weaken your login")
			}
			if err != nil {
				if errors.Is(err, zsm.ErrLoginFailed) {
					hint := "check the password and the Secret Key (ZSM1-…, in your emergency kit)"
					if stored {
						hint = "check the password (the Secret Key kept on this device was used)"
					}
					return withHint(ExitAuth, errors.New("login failed: wrong identity, password or Secret Key"), hint)
				}
				return err
			}
			if known == nil {
				known = &account{Server: server, Identity: sess.Identity}
				accts.Accounts[acct] = known
			}
			known.UserID = sess.UserID.String()
			known.LastLogin = time.Now().UTC()
			if !stored {
				where, err := h.storeSecretKey(acct, sk)
				if err != nil {
					a.warn("could not keep the Secret Key on this device: %v", err)
				} else {
					known.SecretKeyIn = where
				}
			}
			return a.finishLogin(ctx, h, accts, sess, raw)
		},
	}
	c.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")
	c.Flags().BoolVar(&skStdin, "secret-key-stdin", false, "read the Secret Key from the next line of stdin")
	c.Flags().BoolVar(&raw, "raw", false, "print only the session key (when there is no keyring), for scripts")
	c.Flags().BoolVar(&acceptKDF, "accept-new-kdf", false, "accept key-derivation parameters that differ from the pinned ones (after a password change on another device); the floor still applies")
	refusePasswordFlag(c)
	return a.jsonFlag(c)
}

// forgetPin is a State that has pinned no KDF parameters: logging in with it
// accepts (and then pins) whatever the server now sends, as long as it
// passes the floor. Used only when the user says the password was changed.
type forgetPin struct{ zsm.State }

func (forgetPin) PinnedKDF(string) (keys.KDFParams, bool) { return keys.KDFParams{}, false }

// finishLogin ends the previous session of this home, stores the new one
// and tells the user how to use it.
func (a *app) finishLogin(ctx context.Context, h *home, accts *accountsFile, sess *zsm.Session, raw bool) error {
	if prev, err := a.openSession(ctx); err == nil {
		_ = prev.c.Logout(ctx) // best effort: one session per home
	}
	key, keyIn, err := a.storeSession(h, accts, sess)
	if err != nil {
		return err
	}
	enc := zsm.EncodeSessionKey(key)
	if a.jsonOut {
		out := map[string]any{"identity": sess.Identity, "user_id": sess.UserID.String(), "server": sess.Server, "session_key_in": keyIn}
		if keyIn == inEnv {
			out["session_key"] = enc
		}
		return a.printJSON(out)
	}
	if keyIn == inKeyring {
		a.info("Logged in as %s on %s (session key in the OS keyring).", sess.Identity, sess.Server)
		return nil
	}
	if raw {
		fmt.Fprintln(a.stdout, enc)
	} else {
		fmt.Fprintf(a.stdout, "export ZSM_SESSION=%s\n", enc)
	}
	a.info("Logged in as %s on %s.", sess.Identity, sess.Server)
	a.info("There is no OS keyring here: export ZSM_SESSION (the line above; or eval \"$(zsm login)\") so that the next commands can open the session.")
	return nil
}

func (a *app) logoutCmd() *cobra.Command {
	var forget bool
	c := &cobra.Command{
		Use:   "logout",
		Short: "End the session on the server and remove it from this device",
		Args:  exactArgs(0, "logout"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			h, err := a.home()
			if err != nil {
				return err
			}
			accts, err := h.loadAccounts()
			if err != nil {
				return err
			}
			var revokeErr error
			acct := ""
			if accts.Session != nil {
				acct = accts.Session.Account
			}
			if _, err := os.Stat(h.path("session")); err != nil {
				a.info("Not logged in.")
			} else if l, err := a.login(ctx); err != nil {
				if code, _, _ := classify(err); code == ExitUnavailable {
					revokeErr = err
				} else {
					a.warn("the session could not be opened (%s), so it was not revoked on the server; it was removed from this device", oneLine(err.Error()))
				}
			} else {
				acct = accountKey(l.session().Server, l.session().Identity)
				if err := l.c.Logout(ctx); err != nil && !errors.Is(err, zsm.ErrSessionExpired) {
					revokeErr = err
				}
			}
			if err := a.dropSession(h, accts); err != nil {
				return err
			}
			if forget && acct != "" {
				h.forgetSecretKey(acct)
				if ac := accts.Accounts[acct]; ac != nil {
					ac.SecretKeyIn = ""
				}
				if err := h.saveAccounts(accts); err != nil {
					return err
				}
				a.info("The Secret Key of %s was removed from this device.", acct)
			}
			if revokeErr != nil {
				return withHint(0, fmt.Errorf("the session was removed from this device, but the server could not revoke it: %w", revokeErr), "it expires on its own; run `zsm logout` again when the server is back to end it now")
			}
			a.info("Logged out.")
			return nil
		},
	}
	c.Flags().BoolVar(&forget, "forget-secret-key", false, "also remove the Secret Key kept on this device")
	return c
}

func (a *app) whoamiCmd() *cobra.Command {
	var fingerprint bool
	c := &cobra.Command{
		Use:   "whoami",
		Short: "Show the logged-in account (checks the session with the server); --fingerprint its safety number",
		Args:  exactArgs(0, "whoami [--fingerprint]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := a.login(cmd.Context())
			if err != nil {
				return err
			}
			if err := l.c.Ping(cmd.Context()); err != nil {
				return err
			}
			s := l.session()
			out := map[string]any{"identity": s.Identity, "user_id": s.UserID.String(), "server": s.Server, "session_id": s.SessionID}
			var fp zsm.Fingerprint
			if fingerprint {
				// Computed from this account's own keys, never from the server.
				if fp, err = l.c.OwnFingerprint(); err != nil {
					return err
				}
				out["safety_number"], out["qr"] = fp.SafetyNumber, fp.QR
			}
			if a.jsonOut {
				return a.printJSON(out)
			}
			fmt.Fprintln(a.stdout, s.Identity)
			if fingerprint {
				fmt.Fprintf(a.stdout, "%s\n%s\n", fp.SafetyNumber, fp.QR)
				a.info("Read this safety number to whoever verifies you (`zsm verify %s` on their side) over a channel the server cannot change.", s.Identity)
				return nil
			}
			a.info("user %s on %s", s.UserID, s.Server)
			return nil
		},
	}
	c.Flags().BoolVar(&fingerprint, "fingerprint", false, "also print this account's safety number and QR string")
	return a.jsonFlag(c)
}

func (a *app) statusCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the server, whether it answers, and the login state (exit 0 even when logged out)",
		Args:  exactArgs(0, "status"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			h, err := a.home()
			if err != nil {
				return err
			}
			server, _ := a.server()
			out := struct {
				Server          string     `json:"server"`
				ServerReachable bool       `json:"server_reachable"`
				LoggedIn        bool       `json:"logged_in"`
				Identity        string     `json:"identity,omitempty"`
				UserID          string     `json:"user_id,omitempty"`
				SessionKeyIn    string     `json:"session_key_in,omitempty"`
				AccessExpiresAt *time.Time `json:"access_expires_at,omitempty"`
				Problem         string     `json:"problem,omitempty"`
				Keyring         string     `json:"keyring"`
				Home            string     `json:"home"`
			}{Server: server, Keyring: h.krState, Home: h.dir}
			l, lerr := a.login(ctx)
			if lerr == nil {
				out.Server = l.session().Server
			}
			out.ServerReachable = reachable(ctx, out.Server)
			if lerr == nil {
				s := l.session()
				out.Identity, out.UserID, out.SessionKeyIn = s.Identity, s.UserID.String(), l.keyIn
				if out.ServerReachable {
					lerr = l.c.Ping(ctx)
				}
				s = l.session()
				exp := s.AccessExpiry.UTC()
				out.AccessExpiresAt = &exp
			}
			out.LoggedIn = lerr == nil
			if lerr != nil {
				_, msg, hint := classify(lerr)
				out.Problem = msg
				if hint != "" {
					out.Problem += " (" + hint + ")"
				}
			}
			if a.jsonOut {
				return a.printJSON(out)
			}
			reach := "reachable"
			if !out.ServerReachable {
				reach = "NOT reachable"
			}
			fmt.Fprintf(a.stdout, "server:    %s (%s)\n", out.Server, reach)
			if out.LoggedIn {
				fmt.Fprintf(a.stdout, "logged in: %s (user %s; session key in %s)\n", out.Identity, out.UserID, out.SessionKeyIn)
			} else {
				fmt.Fprintf(a.stdout, "logged in: no: %s\n", out.Problem)
			}
			fmt.Fprintf(a.stdout, "keyring:   %s\n", out.Keyring)
			fmt.Fprintf(a.stdout, "home:      %s\n", out.Home)
			return nil
		},
	}
	return a.jsonFlag(c)
}

// reachable asks the gateway's health endpoint.
func reachable(ctx context.Context, server string) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(server, "/")+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode < 500
}
