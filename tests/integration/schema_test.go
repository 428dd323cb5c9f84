package integration

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Static checks of the live schema: the rules DESIGN §8 sets, asserted on
// what the migrations actually built.
func TestSchemaRules(t *testing.T) {
	conn := db(t)
	ctx := context.Background()
	list := func(q string) []string {
		t.Helper()
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	checks := map[string]string{
		"api tables without ENABLE and FORCE RLS": `
			SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			 WHERE n.nspname = 'api' AND c.relkind IN ('r','p') AND NOT (c.relrowsecurity AND c.relforcerowsecurity)`,
		"api tables owned by a superuser or by a PostgREST role": `
			SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles r ON r.oid = c.relowner
			 WHERE n.nspname IN ('api','auth') AND c.relkind IN ('r','p','v')
			   AND (r.rolsuper OR r.rolname IN ('authenticator','anon','app_user'))`,
		"write policies without WITH CHECK": `
			SELECT policyname::text FROM pg_policies WHERE schemaname = 'api' AND cmd IN ('INSERT','UPDATE','ALL') AND with_check IS NULL`,
		"policies that apply to PUBLIC": `
			SELECT policyname::text FROM pg_policies WHERE schemaname = 'api' AND roles = '{public}'`,
		"functions PUBLIC may execute": `
			SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			 WHERE n.nspname IN ('api','auth','gate') AND has_function_privilege('public', p.oid, 'EXECUTE')`,
		"SECURITY DEFINER functions without a pinned search_path": `
			SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			 WHERE n.nspname IN ('api','auth','gate') AND p.prosecdef
			   AND NOT coalesce(p.proconfig::text LIKE '%search_path=%', false)`,
		"SECURITY DEFINER functions in the exposed schema": `
			SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			 WHERE n.nspname = 'api' AND p.prosecdef`,
		"privileges of PostgREST's roles on auth tables": `
			SELECT r.rolname || ' on ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			 CROSS JOIN (VALUES ('authenticator'), ('anon'), ('app_user')) AS r(rolname)
			 WHERE n.nspname = 'auth' AND c.relkind = 'r'
			   AND has_table_privilege(r.rolname, c.oid, 'SELECT,INSERT,UPDATE,DELETE')`,
		"PostgREST roles with USAGE on schema auth": `
			SELECT r FROM unnest(ARRAY['authenticator','anon','app_user']) AS r WHERE has_schema_privilege(r, 'auth', 'USAGE')`,
		"anon privileges on api tables": `
			SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			 WHERE n.nspname = 'api' AND c.relkind IN ('r','v') AND has_table_privilege('anon', c.oid, 'SELECT,INSERT,UPDATE,DELETE')`,
		"dangerous attributes of PostgREST's roles": `
			SELECT rolname::text FROM pg_roles WHERE rolname IN ('authenticator','anon','app_user','authsvc')
			   AND (rolsuper OR rolbypassrls OR rolreplication OR (rolname = 'authenticator' AND rolinherit))`,
		"roles authenticator may become beyond anon and app_user": `
			SELECT r.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
			 WHERE m.member = 'authenticator'::regrole AND r.rolname NOT IN ('anon','app_user')`,
		"views without security_invoker": `
			SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			 WHERE n.nspname = 'api' AND c.relkind = 'v' AND NOT coalesce(c.reloptions::text LIKE '%security_invoker=true%', false)`,
	}
	for what, q := range checks {
		if bad := list(q); len(bad) > 0 {
			t.Errorf("%s: %v", what, bad)
		}
	}
	// And the checks can fail: a table without RLS in api is caught.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `CREATE TABLE api.lint_probe (id int)`); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, checks["api tables without ENABLE and FORCE RLS"])
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		found = found || s == "lint_probe"
	}
	rows.Close()
	if !found {
		t.Fatal("the RLS check does not notice a table without RLS")
	}
}

// Every migration goes up, all the way down, and up again, on a database of
// its own, run by the authsvc binary as an operator would.
func TestMigrationsUpDownUp(t *testing.T) {
	s := need(t)
	conn := db(t)
	ctx := context.Background()
	name := "zsm_migrations_" + randHex(4)
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name+` OWNER authsvc`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`) })

	u, err := url.Parse(s.AuthsvcDSN())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(s.AuthsvcBinary(), append([]string{"migrate"}, args...)...)
		cmd.Env = append(os.Environ(), "AUTHSVC_DATABASE_URL="+u.String())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("migrate %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	tables := func() string {
		t.Helper()
		c2, err := pgxConnect(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close(ctx)
		var got string
		if err := c2.QueryRow(ctx, `
			SELECT coalesce(string_agg(table_schema || '.' || table_name, ',' ORDER BY table_schema, table_name), '')
			  FROM information_schema.tables WHERE table_schema IN ('api','auth','gate')`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if v := run("up"); !strings.HasPrefix(v, "version ") || v == "version 0" {
		t.Fatalf("after up: %q", v)
	}
	up1 := tables()
	if !strings.Contains(up1, "api.vaults") || !strings.Contains(up1, "auth.users") {
		t.Fatalf("after up the tables are %s", up1)
	}
	if v := run("down", "--all"); v != "version 0" {
		t.Fatalf("after down: %q", v)
	}
	if got := tables(); got != "" {
		t.Fatalf("after down these tables remain: %s", got)
	}
	run("up")
	if up2 := tables(); up2 != up1 {
		t.Fatalf("second up built %s, first built %s", up2, up1)
	}
}
