package integration

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"zsm.dev/zsm/sdk/authclient"
)

type auditRow struct {
	ID         int64           `json:"id"`
	UserID     *string         `json:"user_id"`
	SessionID  *string         `json:"session_id"`
	Event      string          `json:"event"`
	ClientAddr *string         `json:"client_addr"`
	RequestID  *string         `json:"request_id"`
	Detail     json.RawMessage `json:"detail"`
}

func auditOf(t *testing.T, uid string) []auditRow {
	t.Helper()
	rows, err := db(t).Query(context.Background(), `
		SELECT id, user_id::text, session_id::text, event, host(client_addr), request_id, detail
		  FROM api.audit_events WHERE user_id = $1 ORDER BY id`, uid)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auditRow, error) {
		var a auditRow
		err := r.Scan(&a.ID, &a.UserID, &a.SessionID, &a.Event, &a.ClientAddr, &a.RequestID, &a.Detail)
		return a, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func events(rows []auditRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Event)
	}
	return out
}

// Every authentication event of one user lands in the audit log, in order,
// with the client address and request id and without any secret; the user
// reads exactly those rows through PostgREST, and nobody else's.
func TestAuditTrail(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	u := c.Signup("user")
	s1 := c.Login(u)
	if _, err := c.Auth.LoginWithSecret(ctx, mustIdentity(t, u.Identity), randBytes(32)); apiErr(t, err).Code != "login_failed" {
		t.Fatalf("wrong secret: %v", err)
	}
	s1b, err := c.Auth.Refresh(ctx, s1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	s2 := c.Login(u)
	expectStatus(t, c.Do("DELETE", "/auth/v1/sessions/"+s2.SessionID, s1b.AccessToken, nil), http.StatusNoContent, "revoke")
	if _, err := c.Auth.Refresh(ctx, s1.RefreshToken); err == nil {
		t.Fatal("reused refresh token accepted")
	}
	s3 := c.Login(u)
	if err := c.Auth.Logout(ctx, s3.RefreshToken); err != nil {
		t.Fatal(err)
	}
	s4 := c.Login(u)
	if _, err := c.Auth.ChangePassword(ctx, s4.AccessToken, authclient.PasswordChange{Identity: mustIdentity(t, u.Identity), OldSecret: randBytes(32), NewSecret: randBytes(32), NewKDF: testKDF()}); apiErr(t, err).Code != "proof_failed" {
		t.Fatalf("change with a wrong secret: %v", err)
	}
	newSecret := randBytes(32)
	if _, err := c.Auth.ChangePassword(ctx, s4.AccessToken, authclient.PasswordChange{Identity: mustIdentity(t, u.Identity), OldSecret: u.Secret, NewSecret: newSecret, NewKDF: testKDF()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Auth.Refresh(ctx, s1b.RefreshToken); err == nil {
		t.Fatal("refresh of a revoked session accepted")
	}

	rows := auditOf(t, u.ID)
	want := []string{
		"signup", "login", "login_failed", "token_refreshed", "login", "session_revoked",
		"refresh_token_reused", "login", "logout", "login", "password_change_failed", "password_changed",
		"refresh_failed",
	}
	if got := events(rows); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	wantSession := []string{"", s1.SessionID, "", s1.SessionID, s2.SessionID, s2.SessionID, s1.SessionID,
		s3.SessionID, s3.SessionID, s4.SessionID, "", s4.SessionID, s1.SessionID}
	for i, r := range rows {
		if got := deref(r.SessionID); (wantSession[i] == "" && got != nil) || (wantSession[i] != "" && got != wantSession[i]) {
			t.Errorf("%s: session %v, want %q", r.Event, got, wantSession[i])
		}
		if r.ClientAddr == nil || *r.ClientAddr != c.IP {
			t.Errorf("%s: client address %v, want %s", r.Event, deref(r.ClientAddr), c.IP)
		}
		if r.RequestID == nil || *r.RequestID == "" {
			t.Errorf("%s: no request id", r.Event)
		}
	}
	wantDetail := []string{
		`{}`, `{}`, `{"reason": "wrong_proof"}`, `{}`, `{}`,
		`{"reason": "revoked_by_user", "by_session": "` + s1.SessionID + `"}`,
		`{"session_revoked": true}`, `{}`, `{}`, `{}`, `{"reason": "wrong_proof"}`,
		// s1 ended by the reuse, s2 by the user, s3 by logout: none left to end.
		`{"sessions_revoked": 0}`,
		`{"reason": "session_revoked"}`,
	}
	for i, r := range rows {
		var got, want any
		_ = json.Unmarshal(r.Detail, &got)
		_ = json.Unmarshal([]byte(wantDetail[i]), &want)
		if g, _ := json.Marshal(got); string(g) != func() string { w, _ := json.Marshal(want); return string(w) }() {
			t.Errorf("%s: detail %s, want %s", r.Event, r.Detail, wantDetail[i])
		}
	}

	// Nothing secret in any row: no token, no SRP value, no identity for a known user.
	all, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]string{
		"refresh token": s1.RefreshToken[6:], "access token": s1.AccessToken[20:60], "identity": u.Identity,
		"srp secret": randHexOf(u.Secret), "new srp secret": randHexOf(newSecret),
	} {
		if strings.Contains(string(all), secret) {
			t.Errorf("the audit rows contain the %s", name)
		}
	}

	// The user reads the same rows through PostgREST, and only those.
	s5 := c.Login(u2(u, newSecret))
	r := c.Do("GET", "/rest/audit_events?order=id.asc", s5.AccessToken, nil)
	expectStatus(t, r, http.StatusOK, "own audit events")
	var mine []auditRow
	r.JSON(t, &mine)
	if len(mine) != len(rows)+1 || mine[0].ID != rows[0].ID || mine[len(mine)-1].Event != "login" {
		t.Fatalf("through PostgREST %d rows (%v), want %d then the new login", len(mine), events(mine), len(rows))
	}
	for _, m := range mine {
		if m.UserID == nil || *m.UserID != u.ID {
			t.Fatalf("PostgREST returned a row of user %v", deref(m.UserID))
		}
	}

	// Another user sees none of them, whatever they ask for.
	x := newClient(t)
	ux := x.Signup("user")
	sx := x.Login(ux)
	for _, q := range []string{"", "?user_id=eq." + u.ID, "?id=eq." + jsonInt(rows[0].ID), "?or=(user_id.is.null,user_id.eq." + u.ID + ")"} {
		r := x.Do("GET", "/rest/audit_events"+q, sx.AccessToken, nil)
		expectStatus(t, r, http.StatusOK, "other user's query "+q)
		var theirs []auditRow
		r.JSON(t, &theirs)
		for _, m := range theirs {
			if m.UserID == nil || *m.UserID != ux.ID {
				t.Fatalf("query %q returned a row of user %v to %s", q, deref(m.UserID), ux.ID)
			}
		}
	}
	// Without a token: nothing at all.
	expectRefusal(t, x.Do("GET", "/rest/audit_events", "", nil), http.StatusUnauthorized, "42501", "anonymous read")
}

func u2(u user, secret []byte) user { u.Secret = secret; return u }

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// A failed login for an identity nobody registered is recorded without a
// user id (no user can read it) and names the identity for operators; the
// client sees the same refusal as for a wrong password.
func TestAuditUnknownIdentity(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	identity := "nobody-" + randHex(6) + "@example.test"
	_, err := c.Auth.LoginWithSecret(ctx, mustIdentity(t, identity), randBytes(32))
	if e := apiErr(t, err); e.Status != http.StatusUnauthorized || e.Code != "login_failed" {
		t.Fatalf("unknown identity: %v", err)
	}
	var n int
	if err := db(t).QueryRow(ctx, `
		SELECT count(*) FROM api.audit_events
		 WHERE event = 'login_failed' AND user_id IS NULL AND session_id IS NULL
		   AND detail = jsonb_build_object('reason', 'unknown_identity', 'identity', $1::text)
		   AND host(client_addr) = $2`, identity, c.IP).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows for the unknown identity (%v)", n, err)
	}
	// The operator's view: authsvc audit, as the CLI.
	out := runAuthsvc(t, "audit", "--since", "10m", "--limit", "1000", "--json")
	if !strings.Contains(out, identity) || !strings.Contains(out, `"event":"login_failed"`) {
		t.Fatalf("authsvc audit does not show the failed login:\n%s", tail(out, 2000))
	}
}

// The log is append-only: PostgREST refuses every write, authsvc has given
// up its own UPDATE, DELETE and TRUNCATE privileges, and the trigger refuses
// them to everyone, superuser included, unless a migration sets
// zsm.allow_audit_rewrite.
func TestAuditAppendOnly(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	u := c.Signup("user")
	s := c.Login(u)
	rows := auditOf(t, u.ID)
	if len(rows) < 2 {
		t.Fatalf("rows %v", events(rows))
	}
	id := jsonInt(rows[0].ID)

	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"PATCH", "/rest/audit_events?id=eq." + id, map[string]any{"event": "nothing_happened"}},
		{"DELETE", "/rest/audit_events?id=eq." + id, nil},
		{"DELETE", "/rest/audit_events?user_id=eq." + u.ID, nil},
		{"POST", "/rest/audit_events", map[string]any{"user_id": u.ID, "event": "login", "detail": map[string]any{}}},
	} {
		r := c.Do(tc.method, tc.path, s.AccessToken, tc.body)
		expectRefusal(t, r, http.StatusForbidden, "42501", tc.method+" "+tc.path)
		if !strings.Contains(r.Err(t).Message, "permission denied for table audit_events") {
			t.Errorf("%s: %s", tc.method, r.Body)
		}
		r = c.Do(tc.method, tc.path, "", tc.body)
		expectRefusal(t, r, http.StatusUnauthorized, "42501", "anonymous "+tc.method+" "+tc.path)
	}
	// No RPC can reach it either: the trigger function is not in api.
	expectStatus(t, c.Do("POST", "/rest/rpc/audit_append_only", s.AccessToken, map[string]any{}), http.StatusNotFound, "rpc")

	// As authsvc, directly in SQL.
	as, err := pgx.Connect(ctx, need(t).AuthsvcDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close(ctx)
	sqlErr := func(conn *pgx.Conn, q string) *pgconn.PgError {
		t.Helper()
		_, err := conn.Exec(ctx, q)
		var pg *pgconn.PgError
		if !errors.As(err, &pg) {
			t.Fatalf("%s: %v, want a refusal", q, err)
		}
		return pg
	}
	writes := []string{
		`UPDATE api.audit_events SET event = 'nothing_happened' WHERE id = ` + id,
		`DELETE FROM api.audit_events WHERE id = ` + id,
		`TRUNCATE api.audit_events`,
	}
	for _, q := range writes {
		if e := sqlErr(as, q); e.Code != "42501" || !strings.Contains(e.Message, "permission denied") {
			t.Errorf("authsvc %s: %s %s", q, e.Code, e.Message)
		}
	}
	// Even if authsvc grants itself the privileges back (it owns the
	// table), the trigger refuses.
	tx, err := as.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `GRANT UPDATE, DELETE, TRUNCATE ON api.audit_events TO authsvc`); err != nil {
		t.Fatal(err)
	}
	for _, q := range writes {
		if _, err := tx.Exec(ctx, `SAVEPOINT p`); err != nil {
			t.Fatal(err)
		}
		_, err := tx.Exec(ctx, q)
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != "42501" || !strings.HasPrefix(pg.Message, "audit events are append-only") {
			t.Errorf("authsvc with privileges, %s: %v", q, err)
		}
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT p`); err != nil {
			t.Fatal(err)
		}
	}
	_ = tx.Rollback(ctx)

	// The superuser bypasses grants and RLS, not the trigger.
	su := db(t)
	for _, q := range writes {
		if e := sqlErr(su, q); e.Code != "42501" || !strings.HasPrefix(e.Message, "audit events are append-only") {
			t.Errorf("superuser %s: %s %s", q, e.Code, e.Message)
		}
	}
	// Only a migration's setting opens it (and this one is rolled back).
	tx2, err := su.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx2.Exec(ctx, `SET LOCAL zsm.allow_audit_rewrite = 'on'`); err != nil {
		t.Fatal(err)
	}
	if tag, err := tx2.Exec(ctx, `UPDATE api.audit_events SET detail = '{}' WHERE id = `+id); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("with the migration setting: %v %v", tag, err)
	}
	_ = tx2.Rollback(ctx)

	after := auditOf(t, u.ID)
	if len(after) < len(rows) || after[0].Event != rows[0].Event || string(after[0].Detail) != string(rows[0].Detail) {
		t.Fatalf("the audit rows changed: %v -> %v", rows, after)
	}
}

// runAuthsvc runs the authsvc binary as an operator would, with role
// authsvc's database URL.
func runAuthsvc(t *testing.T, args ...string) string {
	t.Helper()
	s := need(t)
	cmd := exec.Command(s.AuthsvcBinary(), args...)
	cmd.Env = append(os.Environ(), "AUTHSVC_DATABASE_URL="+s.AuthsvcDSN())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("authsvc %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
