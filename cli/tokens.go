package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"zsm.dev/zsm/sdk/machinetoken"
	"zsm.dev/zsm/sdk/offline"
	"zsm.dev/zsm/sdk/zsm"
)

// The machine token commands (docs/ci.md), and reading with ZSM_TOKEN and
// the offline cache.

func (a *app) tokenCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Machine tokens for CI jobs and servers: create, list, revoke",
		Long: `A machine token lets a CI job or a server read vaults without a person:
ZSM_TOKEN=zsm_tok_v1_… zsm run --vault prod -- ./deploy.sh needs no login,
keyring or configuration directory. A token decrypts only the vaults it was
granted (their keys are sealed to it), reads them (viewer) or also writes
secrets (editor), expires, and can be revoked at once. See docs/ci.md.`,
	}
	c.AddCommand(a.tokenCreateCmd(), a.tokenListCmd(), a.tokenRevokeCmd())
	return c
}

// parseLifetime reads 90d, 12h, 30m (days as 24 hours).
func parseLifetime(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a lifetime (90d, 12h, 30m)", s)
	}
	return d, nil
}

func (a *app) tokenCreateCmd() *cobra.Command {
	var vaults []string
	var role, expires string
	c := &cobra.Command{
		Use:   "create NAME --vault VAULT [--vault VAULT…] [--role viewer|editor] [--expires 90d]",
		Short: "Make a machine token and grant it vaults; prints it once",
		Long: `Make a machine token named NAME and grant it each --vault (you must be an
owner or admin there): the vault's key is sealed to the token and the grant
is signed by you and recorded in the vault's membership log, as when you
share with a person. --role viewer (default) reads; editor may also write
secrets. --expires (default 90d, at most 366d). The token is printed once,
on stdout; store it in your CI system's secret store.`,
		Args: exactArgs(1, "token create NAME --vault VAULT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(vaults) == 0 {
				return usageErr("usage: zsm token create NAME --vault VAULT [--vault VAULT…]", "--vault is required")
			}
			life, err := parseLifetime(expires)
			if err != nil {
				return usageErr("use --expires 90d (at most 366d)", "%v", err)
			}
			if life > zsm.TokenMaxLifetime {
				return usageErr("use --expires 366d or less", "a token lives at most 366 days")
			}
			if role != "viewer" && role != "editor" {
				return usageErr("use --role viewer or --role editor", "a token is a viewer or an editor, not %q", role)
			}
			l, err := a.login(ctx)
			if err != nil {
				return err
			}
			var vs []zsm.Vault
			for _, n := range vaults {
				v, err := vaultByName(ctx, l.c, n)
				if err != nil {
					return err
				}
				vs = append(vs, v)
			}
			tok, info, err := l.c.CreateToken(ctx, args[0], vs, role, life)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"token": tok.Reveal(), "id": info.ID, "name": info.Name,
					"expires_at": info.ExpiresAt.UTC(), "vaults": vaultNames(info.Vaults), "role": role})
			}
			fmt.Fprintln(a.stdout, tok.Reveal())
			a.info("Token %s (%s of %s) expires %s.", info.Name, role, strings.Join(vaultNames(info.Vaults), ", "), info.ExpiresAt.UTC().Format(time.RFC3339))
			a.info("This is the only time it is shown: store it now (for example in your CI system's secret store).")
			return nil
		},
	}
	c.Flags().StringArrayVar(&vaults, "vault", nil, "vault to grant the token (repeatable)")
	c.Flags().StringVar(&role, "role", "viewer", "viewer or editor")
	c.Flags().StringVar(&expires, "expires", "90d", "lifetime (90d, 12h; at most 366d)")
	return a.jsonFlag(c)
}

func vaultNames(vs []zsm.TokenVault) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if v.Name == "" {
			out = append(out, v.VaultID.String())
		} else {
			out = append(out, v.Name)
		}
	}
	return out
}

