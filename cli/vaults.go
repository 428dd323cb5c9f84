package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"zsm.dev/zsm/sdk/zsm"
)

type vaultJSON struct {
	Name      string    `json:"name"`
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	Revision  uint64    `json:"revision"`
	CreatedAt time.Time `json:"created_at"`
}

func toVaultJSON(v zsm.Vault) vaultJSON {
	return vaultJSON{Name: v.Name, ID: v.ID.String(), Role: v.Role, Revision: v.Revision, CreatedAt: v.CreatedAt.UTC()}
}

func (a *app) vaultCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "vault",
		Short: "Create, list, rename, delete and share vaults",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("see `zsm vault --help`", "unknown command %q for zsm vault", args[0])
			}
			return cmd.Help()
		},
	}
	c.AddCommand(a.vaultCreateCmd(), a.vaultListCmd(), a.vaultRenameCmd(), a.vaultDeleteCmd(),
		a.vaultDeclineCmd(), a.vaultAllowCmd(),
		a.vaultShareCmd(), a.vaultRoleCmd(), a.vaultMembersCmd(), a.vaultUnshareCmd(), a.vaultLeaveCmd(), a.vaultRekeyCmd())
	return c
}

// loginToVault logs in and finds the vault named name: the start of every
// command that works on one vault.
func (a *app) loginToVault(ctx context.Context, name string) (*loggedIn, zsm.Vault, error) {
	l, err := a.login(ctx)
	if err != nil {
		return nil, zsm.Vault{}, err
	}
	v, err := vaultByName(ctx, l.c, name)
	if err != nil {
		return nil, zsm.Vault{}, err
	}
	return l, v, nil
}

// vault finds a vault by name with a hint when it does not exist.
func vaultByName(ctx context.Context, c *zsm.Client, name string) (zsm.Vault, error) {
	v, err := c.VaultByName(ctx, name)
	if errors.Is(err, zsm.ErrNotFound) {
		return v, withHint(0, err, "`zsm vault list` shows your vaults; `zsm vault create "+name+"` makes one")
	}
	if err != nil {
		return v, err
	}
	return v, nil
}

func (a *app) vaultCreateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a vault",
		Args:  exactArgs(1, "vault create NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := zsm.ValidVaultName(args[0]); err != nil {
				return usageErr("", "%v", err)
			}
			l, err := a.login(cmd.Context())
			if err != nil {
				return err
			}
			v, err := l.c.CreateVault(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(toVaultJSON(v))
			}
			a.info("Created vault %s.", v.Name)
			return nil
		},
	}
	return a.jsonFlag(c)
}

// invitationJSON is an invitation in `zsm vault list --json`. Nothing in it
// is verified: it says who the server claims sent it.
type invitationJSON struct {
	VaultID    string    `json:"vault_id"`
	From       string    `json:"from"`
	FromUserID string    `json:"from_user_id"`
	Role       string    `json:"role"`
	InvitedAt  time.Time `json:"invited_at"`
	Verified   bool      `json:"verified"`
}

func toInvitationJSON(i zsm.Invitation) invitationJSON {
	return invitationJSON{VaultID: i.VaultID.String(), From: i.FromIdentity, FromUserID: i.From.String(), Role: i.Role,
		InvitedAt: i.At.UTC()}
}

// inviter names who sent an invitation, for people.
func inviter(i zsm.Invitation) string {
	if i.FromIdentity != "" {
		return i.FromIdentity
	}
	return "user " + i.From.String()
}

// refusedVaults reports vaults that failed verification on stderr and
// returns the first failure (the command then exits 6), or nil.
func (a *app) refusedVaults(l zsm.VaultList) error {
	for _, r := range l.Refused {
		a.warn("left out: %v", r.Err)
	}
	if len(l.Refused) > 0 {
		return fmt.Errorf("%d vault(s) failed verification and were left out: %w", len(l.Refused), l.Refused[0])
	}
	return nil
}

func (a *app) vaultListCmd() *cobra.Command {
	var long bool
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List your vaults, and the invitations others sent you",
		Args:    exactArgs(0, "vault list"),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := a.login(cmd.Context())
			if err != nil {
				return err
			}
			list, err := l.c.ListVaults(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOut {
				out := struct {
					Vaults      []vaultJSON      `json:"vaults"`
					Invitations []invitationJSON `json:"invitations"`
				}{Vaults: []vaultJSON{}, Invitations: []invitationJSON{}}
				for _, v := range list.Vaults {
					out.Vaults = append(out.Vaults, toVaultJSON(v))
				}
				for _, i := range list.Invitations {
					out.Invitations = append(out.Invitations, toInvitationJSON(i))
				}
				if err := a.printJSON(out); err != nil {
					return err
				}
				return a.refusedVaults(list)
			}
			if long {
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
				for _, v := range list.Vaults {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, v.Role, v.CreatedAt.UTC().Format(time.RFC3339))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			} else {
				for _, v := range list.Vaults {
					fmt.Fprintln(a.stdout, v.Name)
				}
			}
			a.printInvitations(list.Invitations)
			return a.refusedVaults(list)
		},
	}
	c.Flags().BoolVarP(&long, "long", "l", false, "show role and creation time")
	return a.jsonFlag(c)
}

