package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"zsm.dev/zsm/sdk/zsm"
)

// writeFile0600 writes a file readable by its owner only, atomically.
func writeFile0600(path string, data []byte) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	return zsm.WriteFileAtomic(abs, data, 0o600)
}

// vaultSecrets lists a vault's secrets by name.
func vaultSecrets(ctx context.Context, c *zsm.Client, vault string) (zsm.Vault, []zsm.Secret, error) {
	v, err := vaultByName(ctx, c, vault)
	if err != nil {
		return v, nil, err
	}
	ss, err := c.List(ctx, v)
	return v, ss, err
}

func (a *app) runCmd() *cobra.Command {
	var vaults []string
	var strict bool
	c := &cobra.Command{
		Use:   "run --vault VAULT [--vault VAULT…] -- CMD [ARGS…]",
		Short: "Run a command with a vault's secrets as environment variables",
		Long: `Run CMD with the secrets of the vaults as environment variables (named
after the secrets; a later --vault wins over an earlier one, and secrets win
over the inherited environment). Secrets whose names are not valid variable
names ([A-Za-z_][A-Za-z0-9_]*) are skipped with a warning, or are an error
with --strict. Signals are passed on to CMD, and zsm exits with CMD's exit
code (128+N if a signal N ended it; 127 if CMD was not found).`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr("usage: zsm run --vault VAULT -- CMD [ARGS…]", "no command to run")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(vaults) == 0 {
				return usageErr("usage: zsm run --vault VAULT -- CMD [ARGS…]", "--vault is required")
			}
			path, err := exec.LookPath(args[0])
			if err != nil {
				a.info("zsm: %s: command not found", args[0])
				return exitCode(127)
			}
			if isTerminal(a.stderr) {
				fmt.Fprintf(a.stderr, "zsm: fetching %s…\r", strings.Join(vaults, ", "))
			}
			reads, err := a.readVaults(ctx, vaults)
			if err != nil {
				return err
			}
			secretEnv := map[string]string{}
			for i, vn := range vaults {
				for _, s := range reads[i].secrets {
					if !validEnvName(s.Name) {
						if strict {
							return withHint(ExitError, fmt.Errorf("secret %s/%s is not a valid environment variable name", vn, s.Name), "rename it, or drop --strict to skip it")
						}
						a.warn("skipping %s/%s: not a valid environment variable name", vn, s.Name)
						continue
					}
					secretEnv[s.Name] = s.Value
				}
			}
			if isTerminal(a.stderr) {
				fmt.Fprint(a.stderr, "\x1b[K")
			}
			env := make([]string, 0, len(os.Environ())+len(secretEnv))
			for _, kv := range os.Environ() {
				k, _, _ := strings.Cut(kv, "=")
				if _, over := secretEnv[k]; !over {
					env = append(env, kv)
				}
			}
			for k, v := range secretEnv {
				env = append(env, k+"="+v)
			}
			if err := a.saveState(); err != nil {
				return err
			}
			child := exec.Command(path, args[1:]...)
			child.Args[0] = args[0]
			child.Env = env
			child.Stdin, child.Stdout, child.Stderr = a.stdin, a.stdout, a.stderr
			sigs := make(chan os.Signal, 8)
			signal.Notify(sigs, forwardedSignals...)
			defer signal.Stop(sigs)
			if err := child.Start(); err != nil {
				return withHint(ExitError, fmt.Errorf("starting %s: %w", args[0], err), "")
			}
			done := make(chan struct{})
			go func() {
				for {
					select {
					case s := <-sigs:
						_ = child.Process.Signal(s)
					case <-done:
						return
					}
				}
			}()
			err = child.Wait()
			close(done)
			if err == nil {
				return nil
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if n := signalExit(ee.ProcessState); n >= 0 {
					return exitCode(n)
				}
				return exitCode(ee.ExitCode())
			}
			return err
		},
	}
	c.Flags().SetInterspersed(false)
	c.Flags().StringArrayVar(&vaults, "vault", nil, "vault whose secrets to pass (repeatable)")
	c.Flags().BoolVar(&strict, "strict", false, "fail on a secret name that is not a valid variable name")
	a.cacheFlag(c)
	return c
}

// cacheFlag adds --cache-max-age to a command that reads vaults.
func (a *app) cacheFlag(c *cobra.Command) {
	c.Flags().DurationVar(&a.cacheMaxAge, "cache-max-age", 0,
		"keep an encrypted copy of the vaults read, and use it when the server cannot be reached, if it is at most this old (e.g. 10m; default: no cache)")
}

