package authsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"text/tabwriter"
	"time"

	"zsm.dev/zsm/authsvc/config"
	"zsm.dev/zsm/authsvc/migrate"
	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
)

// Migrate runs `authsvc migrate up | down [N | --all] | version` and
// prints the schema version it leaves.
func Migrate(cfg config.Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: authsvc migrate up | down [N | --all] | version")
	}
	m, err := migrate.Open(string(cfg.DatabaseURL))
	if err != nil {
		return err
	}
	defer m.Close()
	switch args[0] {
	case "up":
		err = m.Up()
	case "down":
		steps := 1
		if len(args) > 1 {
			if args[1] == "--all" {
				steps = -1
			} else if steps, err = strconv.Atoi(args[1]); err != nil || steps < 1 {
				return errors.New("migrate down takes a positive number of steps or --all")
			}
		}
		err = m.Down(steps)
	case "version":
	default:
		return fmt.Errorf("unknown migrate command %q", args[0])
	}
	if err != nil {
		return err
	}
	v, dirty, err := m.Version()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "version %d", v)
	if dirty {
		fmt.Fprint(stdout, " (dirty: a migration failed half-way; fix it by hand, then force the version)")
	}
	fmt.Fprintln(stdout)
	return nil
}

// Keys runs `authsvc keys list | rotate | revoke KID` and prints the
// signing keys (never a private half). Rotating and revoking go through
// the same Rotator as the running replicas, under the same lock; log gets
// its progress.
func Keys(ctx context.Context, cfg config.Config, args []string, stdout io.Writer, log *slog.Logger) error {
	usage := errors.New("usage: authsvc keys list | rotate | revoke KID")
	if len(args) == 0 {
		return usage
	}
	st, err := store.Open(ctx, string(cfg.DatabaseURL))
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetSessionIdleTTL(cfg.SessionIdleTTL)
	rot := rotator(cfg, st, log)
	if args[0] != "list" && (len(cfg.KeyEncryptionKey) == 0 || cfg.Issuer == "") {
		return errors.New("rotating or revoking keys needs AUTHSVC_KEY_ENCRYPTION_KEY and AUTHSVC_ISSUER, as for serve")
	}
	switch {
	case args[0] == "list" && len(args) == 1:
	case args[0] == "rotate" && len(args) == 1:
		res, err := rot.Rotate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rotated: %s is current (was %s); %s is published as next\n", res.Current, orDash(res.Retired), res.Next)
	case args[0] == "revoke" && len(args) == 2:
		if err := rot.Revoke(ctx, args[1]); err != nil {
			return err
		}
		keys, err := st.SigningKeys(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s: it is published nowhere and its tokens are refused; every access token issued before %s is refused too (clients refresh)\n",
			args[1], signer.MinIssuedAt(keys).UTC().Format(time.RFC3339))
	default:
		return usage
	}
	keys, err := st.SigningKeys(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KID\tSTATE\tALG\tCREATED\tPUBLISHED\tACTIVATED\tRETIRED\tREMOVED")
	for _, k := range keys {
		state := k.State
		if k.Revoked {
			state += " (revoked)"
		}
		fmt.Fprintf(w, "%s\t%s\tEdDSA\t%s\t%s\t%s\t%s\t%s\n", k.KID, state, k.CreatedAt.UTC().Format(time.RFC3339),
			stamp(k.PublishedAt), stamp(k.ActivatedAt), stamp(k.RetiredAt), stamp(k.RemovedAt))
	}
	return w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
