package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
	"zsm.dev/zsm/sdk/zsm"
)

// verify makes u pin other's keys as verified, the way `zsm verify
// IDENTITY --confirm` does after the two compared safety numbers.
func verify(t *testing.T, u, other *sdkUser) {
	t.Helper()
	ctx := context.Background()
	chk, err := u.c.CheckIdentity(ctx, other.Identity)
	if err != nil {
		t.Fatalf("check %s: %v", other.Identity, err)
	}
	own, err := other.c.OwnFingerprint()
	if err != nil {
		t.Fatal(err)
	}
	if chk.Fingerprint.SafetyNumber != own.SafetyNumber || chk.Fingerprint.QR != own.QR {
		t.Fatalf("the safety number shown for %s is not the one they compute themselves", other.Identity)
	}
	if _, err := u.c.ConfirmIdentity(ctx, chk, trust.Verified); err != nil {
		t.Fatalf("confirm %s: %v", other.Identity, err)
	}
}

// vaultOf opens the named vault of u.
func vaultOf(t *testing.T, u *sdkUser, name string) zsm.Vault {
	t.Helper()
	v, err := u.c.VaultByName(context.Background(), name)
	if err != nil {
		t.Fatalf("%s opens %s: %v", u.Identity, name, err)
	}
	return v
}

func secretValues(t *testing.T, u *sdkUser, v zsm.Vault) map[string]string {
	t.Helper()
	ss, err := u.c.Secrets(context.Background(), v)
	if err != nil {
		t.Fatalf("%s lists %s: %v", u.Identity, v.Name, err)
	}
	out := map[string]string{}
	for _, s := range ss {
		out[s.Name] = fmt.Sprintf("%s@%d", s.Value, s.Revision)
	}
	return out
}

func memberRoles(t *testing.T, u *sdkUser, v zsm.Vault) []string {
	t.Helper()
	ms, err := u.c.Members(context.Background(), v)
	if err != nil {
		t.Fatalf("%s lists the members of %s: %v", u.Identity, v.Name, err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Identity+"="+m.Role)
	}
	slices.Sort(out)
	return out
}

// dumpVault is every row of every table that concerns vault, as a
// superuser reads it: what a removed member holding a full copy of the
// server's data has.
type vaultDump struct {
	grants   []map[string]any
	chain    map[uint64]string
	secrets  map[uuid.UUID]map[string]any
	versions []map[string]any
}

func dumpVault(t *testing.T, vault uuid.UUID) vaultDump {
	t.Helper()
	ctx := context.Background()
	conn := db(t)
	d := vaultDump{chain: map[uint64]string{}, secrets: map[uuid.UUID]map[string]any{}}
	rows, err := conn.Query(ctx, `SELECT user_id, sealed_key, key_generation, grant_version, coalesce(kem_id, 0) FROM api.access_policies WHERE vault_id = $1`, vault)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var u uuid.UUID
		var sealed string
		var gen int64
		var gv int16
		var kem int32
		if err := rows.Scan(&u, &sealed, &gen, &gv, &kem); err != nil {
			t.Fatal(err)
		}
		d.grants = append(d.grants, map[string]any{"user_id": u, "sealed_key": sealed, "generation": uint64(gen), "version": int(gv), "kem": int(kem)})
	}
	rows.Close()
	rows, err = conn.Query(ctx, `SELECT generation, wrapped FROM api.vault_key_chain WHERE vault_id = $1`, vault)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var g int64
		var w string
		_ = rows.Scan(&g, &w)
		d.chain[uint64(g)] = w
	}
	rows.Close()
	for _, q := range []string{`SELECT id, revision, key_generation, ciphertext FROM api.secrets WHERE vault_id = $1`,
		`SELECT secret_id, revision, key_generation, ciphertext FROM api.secret_versions WHERE vault_id = $1`} {
		rows, err = conn.Query(ctx, q, vault)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id uuid.UUID
			var rev, gen int64
			var ct string
			_ = rows.Scan(&id, &rev, &gen, &ct)
			r := map[string]any{"id": id, "revision": uint64(rev), "generation": uint64(gen), "ciphertext": ct}
			if strings.Contains(q, "secret_versions") {
				d.versions = append(d.versions, r)
			} else {
				d.secrets[id] = r
			}
		}
		rows.Close()
	}
	return d
}

