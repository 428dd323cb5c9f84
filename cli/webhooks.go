package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"zsm.dev/zsm/sdk/zsm"
)

type webhookJSON struct {
	ID                  string     `json:"id"`
	Vault               string     `json:"vault"`
	URL                 string     `json:"url"`
	Events              []string   `json:"events"`
	Enabled             bool       `json:"enabled"`
	DisabledReason      string     `json:"disabled_reason,omitempty"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	LastSuccessAt       *time.Time `json:"last_success_at,omitempty"`
	LastFailureAt       *time.Time `json:"last_failure_at,omitempty"`
	CreatedAt           time.Time  `json:"created_at"`
	SigningSecret       string     `json:"signing_secret,omitempty"`
}

func toWebhookJSON(vault string, w zsm.Webhook) webhookJSON {
	ev := w.Events
	if ev == nil {
		ev = []string{"*"}
	}
	return webhookJSON{ID: w.ID.String(), Vault: vault, URL: w.URL, Events: ev, Enabled: w.Enabled, DisabledReason: w.DisabledReason,
		ConsecutiveFailures: w.ConsecutiveFailures, LastSuccessAt: w.LastSuccessAt, LastFailureAt: w.LastFailureAt, CreatedAt: w.CreatedAt.UTC()}
}

var errNoVault = errors.New("--vault is required")

func (a *app) webhookCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "webhook",
		Short: "Manage a vault's webhooks (add, list, rm, test, enable, disable)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("see `zsm webhook --help`", "unknown command %q for zsm webhook", args[0])
			}
			return cmd.Help()
		},
	}
	var vault string
	c.PersistentFlags().StringVar(&vault, "vault", "", "the vault (required)")
	open := func(ctx context.Context) (*loggedIn, zsm.Vault, error) {
		if vault == "" {
			return nil, zsm.Vault{}, usageErr("add --vault NAME", "%v", errNoVault)
		}
		l, err := a.login(ctx)
		if err != nil {
			return nil, zsm.Vault{}, err
		}
		v, err := vaultByName(ctx, l.c, vault)
		return l, v, err
	}
	// openHook parses a webhook id argument, then logs in and finds the vault.
	openHook := func(ctx context.Context, arg string) (*loggedIn, zsm.Vault, uuid.UUID, error) {
		id, err := uuid.Parse(arg)
		if err != nil {
			return nil, zsm.Vault{}, uuid.Nil, usageErr("`zsm webhook list --vault V` shows the ids", "%q is not a webhook id", arg)
		}
		l, v, err := open(ctx)
		return l, v, id, err
	}

	var events string
	add := &cobra.Command{
		Use:   "add URL --vault V [--events TYPE,…]",
		Short: "Add a webhook; its signing secret is shown once",
		Long: `Add a webhook to a vault. zsm signs every delivery with HMAC-SHA256 under a
secret shown only now (docs/webhooks.md has the verification recipe).
Payloads carry ids, type, revision, actor and time: never a value, never
ciphertext. Event types: ` + strings.Join(zsm.WebhookEventTypes, ", ") + ` (default: all).`,
		Args: exactArgs(1, "webhook add URL --vault V"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := zsm.ValidWebhookURL(args[0]); err != nil {
				return usageErr("use an https URL of a public host", "%v", err)
			}
			var types []string
			if events != "" {
				types = strings.Split(events, ",")
			}
			l, v, err := open(cmd.Context())
			if err != nil {
				return err
			}
			w, secret, err := l.c.AddWebhook(cmd.Context(), v, args[0], types)
			if err != nil {
				return err
			}
			if a.jsonOut {
				j := toWebhookJSON(v.Name, w)
				j.SigningSecret = secret
				return a.printJSON(j)
			}
			fmt.Fprintf(a.stdout, "id:             %s\nsigning secret: %s\n", w.ID, secret)
			a.info("Keep the signing secret now: it is never shown again.")
			return nil
		},
	}
	add.Flags().StringVar(&events, "events", "", "comma-separated event types (default: all)")

	list := &cobra.Command{
		Use:   "list --vault V",
		Short: "List a vault's webhooks",
		Args:  exactArgs(0, "webhook list --vault V"),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, v, err := open(cmd.Context())
			if err != nil {
				return err
			}
			ws, err := l.c.ListWebhooks(cmd.Context(), v)
			if err != nil {
				return err
			}
			out := make([]webhookJSON, 0, len(ws))
			for _, w := range ws {
				out = append(out, toWebhookJSON(v.Name, w))
			}
			if a.jsonOut {
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tURL\tEVENTS\tSTATE")
			for _, w := range out {
				state := "enabled"
				if !w.Enabled {
					state = "disabled (" + w.DisabledReason + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.ID, w.URL, strings.Join(w.Events, ","), state)
			}
			return tw.Flush()
		},
	}

	rm := &cobra.Command{
		Use:   "rm ID --vault V",
		Short: "Remove a webhook",
		Args:  exactArgs(1, "webhook rm ID --vault V"),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, v, id, err := openHook(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := l.c.RemoveWebhook(cmd.Context(), v, id); err != nil {
				return err
			}
			a.info("Removed webhook %s.", id)
			return nil
		},
	}

	test := &cobra.Command{
		Use:   "test ID --vault V",
		Short: "Send a webhook.test event to a webhook",
		Args:  exactArgs(1, "webhook test ID --vault V"),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, v, id, err := openHook(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w, err := l.c.ListWebhooks(cmd.Context(), v)
			if err != nil {
				return err
			}
			for _, x := range w {
				if x.ID == id && !x.Enabled {
					return withHint(ExitConflict, errors.New("the webhook is disabled"), "enable it first: zsm webhook enable "+id.String()+" --vault "+v.Name)
				}
			}
			ev, err := l.c.TestWebhook(cmd.Context(), v, id)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]string{"event_id": ev.String()})
			}
			a.info("Queued test event %s.", ev)
			return nil
		},
	}

	toggle := func(enable bool) *cobra.Command {
		verb := map[bool]string{true: "enable", false: "disable"}[enable]
		return &cobra.Command{
			Use:   verb + " ID --vault V",
			Short: strings.ToUpper(verb[:1]) + verb[1:] + " a webhook",
			Args:  exactArgs(1, "webhook "+verb+" ID --vault V"),
			RunE: func(cmd *cobra.Command, args []string) error {
				l, v, id, err := openHook(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if _, err := l.c.SetWebhookEnabled(cmd.Context(), v, id, enable); err != nil {
					return err
				}
				a.info("Webhook %s %sd.", id, verb)
				return nil
			},
		}
	}
	c.AddCommand(a.jsonFlag(add), a.jsonFlag(list), rm, a.jsonFlag(test), toggle(true), toggle(false))
	return c
}

type eventJSON struct {
	ID        string     `json:"id"`
	Type      string     `json:"type"`
	At        time.Time  `json:"at"`
	Secret    string     `json:"secret,omitempty"`
	SecretID  string     `json:"secret_id,omitempty"`
	Revision  uint64     `json:"revision,omitempty"`
	ActorID   string     `json:"actor_id,omitempty"`
	MemberID  string     `json:"member_id,omitempty"`
	Role      string     `json:"role,omitempty"`
	WebhookID string     `json:"webhook_id,omitempty"`
	DueAt     *time.Time `json:"due_at,omitempty"`
}

func idOrEmpty(u uuid.UUID) string {
	if u == uuid.Nil {
		return ""
	}
	return u.String()
}

func (a *app) auditCmd() *cobra.Command {
	var limit int
	var since, secret, types string
	c := &cobra.Command{
		Use:   "audit VAULT [--secret NAME] [--since 24h] [--type T,…] [--limit N]",
		Short: "Show a vault's trail of changes: who created, changed, rotated or deleted what, and when",
		Args:  exactArgs(1, "audit VAULT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			opts := zsm.AuditOptions{Limit: limit, Secret: secret}
			if since != "" {
				d, err := zsm.ParseInterval(since)
				if err != nil {
					return usageErr("e.g. --since 24h or --since 7d", "%v", err)
				}
				opts.Since = time.Now().Add(-d)
			}
			if types != "" {
				opts.Types = strings.Split(types, ",")
			}
			l, v, err := a.loginToVault(ctx, args[0])
			if err != nil {
				return err
			}
			evs, err := l.c.AuditTrail(ctx, v, opts)
			if err != nil {
				return err
			}
			out := make([]eventJSON, 0, len(evs))
			for _, e := range evs {
				out = append(out, eventJSON{ID: e.ID.String(), Type: e.Type, At: e.At.UTC(), Secret: e.SecretName, SecretID: idOrEmpty(e.SecretID),
					Revision: e.Revision, ActorID: idOrEmpty(e.ActorID), MemberID: idOrEmpty(e.MemberID),
					Role: e.Role, WebhookID: idOrEmpty(e.WebhookID), DueAt: e.DueAt})
			}
			if a.jsonOut {
				return a.printJSON(out)
			}
			me := l.session().UserID.String()
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tEVENT\tSECRET\tREVISION\tBY")
			for _, e := range out {
				by := e.ActorID
				switch by {
				case me:
					by = "you"
				case "":
					by = "server"
				}
				name := e.Secret
				if name == "" && e.SecretID != "" {
					name = "(deleted " + e.SecretID[:8] + ")"
				}
				rev := ""
				if e.Revision > 0 {
					rev = fmt.Sprint(e.Revision)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.Type, name, rev, by)
			}
			return tw.Flush()
		},
	}
	f := c.Flags()
	f.IntVar(&limit, "limit", 100, "at most this many events, newest first (up to 1000)")
	f.StringVar(&since, "since", "", "only events newer than this (24h, 7d, …)")
	f.StringVar(&secret, "secret", "", "only events about this secret")
	f.StringVar(&types, "type", "", "only these event types (comma-separated)")
	return a.jsonFlag(c)
}