func (a *app) readCmd() *cobra.Command {
	var newline bool
	var out string
	c := &cobra.Command{
		Use:   "read zsm://VAULT/NAME",
		Short: "Print one secret's value exactly as stored (no newline added)",
		Args:  exactArgs(1, "read zsm://VAULT/NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			vn, name, err := splitRef(args[0])
			if err != nil {
				return err
			}
			if err := zsm.ValidSecretName(name); err != nil {
				return usageErr("", "%v", err)
			}
			reads, err := a.readVaults(ctx, []string{vn})
			if err != nil {
				return err
			}
			i := slices.IndexFunc(reads[0].secrets, func(s zsm.Secret) bool { return s.Name == name })
			if i < 0 {
				return fmt.Errorf("secret %q in vault %q: %w", name, vn, zsm.ErrNotFound)
			}
			val := reads[0].secrets[i].Value
			if newline {
				val += "\n"
			}
			if out != "" {
				return writeFile0600(out, []byte(val))
			}
			_, err = io.WriteString(a.stdout, val)
			return err
		},
	}
	c.Flags().BoolVarP(&newline, "newline", "n", false, "add a newline after the value")
	c.Flags().StringVarP(&out, "out", "o", "", "write to `FILE` (0600) instead of stdout")
	a.cacheFlag(c)
	return c
}

func (a *app) injectCmd() *cobra.Command {
	var in, out string
	c := &cobra.Command{
		Use:   "inject [--in FILE] [--out FILE]",
		Short: "Fill {{ zsm://VAULT/NAME }} references in a template",
		Long: `Read a template from --in FILE or stdin, replace each {{ zsm://VAULT/NAME }}
(spaces inside the braces optional) with the secret's value, and write the
result to --out FILE (0600) or stdout. Other {{ … }} text is left alone. If
any reference cannot be resolved, nothing is written.`,
		Args: exactArgs(0, "inject [--in FILE] [--out FILE]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var src []byte
			var err error
			if in != "" && in != "-" {
				src, err = os.ReadFile(in)
			} else {
				src, err = io.ReadAll(a.stdin)
			}
			if err != nil {
				return err
			}
			segs, err := parseTemplate(string(src))
			if err != nil {
				return usageErr("", "template %s: %v", nameOr(in, "<stdin>"), err)
			}
			refs := map[string]map[string]string{} // vault -> name -> value
			for _, s := range segs {
				if s.Ref != nil {
					refs[s.Ref.Vault] = nil
				}
			}
			if len(refs) > 0 {
				l, err := a.login(ctx)
				if err != nil {
					return err
				}
				for vn := range refs {
					_, ss, err := vaultSecrets(ctx, l.c, vn)
					if err != nil {
						return err
					}
					m := map[string]string{}
					for _, s := range ss {
						m[s.Name] = s.Value
					}
					refs[vn] = m
				}
			}
			var b strings.Builder
			for _, s := range segs {
				if s.Ref == nil {
					b.WriteString(s.Text)
					continue
				}
				v, ok := refs[s.Ref.Vault][s.Ref.Name]
				if !ok {
					return withHint(ExitNotFound, fmt.Errorf("template %s line %d: %s: no such secret; nothing was written", nameOr(in, "<stdin>"), s.Ref.Line, s.Ref), "`zsm ls "+s.Ref.Vault+"` lists its secrets")
				}
				b.WriteString(v)
			}
			if out != "" && out != "-" {
				return writeFile0600(out, []byte(b.String()))
			}
			_, err = io.WriteString(a.stdout, b.String())
			return err
		},
	}
	c.Flags().StringVarP(&in, "in", "i", "", "template `FILE` (default stdin)")
	c.Flags().StringVarP(&out, "out", "o", "", "write to `FILE` (0600) instead of stdout")
	return c
}

func nameOr(s, def string) string {
	if s == "" || s == "-" {
		return def
	}
	return s
}