// keysFrom is every vault key the holder of ak (user id self) can get out
// of d: every grant tried with every private key it has, under its own user
// id and the grant's, then every link of the key chain walked with every
// key found.
func keysFrom(d vaultDump, vault, self uuid.UUID, ak *keys.AccountKeys, known [][]byte) [][]byte {
	found := append([][]byte(nil), known...)
	has := func(k []byte) bool {
		return slices.ContainsFunc(found, func(f []byte) bool { return string(f) == string(k) })
	}
	for _, g := range d.grants {
		sealed := g["sealed_key"].(string)
		for _, uid := range []uuid.UUID{self, g["user_id"].(uuid.UUID)} {
			if k, err := grant.OpenVaultKey(ak.X25519, vault, uid, sealed); err == nil && !has(k) {
				found = append(found, k)
			}
			for _, kem := range []uint16{0x0020, keys.XWingKEM} {
				priv, err := ak.KEMKey(kem)
				if err != nil {
					continue
				}
				for gen := uint64(1); gen <= 8; gen++ {
					if k, err := grant.OpenVaultKeyV2(priv, vault, uid, gen, sealed); err == nil && !has(k) {
						found = append(found, k)
					}
				}
			}
		}
	}
	for grown := true; grown; {
		grown = false
		for g, w := range d.chain {
			for _, k := range found {
				if older, err := grant.UnwrapPrevious(k, vault, g, w); err == nil && !has(older) {
					found = append(found, older)
					grown = true
				}
			}
		}
	}
	return found
}

// opens reports whether any of ks opens the secret row r.
func opens(vault uuid.UUID, r map[string]any, ks [][]byte) bool {
	for _, k := range ks {
		ctx := envelope.Context{Type: envelope.Secret, VaultID: vault, ObjectID: r["id"].(uuid.UUID), Revision: r["revision"].(uint64)}
		if _, err := envelope.OpenString(k, ctx, r["ciphertext"].(string)); err == nil {
			return true
		}
	}
	return false
}

