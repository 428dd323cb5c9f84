package cli

// Sharing vaults: verifying people's keys, members, share, unshare, leave
// and rekey (docs/cli.md, "Sharing").

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"zsm.dev/zsm/sdk/trust"
	"zsm.dev/zsm/sdk/zsm"
)

// identityJSON is `zsm verify --json`.
type identityJSON struct {
	Identity      string     `json:"identity"`
	UserID        string     `json:"user_id"`
	SafetyNumber  string     `json:"safety_number"`
	QR            string     `json:"qr"`
	Status        string     `json:"status"`
	RecordVersion int        `json:"record_version"`
	PinnedAt      *time.Time `json:"pinned_at,omitempty"`
}

func (a *app) verifyCmd() *cobra.Command {
	var confirm bool
	c := &cobra.Command{
		Use:   "verify IDENTITY",
		Short: "Show someone's safety number to compare out of band; --confirm pins their keys",
		Long: `Shows the safety number of IDENTITY's keys as the server publishes them,
computed here from their signed key record. Compare it with the one they
see with ` + "`zsm whoami --fingerprint`" + ` — in person or on a call, not
through anything the server could change. If it matches, run this again
with --confirm: their keys are pinned, synced (encrypted) to your other
devices, and from then on any other keys for IDENTITY are refused.`,
		Args: exactArgs(1, "verify IDENTITY [--confirm]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, err := a.login(ctx)
			if err != nil {
				return err
			}
			chk, err := l.c.CheckIdentity(ctx, args[0])
			if err != nil {
				return err
			}
			if confirm {
				p, err := l.c.ConfirmIdentity(ctx, chk, trust.Verified)
				if err != nil {
					return err
				}
				chk.Status, chk.Pin = zsm.StatusVerified, &p
			}
			if a.jsonOut {
				out := identityJSON{Identity: chk.Keys.Identity, UserID: chk.Keys.UserID.String(), SafetyNumber: chk.Fingerprint.SafetyNumber,
					QR: chk.Fingerprint.QR, Status: string(chk.Status), RecordVersion: chk.Keys.RecordVersion}
				if chk.Pin != nil {
					t := chk.Pin.PinnedAt.UTC()
					out.PinnedAt = &t
				}
				return a.printJSON(out)
			}
			fmt.Fprintf(a.stdout, "%s\n%s\n%s\n", chk.Keys.Identity, chk.Fingerprint.SafetyNumber, chk.Fingerprint.QR)
			switch chk.Status {
			case zsm.StatusVerified:
				if confirm {
					a.info("Verified %s: its keys are pinned.", chk.Keys.Identity)
				} else {
					a.info("Verified: these are the keys you confirmed.")
				}
			case zsm.StatusTOFU:
				a.info("Trusted on first use, not verified. Compare the safety number above with %s, then run `zsm verify %s --confirm`.", chk.Keys.Identity, chk.Keys.Identity)
			case zsm.StatusChanged:
				return withHint(ExitIntegrity, fmt.Errorf("%s has new keys: the safety number above is not the one you confirmed: %w", chk.Keys.Identity, zsm.ErrKeyChanged),
					"compare the safety number above with "+chk.Keys.Identity+" again; only if it matches, run `zsm verify "+chk.Keys.Identity+" --confirm`")
			default:
				a.info("Not verified. Compare the safety number above with %s (they see theirs with `zsm whoami --fingerprint`), then run `zsm verify %s --confirm`.", chk.Keys.Identity, chk.Keys.Identity)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&confirm, "confirm", false, "pin these keys: you compared the safety number out of band and it matches")
	return a.jsonFlag(c)
}

// memberJSON is one member in `zsm vault members --json`.
type memberJSON struct {
	Identity     string    `json:"identity"`
	UserID       string    `json:"user_id"`
	Role         string    `json:"role"`
	Status       string    `json:"status"`
	Verified     bool      `json:"verified"`
	SafetyNumber string    `json:"safety_number,omitempty"`
	GrantedBy    string    `json:"granted_by"`
	GrantedByID  string    `json:"granted_by_user_id"`
	GrantedAt    time.Time `json:"granted_at"`
}

func toMemberJSON(m zsm.Member) memberJSON {
	return memberJSON{Identity: m.Identity, UserID: m.UserID.String(), Role: m.Role, Status: string(m.Status),
		Verified: m.Status == zsm.StatusVerified || m.Status == zsm.StatusSelf, SafetyNumber: m.SafetyNumber,
		GrantedBy: m.AddedByIdentity, GrantedByID: m.AddedBy.String(), GrantedAt: m.AddedAt.UTC()}
}

func (a *app) vaultMembersCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "members VAULT",
		Short: "List a vault's members, as its signed membership log says",
		Args:  exactArgs(1, "vault members VAULT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, v, err := a.loginToVault(ctx, args[0])
			if err != nil {
				return err
			}
			ms, err := l.c.Members(ctx, v)
			if err != nil {
				return err
			}
			if a.jsonOut {
				out := []memberJSON{}
				for _, m := range ms {
					out = append(out, toMemberJSON(m))
				}
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IDENTITY\tROLE\tVERIFIED\tGRANTED BY\tWHEN")
			for _, m := range ms {
				who := m.Identity
				if who == "" {
					who = "user " + m.UserID.String()
				}
				by := m.AddedByIdentity
				if by == "" {
					by = m.AddedBy.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", who, m.Role, verifiedWord(m.Status), by, m.AddedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	return a.jsonFlag(c)
}

func verifiedWord(s zsm.IdentityStatus) string {
	switch s {
	case zsm.StatusSelf:
		return "you"
	case zsm.StatusVerified:
		return "yes"
	case zsm.StatusTOFU:
		return "no (trusted on first use)"
	}
	return "no (through the log)"
}

func (a *app) vaultShareCmd() *cobra.Command {
	var role string
	var tofu bool
	c := &cobra.Command{
		Use:   "share VAULT IDENTITY --role owner|admin|editor|viewer",
		Short: "Give IDENTITY a role in a vault (their keys must be verified first)",
		Args:  exactArgs(2, "vault share VAULT IDENTITY --role ROLE [--trust-on-first-use]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if role == "" {
				return usageErr("give the role: --role viewer (read), editor (write), admin (manage editors and viewers) or owner", "no --role")
			}
			l, v, err := a.loginToVault(ctx, args[0])
			if err != nil {
				return err
			}
			m, err := l.c.Share(ctx, v, args[1], role, tofu)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(toMemberJSON(m))
			}
			a.info("Shared vault %s with %s as %s.", v.Name, m.Identity, m.Role)
			if m.Status == zsm.StatusTOFU {
				a.warn("%s's keys are trusted on first use, not verified: compare safety numbers with `zsm verify %s`", m.Identity, m.Identity)
			}
			a.info("They open it once they verify you: `zsm verify %s --confirm` on their side.", l.session().Identity)
			return nil
		},
	}
	c.Flags().StringVar(&role, "role", "", "owner, admin, editor or viewer")
	c.Flags().BoolVar(&tofu, "trust-on-first-use", false, "share even though IDENTITY's keys are not verified (they are pinned as unverified)")
	return a.jsonFlag(c)
}

func (a *app) vaultRoleCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "role VAULT IDENTITY owner|admin|editor|viewer",
		Short: "Change a member's role in a vault",
		Long: `Change a member's role in a vault: a signed entry of its membership log.
Owners change anyone's role but the vault creator's; admins only between
editor and viewer. The key is not rotated: a member whose role shrinks
keeps what it could read (unshare and share again to cut that off).`,
		Args: exactArgs(3, "vault role VAULT IDENTITY ROLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, v, err := a.loginToVault(ctx, args[0])
			if err != nil {
				return err
			}
			m, err := l.c.ChangeRole(ctx, v, args[1], args[2])
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(toMemberJSON(m))
			}
			a.info("%s is now %s in vault %s.", m.Identity, m.Role, v.Name)
			return nil
		},
	}
	return a.jsonFlag(c)
}

