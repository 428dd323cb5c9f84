package authsvc

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"text/tabwriter"
	"time"

	"zsm.dev/zsm/authsvc/config"
	"zsm.dev/zsm/authsvc/store"
)

var uuidArg = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Audit prints the audit log, newest first: authsvc audit [--user ID]
// [--since DURATION] [--limit N] [--json].
func Audit(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	user := fs.String("user", "", "only this user's events (a user id)")
	since := fs.Duration("since", 0, "only events of the last DURATION (e.g. 24h)")
	limit := fs.Int("limit", 100, "at most N events")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	usage := errors.New("usage: authsvc audit [--user ID] [--since DURATION] [--limit N] [--json]")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return usage
	}
	switch {
	case *user != "" && !uuidArg.MatchString(*user):
		return errors.New("audit: --user takes a user id (a lower-case uuid)")
	case *since < 0:
		return errors.New("audit: --since must not be negative")
	case *limit < 1 || *limit > 100000:
		return errors.New("audit: --limit must be between 1 and 100000")
	}
	f := store.AuditFilter{UserID: *user, Limit: *limit}
	if *since > 0 {
		f.Since = time.Now().Add(-*since)
	}
	st, err := store.Open(ctx, string(cfg.DatabaseURL))
	if err != nil {
		return err
	}
	defer st.Close()
	rows, err := st.AuditLog(ctx, f)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range rows {
			r.At = r.At.UTC()
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tEVENT\tUSER\tSESSION\tCLIENT\tREQUEST\tDETAIL")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.At.UTC().Format(time.RFC3339), r.Type,
			orDash(r.UserID), orDash(r.SessionID), orDash(r.ClientAddr), orDash(r.RequestID), r.Detail)
	}
	return w.Flush()
}