// The scenario of issue 11: A shares a vault with B (editor) and C (viewer)
// after verifying them; B writes, C reads and cannot write (the client
// refuses, and so does row-level security); A removes B; B can read
// nothing written afterwards even with a dump of every table and its own
// keys; A's and C's devices agree on the members and the contents.
func TestSharingABC(t *testing.T) {
	ctx := context.Background()
	a, b, c := newSDKUser(t, "alice"), newSDKUser(t, "bob"), newSDKUser(t, "carol")
	va, err := a.c.CreateVault(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.SetSecret(ctx, va, "S1", "before-sharing"); err != nil {
		t.Fatal(err)
	}

	// Sharing refuses an identity whose keys nobody compared.
	if _, err := a.c.Share(ctx, va, b.Identity, "editor", false); !errors.Is(err, zsm.ErrNotVerified) {
		t.Fatalf("share with an unverified identity: %v, want ErrNotVerified", err)
	}
	verify(t, a, b)
	verify(t, a, c)
	if m, err := a.c.Share(ctx, va, b.Identity, "editor", false); err != nil || m.Status != zsm.StatusVerified {
		t.Fatalf("share with B: %+v %v", m, err)
	}
	if _, err := a.c.Share(ctx, va, c.Identity, "viewer", false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.Share(ctx, va, c.Identity, "viewer", false); !errors.Is(err, zsm.ErrExists) {
		t.Fatalf("share twice: %v, want ErrExists", err)
	}

	// B sees an invitation from A until B verifies A's key.
	l, err := b.c.ListVaults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Vaults) != 0 || len(l.Invitations) != 1 || l.Invitations[0].VaultID != va.ID ||
		l.Invitations[0].FromIdentity != a.Identity || l.Invitations[0].Role != "editor" {
		t.Fatalf("B before verifying A: vaults %v, invitations %+v, refused %v", l.Vaults, l.Invitations, l.Refused)
	}
	verify(t, b, a)
	verify(t, c, a)
	vb, vc := vaultOf(t, b, "team"), vaultOf(t, c, "team")
	if vb.Role != "editor" || vc.Role != "viewer" || vb.Generation != 1 {
		t.Fatalf("roles %s %s, generation %d", vb.Role, vc.Role, vb.Generation)
	}

	// B writes; C reads both.
	if _, err := b.c.SetSecret(ctx, vb, "S2", "from-bob"); err != nil {
		t.Fatalf("B writes: %v", err)
	}
	if got := secretValues(t, c, vc); got["S1"] != "before-sharing@1" || got["S2"] != "from-bob@1" || len(got) != 2 {
		t.Fatalf("C reads %v", got)
	}

	// C cannot write: the client says so, and row-level security refuses
	// the same write sent around the client.
	if _, err := c.c.SetSecret(ctx, vc, "S3", "from-carol"); !errors.Is(err, zsm.ErrForbidden) {
		t.Fatalf("a viewer writes: %v, want ErrForbidden", err)
	}
	r := c.rest("POST", "/rpc/commit_secrets", map[string]any{"vault_id": va.ID,
		"manifest": map[string]any{"version": 99, "manifest": "AAAA", "signature": "AAAA"},
		"upserts":  []any{map[string]any{"id": uuid.New(), "revision": 1, "key_generation": 1, "ciphertext": "AAAA"}}})
	expectRefusal(t, r, http.StatusForbidden, "42501", "a viewer commits secrets")
	r = c.rest("POST", "/secrets", map[string]any{"id": uuid.New(), "vault_id": va.ID, "revision": 1, "ciphertext": "AAAA"})
	expectRefusal(t, r, http.StatusForbidden, "42501", "a viewer inserts a secret")
	if _, err := c.c.Share(ctx, vc, b.Identity, "viewer", false); !errors.Is(err, zsm.ErrForbidden) {
		t.Fatalf("a viewer shares: %v, want ErrForbidden", err)
	}

	// A removes B: a new key generation for A and C only.
	pre := dumpVault(t, va.ID)
	var bKey1 []byte
	for _, g := range pre.grants {
		if g["user_id"] == uuid.MustParse(b.ID()) {
			bKey1, err = grant.OpenVaultKeyV2(b.c.Session().Keys.XWing, va.ID, uuid.MustParse(b.ID()), 1, g["sealed_key"].(string))
			if err != nil || g["kem"] != int(grant.KEMXWing) {
				t.Fatalf("B's grant (kem 0x%04x): %v", g["kem"], err)
			}
		}
	}
	if err := a.c.Unshare(ctx, vaultOf(t, a, "team"), b.Identity); err != nil {
		t.Fatal(err)
	}
	va = vaultOf(t, a, "team")
	if va.Generation != 2 {
		t.Fatalf("generation after the removal: %d", va.Generation)
	}
	s3, err := a.c.SetSecret(ctx, va, "S3", "after-removal")
	if err != nil {
		t.Fatal(err)
	}
	if s3.Generation != 2 {
		t.Fatalf("S3 is sealed under generation %d", s3.Generation)
	}

	// B's client no longer lists the vault, and the server refuses B its
	// rows.
	if l, err := b.c.ListVaults(ctx); err != nil || len(l.Vaults)+len(l.Invitations)+len(l.Refused) != 0 {
		t.Fatalf("B after the removal: %+v %v", l, err)
	}
	r = b.rest("GET", "/secrets?select=id&vault_id=eq."+va.ID.String(), nil)
	if r.Status != http.StatusOK || string(r.Body) != "[]" {
		t.Fatalf("B reads the vault's rows: %d %s", r.Status, r.Body)
	}
	// Even with every table and every key B ever held, nothing written
	// after the removal opens. (And B's key does open what it could read
	// before: the attempt is real.)
	post := dumpVault(t, va.ID)
	bKeys := keysFrom(post, va.ID, uuid.MustParse(b.ID()), b.c.Session().Keys, [][]byte{bKey1})
	if len(bKeys) != 1 {
		t.Fatalf("B got %d vault keys out of the dump; want only the one it held", len(bKeys))
	}
	s1 := secretByName(t, a, va, "S1")
	if !opens(va.ID, post.secrets[s1.ID], bKeys) {
		t.Fatal("B's old key does not even open S1: the attack code is broken")
	}
	if opens(va.ID, post.secrets[s3.ID], bKeys) {
		t.Fatal("B decrypted a secret written after its removal")
	}
	for _, row := range post.versions {
		if row["generation"].(uint64) >= 2 && opens(va.ID, row, bKeys) {
			t.Fatal("B decrypted a revision written after its removal")
		}
	}

	// A's and C's devices agree.
	vc = vaultOf(t, c, "team")
	if got, want := memberRoles(t, c, vc), memberRoles(t, a, va); !slices.Equal(got, want) || len(want) != 2 {
		t.Fatalf("members: C sees %v, A sees %v", got, want)
	}
	if got, want := secretValues(t, c, vc), secretValues(t, a, va); fmt.Sprint(got) != fmt.Sprint(want) || len(want) != 3 {
		t.Fatalf("contents: C sees %v, A sees %v", got, want)
	}

	// Rekey: everything under the newest generation; B's key opens
	// nothing any more.
	res, err := a.c.Rekey(ctx, va)
	if err != nil || !res.Rotated || res.Generation != 3 || res.Reencrypted != 3 {
		t.Fatalf("rekey: %+v %v", res, err)
	}
	post = dumpVault(t, va.ID)
	for id, row := range post.secrets {
		if row["generation"].(uint64) != 3 || opens(va.ID, row, bKeys) {
			t.Fatalf("after rekey secret %s is under generation %d (B opens it: %v)", id, row["generation"], opens(va.ID, row, bKeys))
		}
	}
	if got := secretValues(t, c, vaultOf(t, c, "team")); got["S1"] != "before-sharing@2" || got["S2"] != "from-bob@2" {
		t.Fatalf("C after rekey: %v", got)
	}
}

func secretByName(t *testing.T, u *sdkUser, v zsm.Vault, name string) zsm.Secret {
	t.Helper()
	s, err := u.c.SecretByName(context.Background(), v, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// logState replays a vault's log from the database (as a superuser reads
// it) with the keys of users, so a test can sign entries that chain.
func logState(t *testing.T, vault uuid.UUID, users ...*sdkUser) *memberlog.State {
	t.Helper()
	ctx := context.Background()
	rows, err := db(t).Query(ctx, `SELECT entry, signature FROM api.vault_log WHERE vault_id = $1 ORDER BY seq`, vault)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var signed []memberlog.Signed
	for rows.Next() {
		var e, s string
		_ = rows.Scan(&e, &s)
		r, err := memberlog.ParseRow(e, s)
		if err != nil {
			t.Fatal(err)
		}
		signed = append(signed, r)
	}
	var ids []trust.Identity
	for _, u := range users {
		ids = append(ids, identityOf(u))
	}
	st, err := memberlog.Replay(vault, signed, ids)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func identityOf(u *sdkUser) trust.Identity {
	s := u.c.Session()
	return trust.Identity{UserID: s.UserID, Identity: s.Identity, Ed25519Public: s.Keys.Ed25519.Public().(ed25519.PublicKey)}
}

func fpOf(t *testing.T, u *sdkUser) trust.Fingerprint {
	t.Helper()
	fp, err := identityOf(u).Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// appendEntry signs op by signer at the head of the vault's log and sends
// it around the client, as signer's account.
func appendEntry(t *testing.T, st *memberlog.State, signer *sdkUser, op memberlog.Op, subject *sdkUser, role string) response {
	t.Helper()
	var fp trust.Fingerprint
	if op == memberlog.OpAdd {
		fp = fpOf(t, subject)
	}
	var commit [32]byte
	if op == memberlog.OpRemove || op == memberlog.OpRotate {
		commit = [32]byte{1}
	}
	e := st.Next(op, uuid.MustParse(subject.ID()), role, fp, commit, uuid.MustParse(signer.ID()), time.Now())
	s, err := memberlog.Sign(e, signer.c.Session().Keys.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	entry, sig := s.Row()
	return signer.rest("POST", "/vault_log", map[string]any{"vault_id": st.VaultID(), "seq": e.Seq, "entry": entry, "signature": sig})
}

// Roles are enforced by row-level security, not only by clients: a viewer
// cannot write, an editor cannot manage members, an admin cannot remove
// an owner or give the roles admin and owner, nobody outside the vault
// appends to its log, and the log, the chain and the manifest cannot be
// rewritten.
func TestRolesAreEnforcedByRLS(t *testing.T) {
	ctx := context.Background()
	a, d, b, c, e := newSDKUser(t, "owner"), newSDKUser(t, "admin"), newSDKUser(t, "editor"), newSDKUser(t, "viewer"), newSDKUser(t, "outsider")
	v, err := a.c.CreateVault(ctx, "roles")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*sdkUser{d, b, c, e} {
		verify(t, a, u)
		verify(t, u, a)
	}
	for u, role := range map[*sdkUser]string{d: "admin", b: "editor", c: "viewer"} {
		if _, err := a.c.Share(ctx, v, u.Identity, role, false); err != nil {
			t.Fatal(err)
		}
	}
	vd, vb := vaultOf(t, d, "roles"), vaultOf(t, b, "roles")
	all := []*sdkUser{a, d, b, c, e}

	// The client refuses first, with a clear error.
	if _, err := b.c.Share(ctx, vb, e.Identity, "viewer", false); !errors.Is(err, zsm.ErrForbidden) {
		t.Fatalf("an editor shares: %v", err)
	}
	if err := d.c.Unshare(ctx, vd, a.Identity); !errors.Is(err, zsm.ErrForbidden) {
		t.Fatalf("an admin removes the owner: %v", err)
	}
	if _, err := d.c.Share(ctx, vd, e.Identity, "admin", false); !errors.Is(err, zsm.ErrForbidden) {
		t.Fatalf("an admin makes an admin: %v", err)
	}
	// The server refuses the same, sent around the client with entries
	// that are well-formed, chained and signed by the caller.
	for _, tc := range []struct {
		what    string
		signer  *sdkUser
		op      memberlog.Op
		subject *sdkUser
		role    string
	}{
		{"an editor adds a member", b, memberlog.OpAdd, e, "viewer"},
		{"a viewer adds a member", c, memberlog.OpAdd, e, "viewer"},
		{"an admin removes the owner", d, memberlog.OpRemove, a, ""},
		{"an admin adds an admin", d, memberlog.OpAdd, e, "admin"},
		{"an admin makes the owner a viewer", d, memberlog.OpChangeRole, a, "viewer"},
		{"an editor rotates the key", b, memberlog.OpRotate, b, ""},
		{"an outsider adds itself", e, memberlog.OpAdd, e, "owner"},
		{"the owner removes itself, the creator", a, memberlog.OpRemove, a, ""},
	} {
		st := logState(t, v.ID, all...)
		expectRefusal(t, appendEntry(t, st, tc.signer, tc.op, tc.subject, tc.role), http.StatusForbidden, "42501", tc.what)
	}
	// An entry signed in somebody else's name: the signer is read from the
	// signed bytes and must be the caller.
	st := logState(t, v.ID, all...)
	forged := st.Next(memberlog.OpAdd, uuid.MustParse(e.ID()), "viewer", fpOf(t, e), [32]byte{}, uuid.MustParse(a.ID()), time.Now())
	fs, _ := memberlog.Sign(forged, b.c.Session().Keys.Ed25519)
	fe, fsig := fs.Row()
	expectRefusal(t, b.rest("POST", "/vault_log", map[string]any{"vault_id": v.ID, "seq": forged.Seq, "entry": fe, "signature": fsig}),
		http.StatusForbidden, "42501", "an editor appends an entry naming the owner as signer")
	// Out of turn: a stale head conflicts, garbage is a bad request.
	stale := logState(t, v.ID, all...)
	if r := appendEntry(t, stale, a, memberlog.OpAdd, e, "viewer"); r.Status != http.StatusCreated {
		t.Fatalf("the owner appends: %d %s", r.Status, r.Body)
	}
	expectRefusal(t, appendEntry(t, stale, a, memberlog.OpChangeRole, c, "editor"), http.StatusConflict, "23505", "an entry that does not follow the head")
	expectRefusal(t, a.rest("POST", "/vault_log", map[string]any{"vault_id": v.ID, "seq": 99, "entry": base64.StdEncoding.EncodeToString([]byte("nonsense")), "signature": base64.StdEncoding.EncodeToString(make([]byte, 64))}),
		http.StatusBadRequest, "22023", "a malformed entry")

	// The owner cannot rewrite history either.
	r := a.rest("PATCH", "/vault_log?vault_id=eq."+v.ID.String()+"&seq=eq.1", map[string]any{"signature": base64.StdEncoding.EncodeToString(make([]byte, 64))})
	expectRefusal(t, r, http.StatusForbidden, "42501", "update a log entry")
	r = a.rest("DELETE", "/vault_log?vault_id=eq."+v.ID.String(), nil)
	expectRefusal(t, r, http.StatusForbidden, "42501", "delete the log")
	var n int
	if err := db(t).QueryRow(ctx, `SELECT count(*) FROM api.vault_log WHERE vault_id = $1`, v.ID).Scan(&n); err != nil || n != 5 {
		t.Fatalf("log entries after the refusals: %d %v, want 5", n, err)
	}
	r = a.rest("PATCH", "/vault_manifests?vault_id=eq."+v.ID.String(), map[string]any{"version": 99})
	expectRefusal(t, r, http.StatusForbidden, "42501", "a manifest changed without its rows")
	r = b.rest("POST", "/secrets", map[string]any{"id": uuid.New(), "vault_id": v.ID, "revision": 1, "ciphertext": "AAAA"})
	expectRefusal(t, r, http.StatusForbidden, "42501", "an editor writes a secret without the manifest")
	r = d.rest("POST", "/vault_key_chain", map[string]any{"vault_id": v.ID, "generation": 7, "wrapped": "AAAA"})
	if r.Status != http.StatusCreated {
		t.Fatalf("an admin adds a chain row: %d %s", r.Status, r.Body)
	}
	r = b.rest("POST", "/vault_key_chain", map[string]any{"vault_id": v.ID, "generation": 8, "wrapped": "AAAA"})
	expectRefusal(t, r, http.StatusForbidden, "42501", "an editor adds a chain row")
	r = d.rest("DELETE", "/vault_key_chain?vault_id=eq."+v.ID.String(), nil)
	expectRefusal(t, r, http.StatusForbidden, "42501", "delete the key chain")

	// Grants: an admin may delete an editor's, never the owner's; an editor
	// none but its own.
	r = d.rest("DELETE", "/access_policies?vault_id=eq."+v.ID.String()+"&user_id=eq."+a.ID(), nil, "Prefer", "return=representation")
	if r.Status != http.StatusOK || string(r.Body) != "[]" {
		t.Fatalf("an admin deletes the owner's grant: %d %s (want nothing deleted)", r.Status, r.Body)
	}
	r = b.rest("DELETE", "/access_policies?vault_id=eq."+v.ID.String()+"&user_id=eq."+c.ID(), nil, "Prefer", "return=representation")
	if r.Status != http.StatusOK || string(r.Body) != "[]" {
		t.Fatalf("an editor deletes a viewer's grant: %d %s (want nothing deleted)", r.Status, r.Body)
	}
	r = b.rest("POST", "/rpc/commit_members", map[string]any{"vault_id": v.ID, "log_entries": []any{}, "delete_user_ids": []string{c.ID()}})
	expectRefusal(t, r, http.StatusForbidden, "42501", "an editor removes a viewer's grant through commit_members")
	r = d.rest("PATCH", "/access_policies?vault_id=eq."+v.ID.String()+"&user_id=eq."+b.ID(), map[string]any{"role": "admin", "granted_by": d.ID()})
	expectRefusal(t, r, http.StatusForbidden, "42501", "an admin makes an editor an admin")

	// The client still opens the vault for everyone (the refused rows never
	// landed; the owner's extra entry is one it signed).
	for _, u := range []*sdkUser{a, d, b, c} {
		vaultOf(t, u, "roles")
	}
}

// An account made before key bundle version 2 gets the hybrid key at its
// next login: the five version 1 members are kept byte for byte, a version
// 2 key record is published, and its old vaults are given a membership log
// and a manifest the first time it reads them. The upgrade endpoint refuses
// anything else.
func TestLegacyAccountUpgradesAndAdoptsItsVaults(t *testing.T) {
	ctx := context.Background()
	u := newLegacySDKUser(t, "legacy")
	old := u.rawLogin(t)
	v1, err := keys.ParseBundle(old.KeyBundle)
	if err != nil || v1.Version != keys.BundleV1 {
		t.Fatalf("the legacy bundle: %v (version %d)", err, v1.Version)
	}

	// A vault made the old way: the row and a version 1 owner grant, no
	// log, no manifest; a secret written with a plain request.
	_, ak := legacyKeys(t, u, old)
	vid, sid := uuid.New(), uuid.New()
	vkey := randBytes(32)
	meta, _ := envelope.SealString(vkey, envelope.Context{Type: envelope.VaultMeta, VaultID: vid, ObjectID: vid, Revision: 1}, []byte(`{"name":"old"}`), rand.Reader)
	sealed, err := grant.SealVaultKey(ak.X25519.PublicKey(), vid, u.uid, vkey)
	if err != nil {
		t.Fatal(err)
	}
	g := grant.Grant{VaultID: vid, UserID: u.uid, GrantedBy: u.uid, Role: "owner", SealedKey: sealed}
	gsig, _ := grant.Sign(g, ak.Ed25519)
	ct, _ := envelope.SealString(vkey, envelope.Context{Type: envelope.Secret, VaultID: vid, ObjectID: sid, Revision: 1}, []byte(`{"name":"OLD","value":"kept"}`), rand.Reader)
	expectStatus(t, u.Do("POST", "/rest/vaults", old.AccessToken, map[string]any{"id": vid, "meta": meta, "revision": 1}), http.StatusCreated, "old vault")
	expectStatus(t, u.Do("POST", "/rest/access_policies", old.AccessToken, map[string]any{"vault_id": vid, "user_id": u.uid, "role": "owner",
		"sealed_key": sealed, "granted_by": u.uid, "signature": gsig}), http.StatusCreated, "old grant")
	expectStatus(t, u.Do("POST", "/rest/secrets", old.AccessToken, map[string]any{"id": sid, "vault_id": vid, "revision": 1, "ciphertext": ct}), http.StatusCreated, "old secret")

	// The current client logs in: version 2, the same five members.
	u.login(t, zsm.NewMemState())
	if u.c.Session().Keys.XWing == nil {
		t.Fatal("no X-Wing key after the login")
	}
	var raw []byte
	if err := db(t).QueryRow(ctx, `SELECT key_bundle FROM auth.users WHERE id = $1`, u.uid).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	v2, err := keys.ParseBundle(raw)
	if err != nil || v2.Version != keys.BundleV2 || v2.AccountKey != v1.AccountKey || v2.X25519Public != v1.X25519Public ||
		v2.X25519Private != v1.X25519Private || v2.Ed25519Public != v1.Ed25519Public || v2.Ed25519Private != v1.Ed25519Private {
		t.Fatalf("the upgraded bundle: %v (version %d)", err, v2.Version)
	}
	asker := newSDKUser(t, "asker")
	pk, err := asker.c.LookupIdentity(ctx, u.Identity)
	if err != nil || pk.RecordVersion != 2 || pk.XWing == nil || !pk.Signed {
		t.Fatalf("lookup after the upgrade: %+v %v", pk, err)
	}

	// Its old vault opens, gets its log and manifest on first read, and
	// from then on plain writes to it are refused.
	v := vaultOf(t, u.sdkUser, "old")
	if got := secretValues(t, u.sdkUser, v); got["OLD"] != "kept@1" {
		t.Fatalf("the old vault's secrets: %v", got)
	}
	var logN, manN int
	_ = db(t).QueryRow(ctx, `SELECT (SELECT count(*) FROM api.vault_log WHERE vault_id = $1), (SELECT count(*) FROM api.vault_manifests WHERE vault_id = $1)`, vid).Scan(&logN, &manN)
	if logN != 1 || manN != 1 {
		t.Fatalf("after the first read: %d log entries, %d manifests", logN, manN)
	}
	r := u.rest("POST", "/secrets", map[string]any{"id": uuid.New(), "vault_id": vid, "revision": 1, "ciphertext": ct})
	expectRefusal(t, r, http.StatusForbidden, "42501", "a plain write to an adopted vault")
	if _, err := u.c.SetSecret(ctx, v, "NEW", "x"); err != nil {
		t.Fatal(err)
	}
	verify(t, u.sdkUser, asker)
	verify(t, asker, u.sdkUser)
	if _, err := u.c.Share(ctx, v, asker.Identity, "viewer", false); err != nil {
		t.Fatal(err)
	}
	if got := secretValues(t, asker, vaultOf(t, asker, "old")); got["OLD"] != "kept@1" || got["NEW"] != "x@1" {
		t.Fatalf("the member reads the adopted vault: %v", got)
	}

	// The upgrade endpoint: only the stored bundle plus an X-Wing key, with
	// the version 2 record, from the account itself.
	w := newLegacySDKUser(t, "legacy2")
	ws := w.rawLogin(t)
	wb, _ := keys.ParseBundle(ws.KeyBundle)
	_, wak := legacyKeys(t, w, ws)
	good, err := wak.UpgradeBundle(wb, w.uid, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(b keys.Bundle, signer ed25519.PrivateKey) string {
		xw, _ := b.XWingPublicKey()
		s, err := keyRecordV2(w.uid, w.Identity, wak, xw, signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	upgrade := func(b keys.Bundle, sig string) response {
		return w.Do("POST", "/auth/v1/keys/upgrade", ws.AccessToken, map[string]any{"key_bundle": b, "key_record_signature": sig})
	}
	changedAK := good
	changedAK.AccountKey = v2.AccountKey // another account's wrapped key
	expectRefusal(t, upgrade(changedAK, rec(good, wak.Ed25519)), http.StatusForbidden, "key_change_refused", "a changed account key")
	changedX := good
	changedX.X25519Private = wb.Ed25519Private
	expectRefusal(t, upgrade(changedX, rec(good, wak.Ed25519)), http.StatusForbidden, "key_change_refused", "a changed private key envelope")
	expectRefusal(t, upgrade(wb, rec(good, wak.Ed25519)), http.StatusBadRequest, "invalid_key_upgrade", "a version 1 bundle")
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	expectRefusal(t, upgrade(good, rec(good, otherPriv)), http.StatusForbidden, "invalid_key_record", "a record signed by another key")
	stolen := good
	stolen.XWingPublic = v2.XWingPublic // the first account's X-Wing key
	expectRefusal(t, upgrade(stolen, rec(stolen, wak.Ed25519)), http.StatusConflict, "public_key_in_use", "another account's X-Wing key")
	expectRefusal(t, w.Do("POST", "/auth/v1/keys/upgrade", "", map[string]any{"key_bundle": good, "key_record_signature": rec(good, wak.Ed25519)}),
		http.StatusUnauthorized, "invalid_token", "no token")
	var version *int
	if err := db(t).QueryRow(ctx, `SELECT key_record_version FROM api.public_keys WHERE user_id = $1`, w.uid).Scan(&version); err != nil || version == nil || *version != 1 {
		t.Fatalf("after the refusals the record is %v (%v), want version 1", version, err)
	}
	expectStatus(t, upgrade(good, rec(good, wak.Ed25519)), http.StatusNoContent, "the proper upgrade")
	expectStatus(t, upgrade(good, rec(good, wak.Ed25519)), http.StatusNoContent, "the same upgrade again")
	wak.XWing = nil
	again, err := wak.UpgradeBundle(wb, w.uid, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	expectRefusal(t, upgrade(again, rec(again, wak.Ed25519)), http.StatusConflict, "keys_changed", "a second, different upgrade")
}
