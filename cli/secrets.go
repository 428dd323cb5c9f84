package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"zsm.dev/zsm/sdk/zsm"
)

type secretJSON struct {
	Vault     string    `json:"vault"`
	Name      string    `json:"name"`
	Value     *string   `json:"value,omitempty"`
	Revision  uint64    `json:"revision"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toSecretJSON(vault string, s zsm.Secret, withValue bool) secretJSON {
	j := secretJSON{Vault: vault, Name: s.Name, Revision: s.Revision, UpdatedAt: s.UpdatedAt.UTC()}
	if withValue {
		v := s.Value
		j.Value = &v
	}
	return j
}

// openRef logs in and finds the vault of VAULT/NAME.
func (a *app) openRef(ctx context.Context, ref string) (*loggedIn, zsm.Vault, string, error) {
	vn, name, err := splitRef(ref)
	if err != nil {
		return nil, zsm.Vault{}, "", err
	}
	if err := zsm.ValidSecretName(name); err != nil {
		return nil, zsm.Vault{}, "", usageErr("", "%v", err)
	}
	l, err := a.login(ctx)
	if err != nil {
		return nil, zsm.Vault{}, "", err
	}
	v, err := vaultByName(ctx, l.c, vn)
	return l, v, name, err
}

func (a *app) setCmd() *cobra.Command {
	var gen, print, keepNL bool
	var length int
	var alphabet string
	c := &cobra.Command{
		Use:   "set VAULT/NAME [VALUE|-]",
		Short: "Store a secret: the value from the argument, stdin, or --generate",
		Long: `Store a secret (a new one, or a new revision of an existing one).

The value comes from the argument (beware: it lands in shell history), from
stdin ("-" or no argument; one trailing newline is removed unless
--keep-newline), from a prompt on a terminal, or is generated (--generate,
with --length and --alphabet alnum|alpha|digits|hex|symbols|custom:CHARS).
A generated value is not shown unless --print.`,
		Args: rangeArgs(1, 2, "set VAULT/NAME [VALUE|-]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if gen && len(args) == 2 {
				return usageErr("give a value or --generate, not both", "both a value and --generate")
			}
			if !gen && (cmd.Flags().Changed("length") || cmd.Flags().Changed("alphabet")) {
				return usageErr("add --generate", "--length and --alphabet only apply with --generate")
			}
			if _, _, err := splitRef(args[0]); err != nil {
				return err
			}
			var value string
			switch {
			case gen:
				alpha, err := parseAlphabet(alphabet)
				if err != nil {
					return err
				}
				if length < 1 || length > maxGenerateLength {
					return usageErr("", "--length must be between 1 and %d", maxGenerateLength)
				}
				if value, err = generate(rand.Reader, alpha, length); err != nil {
					return err
				}
			case len(args) == 2 && args[1] != "-":
				value = args[1]
			default:
				if _, tty := a.stdinTTY(); tty && len(args) == 1 {
					v, err := a.promptSecret("Value for " + args[0] + ": ")
					if err != nil {
						return err
					}
					value = v
					break
				}
				b, err := io.ReadAll(io.LimitReader(a.stdin, zsm.MaxValueBytes+2))
				if err != nil {
					return err
				}
				value = string(b)
				if !keepNL {
					value = strings.TrimSuffix(value, "\n")
					value = strings.TrimSuffix(value, "\r")
				}
			}
			if len(value) > zsm.MaxValueBytes {
				return usageErr("", "the value is larger than %d bytes", zsm.MaxValueBytes)
			}
			l, v, name, err := a.openRef(ctx, args[0])
			if err != nil {
				return err
			}
			s, err := l.c.SetSecret(ctx, v, name, value)
			if err != nil {
				return err
			}
			verb := "Updated"
			if s.Revision == 1 {
				verb = "Created"
			}
			if a.jsonOut {
				return a.printJSON(toSecretJSON(v.Name, s, gen && print))
			}
			if gen && print {
				fmt.Fprintln(a.stdout, value)
			}
			a.info("%s %s/%s (revision %d).", verb, v.Name, s.Name, s.Revision)
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&gen, "generate", false, "generate a random value (crypto/rand, no modulo bias)")
	f.IntVar(&length, "length", 32, "length of a generated value, in characters")
	f.StringVar(&alphabet, "alphabet", "alnum", "alphabet of a generated value: alnum, alpha, digits, hex, symbols or custom:CHARS")
	f.BoolVar(&print, "print", false, "print the generated value")
	f.BoolVar(&keepNL, "keep-newline", false, "keep a trailing newline of a value read from stdin")
	return a.jsonFlag(c)
}

func (a *app) getCmd() *cobra.Command {
	var rev uint64
	c := &cobra.Command{
		Use:   "get VAULT/NAME",
		Short: "Print a secret's value (and a newline)",
		Args:  exactArgs(1, "get VAULT/NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, v, name, err := a.openRef(ctx, args[0])
			if err != nil {
				return err
			}
			var s zsm.Secret
			if rev > 0 {
				s, err = revisionOf(ctx, l.c, v, name, rev)
			} else {
				s, err = l.c.SecretByName(ctx, v, name)
			}
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(toSecretJSON(v.Name, s, true))
			}
			fmt.Fprintln(a.stdout, s.Value)
			return nil
		},
	}
	c.Flags().Uint64Var(&rev, "revision", 0, "print an earlier revision")
	return a.jsonFlag(c)
}

func revisionOf(ctx context.Context, c *zsm.Client, v zsm.Vault, name string, rev uint64) (zsm.Secret, error) {
	hist, err := c.History(ctx, v, name)
	if err != nil {
		return zsm.Secret{}, err
	}
	for _, h := range hist {
		if h.Revision == rev {
			return h, nil
		}
	}
	return zsm.Secret{}, withHint(ExitNotFound, fmt.Errorf("secret %q has no revision %d", name, rev), "`zsm history "+v.Name+"/"+name+"` lists the revisions")
}

func (a *app) lsCmd() *cobra.Command {
	var long bool
	c := &cobra.Command{
		Use:   "ls [VAULT]",
		Short: "List the names of the secrets of a vault, or of every vault (never values)",
		Args:  rangeArgs(0, 1, "ls [VAULT]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, err := a.login(ctx)
			if err != nil {
				return err
			}
			var vs []zsm.Vault
			var refused error // vaults left out because they failed verification
			if len(args) == 1 {
				v, err := vaultByName(ctx, l.c, args[0])
				if err != nil {
					return err
				}
				vs = []zsm.Vault{v}
			} else {
				list, err := l.c.ListVaults(ctx)
				if err != nil {
					return err
				}
				vs, refused = list.Vaults, a.refusedVaults(list)
			}
			out := []secretJSON{}
			for _, v := range vs {
				ss, err := l.c.List(ctx, v)
				if err != nil {
					return err
				}
				for _, s := range ss {
					out = append(out, toSecretJSON(v.Name, s, false))
				}
			}
			if a.jsonOut {
				if err := a.printJSON(out); err != nil {
					return err
				}
				return refused
			}
			name := func(s secretJSON) string {
				if len(args) == 1 {
					return s.Name
				}
				return s.Vault + "/" + s.Name
			}
			if long {
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tREVISION\tUPDATED")
				for _, s := range out {
					fmt.Fprintf(tw, "%s\t%d\t%s\n", name(s), s.Revision, s.UpdatedAt.Format(time.RFC3339))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				return refused
			}
			for _, s := range out {
				fmt.Fprintln(a.stdout, name(s))
			}
			return refused
		},
	}
	c.Flags().BoolVarP(&long, "long", "l", false, "show revision and update time")
	return a.jsonFlag(c)
}

func (a *app) rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm VAULT/NAME...",
		Short: "Delete secrets, with their history",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr("usage: zsm rm VAULT/NAME...", "name at least one secret")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			for _, ref := range args {
				l, v, name, err := a.openRef(ctx, ref)
				if err != nil {
					return err
				}
				if err := l.c.DeleteSecret(ctx, v, name); err != nil {
					return err
				}
				a.info("Deleted %s/%s.", v.Name, name)
			}
			return nil
		},
	}
}

func (a *app) historyCmd() *cobra.Command {
	var values bool
	c := &cobra.Command{
		Use:   "history VAULT/NAME",
		Short: "List a secret's revisions, newest first (values only with --values)",
		Args:  exactArgs(1, "history VAULT/NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, v, name, err := a.openRef(ctx, args[0])
			if err != nil {
				return err
			}
			hist, err := l.c.History(ctx, v, name)
			if err != nil {
				return err
			}
			if a.jsonOut {
				out := make([]secretJSON, 0, len(hist))
				for _, h := range hist {
					out = append(out, toSecretJSON(v.Name, h, values))
				}
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			if values {
				fmt.Fprintln(tw, "REVISION\tCREATED\tVALUE")
			} else {
				fmt.Fprintln(tw, "REVISION\tCREATED")
			}
			for _, h := range hist {
				if values {
					fmt.Fprintf(tw, "%d\t%s\t%q\n", h.Revision, h.UpdatedAt.UTC().Format(time.RFC3339), h.Value)
				} else {
					fmt.Fprintf(tw, "%d\t%s\n", h.Revision, h.UpdatedAt.UTC().Format(time.RFC3339))
				}
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&values, "values", false, "show each revision's value")
	return a.jsonFlag(c)
}

func (a *app) restoreCmd() *cobra.Command {
	var rev uint64
	c := &cobra.Command{
		Use:   "restore VAULT/NAME --revision N",
		Short: "Write an earlier revision's value as a new revision",
		Args:  exactArgs(1, "restore VAULT/NAME --revision N"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rev == 0 {
				return usageErr("`zsm history VAULT/NAME` lists the revisions", "--revision N is required")
			}
			ctx := cmd.Context()
			l, v, name, err := a.openRef(ctx, args[0])
			if err != nil {
				return err
			}
			s, err := l.c.Restore(ctx, v, name, rev)
			if errors.Is(err, zsm.ErrNotFound) {
				return withHint(0, err, "`zsm history "+v.Name+"/"+name+"` lists the revisions")
			}
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(toSecretJSON(v.Name, s, false))
			}
			a.info("Restored %s/%s revision %d as revision %d.", v.Name, name, rev, s.Revision)
			return nil
		},
	}
	c.Flags().Uint64Var(&rev, "revision", 0, "the revision to restore")
	return a.jsonFlag(c)
}