// printInvitations shows invitations as a section of their own on stderr:
// stdout keeps only the names of vaults this account verified, so that
// `$(zsm vault list)` never picks up a name somebody else chose.
func (a *app) printInvitations(inv []zsm.Invitation) {
	if len(inv) == 0 {
		return
	}
	a.info("\nInvitations (not verified; none is used; `zsm vault decline VAULT_ID` refuses one and blocks its sender):")
	tw := tabwriter.NewWriter(a.stderr, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VAULT_ID\tFROM\tROLE\tINVITED")
	named := ""
	for _, i := range inv {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", i.VaultID, inviter(i), i.Role, i.At.UTC().Format(time.RFC3339))
		if i.FromIdentity != "" && named == "" {
			named = i.FromIdentity
		}
	}
	_ = tw.Flush()
	if named != "" {
		a.info("An invitation opens once you verify who sent it: compare safety numbers, then `zsm verify %s --confirm`.", named)
	}
}

func (a *app) vaultDeclineCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "decline VAULT_ID",
		Short: "Decline an invitation: remove it and block its sender from inviting you again",
		Args:  exactArgs(1, "vault decline VAULT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := uuid.Parse(args[0])
			if err != nil {
				return usageErr("`zsm vault list` shows each invitation's VAULT_ID", "%q is not a vault id", args[0])
			}
			l, err := a.login(cmd.Context())
			if err != nil {
				return err
			}
			inv, err := l.c.DeclineInvitation(cmd.Context(), id)
			if errors.Is(err, zsm.ErrNotFound) {
				return withHint(0, err, "`zsm vault list` shows your invitations; your own vaults are deleted with `zsm vault delete`")
			}
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(toInvitationJSON(inv))
			}
			who := inviter(inv)
			a.info("Declined the invitation to vault %s from %s.", inv.VaultID, who)
			if inv.FromIdentity != "" {
				a.info("%s cannot invite you again unless you run `zsm vault allow %s`.", who, inv.FromIdentity)
			} else {
				a.info("%s cannot invite you again.", who)
			}
			return nil
		},
	}
	return a.jsonFlag(c)
}

func (a *app) vaultAllowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "allow IDENTITY",
		Short: "Let somebody whose invitation you declined invite you again",
		Args:  exactArgs(1, "vault allow IDENTITY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := a.login(cmd.Context())
			if err != nil {
				return err
			}
			lifted, err := l.c.AllowInvitationsFrom(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if lifted {
				a.info("%s may invite you again.", args[0])
			} else {
				a.info("%s was not blocked; nothing changed.", args[0])
			}
			return nil
		},
	}
}

func (a *app) vaultRenameCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "rename OLD NEW",
		Short: "Rename a vault",
		Args:  exactArgs(2, "vault rename OLD NEW"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := zsm.ValidVaultName(args[1]); err != nil {
				return usageErr("", "%v", err)
			}
			l, err := a.login(cmd.Context())
			if err != nil {
				return err
			}
			v, err := vaultByName(cmd.Context(), l.c, args[0])
			if err != nil {
				return err
			}
			nv, err := l.c.RenameVault(cmd.Context(), v, args[1])
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(toVaultJSON(nv))
			}
			a.info("Renamed vault %s to %s.", args[0], nv.Name)
			return nil
		},
	}
	return a.jsonFlag(c)
}

func (a *app) vaultDeleteCmd() *cobra.Command {
	var yes bool
	c := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a vault and every secret in it",
		Args:  exactArgs(1, "vault delete NAME --yes"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				ans, err := a.prompt(fmt.Sprintf("Delete vault %s and all its secrets? Type its name to confirm: ", args[0]))
				if err != nil {
					return usageErr("pass --yes to delete without asking", "deleting a vault needs confirmation")
				}
				if ans != args[0] {
					return usageErr("", "not confirmed; nothing was deleted")
				}
			}
			l, err := a.login(cmd.Context())
			if err != nil {
				return err
			}
			v, err := vaultByName(cmd.Context(), l.c, args[0])
			if err != nil {
				return err
			}
			if err := l.c.DeleteVault(cmd.Context(), v); err != nil {
				return err
			}
			a.info("Deleted vault %s.", v.Name)
			return nil
		},
	}
	c.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return c
}
