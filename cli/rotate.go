package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"zsm.dev/zsm/sdk/zsm"
)

type rotationJSON struct {
	Vault         string    `json:"vault"`
	Name          string    `json:"name"`
	EverySeconds  int64     `json:"every_seconds"`
	Revision      uint64    `json:"revision"`
	LastRotatedAt time.Time `json:"last_rotated_at"`
	NextDueAt     time.Time `json:"next_due_at"`
	Due           bool      `json:"due"`
}

func toRotationJSON(p zsm.RotationPolicy) rotationJSON {
	return rotationJSON{Vault: p.VaultName, Name: p.Name, EverySeconds: int64(p.Every / time.Second), Revision: p.Revision,
		LastRotatedAt: p.LastRotatedAt.UTC(), NextDueAt: p.NextDueAt.UTC(), Due: p.Due(time.Now())}
}

func (a *app) rotateCmd() *cobra.Command {
	var gen, print bool
	var length, timeout int
	var alphabet, execCmd string
	c := &cobra.Command{
		Use:   "rotate VAULT/NAME (--generate … | --exec CMD)",
		Short: "Rotate a secret now; `rotate policy` and `rotate due` schedule and list rotations",
		Long: `Rotate a secret: write a new value as a new revision and mark the rotation
done, which restarts its schedule and tells the vault's webhooks
(secret.rotated). The server never sees either value.

The new value is generated (--generate, with --length and --alphabet as for
zsm set) or made by a command on this machine (--exec CMD, run with sh -c):
it gets the old value on stdin and prints the new one on stdout (one
trailing newline is removed) — e.g. a script that changes a database
password and prints it. If the command fails, nothing is written.`,
		Args: exactArgs(1, "rotate VAULT/NAME (--generate … | --exec CMD)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if gen == (execCmd != "") {
				return usageErr("use one of --generate and --exec", "rotate needs exactly one of --generate and --exec")
			}
			var newValue func(old string) (string, error)
			if gen {
				alpha, err := parseAlphabet(alphabet)
				if err != nil {
					return err
				}
				if length < 1 || length > maxGenerateLength {
					return usageErr("", "--length must be between 1 and %d", maxGenerateLength)
				}
				newValue = func(string) (string, error) { return generate(rand.Reader, alpha, length) }
			} else {
				newValue = func(old string) (string, error) {
					return a.runRotator(ctx, execCmd, old, time.Duration(timeout)*time.Second)
				}
			}
			l, v, name, err := a.openRef(ctx, args[0])
			if err != nil {
				return err
			}
			var made string
			s, err := l.c.Rotate(ctx, v, name, func(old string) (string, error) {
				nv, err := newValue(old)
				made = nv
				return nv, err
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(toSecretJSON(v.Name, s, gen && print))
			}
			if gen && print {
				fmt.Fprintln(a.stdout, made)
			}
			a.info("Rotated %s/%s: revision %d.", v.Name, name, s.Revision)
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&gen, "generate", false, "generate the new value")
	f.IntVar(&length, "length", 32, "length of a generated value")
	f.StringVar(&alphabet, "alphabet", "alnum", "alphabet of a generated value: alnum, alpha, digits, hex, symbols or custom:CHARS")
	f.BoolVar(&print, "print", false, "print the generated value")
	f.StringVar(&execCmd, "exec", "", "command (sh -c) that reads the old value on stdin and prints the new one")
	f.IntVar(&timeout, "timeout", 120, "seconds the --exec command may take")
	c.AddCommand(a.rotatePolicyCmd(), a.rotateDueCmd())
	return a.jsonFlag(c)
}

// runRotator runs the user's rotation command: old value on stdin, new
// value on stdout. Its stderr goes to ours; the values never do.
func (a *app) runRotator(ctx context.Context, command, old string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Stdin = strings.NewReader(old)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = a.stderr
	cmd.Env = os.Environ()
	if err := cmd.Run(); err != nil {
		return "", &cliError{code: ExitError, msg: fmt.Sprintf("the rotation command failed (%v); nothing was written", err),
			hint: "it must read the old value on stdin, print the new one and exit 0"}
	}
	v := strings.TrimSuffix(strings.TrimSuffix(out.String(), "\n"), "\r")
	if v == "" {
		return "", &cliError{code: ExitError, msg: "the rotation command printed no value; nothing was written"}
	}
	if len(v) > zsm.MaxValueBytes {
		return "", usageErr("", "the new value is larger than %d bytes", zsm.MaxValueBytes)
	}
	return v, nil
}

func (a *app) rotatePolicyCmd() *cobra.Command {
	var every string
	var remove bool
	c := &cobra.Command{
		Use:   "policy VAULT/NAME (--every INTERVAL | --remove)",
		Short: "Schedule rotation of a secret (e.g. --every 90d); the server reminds, you rotate",
		Args:  exactArgs(1, "rotate policy VAULT/NAME (--every INTERVAL | --remove)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if (every == "") == !remove {
				return usageErr("use --every 90d, --every 2w, --every 36h, or --remove", "give exactly one of --every and --remove")
			}
			var d time.Duration
			if every != "" {
				var err error
				if d, err = zsm.ParseInterval(every); err != nil {
					return usageErr("e.g. --every 90d", "%v", err)
				}
			}
			l, v, name, err := a.openRef(ctx, args[0])
			if err != nil {
				return err
			}
			if remove {
				if err := l.c.RemoveRotationPolicy(ctx, v, name); err != nil {
					return err
				}
				a.info("%s/%s no longer has a rotation schedule.", v.Name, name)
				return nil
			}
			p, err := l.c.SetRotationPolicy(ctx, v, name, d)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(toRotationJSON(p))
			}
			a.info("%s/%s rotates every %s; next due %s.", v.Name, name, every, p.NextDueAt.UTC().Format(time.RFC3339))
			return nil
		},
	}
	c.Flags().StringVar(&every, "every", "", "interval: 90d, 2w, 36h, …")
	c.Flags().BoolVar(&remove, "remove", false, "remove the schedule")
	return a.jsonFlag(c)
}

func (a *app) rotateDueCmd() *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "due [--all]",
		Short: "List the secrets whose rotation is due (--all: every scheduled one)",
		Args:  exactArgs(0, "rotate due [--all]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, err := a.login(ctx)
			if err != nil {
				return err
			}
			var list []zsm.RotationPolicy
			if all {
				vs, err := l.c.Vaults(ctx)
				if err != nil {
					return err
				}
				for _, v := range vs {
					ps, err := l.c.RotationPolicies(ctx, v)
					if err != nil {
						return err
					}
					list = append(list, ps...)
				}
			} else if list, err = l.c.RotationsDue(ctx); err != nil {
				return err
			}
			out := make([]rotationJSON, 0, len(list))
			for _, p := range list {
				out = append(out, toRotationJSON(p))
			}
			if a.jsonOut {
				return a.printJSON(out)
			}
			if len(out) == 0 {
				a.info("Nothing is due.")
				return nil
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SECRET\tEVERY\tLAST ROTATED\tDUE")
			for _, p := range out {
				fmt.Fprintf(w, "%s/%s\t%s\t%s\t%s\n", p.Vault, p.Name, time.Duration(p.EverySeconds)*time.Second,
					p.LastRotatedAt.Format(time.RFC3339), p.NextDueAt.Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
	c.Flags().BoolVar(&all, "all", false, "list every scheduled rotation, not only the due ones")
	return a.jsonFlag(c)
}