type tokenJSON struct {
	ID         uuid.UUID  `json:"id"`
	Name       string     `json:"name"`
	State      string     `json:"state"` // live, expired, revoked
	Vaults     []vaultRef `json:"vaults"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

type vaultRef struct {
	ID   uuid.UUID `json:"id"`
	Name string    `json:"name,omitempty"`
	Role string    `json:"role"`
}

func tokenState(t zsm.TokenInfo, now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return "revoked"
	case !now.Before(t.ExpiresAt):
		return "expired"
	}
	return "live"
}

func (a *app) tokenListCmd() *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "list [--all] [--json]",
		Short: "List your machine tokens: vaults and roles, created, expires, last used",
		Args:  exactArgs(0, "token list"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, err := a.login(ctx)
			if err != nil {
				return err
			}
			ts, err := l.c.Tokens(ctx)
			if err != nil {
				return err
			}
			now := time.Now()
			var out []tokenJSON
			for _, t := range ts {
				st := tokenState(t, now)
				if st != "live" && !all {
					continue
				}
				j := tokenJSON{ID: t.ID, Name: t.Name, State: st, CreatedAt: t.CreatedAt.UTC(), ExpiresAt: t.ExpiresAt.UTC(),
					LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt, Vaults: []vaultRef{}}
				for _, v := range t.Vaults {
					j.Vaults = append(j.Vaults, vaultRef{ID: v.VaultID, Name: v.Name, Role: v.Role})
				}
				out = append(out, j)
			}
			if a.jsonOut {
				if out == nil {
					out = []tokenJSON{}
				}
				return a.printJSON(out)
			}
			if len(out) == 0 {
				a.info("No tokens. `zsm token create NAME --vault VAULT` makes one.")
				return nil
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tVAULTS\tSTATE\tCREATED\tEXPIRES\tLAST USED")
			for _, t := range out {
				var vs []string
				for _, v := range t.Vaults {
					n := v.Name
					if n == "" {
						n = v.ID.String()
					}
					vs = append(vs, n+" ("+v.Role+")")
				}
				used := "never"
				if t.LastUsedAt != nil {
					used = t.LastUsedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, strings.Join(vs, ", "), t.State,
					t.CreatedAt.Format(time.RFC3339), t.ExpiresAt.Format(time.RFC3339), used)
			}
			return w.Flush()
		},
	}
	c.Flags().BoolVar(&all, "all", false, "also list revoked and expired tokens")
	return a.jsonFlag(c)
}

func (a *app) tokenRevokeCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a machine token at once, and remove it from its vaults",
		Long: `Revoke the token NAME: the server refuses it from its next request on.
It is then removed from every vault it was granted, each with a new vault
key, so that even its keys cannot read what is written afterwards.`,
		Args: exactArgs(1, "token revoke NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			l, err := a.login(ctx)
			if err != nil {
				return err
			}
			res, err := l.c.RevokeToken(ctx, args[0])
			if err != nil {
				return err
			}
			a.info("Token %s is revoked.", res.Token.Name)
			if len(res.Removed) > 0 {
				a.info("Removed from %s, with a new key each.", strings.Join(vaultNames(res.Removed), ", "))
			}
			if len(res.Failed) > 0 {
				var parts []string
				for v, e := range res.Failed {
					parts = append(parts, v+": "+e.Error())
				}
				return withHint(ExitError, fmt.Errorf("the token is revoked, but could not be removed from %s", strings.Join(parts, "; ")),
					"an owner or admin of those vaults can remove it: `zsm vault unshare VAULT token:"+res.Token.ID.String()+"`")
			}
			return nil
		},
	}
	return c
}

// ---------------------------------------------------------------- ZSM_TOKEN

// machineToken returns the token in ZSM_TOKEN, if set. A malformed one is
// refused here, before anything reaches the network.
func machineToken() (machinetoken.Token, bool, error) {
	v, ok := os.LookupEnv("ZSM_TOKEN")
	if !ok || v == "" {
		return machinetoken.Token{}, false, nil
	}
	t, err := machinetoken.Parse(v)
	if err != nil {
		return machinetoken.Token{}, true, withHint(ExitUsage, errors.New("ZSM_TOKEN: malformed token"),
			"ZSM_TOKEN must hold the whole zsm_tok_v1_… string `zsm token create` printed")
	}
	return t, true, nil
}

// offlineRoot is where offline caches live: $ZSM_OFFLINE_CACHE_DIR, or
// <user cache dir>/zsm/offline.
func offlineRoot() (string, error) {
	if d := os.Getenv("ZSM_OFFLINE_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", withHint(ExitError, fmt.Errorf("no cache directory: %w", err), "set ZSM_OFFLINE_CACHE_DIR")
	}
	return filepath.Join(d, "zsm", "offline"), nil
}

// machineCache is the offline cache of a machine token.
func machineCache(t machinetoken.Token) (*offline.Cache, error) {
	root, err := offlineRoot()
	if err != nil {
		return nil, err
	}
	k, err := machinetoken.Derive(t)
	if err != nil {
		return nil, err
	}
	key, err := offline.NewKey(k.CacheKey())
	if err != nil {
		return nil, err
	}
	return offline.Open(root, t.ID(), key)
}

// personCache is the offline cache of a person's session.
func personCache(s *zsm.Session) (*offline.Cache, error) {
	root, err := offlineRoot()
	if err != nil {
		return nil, err
	}
	key, err := offline.AccountCacheKey(s.Keys.AccountKey, s.UserID)
	if err != nil {
		return nil, err
	}
	return offline.Open(root, s.UserID, key)
}

// machineLogin logs the ZSM_TOKEN token in. The token keeps no state on
// disk, unless the offline cache is in use (the state then lives beside
// the cache, so that what was seen online holds for the cached copies).
func (a *app) machineLogin(ctx context.Context, tok machinetoken.Token) (*loggedIn, error) {
	srv, _ := a.server()
	st := zsm.NewMemState()
	if a.cacheMaxAge > 0 {
		cache, err := machineCache(tok)
		if err != nil {
			return nil, err
		}
		if st, err = zsm.LoadFileState(filepath.Join(cache.Dir(), "state.json")); err != nil {
			return nil, err
		}
	}
	a.state = st
	c, err := zsm.LoginToken(ctx, a.hc, srv, tok, os.Getenv("ZSM_AUDIENCE"), st)
	if errors.Is(err, zsm.ErrTokenRevoked) {
		// The token worked before if it left a cache: the cache goes now.
		if cache, cerr := machineCache(tok); cerr == nil {
			if vs, _ := cache.Vaults(); len(vs) > 0 {
				_ = cache.Remove()
				a.state = nil
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return &loggedIn{c: c, machine: &tok}, nil
}
