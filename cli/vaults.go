package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

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
		Short: "Create, list, rename and delete vaults",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("see `zsm vault --help`", "unknown command %q for zsm vault", args[0])
			}
			return cmd.Help()
		},
	}
	c.AddCommand(a.vaultCreateCmd(), a.vaultListCmd(), a.vaultRenameCmd(), a.vaultDeleteCmd())
	return c
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

func (a *app) vaultListCmd() *cobra.Command {
	var long bool
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List your vaults",
		Args:    exactArgs(0, "vault list"),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := a.login(cmd.Context())
			if err != nil {
				return err
			}
			vs, err := l.c.Vaults(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOut {
				out := make([]vaultJSON, 0, len(vs))
				for _, v := range vs {
					out = append(out, toVaultJSON(v))
				}
				return a.printJSON(out)
			}
			if long {
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
				for _, v := range vs {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, v.Role, v.CreatedAt.UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			}
			for _, v := range vs {
				fmt.Fprintln(a.stdout, v.Name)
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&long, "long", "l", false, "show role and creation time")
	return a.jsonFlag(c)
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