func (a *app) importCmd() *cobra.Command {
	var vault, format string
	c := &cobra.Command{
		Use:   "import FILE --vault VAULT",
		Short: "Store the entries of a .env (or JSON) file as secrets",
		Long: `Read KEY=VALUE entries from FILE ("-" for stdin) and store each as a secret
of VAULT: new names are created, changed values get a new revision, equal
values are left alone. A line that does not parse is an error naming it,
and then nothing is written. --format json reads an object of strings
(the default is json for *.json files, env otherwise).`,
		Args: exactArgs(1, "import FILE --vault VAULT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if vault == "" {
				return usageErr("usage: zsm import FILE --vault VAULT", "--vault is required")
			}
			var data []byte
			var err error
			if args[0] == "-" {
				data, err = io.ReadAll(a.stdin)
			} else {
				data, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			if format == "" {
				format = "env"
				if strings.HasSuffix(strings.ToLower(args[0]), ".json") {
					format = "json"
				}
			}
			var entries []envEntry
			switch format {
			case "env":
				if entries, err = parseDotenv(string(data)); err != nil {
					return usageErr("nothing was imported", "%s: %v", nameOr(args[0], "<stdin>"), err)
				}
			case "json":
				if entries, err = parseJSONEntries(data); err != nil {
					return usageErr("nothing was imported; the file must be one JSON object of strings", "%s: %v", nameOr(args[0], "<stdin>"), err)
				}
			default:
				return usageErr("use --format env or --format json", "unknown format %q", format)
			}
			// Last one wins, as in shells and dotenv readers.
			byName := map[string]string{}
			var order []string
			for _, e := range entries {
				if err := zsm.ValidSecretName(e.Key); err != nil {
					return usageErr("nothing was imported", "line %d: %v", e.Line, err)
				}
				if len(e.Value) > zsm.MaxValueBytes {
					return usageErr("nothing was imported", "line %d: %s: the value is larger than %d bytes", e.Line, e.Key, zsm.MaxValueBytes)
				}
				if _, dup := byName[e.Key]; !dup {
					order = append(order, e.Key)
				}
				byName[e.Key] = e.Value
			}
			l, err := a.login(ctx)
			if err != nil {
				return err
			}
			v, existing, err := vaultSecrets(ctx, l.c, vault)
			if err != nil {
				return err
			}
			cur := map[string]zsm.Secret{}
			for _, s := range existing {
				cur[s.Name] = s
			}
			var created, updated, unchanged int
			for n, name := range order {
				val := byName[name]
				switch s, ok := cur[name]; {
				case !ok:
					if _, err := l.c.CreateSecret(ctx, v, name, val); err != nil {
						return importErr(err, created, updated, unchanged)
					}
					created++
				case s.Value == val:
					unchanged++
				default:
					if _, err := l.c.UpdateSecret(ctx, v, s, val); err != nil {
						return importErr(err, created, updated, unchanged)
					}
					updated++
				}
				a.progress("importing", n+1, len(order))
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"vault": v.Name, "created": created, "updated": updated, "unchanged": unchanged})
			}
			a.info("Imported into %s: %d created, %d updated, %d unchanged.", v.Name, created, updated, unchanged)
			return nil
		},
	}
	c.Flags().StringVar(&vault, "vault", "", "vault to import into")
	c.Flags().StringVar(&format, "format", "", "env or json (default: by file name)")
	return a.jsonFlag(c)
}

func importErr(err error, created, updated, unchanged int) error {
	return withHint(0, fmt.Errorf("import stopped after %d created, %d updated, %d unchanged: %w", created, updated, unchanged, err), "run the import again: entries already stored count as unchanged")
}

// parseJSONEntries reads {"NAME": "value", …}.
func parseJSONEntries(data []byte) ([]envEntry, error) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]envEntry, 0, len(m))
	for _, k := range names {
		s, ok := m[k].(string)
		if !ok {
			return nil, fmt.Errorf("%q: the value is not a string", k)
		}
		out = append(out, envEntry{Key: k, Value: s})
	}
	return out, nil
}

func (a *app) exportCmd() *cobra.Command {
	var vault, format, out string
	var strict bool
	c := &cobra.Command{
		Use:   "export --vault VAULT [--format env|json] [--out FILE]",
		Short: "Write a vault's secrets as a .env file or a JSON object",
		Long: `Write every secret of VAULT, with its value, to stdout or --out FILE (0600).
--format env (the default) writes KEY=VALUE lines, quoted so that dotenv
readers and zsm import read the value back exactly; names that are not
valid variable names are skipped with a warning (an error with --strict).
--format json (or --json) writes one object from name to value.`,
		Args: exactArgs(0, "export --vault VAULT [--format env|json]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if vault == "" {
				return usageErr("usage: zsm export --vault VAULT [--format env|json]", "--vault is required")
			}
			if a.jsonOut {
				format = "json"
			}
			if format != "env" && format != "json" {
				return usageErr("use --format env or --format json", "unknown format %q", format)
			}
			reads, err := a.readVaults(ctx, []string{vault})
			if err != nil {
				return err
			}
			ss := reads[0].secrets
			var b strings.Builder
			if format == "json" {
				m := map[string]string{}
				for _, s := range ss {
					m[s.Name] = s.Value
				}
				enc := json.NewEncoder(&b)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				if err := enc.Encode(m); err != nil {
					return err
				}
			} else {
				for _, s := range ss {
					if !validEnvName(s.Name) {
						if strict {
							return withHint(ExitError, fmt.Errorf("secret %s/%s is not a valid variable name", vault, s.Name), "use --format json, or drop --strict to skip it")
						}
						a.warn("skipping %s/%s: not a valid variable name (--format json keeps it)", vault, s.Name)
						continue
					}
					fmt.Fprintf(&b, "%s=%s\n", s.Name, quoteEnvValue(s.Value))
				}
			}
			if out != "" && out != "-" {
				return writeFile0600(out, []byte(b.String()))
			}
			_, err = io.WriteString(a.stdout, b.String())
			return err
		},
	}
	c.Flags().StringVar(&vault, "vault", "", "vault to export")
	c.Flags().StringVar(&format, "format", "env", "env or json")
	c.Flags().StringVarP(&out, "out", "o", "", "write to `FILE` (0600) instead of stdout")
	c.Flags().BoolVar(&strict, "strict", false, "fail on a name that is not a valid variable name (env format)")
	a.cacheFlag(c)
	return a.jsonFlag(c)
}