func (a *app) vaultUnshareCmd() *cobra.Command {
	var rekey bool
	c := &cobra.Command{
		Use:   "unshare VAULT IDENTITY",
		Short: "Remove IDENTITY from a vault and rotate its key",
		Args:  exactArgs(2, "vault unshare VAULT IDENTITY [--rekey]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, v, err := a.loginToVault(ctx, args[0])
			if err != nil {
				return err
			}
			if err := l.c.Unshare(ctx, v, args[1]); err != nil {
				return err
			}
			a.info("Removed %s from vault %s; what is written from now on uses a new key they do not have.", args[1], v.Name)
			if !cmd.Flags().Changed("rekey") {
				// Asked on a terminal; without one (scripts) the answer is no
				// and the hint below says how to do it later.
				ans, err := a.prompt(fmt.Sprintf("Re-encrypt every secret of %s under the new key now? [y/N] ", v.Name))
				rekey = err == nil && (strings.EqualFold(ans, "y") || strings.EqualFold(ans, "yes"))
			}
			if !rekey {
				a.info("The secrets they could read stay under the old key until `zsm vault rekey %s` (change the values too: they may have copied them).", v.Name)
				return nil
			}
			v, err = vaultByName(ctx, l.c, args[0])
			if err != nil {
				return err
			}
			res, err := l.c.Rekey(ctx, v)
			if err != nil {
				return err
			}
			a.info("Re-encrypted %d secret(s) under key generation %d.", res.Reencrypted, res.Generation)
			return nil
		},
	}
	c.Flags().BoolVar(&rekey, "rekey", false, "also re-encrypt every secret under the new key now (zsm vault rekey); asked on a terminal when not given, --rekey=false does not ask")
	return c
}

