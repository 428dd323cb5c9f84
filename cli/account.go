package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"zsm.dev/zsm/sdk/zsm"
)

type sessionJSON struct {
	ID            string     `json:"id"`
	DeviceLabel   string     `json:"device_label"`
	ClientAddr    string     `json:"client_addr"`
	CreatedAt     time.Time  `json:"created_at"`
	LastUsedAt    time.Time  `json:"last_used_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	IdleExpiresAt *time.Time `json:"idle_expires_at,omitempty"`
	Current       bool       `json:"current"`
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (a *app) sessionsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "sessions",
		Short: "List this account's sessions (devices); `zsm sessions revoke ID` ends one",
		Args:  exactArgs(0, "sessions"),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := a.login(cmd.Context())
			if err != nil {
				return err
			}
			list, err := l.c.Sessions(cmd.Context())
			if err != nil {
				return err
			}
			out := make([]sessionJSON, 0, len(list))
			for _, s := range list {
				out = append(out, sessionJSON{ID: s.ID, DeviceLabel: deref(s.DeviceLabel), ClientAddr: deref(s.ClientAddr),
					CreatedAt: s.CreatedAt.UTC(), LastUsedAt: s.LastUsedAt.UTC(), ExpiresAt: s.ExpiresAt.UTC(), IdleExpiresAt: s.IdleExpiresAt, Current: s.Current})
			}
			if a.jsonOut {
				return a.printJSON(out)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tDEVICE\tADDRESS\tCREATED\tLAST USED\t")
			for _, s := range out {
				mark := ""
				if s.Current {
					mark = "(this one)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.DeviceLabel, s.ClientAddr,
					s.CreatedAt.Format(time.RFC3339), s.LastUsedAt.Format(time.RFC3339), mark)
			}
			return w.Flush()
		},
	}
	c.AddCommand(a.sessionsRevokeCmd())
	return a.jsonFlag(c)
}

func (a *app) sessionsRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "End one of this account's sessions; its tokens stop working at once",
		Args:  exactArgs(1, "sessions revoke ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := a.login(cmd.Context())
			if err != nil {
				return err
			}
			current := l.session().SessionID == args[0]
			if err := l.c.RevokeSession(cmd.Context(), args[0]); err != nil {
				if errors.Is(err, zsm.ErrNotFound) {
					return withHint(ExitNotFound, fmt.Errorf("no session %s of this account", args[0]), "`zsm sessions` lists them")
				}
				return err
			}
			if current {
				h, err := a.home()
				if err == nil {
					_ = a.dropSession(h, l.accts)
				}
				a.info("Ended this session; log in again to go on.")
				return nil
			}
			a.info("Ended session %s.", args[0])
			return nil
		},
	}
}

func (a *app) passwordCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "password",
		Short: "Change the account password (`zsm password change`)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("see `zsm password --help`", "unknown command %q for zsm password", args[0])
			}
			return cmd.Help()
		},
	}
	var pwStdin bool
	change := &cobra.Command{
		Use:   "change",
		Short: "Change the password; every other session of the account ends",
		Long: `Change the password. The current password is proved to the server with a
fresh SRP exchange; the new one gets new key-derivation parameters and a
new verifier, and the account key is re-wrapped under it, so every vault
stays readable. The Secret Key does not change. Every other session of the
account ends at once; this one stays.

Without a terminal: --password-stdin reads the current password from the
first line of stdin and the new one from the second.`,
		Args: exactArgs(0, "password change"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, err := a.login(ctx)
			if err != nil {
				return err
			}
			s := l.session()
			var oldPW, newPW string
			if pwStdin {
				if oldPW, err = a.readLine("current password"); err == nil {
					newPW, err = a.readLine("new password")
				}
			} else {
				if _, ok := a.stdinTTY(); !ok {
					return usageErr("use --password-stdin (current password, then the new one, a line each)", "no terminal to ask for the passwords")
				}
				if oldPW, err = a.promptSecret("Current password: "); err == nil {
					newPW, err = a.password(false, true)
				}
			}
			if err != nil {
				return err
			}
			if len([]rune(newPW)) < minPasswordLen {
				return usageErr("", "the new password must have at least %d characters", minPasswordLen)
			}
			h, err := a.home()
			if err != nil {
				return err
			}
			known := l.accts.Accounts[accountKey(s.Server, s.Identity)]
			sk, _, err := a.secretKey(false, h, s.Server, s.Identity, known)
			if err != nil {
				return err
			}
			st, err := a.loadState()
			if err != nil {
				return err
			}
			if err := zsm.ChangePassword(ctx, l.c, oldPW, newPW, sk, st); err != nil {
				if errors.Is(err, zsm.ErrWrongPassword) {
					return withHint(ExitAuth, err, "type the password you log in with now")
				}
				return err
			}
			a.info("Password changed. Every other session of %s has ended; other devices log in with the new password (zsm login --accept-new-kdf).", s.Identity)
			return nil
		},
	}
	change.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the current and the new password from stdin, a line each")
	refusePasswordFlag(change)
	c.AddCommand(change)
	return c
}