func (a *app) vaultLeaveCmd() *cobra.Command {
	var yes bool
	c := &cobra.Command{
		Use:   "leave VAULT",
		Short: "Stop being a member of a vault",
		Args:  exactArgs(1, "vault leave VAULT --yes"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if !yes {
				ans, err := a.prompt(fmt.Sprintf("Leave vault %s? You will need a new invitation to come back. Type its name to confirm: ", args[0]))
				if err != nil {
					return usageErr("pass --yes to leave without asking", "leaving a vault needs confirmation")
				}
				if ans != args[0] {
					return usageErr("", "not confirmed; you are still a member")
				}
			}
			l, v, err := a.loginToVault(ctx, args[0])
			if err != nil {
				return err
			}
			if err := l.c.Leave(ctx, v); err != nil {
				return err
			}
			a.info("Left vault %s.", v.Name)
			return nil
		},
	}
	c.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return c
}

func (a *app) vaultRekeyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "rekey VAULT",
		Short: "Make a new vault key and re-encrypt every secret under it",
		Args:  exactArgs(1, "vault rekey VAULT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, v, err := a.loginToVault(ctx, args[0])
			if err != nil {
				return err
			}
			res, err := l.c.Rekey(ctx, v)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"vault": v.Name, "generation": res.Generation, "rotated": res.Rotated, "reencrypted": res.Reencrypted})
			}
			a.info("Vault %s: key generation %d; re-encrypted %d secret(s).", v.Name, res.Generation, res.Reencrypted)
			return nil
		},
	}
	return a.jsonFlag(c)
}

// roleHint is the hint for a role refusal.
func roleHint(err error) string {
	if errors.Is(err, zsm.ErrForbidden) {
		return "ask an owner or admin of the vault for another role (`zsm vault members VAULT` shows who they are)"
	}
	return ""
}
